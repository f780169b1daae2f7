"""Write to the emulated Dropbox and compare trees: shared by the example-DAG and end-to-end suites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_provider_dropbox.client import DropboxClient


def put(client: DropboxClient, path: str, data: bytes) -> dict[str, Any]:
    """Write ``data`` to Dropbox at ``path`` (overwrite), as another Dropbox client would."""
    meta: dict[str, Any] = client.upload_call(
        "files/upload", {"path": path, "mode": "overwrite"}, lambda: data, path=path
    )
    return meta


def local_tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file, leaving out the mirror's own state folder."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dropbox-mirror" not in p.relative_to(root).parts
    }
