"""Reschedule mode keeps its cursor in a Variable between pokes: none may outlive its run.

Through real Airflow (``dag.test``): runs that time out, time out softly (skipped) or succeed leave no
``dropbox_sensor_cursor_*`` Variable, and runs that end without the sensor's own code running (killed,
marked failed) share one bounded Variable per sensor task instead of adding one each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ops_fixtures import RunDag, load_dag, task_states, xcom


def _cursor_variables() -> list[tuple[str, str]]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.like("dropbox_sensor_cursor_%"))).all()
        return [(row.key, row.val) for row in rows]


def _run(file_name: str, dag_id: str, conf: dict[str, Any]) -> Any:
    return load_dag(file_name, dag_id).test(run_conf=conf)


def test_timed_out_and_skipped_runs_leave_no_variable(
    airflow_db: None, dropbox_default: Any, hook: Any, root: str
) -> None:
    hook.create_folder(root)
    before = set(_cursor_variables())
    for dag_id, state in [
        ("sensor_vars_timeout", "failed"),
        ("sensor_vars_timeout", "failed"),
        ("sensor_vars_soft_fail", "skipped"),
    ]:
        dr = _run("sensor_variables_dag.py", dag_id, {"root": root})
        assert task_states(dr)["wait_for_change"] == state, task_states(dr)
        assert set(_cursor_variables()) == before, f"{dag_id} left its cursor Variable behind"


def test_success_leaves_no_variable(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tmp_path: Path
) -> None:
    from tests.sensors.test_sensor_dags import _upload_once_watching

    hook.create_folder(root)
    before = set(_cursor_variables())
    writer = _upload_once_watching(dropbox_default, hook, tmp_path, {f"{root}/a.csv": "1"})
    dr = run_dag("ops_sensor_dag.py", "ops_sensor_reschedule", {"root": root})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    assert set(_cursor_variables()) == before


def test_runs_ending_outside_the_sensor_share_one_bounded_variable(run_dag: RunDag) -> None:
    """Killed or marked-failed runs never reach the sensor's clean-up: one Variable per task, bounded."""
    before = set(_cursor_variables())
    dr = run_dag("sensor_variables_dag.py", "sensor_vars_bounded")
    assert str(dr.state) == "success", task_states(dr)
    out = xcom(dr, "runs_ending_outside_the_sensor")
    assert len(out["runs"]) == out["max"] and "run-0" not in out["runs"]
    assert out["resumed"] == f"cursor-{out['max'] + 4}"
    assert out["left"] is None  # the last entry's removal removed the Variable
    assert set(_cursor_variables()) == before
