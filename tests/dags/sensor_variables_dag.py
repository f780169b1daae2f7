"""Reschedule-mode change sensors that end without a change (``tests/sensors/test_sensor_variables.py``)."""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor


def _dag(dag_id: str, **sensor_kwargs: object) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={"root": "/sensor-vars"},
        tags=["test"],
    ) as dag:
        DropboxChangeSensor(
            task_id="wait_for_change",
            path="{{ params.root }}",
            mode="reschedule",
            deferrable=False,
            poke_interval=1,
            timeout=3,
            **sensor_kwargs,  # type: ignore[arg-type]
        )
    return dag


sensor_vars_timeout = _dag("sensor_vars_timeout")
sensor_vars_soft_fail = _dag("sensor_vars_soft_fail", soft_fail=True)


class _TI:
    def __init__(self, run_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "sensor_vars", "wait", run_id, -1


with DAG(
    dag_id="sensor_vars_bounded",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
) as sensor_vars_bounded:

    @task
    def runs_ending_outside_the_sensor() -> dict[str, object]:
        """Runs killed or marked failed never reach the sensor's clean-up: what their entries cost."""
        from airflow.sdk import Variable

        from airflow_provider_dropbox.sensors.dropbox import MAX_RESCHEDULE_RUNS

        sensor = DropboxChangeSensor(task_id="wait", path="/bounded", mode="reschedule", deferrable=False)
        n = MAX_RESCHEDULE_RUNS + 5
        for i in range(n):
            sensor._remember({"ti": _TI(f"run-{i}")}, f"cursor-{i}", None)  # type: ignore[arg-type]
        key = sensor._variable_key({"ti": _TI("any")})  # type: ignore[arg-type]
        runs = json.loads(Variable.get(key))["runs"]
        # A cleared run (same run id) resumes from its own entry.
        resumed = sensor._initial_cursor({"ti": _TI(f"run-{n - 1}")})  # type: ignore[arg-type]
        for run_id in list(runs):
            sensor._forget({"ti": _TI(run_id)})  # type: ignore[arg-type]
        return {
            "key": key,
            "runs": sorted(runs),
            "resumed": resumed,
            "left": Variable.get(key, default=None),
            "max": MAX_RESCHEDULE_RUNS,
        }

    runs_ending_outside_the_sensor()
