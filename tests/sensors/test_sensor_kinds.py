"""``kinds=["added"]`` / ``["modified"]`` through real Airflow (``dag.test``) against the emulator: a file
created and edited twice while the sensor waits is still ``added``; an edit of an older file is
``modified``; the cursor's server time travels with the cursor (XCom, reschedule Variable, trigger) so the
next run decides relative to its own cursor."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ops_fixtures import RunDag, task_states, xcom

LATEST_CURSOR = "/2/files/list_folder/get_latest_cursor"


def next_second() -> None:
    """Dropbox times are whole seconds: step past the current one so before/after the cursor is clear."""
    time.sleep(1.05 - (time.time() % 1.0))


def put(hook: Any, tmp: Path, remote: str, text: str) -> None:
    local = tmp / f"{time.time_ns()}.txt"
    local.write_text(text)
    hook.upload_file(local, remote, mode="overwrite")


def write_after_first_cursor(
    emulator: Any, hook: Any, tmp: Path, writes: list[tuple[str, str]]
) -> threading.Thread:
    before = emulator.stats().get(LATEST_CURSOR, 0)

    def work() -> None:
        deadline = time.monotonic() + 60
        while emulator.stats().get(LATEST_CURSOR, 0) <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        next_second()
        for remote, text in writes:
            put(hook, tmp, remote, text)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def kinds_of(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return sorted((c["path_lower"].rsplit("/", 1)[-1], c["kind"], c["kind_exact"]) for c in result["changes"])


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_added_only_sensor(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tmp_path: Path, mode: str
) -> None:
    dag_id = f"ops_kinds_added_{mode}"
    put(hook, tmp_path, f"{root}/existing.csv", "e0")
    next_second()
    writer = write_after_first_cursor(
        dropbox_default,
        hook,
        tmp_path,
        [
            (f"{root}/new.csv", "n1"),
            (f"{root}/new.csv", "n2"),
            (f"{root}/new.csv", "n3"),
            (f"{root}/existing.csv", "e1"),
        ],
    )
    dr = run_dag("ops_sensor_kinds_dag.py", dag_id, {"root": root})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    assert kinds_of(xcom(dr, "wait_for_change")) == [("new.csv", "added", True)]
    saved = xcom(dr, "wait_for_change", key="dropbox_cursor")
    assert saved["cursor_time"], saved  # the server time of the saved cursor, for the next run

    # Next run, from the saved cursor: new.csv existed then (an edit now is 'modified', filtered out),
    # fresh.csv did not.
    next_second()
    put(hook, tmp_path, f"{root}/new.csv", "n4")
    put(hook, tmp_path, f"{root}/fresh.csv", "f1")
    dr2 = run_dag("ops_sensor_kinds_dag.py", dag_id, {"root": root})
    assert str(dr2.state) == "success", task_states(dr2)
    assert kinds_of(xcom(dr2, "wait_for_change")) == [("fresh.csv", "added", True)]


def test_modified_only_sensor(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tmp_path: Path
) -> None:
    put(hook, tmp_path, f"{root}/existing.csv", "e0")
    next_second()
    writer = write_after_first_cursor(
        dropbox_default,
        hook,
        tmp_path,
        [(f"{root}/existing.csv", "e1"), (f"{root}/existing.csv", "e2"), (f"{root}/new.csv", "n1")],
    )
    dr = run_dag("ops_sensor_kinds_dag.py", "ops_kinds_modified_poke", {"root": root})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    assert kinds_of(xcom(dr, "wait_for_change")) == [("existing.csv", "modified", True)]
