"""The provider on CeleryExecutor with two workers (separate processes), driven through the REST API."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.distributed.conftest import WORKERS, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
LONGPOLL = "/2/files/list_folder/longpoll"
T = TypeVar("T")


def test_mapped_upload_of_20_folders_spreads_over_both_workers(cluster: Cluster) -> None:
    source = Path(cluster.env["DIST_SOURCE_DIR"])
    expected: dict[str, str] = {}
    for i in range(20):
        folder = source / f"f{i:02d}"
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        for name, data in (
            (f"a{i}.txt", f"folder {i}\n".encode()),
            (f"sub/b{i}.bin", bytes([i]) * (1000 + i)),
        ):
            (folder / name).write_bytes(data)
            expected[f"/dist/mapped/f{i:02d}/{name}"] = hashlib.sha256(data).hexdigest()
    run_id = cluster.unpause_and_trigger("dist_mapped_upload")
    state = cluster.wait_run("dist_mapped_upload", run_id, timeout=300)
    tis = cluster.task_instances("dist_mapped_upload", run_id)
    assert state == "success", [(t["map_index"], t["state"]) for t in tis]
    assert len(tis) == 20 and all(t["state"] == "success" for t in tis)
    hosts = {t["hostname"] for t in tis}
    assert hosts == set(WORKERS), hosts  # both workers took a share
    from tests.client.conftest import client_for

    with client_for(cluster.emulator) as client:
        for path, digest in expected.items():
            resp = client.download_response("files/download", {"path": path}, path=path)
            try:
                assert hashlib.sha256(resp.content).hexdigest() == digest, path
            finally:
                resp.close()


def _wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _assert_dropbox_bytes(cluster: Cluster, expected: dict[str, bytes]) -> None:
    from tests.client.conftest import client_for

    with client_for(cluster.emulator) as client:
        for path, data in expected.items():
            resp = client.download_response("files/download", {"path": path}, path=path)
            try:
                assert hashlib.sha256(resp.content).digest() == hashlib.sha256(data).digest(), path
            finally:
                resp.close()


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # not there yet (or caught between write and replace)
    return info if isinstance(info, dict) and "pid" in info else None


def test_mirror_lock_when_two_runs_race_on_two_workers(cluster: Cluster) -> None:
    """Two mirror runs into one shared destination at once, on two workers: one mirrors, the other stops at
    LockHeldError naming the holder and changes nothing; the destination ends equal to Dropbox, and a later
    run on the other worker continues incrementally from the state the first one left."""
    from tests.client.conftest import client_for
    from tests.trees import local_tree, put

    dest = Path(cluster.env["DIST_MIRROR_DIR"])
    files = {f"part-{i:02d}.bin": os.urandom(256 * 1024) for i in range(24)}
    files["docs/readme.txt"] = b"mirrored by whichever worker holds the lock\n"
    with client_for(cluster.emulator) as client:
        for rel, data in files.items():
            put(client, f"/dist/mirror/{rel}", data)
    # 24 files of 256 KiB, 2 downloads at a time, each capped at 0.5 Mbit/s: about 50 s of holding the lock,
    # cut short (faults cleared) as soon as the racing run has ended.
    cluster.emulator.set_faults(bandwidth_mbps=0.5)
    try:
        run_a = cluster.unpause_and_trigger("dist_mirror_on_a")
        lock = dest / ".dropbox-mirror" / "lock"
        holder = _wait_until(lambda: _read_lock(lock), 180, "run A to take the mirror lock")
        cluster.unpause("dist_mirror_on_b")
        run_b = cluster.trigger("dist_mirror_on_b")
        state_b = cluster.wait_run("dist_mirror_on_b", run_b, timeout=180)
        (ti_a_meanwhile,) = cluster.task_instances("dist_mirror_on_a", run_a)
    finally:
        cluster.emulator.clear_faults()
    state_a = cluster.wait_run("dist_mirror_on_a", run_a, timeout=180)
    (ti_a,) = cluster.task_instances("dist_mirror_on_a", run_a)
    (ti_b,) = cluster.task_instances("dist_mirror_on_b", run_b)
    assert (ti_a["hostname"], ti_b["hostname"]) == ("worker-a", "worker-b"), (ti_a, ti_b)
    # At once: run A was still mirroring when run B had already ended.
    assert ti_a_meanwhile["state"] == "running", ti_a_meanwhile
    assert state_b == "failed", ti_b
    log_b = cluster.task_log("dist_mirror_on_b", run_b, "mirror")
    assert "LockHeldError" in log_b, log_b[-3000:]
    assert f"owner {holder['host']}:{holder['pid']}" in log_b, (holder, log_b[-3000:])
    assert state_a == "success", ti_a
    report = cluster.xcom("dist_mirror_on_a", run_a, "mirror")
    assert report["ok"] is True and report["mode"] == "full", report
    assert report["done"].get("download") == len(files), report
    # Nothing lost, no partial file, the lock released.
    assert local_tree(dest) == files
    assert not lock.exists()

    # The other worker continues from the state in the shared destination: only the changes move.
    edited, added = b"edited on Dropbox\n", b"new on Dropbox\n" * 100
    with client_for(cluster.emulator) as client:
        put(client, "/dist/mirror/docs/readme.txt", edited)
        client.delete("/dist/mirror/part-00.bin")
        put(client, "/dist/mirror/docs/added.txt", added)
    run_b2 = cluster.trigger("dist_mirror_on_b")
    state_b2 = cluster.wait_run("dist_mirror_on_b", run_b2, timeout=180)
    (ti_b2,) = cluster.task_instances("dist_mirror_on_b", run_b2)
    assert state_b2 == "success" and ti_b2["hostname"] == "worker-b", ti_b2
    report = cluster.xcom("dist_mirror_on_b", run_b2, "mirror")
    assert report["ok"] is True and report["mode"] == "incremental", report
    assert report["done"].get("download") == 2 and report["done"].get("delete_file") == 1, report
    expected = {**files, "docs/readme.txt": edited, "docs/added.txt": added}
    del expected["part-00.bin"]
    assert local_tree(dest) == expected


def test_upload_on_local_file_dag_uploads_a_file_that_appears(cluster: Cluster) -> None:
    """dags/dropbox_upload_on_local_file.py unchanged: its local-folder watcher (in the triggerer) sees files
    appear in the inbox and schedules an asset-triggered run that hands them to mapped upload tasks on the
    workers; the bytes on Dropbox are checked, the uploaded files are archived, a partial (.part) file is
    left alone."""
    dag_id = "dropbox_upload_on_local_file"
    root = Path(cluster.env["DROPBOX_UPLOAD_ROOT"])
    inbox, archive = root / "inbox", root / "archive"
    inbox.mkdir(parents=True, exist_ok=True)
    cluster.unpause(dag_id)  # only unpaused DAGs get their watchers started
    try:
        # the hourly safety schedule runs its latest tick at once (catchup=False): an empty inbox, no upload
        first = _wait_until(lambda: next(iter(cluster.dag_runs(dag_id)), None), 180, "the scheduled run")
        assert first["run_type"] == "scheduled", first
        assert cluster.wait_run(dag_id, first["dag_run_id"], timeout=240) == "success"
        files = {"ledger.csv": b"id,amount\n1,10\n2,20\n" * 500, "scans/page-1.bin": os.urandom(512 * 1024)}
        for rel, data in files.items():
            (inbox / rel).parent.mkdir(parents=True, exist_ok=True)
            (inbox / rel).write_bytes(data)
        (inbox / "incoming.csv.part").write_bytes(b"still being written")

        def uploading_run() -> dict[str, Any] | None:
            for run in cluster.dag_runs(dag_id):
                if run["run_type"] == "asset_triggered":
                    tis = cluster.task_instances(dag_id, run["dag_run_id"])
                    if any(t["task_id"] == "upload_and_archive" and t["map_index"] >= 0 for t in tis):
                        return run
            return None

        run = _wait_until(uploading_run, 240, "an asset-triggered run with upload tasks")
        state = cluster.wait_run(dag_id, run["dag_run_id"], timeout=240)
    finally:
        cluster.pause(dag_id)
    tis = cluster.task_instances(dag_id, run["dag_run_id"])
    assert state == "success", tis
    uploads = [t for t in tis if t["task_id"] == "upload_and_archive"]
    assert sorted(t["map_index"] for t in uploads) == [0, 1], tis
    assert all(t["state"] == "success" and t["hostname"] in WORKERS for t in uploads), uploads
    _assert_dropbox_bytes(cluster, {f"/Uploads/{rel}": data for rel, data in files.items()})
    from airflow_provider_dropbox.client.errors import PathNotFoundError
    from tests.client.conftest import client_for
    from tests.trees import local_tree

    with client_for(cluster.emulator) as client, pytest.raises(PathNotFoundError):
        client.get_metadata("/Uploads/incoming.csv.part")
    assert local_tree(archive) == files
    assert [p.name for p in inbox.rglob("*") if p.is_file()] == ["incoming.csv.part"]


def test_asset_watcher_schedules_a_run_on_a_dropbox_change(cluster: Cluster) -> None:
    """dags/dropbox_event_driven.py unchanged: its AssetWatcher (DropboxChangeEventTrigger, in the triggerer)
    sees a change on Dropbox and schedules one asset-triggered run whose tasks run on the Celery workers."""
    from tests.client.conftest import client_for
    from tests.trees import local_tree, put

    dag_id = "dropbox_event_driven"
    watched = cluster.env["DROPBOX_WATCH_PATH"]
    before, data = b"there before the watcher\n", b"dropped into the watched folder\n"
    with client_for(cluster.emulator) as client:
        client.create_folder(watched)
        put(client, f"{watched}/before.txt", before)
        longpolls = cluster.emulator.stats().get(LONGPOLL, 0)
        cluster.unpause(dag_id)  # only unpaused DAGs get their watchers started
        try:
            _wait_until(
                lambda: cluster.emulator.stats().get(LONGPOLL, 0) > longpolls,
                180,
                "the watcher's first longpoll",
            )
            assert cluster.dag_runs(dag_id) == [], "a quiet folder must not schedule a run"
            put(client, f"{watched}/event.txt", data)
            run = _wait_until(
                lambda: next(iter(cluster.dag_runs(dag_id)), None), 180, "an asset-triggered run"
            )
            state = cluster.wait_run(dag_id, run["dag_run_id"], timeout=240)
        finally:
            cluster.pause(dag_id)
    run_id = run["dag_run_id"]
    tis = cluster.task_instances(dag_id, run_id)
    assert run["run_type"] == "asset_triggered", run
    assert state == "success", tis
    assert {t["task_id"] for t in tis} == {"log_changes", "mirror_inbox"}, tis
    assert all(t["hostname"] in WORKERS for t in tis), tis
    changes = cluster.xcom(dag_id, run_id, "log_changes")
    assert [c["path"] for c in changes] == [f"{watched}/event.txt"], changes
    assert len(cluster.dag_runs(dag_id)) == 1, "one change, one run"
    mirror = Path(cluster.env["DROPBOX_MIRROR_LOCAL_PATH"]) / "_events"
    assert local_tree(mirror) == {"before.txt": before, "event.txt": data}


def test_deferrable_sensor_resumes_on_another_worker(cluster: Cluster) -> None:
    import time

    from tests.client.conftest import client_for

    with client_for(cluster.emulator) as client:
        client.create_folder("/dist/watch")
        run_id = cluster.unpause_and_trigger("dist_deferred_sensor")
        deadline = time.monotonic() + 180
        ti: dict[str, object] = {}
        while time.monotonic() < deadline:
            (ti,) = cluster.task_instances("dist_deferred_sensor", run_id)
            if ti["state"] == "deferred":
                break
            time.sleep(0.5)
        assert ti.get("state") == "deferred", ti
        deferred_on = str(ti["hostname"])
        assert deferred_on in WORKERS, ti
        cluster.stop(deferred_on)  # warm shutdown: that worker is idle, the trigger lives in the triggerer
        try:
            client.upload_call(
                "files/upload",
                {"path": "/dist/watch/arrived.csv", "mode": "overwrite"},
                lambda: b"a,b\n1,2\n",
                path="/dist/watch/arrived.csv",
            )
            state = cluster.wait_run("dist_deferred_sensor", run_id, timeout=240)
        finally:
            cluster.start_worker(deferred_on)  # the next test needs both workers
    (ti,) = cluster.task_instances("dist_deferred_sensor", run_id)
    assert state == "success", ti
    assert ti["hostname"] != deferred_on and ti["hostname"] in WORKERS, (ti["hostname"], deferred_on)
    result = cluster.api(
        "GET", f"dags/dist_deferred_sensor/dagRuns/{run_id}/taskInstances/wait/xcomEntries/return_value"
    )
    assert "/dist/watch/arrived.csv" in str(result["value"]), result


def test_worker_killed_mid_upload_retries_on_the_other_worker(cluster: Cluster) -> None:
    """Runs last: it leaves one worker dead."""
    import os
    import signal
    import time

    source = Path(cluster.env["DIST_SOURCE_DIR"])
    source.mkdir(parents=True, exist_ok=True)
    data = os.urandom(24 * 1024 * 1024)  # upload session of several chunks
    (source / "big.bin").write_bytes(data)
    cluster.emulator.set_faults(bandwidth_mbps=16)  # ~12 s per attempt: time to kill it mid-way
    try:
        run_id = cluster.unpause_and_trigger("dist_killed_upload")
        deadline = time.monotonic() + 180
        victim = None
        while time.monotonic() < deadline and victim is None:
            (ti,) = cluster.task_instances("dist_killed_upload", run_id)
            if ti["state"] == "running" and ti["hostname"] in WORKERS:
                time.sleep(3)  # mid-upload
                victim = ti["hostname"]
            else:
                time.sleep(0.5)
        assert victim is not None, "the upload never started"
        cluster.stop(victim, signal.SIGKILL)  # kill -9 the worker and the task process it runs
        cluster.emulator.clear_faults()
        state = cluster.wait_run("dist_killed_upload", run_id, timeout=300)
    finally:
        cluster.emulator.clear_faults()
    (ti,) = cluster.task_instances("dist_killed_upload", run_id)
    assert state == "success", ti
    assert ti["try_number"] >= 2, ti
    survivor = next(w for w in WORKERS if w != victim)
    assert ti["hostname"] == survivor, (ti["hostname"], victim)
    from tests.client.conftest import client_for

    with client_for(cluster.emulator) as client:
        resp = client.download_response(
            "files/download", {"path": "/dist/killed/big.bin"}, path="/dist/killed/big.bin"
        )
        try:
            assert hashlib.sha256(resp.content).digest() == hashlib.sha256(data).digest()
        finally:
            resp.close()
