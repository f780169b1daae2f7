"""The change sensor in poke, reschedule and deferrable mode, through real Airflow against the emulator."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ops_fixtures import RunDag, task_states, xcom

LATEST_CURSOR = "/2/files/list_folder/get_latest_cursor"


def _upload_once_watching(emulator: Any, hook: Any, tmp: Path, files: dict[str, str]) -> threading.Thread:
    """Change Dropbox only after the sensor took its first cursor (else the change predates it)."""
    before = emulator.stats().get(LATEST_CURSOR, 0)

    def work() -> None:
        deadline = time.monotonic() + 60
        while emulator.stats().get(LATEST_CURSOR, 0) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)
        for remote, text in files.items():
            local = tmp / remote.strip("/").replace("/", "_")
            local.write_text(text)
            hook.upload_file(local, remote, mode="overwrite")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "dag_id",
    [
        pytest.param("ops_sensor_poke", id="poke"),
        pytest.param("ops_sensor_reschedule", id="reschedule"),
        pytest.param("ops_sensor_deferrable", id="deferrable"),
    ],
)
def test_sensor_reports_change_and_continues_from_its_cursor(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tmp_path: Path, dag_id: str
) -> None:
    hook.create_folder(root)
    # While the sensor waits: a non-matching file first (ignored: the sensor keeps waiting), then a match.
    writer = _upload_once_watching(
        dropbox_default, hook, tmp_path, {f"{root}/notes.txt": "n", f"{root}/in/a.csv": "1"}
    )
    dr = run_dag("ops_sensor_dag.py", dag_id, {"root": root})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    result = xcom(dr, "wait_for_change")
    assert [(c["path"], c["kind"]) for c in result["changes"]] == [(f"{root}/in/a.csv", "changed")]
    change = result["changes"][0]
    assert change["size"] == 1 and change["rev"] and change["content_hash"]
    assert xcom(dr, "changed_paths") == [f"{root}/in/a.csv"]
    saved = xcom(dr, "wait_for_change", key="dropbox_cursor")
    assert saved["cursor"] == result["cursor"]

    # Between runs: a deletion and a new file. The next run starts from the saved cursor and sees both
    # at once (nothing lost between runs), without the change reported by the first run.
    hook.delete(f"{root}/in/a.csv")
    (tmp_path / "b.csv").write_text("22")
    hook.upload_file(tmp_path / "b.csv", f"{root}/b.csv")
    dr2 = run_dag("ops_sensor_dag.py", dag_id, {"root": root})
    assert str(dr2.state) == "success", task_states(dr2)
    second = xcom(dr2, "wait_for_change")
    assert sorted((c["path_lower"], c["kind"]) for c in second["changes"]) == [
        (f"{root}/b.csv", "changed"),
        (f"{root}/in/a.csv", "deleted"),
    ]
