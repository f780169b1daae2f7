"""Watching a local folder without Airflow: a stat snapshot (the scan mode) and the inotify-driven state
of one watch (which folders are watched, which files wait to settle, what was reported). The trigger in
``triggers/local_folder.py`` drives them from the triggerer's event loop."""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
import os
import stat

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
    WatchLimitError,
)

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


class FolderWatch:
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

    def _due_at(self, last: float, closed: bool) -> float:
        return last + (self.debounce if closed else self.settle)

    def _deadline(self, rel: str) -> float | None:
        entry = self.pending.get(rel)
        return None if entry is None else self._due_at(*entry)

    def _mark(self, rel: str, now: float, closed: bool) -> None:
        self.pending[rel] = (now, closed)
        heapq.heappush(self._due, (self._due_at(now, closed), rel))

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
