"""Shared helpers of the hardening suites: tree snapshots, tmpfs mounts, a private emulator, a fast client."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_dropbox.client import DropboxClient, RetryPolicy
from tests.client.conftest import client_for
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.2, deadline=60.0, max_attempts=12)
"""Retry policy for tests: the real policy's shape with waits shrunk (the emulator asks for 0 s)."""

TEMP_MARKERS = (".dropbox-part-", ".part", ".tmp")


def fast_client(emu: EmulatorProcess, **kwargs: Any) -> DropboxClient:
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("timeout", 20.0)
    return client_for(emu, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """relative path -> (kind, size, sha256 or link target) under ``root`` (links not followed)."""
    snap: dict[str, tuple[str, int, str]] = {}
    if not root.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                snap[rel] = ("link", 0, os.readlink(p))
            elif p.is_dir():
                snap[rel] = ("dir", 0, "")
            elif not stat.S_ISREG(p.lstat().st_mode):  # a FIFO or socket: never opened (it could block)
                snap[rel] = ("special", 0, oct(stat.S_IFMT(p.lstat().st_mode)))
            else:
                data = p.read_bytes()
                snap[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return snap


def remote_snapshot(client: DropboxClient) -> dict[str, tuple[str, Any, Any]]:
    """path_lower -> (tag, rev, content_hash) of the whole account (private emulator: nobody else writes)."""
    entries, _ = client.list_folder_snapshot("", recursive=True)
    return {e["path_lower"]: (e[".tag"], e.get("rev"), e.get("content_hash")) for e in entries}


def temp_leftovers(root: Path) -> list[str]:
    """Names that look like transfer temp files anywhere under ``root``."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if any(m in p.name for m in TEMP_MARKERS))


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


@contextlib.contextmanager
def tmpfs(where: Path, *, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """Mount a small tmpfs at ``where`` (created), always unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
