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
