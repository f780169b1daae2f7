"""Mirror fixtures: a real client against the emulator, plus helpers that read both trees for comparison."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, RetryPolicy
from airflow_provider_dropbox.sync.hashing import file_content_hash
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

FAST_RETRY = RetryPolicy(initial_wait=0.01, max_wait=0.2, deadline=120.0, max_attempts=30)


def make_client(emu: EmulatorProcess, **kwargs: Any) -> DropboxClient:
    kwargs.setdefault("retry_policy", FAST_RETRY)
    kwargs.setdefault("timeout", 30.0)
    return DropboxClient(
        Credentials(app_key=DEV_APP_KEY, app_secret=DEV_APP_SECRET, refresh_token=DEV_REFRESH_TOKEN),
        endpoints=Endpoints.single_host(emu.base_url),
        **kwargs,
    )


@pytest.fixture
def emu_client(fresh_emulator: EmulatorProcess) -> Iterator[tuple[EmulatorProcess, DropboxClient]]:
    c = make_client(fresh_emulator)
    try:
        yield fresh_emulator, c
    finally:
        c.close()


def remote_tree(client: DropboxClient, root: str) -> dict[str, str | None]:
    """Relative path (Dropbox names, ancestors rebuilt from their own entries) -> content hash."""
    entries, _ = client.list_folder_snapshot(root, recursive=True)
    root_lower = root.lower().rstrip("/")
    names: dict[str, str] = {}
    kinds: dict[str, str | None] = {}
    for e in entries:
        pl = e["path_lower"]
        if pl == root_lower or not pl.startswith(root_lower + "/"):
            continue
        key = pl[len(root_lower) + 1 :]
        names[key] = e["name"]
        kinds[key] = None if e[".tag"] == "folder" else e["content_hash"]
    out: dict[str, str | None] = {}
    for key, value in kinds.items():
        parts = key.split("/")
        display = "/".join(names["/".join(parts[: i + 1])] for i in range(len(parts)))
        out[display] = value
    return out


def local_hash_tree(root: str | os.PathLike[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    base = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base).replace(os.sep, "/")
        rel = "" if rel == "." else rel
        if rel == "":
            dirnames[:] = [d for d in dirnames if d != ".dropbox-mirror"]
        for d in dirnames:
            out[f"{rel}/{d}" if rel else d] = None
        for f in filenames:
            out[f"{rel}/{f}" if rel else f] = file_content_hash(os.path.join(dirpath, f))
    return out
