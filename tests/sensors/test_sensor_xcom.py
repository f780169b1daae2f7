"""The change sensor's XCom stays bounded: counts, at most 100 changes, where the rest are.

A batch of 20,000 changes used to push every change (about 330 bytes each) into the metadata database;
``full_list=True`` still returns every change. Through real Airflow (``dag.test``), in poke mode (a
listing from the beginning) and deferrable mode (a batch read by the trigger).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.operators.common import XCOM_FILE_LIMIT
from tests.ops_fixtures import RunDag, task_states, xcom

N = 150  # above the listed bound, small enough to upload quickly
LATEST_CURSOR = "/2/files/list_folder/get_latest_cursor"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(N):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:04d}.csv").write_text(f"{i}\n")
    return src


def test_listing_result_is_bounded_and_full_list_has_every_change(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tree: Path
) -> None:
    hook.upload_folder(tree, root)
    dr = run_dag("sensor_xcom_dag.py", "sensor_xcom", {"root": root})
    assert str(dr.state) == "success", task_states(dr)
    bounded, every = xcom(dr, "bounded"), xcom(dr, "every")
    assert bounded["count"] == N and bounded["by_kind"] == {"added": N}
    assert len(bounded["changes"]) == XCOM_FILE_LIMIT and bounded["truncated"] == N - XCOM_FILE_LIMIT
    assert root in bounded["rest"] and "full_list=True" in bounded["rest"]
    assert bounded["from_cursor"] is None and bounded["cursor"]
    assert every["count"] == N and len(every["changes"]) == N and every["truncated"] == 0
    assert every["rest"] is None
    assert len(json.dumps(bounded)) * 1.3 < len(json.dumps(every))


def test_deferred_batch_is_bounded_and_the_rest_is_readable_from_its_cursor(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tree: Path
) -> None:
    hook.create_folder(root)
    before = dropbox_default.stats().get(LATEST_CURSOR, 0)

    def write() -> None:  # once the sensor holds its cursor
        deadline = time.monotonic() + 60
        while dropbox_default.stats().get(LATEST_CURSOR, 0) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)
        hook.upload_folder(tree, f"{root}/batch")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    dr = run_dag("sensor_xcom_dag.py", "sensor_xcom_deferred", {"root": root})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    result = xcom(dr, "wait_for_change")
    assert len(result["changes"]) == min(result["count"], XCOM_FILE_LIMIT)
    assert result["truncated"] == result["count"] - len(result["changes"])
    # Where the rest are: the changes since ``from_cursor`` hold every file of the batch.
    assert result["from_cursor"]
    entries, _ = hook.list_changes(result["from_cursor"])
    files = {e["path_lower"] for e in entries if e.get(".tag") == "file"}
    reported = {c["path_lower"] for c in result["changes"]}
    assert reported <= files and len(files) == N
