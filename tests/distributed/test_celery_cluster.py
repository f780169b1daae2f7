"""The provider on CeleryExecutor with two workers (separate processes), driven through the REST API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.distributed.conftest import WORKERS, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


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
