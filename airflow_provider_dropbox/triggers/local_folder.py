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
import fnmatch
import heapq
import os
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_dropbox.localwatch import (
    FOLDER_MASK,
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Inotify,
    InotifyEvent,
    InotifyUnavailableError,
    WatchLimitError,
)

EVENT_PATHS_LIMIT = 100
WATCH_MODES = ("auto", "inotify", "scan")
DEBOUNCE_SECONDS = 0.2  # quiet time after a close-write or move-in before a file counts
Signature = tuple[int, int]  # (size, mtime_ns)


def snapshot(folder: str, pattern: str, recursive: bool) -> dict[str, Signature]:
    """Relative path -> (size, mtime_ns) of the regular files under ``folder`` matching ``pattern``
    (hidden files and folders are skipped: editors' and sync tools' temporary files live there)."""
    out: dict[str, Signature] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        _list_folder(
            os.path.join(folder, rel_dir) if rel_dir else folder, rel_dir, pattern, recursive, out, stack
        )
    return out


def _list_folder(
    path: str, rel_dir: str, pattern: str, recursive: bool, files: dict[str, Signature], subfolders: list[str]
) -> None:
    """One folder's entries by the snapshot's rules: matching regular files into ``files``, subfolders (if
    ``recursive``) onto ``subfolders``; an unreadable folder adds nothing."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
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
                subfolders.append(rel)
        elif stat.S_ISREG(st.st_mode) and fnmatch.fnmatch(entry.name, pattern):
            files[rel] = (st.st_size, st.st_mtime_ns)


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


class _FolderWatch:
    """The inotify side of one trigger run: watched folders, files waiting to settle, the reported state.
    Only paths events name are looked at; a whole-tree walk happens at start, on overflow and on re-arm."""

    def __init__(
        self,
        ino: Inotify,
        folder: str,
        pattern: str,
        recursive: bool,
        settle: float,
        known: dict[str, Signature],
    ) -> None:
        self.ino = ino
        self.folder = folder
        self.pattern = pattern
        self.recursive = recursive
        self.settle = settle
        self.debounce = min(settle, DEBOUNCE_SECONDS)
        self.known = known
        # path -> (last event, closed after writing or moved in); heap of (deadline, path), where entries
        # a later event superseded are stale and skipped
        self.pending: dict[str, tuple[float, bool]] = {}
        self._due: list[tuple[float, str]] = []
        self.dirs: dict[int, str] = {}  # watch descriptor -> relative folder ("" is the root)
        self.lost = False  # the root itself was deleted, moved or unmounted
        self.overflowed = False

    def _abs(self, rel: str) -> str:
        return os.path.join(self.folder, rel) if rel else self.folder

    def walk(self, top: str) -> tuple[dict[str, Signature], dict[int, str]]:
        """Watch ``top`` and the folders under it (watch first, then list: nothing falls in between), and
        return its files as :func:`snapshot` does. Runs in a thread. Raises ``OSError`` if ``top`` is the
        root and cannot be watched, :class:`WatchLimitError` at the watch limit."""
        files: dict[str, Signature] = {}
        watched: dict[int, str] = {}
        stack = [top]
        while stack:
            rel_dir = stack.pop()
            path = self._abs(rel_dir)
            try:
                wd = self.ino.add_watch(path, FOLDER_MASK | (IN_DONT_FOLLOW if rel_dir else 0))
            except WatchLimitError:
                raise
            except OSError:
                if not rel_dir:
                    raise
                continue  # gone or unreadable meanwhile: its parent's events cover it
            watched[wd] = rel_dir
            _list_folder(path, rel_dir, self.pattern, self.recursive, files, stack)
        return files, watched

    async def resync(self, now: float) -> None:
        """Full compare: re-walk (re-adding a watch returns the same descriptor), drop watches of folders
        no longer there, and mark every file that differs from what was reported as pending."""
        files, watched = await asyncio.to_thread(self.walk, "")
        for wd in set(self.dirs) - set(watched):
            self.ino.rm_watch(wd)
        self.dirs = watched
        for rel in set(files) | set(self.known):
            if files.get(rel) != self.known.get(rel):
                self._mark(rel, now, False)
        self.overflowed = False

    async def handle(self, ev: InotifyEvent, now: float) -> None:
        if ev.mask & IN_Q_OVERFLOW:
            self.overflowed = True
            return
        rel_dir = self.dirs.get(ev.wd)
        if rel_dir is None:
            return  # a watch already dropped
        if ev.mask & IN_IGNORED:
            del self.dirs[ev.wd]
            self.lost = self.lost or not rel_dir
            return
        if not ev.name:  # about a watched folder itself; a subfolder's parent reports it by name
            if not rel_dir and ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
                self.lost = True
            elif ev.mask & IN_UNMOUNT:
                self._drop(rel_dir, now)
            return
        if ev.name.startswith("."):
            return
        rel = f"{rel_dir}/{ev.name}" if rel_dir else ev.name
        if ev.mask & IN_ISDIR:
            if not self.recursive:
                return
            if ev.mask & (IN_DELETE | IN_MOVED_FROM):
                self._drop(rel, now)
            elif ev.mask & (IN_CREATE | IN_MOVED_TO):
                files, watched = await asyncio.to_thread(self.walk, rel)
                self.dirs.update(watched)
                moved_in = bool(ev.mask & IN_MOVED_TO)  # a moved folder's files are complete
                for path in files:
                    self._mark(path, now, moved_in)
            return
        if not fnmatch.fnmatch(ev.name, self.pattern):
            return
        closed = bool(ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
        if ev.mask & IN_ATTRIB and not closed:  # metadata only: keep what the last event said
            before = self.pending.get(rel)
            closed = before[1] if before else True
        self._mark(rel, now, closed)

    def _drop(self, rel: str, now: float) -> None:
        """A folder deleted or moved away: stop watching its subtree, re-check the files known in it."""
        prefix = rel + "/"
        for wd, path in list(self.dirs.items()):
            if path == rel or path.startswith(prefix):
                del self.dirs[wd]
                self.ino.rm_watch(wd)
        for path in [*self.known, *self.pending]:
            if path.startswith(prefix):
                self._mark(path, now, True)

    def _deadline(self, rel: str) -> float | None:
        entry = self.pending.get(rel)
        if entry is None:
            return None
        last, closed = entry
        return last + (self.debounce if closed else self.settle)

    def _mark(self, rel: str, now: float, closed: bool) -> None:
        self.pending[rel] = (now, closed)
        heapq.heappush(self._due, (now + (self.debounce if closed else self.settle), rel))

    def _drop_stale(self) -> None:
        while self._due and self._deadline(self._due[0][1]) != self._due[0][0]:
            heapq.heappop(self._due)

    def next_deadline(self) -> float | None:
        """When the next pending file may count (a heap: a burst of events costs log n each, not n)."""
        self._drop_stale()
        return self._due[0][0] if self._due else None

    def ready(self, now: float) -> list[str]:
        out: list[str] = []
        self._drop_stale()
        while self._due and self._due[0][0] <= now:
            out.append(heapq.heappop(self._due)[1])
            self._drop_stale()
        return sorted(set(out))  # the same path marked twice at one instant is pushed twice

    def signatures(self, rels: list[str]) -> dict[str, Signature | None]:
        return {rel: _signature(self._abs(rel)) for rel in rels}

    def apply(self, sigs: dict[str, Signature | None], include_deletes: bool) -> tuple[list[str], list[str]]:
        changed: list[str] = []
        deleted: list[str] = []
        for rel, sig in sigs.items():
            self.pending.pop(rel, None)
            if sig == self.known.get(rel):
                continue
            if sig is None:
                self.known.pop(rel, None)
                if include_deletes:
                    deleted.append(rel)
            else:
                self.known[rel] = sig
                changed.append(rel)
        return changed, deleted


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
            watch = _FolderWatch(ino, self.path, self.pattern, self.recursive, self.settle_seconds, known)
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

    async def _session(self, watch: _FolderWatch, baseline: bool) -> AsyncGenerator[TriggerEvent | str, None]:
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
                    except TimeoutError:
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
