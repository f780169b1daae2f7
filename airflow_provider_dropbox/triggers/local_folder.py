"""A local-folder event trigger: schedule a DAG (through an ``AssetWatcher``) when files appear, change or
go away under a local folder: the file-event listener of the project's seed article, in the triggerer.

Two ways of noticing changes (``watch``):

- ``"inotify"`` (Linux; picked by the default ``"auto"`` where it works): the kernel names each file written,
  closed, moved or deleted, and only those paths are looked at (a folder created or moved in is listed and
  watched). A file counts once it was closed after writing or moved in and then had no event for a short
  debounce (0.2 s), or once it had no event for ``settle_seconds`` (a writer holding it open). A queue
  overflow triggers one full compare scan; reaching ``fs.inotify.max_user_watches`` switches to scanning
  for the rest of the trigger's life; the folder itself deleted or unmounted means scanning until it is back.
- ``"scan"``: ``os.scandir`` (stat only) every ``poll_interval`` seconds; a file counts once its size and
  mtime stayed the same for ``settle_seconds``. Pick it for network mounts (NFS, SMB, FUSE), where inotify
  does not see changes made by other hosts.

What is already in the folder when the trigger starts is the baseline, not an event (``fire_on_existing=True``
reports it once), so a triggerer restart does not fire again for old files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_dropbox.folderwatch import FolderWatch, Signature, snapshot
from airflow_provider_dropbox.localwatch import Inotify, InotifyUnavailableError, WatchLimitError

EVENT_PATHS_LIMIT = 100
WATCH_MODES = ("auto", "inotify", "scan")


class LocalFolderChangeTrigger(BaseEventTrigger):
    """
    Fire when files under ``path`` are created, changed or deleted (each batch of settled changes is one
    event). For an ``AssetWatcher``; see docs/sensors-and-triggers.md.

    :param path: Absolute local folder the triggerer can read.
    :param pattern: fnmatch pattern for file names (``*.csv``); default every file.
    :param recursive: Watch subfolders too.
    :param settle_seconds: A file counts once its size and mtime did not change for this long (with
        inotify: once it had no event for this long, or sooner once closed after writing).
    :param poll_interval: Seconds between scans (scan mode, and inotify's fallbacks).
    :param include_deletes: Report deleted files too (else only created and changed ones).
    :param fire_on_existing: Report the files already there when the trigger starts, once.
    :param watch: ``"auto"`` (inotify where it works, else scan), ``"inotify"`` (fail at start without it)
        or ``"scan"`` (network mounts).
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
        watch: str = "auto",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError(f"path={path!r}: pass an absolute local folder the triggerer can read")
        if poll_interval <= 0 or settle_seconds < 0:
            raise ValueError("poll_interval must be positive and settle_seconds not negative")
        if watch not in WATCH_MODES:
            raise ValueError(f"watch={watch!r}: pass one of {', '.join(map(repr, WATCH_MODES))}")
        self.path = path
        self.pattern = pattern
        self.recursive = recursive
        self.settle_seconds = float(settle_seconds)
        self.poll_interval = float(poll_interval)
        self.include_deletes = include_deletes
        self.fire_on_existing = fire_on_existing
        self.watch = watch
        self._inotify: Inotify | None = None
        self._started = False  # the baseline is taken: what changes from now on is an event

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path, "pattern": self.pattern, "recursive": self.recursive,
                "settle_seconds": self.settle_seconds, "poll_interval": self.poll_interval,
                "include_deletes": self.include_deletes, "fire_on_existing": self.fire_on_existing,
                "watch": self.watch,
            },
        )  # fmt: skip

    async def _scan(self) -> dict[str, Signature]:
        return await asyncio.to_thread(snapshot, self.path, self.pattern, self.recursive)

    def _event(self, changed: list[str], deleted: list[str]) -> TriggerEvent:
        paths = changed + deleted
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "path": self.path,
                "count": len(paths),
                "changed": changed[:EVENT_PATHS_LIMIT],
                "deleted": deleted[: max(EVENT_PATHS_LIMIT - len(changed), 0)],
                "truncated": len(paths) > EVENT_PATHS_LIMIT,
            }
        )

    def _open_inotify(self, first: bool) -> Inotify | None:
        """A new inotify instance, or None (logged) where there is none: ``watch="inotify"`` fails at the
        start instead; a later re-arm (the folder is back) scans rather than failing the trigger."""
        try:
            return Inotify()
        except InotifyUnavailableError as exc:
            if self.watch == "inotify" and first:
                raise InotifyUnavailableError(
                    exc.errno, f"watch='inotify' for {self.path}: {exc.strerror}; pass watch='auto' or 'scan'"
                ) from exc
            self.log.warning(
                "inotify unavailable (%s): scanning %s every %s s", exc, self.path, self.poll_interval
            )
            return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.watch == "scan":
            known: dict[str, Signature] = {} if self.fire_on_existing else await self._scan()
            async for event in self._poll(known):
                yield event
            return
        async with contextlib.aclosing(self._run_inotify()) as events:  # closing run() closes the watch now
            async for event in events:
                yield event

    async def _poll(
        self, known: dict[str, Signature], until: Callable[[], bool] | None = None
    ) -> AsyncIterator[TriggerEvent]:
        """Scan mode: compare a scan with ``known`` every ``poll_interval`` (until ``until()`` holds)."""
        seen: dict[str, tuple[Signature | None, float]] = {}  # unsettled path -> (signature, since)
        self._started = True
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
                yield self._event(changed, deleted)
            await asyncio.sleep(self.poll_interval)
            if until is not None and until():
                return

    async def _run_inotify(self) -> AsyncGenerator[TriggerEvent, None]:
        known: dict[str, Signature] = {}
        baseline = not self.fire_on_existing  # the first walk is the baseline; later ones are compared
        first = True
        while True:
            ino = self._open_inotify(first)
            first = False
            if ino is None:
                async for event in self._poll(known if not baseline else await self._scan()):
                    yield event
                return
            watch = FolderWatch(ino, self.path, self.pattern, self.recursive, self.settle_seconds, known)
            self._inotify = ino
            ended = ""
            try:
                # aclosing: the session unregisters the descriptor from the loop before it is closed here
                async with contextlib.aclosing(self._session(watch, baseline)) as session:
                    async for item in session:
                        if isinstance(item, TriggerEvent):
                            yield item
                        else:
                            ended = item
            finally:
                self._inotify = None
                ino.close()
            baseline = False
            if ended == "limit":
                self.log.warning(
                    "inotify watch limit reached (fs.inotify.max_user_watches) under %s: scanning every %s s "
                    "from now on; raise the limit or pass watch='scan'",
                    self.path,
                    self.poll_interval,
                )
                async for event in self._poll(known):
                    yield event
                return
            self.log.warning(
                "%s is gone or unmounted: scanning every %s s until it is back", self.path, self.poll_interval
            )
            async for event in self._poll(known, until=lambda: os.path.isdir(self.path)):
                yield event

    async def _session(self, watch: FolderWatch, baseline: bool) -> AsyncGenerator[TriggerEvent | str, None]:
        """Events from one inotify instance; ends by yielding why ("limit" or "lost")."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = watch.ino.fileno()
        loop.add_reader(fd, wake.set)
        try:
            try:
                if baseline:
                    files, watch.dirs = await asyncio.to_thread(watch.walk, "")
                    watch.known.update(files)
                else:
                    await watch.resync(time.monotonic())
            except WatchLimitError:
                yield "limit"
                return
            except OSError:
                yield "lost"
                return
            self._started = True
            while True:
                deadline = watch.next_deadline()
                if deadline is None:
                    await wake.wait()
                elif deadline > time.monotonic():
                    try:
                        await asyncio.wait_for(wake.wait(), deadline - time.monotonic())
                    except asyncio.TimeoutError:  # not the builtin before Python 3.11
                        pass
                wake.clear()
                events, more = watch.ino.read()
                if more:
                    wake.set()
                now = time.monotonic()
                try:
                    for ev in events:
                        await watch.handle(ev, now)
                        if watch.lost:
                            break
                    if watch.overflowed and not watch.lost:
                        self.log.info("inotify queue overflowed under %s: comparing a full scan", self.path)
                        await watch.resync(now)
                except WatchLimitError:
                    yield "limit"
                    return
                except OSError:
                    watch.lost = True
                if watch.lost:
                    yield "lost"
                    return
                ready = watch.ready(time.monotonic())
                if ready:
                    sigs = await asyncio.to_thread(watch.signatures, ready)
                    changed, deleted = watch.apply(sigs, self.include_deletes)
                    if changed or deleted:
                        yield self._event(changed, deleted)
        finally:
            if not watch.ino.closed:  # closed by cleanup(), which unregistered it: the number may be reused
                loop.remove_reader(fd)

    async def cleanup(self) -> None:
        if self._inotify is not None:
            if not self._inotify.closed:
                asyncio.get_running_loop().remove_reader(self._inotify.fileno())
                self._inotify.close()
            self._inotify = None
        await super().cleanup()
