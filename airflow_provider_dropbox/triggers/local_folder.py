"""A local-folder event trigger: schedule a DAG (through an ``AssetWatcher``) when files appear, change or
go away under a local folder: the file-event listener of the project's seed article, in the triggerer.

It scans (``os.scandir``, stat only) every ``poll_interval`` seconds; inotify is not used, so it works the
same on every file system the triggerer can read, including network mounts where inotify sees nothing.
A file counts only once its size and mtime stayed the same for ``settle_seconds``, so a file still being
written is not taken. What is already in the folder when the trigger starts is the baseline, not an event
(``fire_on_existing=True`` reports it once), so a triggerer restart does not fire again for old files.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import stat
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

EVENT_PATHS_LIMIT = 100
Signature = tuple[int, int]  # (size, mtime_ns)


def snapshot(folder: str, pattern: str, recursive: bool) -> dict[str, Signature]:
    """Relative path -> (size, mtime_ns) of the regular files under ``folder`` matching ``pattern``
    (hidden files and folders are skipped: editors' and sync tools' temporary files live there)."""
    out: dict[str, Signature] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(folder, rel_dir) if rel_dir else folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    stack.append(rel)
            elif stat.S_ISREG(st.st_mode) and fnmatch.fnmatch(entry.name, pattern):
                out[rel] = (st.st_size, st.st_mtime_ns)
    return out


class LocalFolderChangeTrigger(BaseEventTrigger):
    """
    Fire when files under ``path`` are created, changed or deleted (each batch of settled changes is one
    event). For an ``AssetWatcher``; see docs/sensors-and-triggers.md.

    :param path: Absolute local folder the triggerer can read.
    :param pattern: fnmatch pattern for file names (``*.csv``); default every file.
    :param recursive: Watch subfolders too.
    :param settle_seconds: A file counts once its size and mtime did not change for this long.
    :param poll_interval: Seconds between scans.
    :param include_deletes: Report deleted files too (else only created and changed ones).
    :param fire_on_existing: Report the files already there when the trigger starts, once.
    """

    def __init__(
        self,
        *,
        path: str,
        pattern: str = "*",
        recursive: bool = True,
        settle_seconds: float = 5.0,
        poll_interval: float = 5.0,
        include_deletes: bool = True,
        fire_on_existing: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError(f"path={path!r}: pass an absolute local folder the triggerer can read")
        if poll_interval <= 0 or settle_seconds < 0:
            raise ValueError("poll_interval must be positive and settle_seconds not negative")
        self.path = path
        self.pattern = pattern
        self.recursive = recursive
        self.settle_seconds = float(settle_seconds)
        self.poll_interval = float(poll_interval)
        self.include_deletes = include_deletes
        self.fire_on_existing = fire_on_existing

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path, "pattern": self.pattern, "recursive": self.recursive,
                "settle_seconds": self.settle_seconds, "poll_interval": self.poll_interval,
                "include_deletes": self.include_deletes, "fire_on_existing": self.fire_on_existing,
            },
        )  # fmt: skip

    async def _scan(self) -> dict[str, Signature]:
        return await asyncio.to_thread(snapshot, self.path, self.pattern, self.recursive)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        known: dict[str, Signature] = {} if self.fire_on_existing else await self._scan()
        seen: dict[str, tuple[Signature | None, float]] = {}  # unsettled path -> (signature, since)
        while True:
            now_files = await self._scan()
            now = time.monotonic()
            changed: list[str] = []
            deleted: list[str] = []
            for rel in sorted(set(now_files) | set(known) | set(seen)):
                sig = now_files.get(rel)
                if sig == known.get(rel):
                    seen.pop(rel, None)
                    continue
                if sig is None and not self.include_deletes:
                    known.pop(rel, None)
                    seen.pop(rel, None)
                    continue
                first = seen.get(rel)
                if first is None or first[0] != sig:
                    seen[rel] = (sig, now)
                    if sig is not None and self.settle_seconds > 0:
                        continue
                elif sig is not None and now - first[1] < self.settle_seconds:
                    continue
                seen.pop(rel, None)
                if sig is None:
                    known.pop(rel, None)
                    deleted.append(rel)
                else:
                    known[rel] = sig
                    changed.append(rel)
            if changed or deleted:
                paths = changed + deleted
                yield TriggerEvent(  # type: ignore[no-untyped-call]
                    {
                        "path": self.path,
                        "count": len(paths),
                        "changed": changed[:EVENT_PATHS_LIMIT],
                        "deleted": deleted[: max(EVENT_PATHS_LIMIT - len(changed), 0)],
                        "truncated": len(paths) > EVENT_PATHS_LIMIT,
                    }
                )
            await asyncio.sleep(self.poll_interval)
