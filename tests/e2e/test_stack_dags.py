"""The provider's DAGs on a real ``airflow standalone`` (scheduler, LocalExecutor, triggerer, dag-processor).

Everything goes through the public REST API, as a user or CI would: unpause, trigger, wait, read task
states and XComs. Dropbox is the emulator; the test changes it with the provider's own client, as another
Dropbox app would. The tests share one session stack (``tests/e2e/conftest.py``) and run in file order:

1. the scheduled mirror DAG: a full run, then an incremental run after a remote change;
2. a DAG with the deferrable change sensor: deferred to the triggerer, resumed by a change (latency
   measured and written to ``$AIRFLOW_HOME/e2e-latency.json`` and the test output);
3. the AssetWatcher DAG: no run while the folder is quiet, an ``asset_triggered`` run after a change that
   mirrors the folder (the DAG passes the watched asset as the mirror's inlet: e2e-findings.md #1).

``test_stack_secrets.py`` then greps every log the stack wrote for credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, content_hash_file
from tests.e2e.standalone import AirflowStandalone
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess
from tests.trees import local_tree, put

pytestmark = pytest.mark.slow

MIRROR_DAG = "dropbox_mirror"
SENSOR_DAG = "e2e_dropbox_change_sensor"
EVENT_DAG = "dropbox_event_driven"
LONGPOLL = "/2/files/list_folder/longpoll"
T = TypeVar("T")


# -- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dbx(e2e_emulator: EmulatorProcess) -> Iterator[DropboxClient]:
    client = DropboxClient(
        Credentials(DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN),
        endpoints=Endpoints.single_host(e2e_emulator.base_url),
    )
    try:
        yield client
    finally:
        client.close()


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_path(dag_id: str, run_id: str) -> str:
    return f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def task_instance(stack: AirflowStandalone, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    ti: dict[str, Any] = stack.api("GET", f"{run_path(dag_id, run_id)}/taskInstances/{task_id}")
    return ti


def xcom(stack: AirflowStandalone, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    entry = stack.api("GET", f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
    value = entry["value"]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def finished(stack: AirflowStandalone, dag_id: str, run_id: str, timeout: float = 300.0) -> None:
    state = stack.wait_for_run(dag_id, quote(run_id, safe=""), timeout=timeout)
    assert state == "success", f"{dag_id} {run_id}: {state}, tasks {task_states(stack, dag_id, run_id)}"


def task_states(stack: AirflowStandalone, dag_id: str, run_id: str) -> dict[str, str]:
    return stack.task_states(dag_id, quote(run_id, safe=""))


def longpolls(emulator: EmulatorProcess) -> int:
    return int(emulator.stats().get(LONGPOLL, 0))


# -- 1. scheduled mirror ------------------------------------------------------------------------------------


def test_mirror_dag_full_then_incremental(
    airflow_stack: AirflowStandalone, dbx: DropboxClient, mirror_root: Path
) -> None:
    remote = "/E2E/Mirror"
    files = {
        "a.txt": b"alpha\n",
        "b.txt": b"to be deleted\n",
        "docs/report.csv": b"region,amount\nnorth,1200\n" * 100,
        "docs/deep/r\u00e9sum\u00e9 \U0001f4c4.bin": bytes(range(256)) * 1000,
        "empty.txt": b"",
    }
    for rel, data in files.items():
        put(dbx, f"{remote}/{rel}", data)
    dest = mirror_root / "e2e-mirror"
    conf = {"dropbox_path": remote, "local_path": str(dest)}

    airflow_stack.wait_for_dag(MIRROR_DAG, timeout=180)
    airflow_stack.unpause(MIRROR_DAG)
    first = airflow_stack.trigger(MIRROR_DAG, conf)
    finished(airflow_stack, MIRROR_DAG, first)
    assert task_states(airflow_stack, MIRROR_DAG, first) == {"mirror": "success", "report": "success"}
    assert local_tree(dest) == files
    report = xcom(airflow_stack, MIRROR_DAG, first, "mirror")
    assert report["ok"] is True and report["mode"] == "full", report
    assert report["done"].get("download") == len(files), report
    assert report["bytes_downloaded"] == sum(len(d) for d in files.values())
    assert xcom(airflow_stack, MIRROR_DAG, first, "report") == report["summary"]

    # Another Dropbox client edits one file, deletes one and adds one.
    edited, added = b"alpha, edited on Dropbox\n", b"brand new\n" * 50
    put(dbx, f"{remote}/a.txt", edited)
    dbx.delete(f"{remote}/b.txt")
    put(dbx, f"{remote}/docs/new.txt", added)
    second = airflow_stack.trigger(MIRROR_DAG, conf)
    finished(airflow_stack, MIRROR_DAG, second)
    expected = {**files, "a.txt": edited, "docs/new.txt": added}
    del expected["b.txt"]
    assert local_tree(dest) == expected
    report = xcom(airflow_stack, MIRROR_DAG, second, "mirror")
    assert report["ok"] is True and report["mode"] == "incremental", report
    assert report["done"].get("download") == 2, report
    assert report["done"].get("delete_file") == 1, report
    assert report["bytes_downloaded"] == len(edited) + len(added), report
    for rel in expected:
        assert content_hash_file(dest / rel) == dbx.get_metadata(f"{remote}/{rel}")["content_hash"], rel


# -- 2. deferrable change sensor ----------------------------------------------------------------------------


def test_deferrable_sensor_waits_in_the_triggerer_and_resumes_on_a_change(
    airflow_stack: AirflowStandalone, dbx: DropboxClient, e2e_emulator: EmulatorProcess
) -> None:
    folder = "/E2E/Sensor"
    put(dbx, f"{folder}/already-there.txt", b"existing content must not wake the sensor\n")
    airflow_stack.wait_for_dag(SENSOR_DAG, timeout=180)
    airflow_stack.unpause(SENSOR_DAG)
    run_id = airflow_stack.trigger(SENSOR_DAG, {"path": folder})

    def deferred_in_triggerer() -> dict[str, Any] | None:
        ti = task_instance(airflow_stack, SENSOR_DAG, run_id, "wait_for_change")
        assert ti["state"] not in ("failed", "success", "up_for_retry"), ti
        if ti["state"] == "deferred" and ti.get("trigger") and ti.get("triggerer_job"):
            return ti
        return None

    ti = wait_until(deferred_in_triggerer, 240, "the sensor to be deferred and picked up by the triggerer")
    assert ti["trigger"]["classpath"].endswith("DropboxChangeTrigger"), ti["trigger"]
    assert ti["triggerer_job"]["job_type"] == "TriggererJob", ti["triggerer_job"]
    # The trigger is holding a longpoll open on the emulator, and nothing wakes it while the folder is quiet.
    polls = wait_until(lambda: longpolls(e2e_emulator) or None, 60, "the triggerer's longpoll")
    time.sleep(5)
    assert task_instance(airflow_stack, SENSOR_DAG, run_id, "wait_for_change")["state"] == "deferred"
    # At most one more: a 30 s longpoll may time out and be renewed inside the window, but no spinning.
    assert longpolls(e2e_emulator) <= polls + 1, "a quiet folder should keep one longpoll open, not spin"

    data = b"a change made on Dropbox while the sensor waits in the triggerer\n"
    changed_at = time.monotonic()
    put(dbx, f"{folder}/arrived.csv", data)
    state, left_deferred_at = "deferred", None
    deadline = changed_at + 240
    while time.monotonic() < deadline:
        state = task_instance(airflow_stack, SENSOR_DAG, run_id, "wait_for_change")["state"]
        if state != "deferred" and left_deferred_at is None:
            left_deferred_at = time.monotonic()
        if state in ("success", "failed"):
            break
        time.sleep(0.2)
    succeeded_at = time.monotonic()
    assert state == "success", state
    assert left_deferred_at is not None
    latency = {
        "change_to_trigger_fired_s": round(left_deferred_at - changed_at, 2),
        "change_to_task_success_s": round(succeeded_at - changed_at, 2),
    }
    (airflow_stack.home / "e2e-latency.json").write_text(json.dumps(latency))
    print(f"\ndeferrable sensor latency: {latency}")
    assert latency["change_to_trigger_fired_s"] < 15, latency

    finished(airflow_stack, SENSOR_DAG, run_id, timeout=60)
    result = xcom(airflow_stack, SENSOR_DAG, run_id, "wait_for_change")
    assert result["count"] == 1 and result["reset"] is False, result
    (change,) = result["changes"]
    assert change["path"] == f"{folder}/arrived.csv", change
    # Watching every kind, the sensor does not spend a list_revisions call per file to tell a new file
    # from an edit: it reports "changed" with kind_exact False, unless the kind is known without a call
    # (a path the cursor's own batch reported, or a delete and re-create in one batch; changes.py).
    assert (change["kind"], change["kind_exact"]) in {("changed", False), ("added", True)}, change
    assert change["type"] == "file", change
    assert change["size"] == len(data)
    cursor = xcom(airflow_stack, SENSOR_DAG, run_id, "wait_for_change", key="dropbox_cursor")
    assert cursor["cursor"] == result["cursor"], cursor


# -- 3. AssetWatcher -----------------------------------------------------------------------------------------


def test_asset_watcher_runs_the_dag_on_a_change_and_not_while_quiet(
    airflow_stack: AirflowStandalone,
    dbx: DropboxClient,
    e2e_emulator: EmulatorProcess,
    mirror_root: Path,
) -> None:
    dbx.create_folder("/Inbox")
    before = b"existing files do not trigger a run\n"
    put(dbx, "/Inbox/before-the-watcher.txt", before)
    airflow_stack.wait_for_dag(EVENT_DAG, timeout=180)
    assert airflow_stack.runs(EVENT_DAG) == []
    polls = longpolls(e2e_emulator)
    airflow_stack.unpause(EVENT_DAG)
    # Only active, unpaused DAGs get their watchers started; wait until it longpolls Dropbox.
    wait_until(lambda: longpolls(e2e_emulator) >= polls + 1, 180, "the AssetWatcher's first longpoll")

    time.sleep(20)
    assert airflow_stack.runs(EVENT_DAG) == [], "a quiet folder must not schedule runs"

    data = b"dropped into the watched folder\n"
    changed_at = time.monotonic()
    put(dbx, "/Inbox/e2e-event.txt", data)
    run = wait_until(
        lambda: next(iter(airflow_stack.runs(EVENT_DAG)), None), 180, "an asset-triggered run", 0.5
    )
    created_s = round(time.monotonic() - changed_at, 2)
    print(f"\nasset watcher: change to DagRun visible in {created_s}s")
    assert run["run_type"] == "asset_triggered", run
    run_id = run["dag_run_id"]

    state = airflow_stack.wait_for_run(EVENT_DAG, quote(run_id, safe=""), timeout=300)
    assert task_states(airflow_stack, EVENT_DAG, run_id)["log_changes"] == "success"
    changes = xcom(airflow_stack, EVENT_DAG, run_id, "log_changes")
    assert [c["path"] for c in changes] == ["/Inbox/e2e-event.txt"], changes
    assert changes[0]["kind"] in ("added", "changed"), changes
    time.sleep(3)
    assert len(airflow_stack.runs(EVENT_DAG)) == 1, "one change, one run"
    assert state == "success", task_states(airflow_stack, EVENT_DAG, run_id)
    # The mirror brought the whole folder down, the file that was there before the watcher included.
    assert local_tree(mirror_root / "_events") == {"before-the-watcher.txt": before, "e2e-event.txt": data}
    report = xcom(airflow_stack, EVENT_DAG, run_id, "mirror_inbox")
    assert report["ok"] is True, report
