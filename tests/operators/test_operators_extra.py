"""The restore and temporary-link operators through real Airflow (``dag.test()``) against the emulator."""

from __future__ import annotations

import tempfile
from typing import Any

from tests.ops_fixtures import RunDag, task_states, xcom


def _upload(hook: Any, path: str, data: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return dict(hook.upload_file(f.name, path, mode="overwrite"))


def test_restore_then_temporary_link(run_dag: RunDag, hook: Any, root: str) -> None:
    path = f"{root}/doc.txt"
    first = _upload(hook, path, b"version one")
    _upload(hook, path, b"version two")
    dr = run_dag("ops_extra_dag.py", "ops_extra", {"path": path, "rev": first["rev"]})
    assert str(dr.state) == "success", task_states(dr)
    restored = xcom(dr, "restore")
    assert restored["rev"] != first["rev"] and restored["content_hash"] == first["content_hash"]
    url = xcom(dr, "temp_link")
    assert url.startswith("http") and "/_tl/" in url
    assert xcom(dr, "fetch") == "version one"
    assert hook.get_metadata(path)["rev"] == restored["rev"]


def test_restore_of_a_foreign_revision_fails_the_task(run_dag: RunDag, hook: Any, root: str) -> None:
    other = _upload(hook, f"{root}/other.txt", b"other")
    _upload(hook, f"{root}/doc.txt", b"doc")
    dr = run_dag("ops_extra_dag.py", "ops_extra", {"path": f"{root}/doc.txt", "rev": other["rev"]})
    states = task_states(dr)
    assert states["restore"] == "failed" and states.get("temp_link") != "success"
    assert hook.get_metadata(f"{root}/doc.txt")["size"] == 3  # untouched
