"""``sync_two_way()``: keep a local folder and a Dropbox folder equal, propagating changes both ways.

Flow: lock -> index -> remote changes (the cursor; a full listing on the first run or after a reset) ->
local changes (a stat walk; hash only what the index says changed) -> decide per path -> guards -> (not for a
dry run) apply: remote moves, folders, transfers, then deletes only if nothing failed -> cursor.

Every decision compares each side with the index row both sides last agreed on, so what the sync wrote
itself is no change on the next run (no echo). An edit always wins over a delete; an edit on both sides
keeps both versions (``conflict="keep_both"``) unless another policy is asked for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.client.folders import exclude_matcher
from airflow_provider_dropbox.sync.engine import MaxDeletes, parse_max_deletes
from airflow_provider_dropbox.sync.errors import (
    EmptyRemoteError,
    MirrorConfigError,
    MirrorError,
    RemoteRootError,
    TooManyDeletesError,
)
from airflow_provider_dropbox.sync.hashing import file_content_hash
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.paths import (
    check_local_dir,
    normalize_remote_root,
    remote_key,
    safe_local_path,
)
from airflow_provider_dropbox.sync.two_way.index import STATE_DIR_NAME, Synced, SyncIndex
from airflow_provider_dropbox.sync.two_way.scan import LocalItem, LocalScan, scan_local

ConflictPolicy = Literal["keep_both", "newer", "local", "remote"]
POLICIES = ("keep_both", "newer", "local", "remote")
NAME_MAX = 255


class TwoWayClient(Protocol):
    """The client calls the engine needs (``DropboxClient`` satisfies it)."""

    def get_metadata(self, path: str) -> dict[str, Any]: ...
    def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]: ...
    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]: ...
    def download_file(self, remote_path: str, local_path: str) -> dict[str, Any]: ...
    def upload_file(
        self, local_path: str, remote_path: str, *, mode: Any = "add", autorename: bool = False
    ) -> dict[str, Any]: ...
    def create_folder(self, path: str, exist_ok: bool = True) -> dict[str, Any]: ...
    def delete(self, path: str) -> dict[str, Any]: ...
    def move(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]: ...


class EmptySideError(EmptyRemoteError):
    """One side looks empty or gone while the index holds files: its deletes are not propagated."""


class TwoWayFailedError(MirrorError):
    """The run finished but some actions failed; deletes were skipped and the cursor kept."""

    def __init__(self, report: TwoWayReport) -> None:
        first = "; ".join(f"{e['path']}: {e['error']}" for e in report.errors[:3])
        super().__init__(
            f"Two-way sync of {report.remote_path!r} and {report.local_dir!r} finished with "
            f"{len(report.errors)} failed action(s): {first}. Deletes were skipped and the cursor was not "
            "advanced; the next run retries from the same point"
        )
        self.report = report


@dataclass(frozen=True, slots=True)
class RemoteItem:
    path: str  # relative, Dropbox's display names
    is_dir: bool
    rev: str | None = None
    content_hash: str | None = None
    size: int = 0
    modified: str = ""  # server_modified, ISO 8601


@dataclass(frozen=True, slots=True)
class Action:
    op: str  # upload, download, mkdir_remote, mkdir_local, delete_remote, delete_local, move_remote, record,
    #          forget, conflict (both versions kept), conflict_skip (left alone)
    key: str
    path: str
    is_dir: bool = False
    source: str = ""  # move_remote: the old local path
    reason: str = ""
    winner: str = ""  # conflict: "remote" keeps the name (the local version becomes the conflicted copy)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        for name in ("is_dir", "source", "reason", "winner"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


@dataclass
class TwoWayReport:
    remote_path: str
    local_dir: str
    first_run: bool = False
    dry_run: bool = False
    duration_s: float = 0.0
    planned: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    deletes_skipped: int = 0
    cursor_advanced: bool = False
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        done = ", ".join(f"{n} {op}" for op, n in sorted(self.done.items())) or "nothing"
        text = f"Dropbox two-way sync {self.remote_path or '/'} <-> {self.local_dir}: done {done}"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflict(s)"
        if self.errors:
            text += f"; {len(self.errors)} error(s), {self.deletes_skipped} delete(s) skipped"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote_path": self.remote_path, "local_dir": self.local_dir, "first_run": self.first_run,
            "dry_run": self.dry_run, "duration_s": round(self.duration_s, 3), "planned": self.planned,
            "done": self.done, "conflicts": self.conflicts, "skipped": self.skipped, "errors": self.errors,
            "deletes_skipped": self.deletes_skipped, "cursor_advanced": self.cursor_advanced,
            "plan": self.plan[:200], "ok": self.ok, "summary": self.summary(),
        }  # fmt: skip


def conflicted_name(path: str, stamp: str, taken: Callable[[str], bool]) -> str:
    """``dir/name (conflicted copy 2026-12-05).ext`` (then `` 2``, `` 3``...), within the name limit."""
    parent, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext, dot = name, "", ""
    for n in range(1, 1000):
        tag = f" (conflicted copy {stamp}{'' if n == 1 else f' {n}'})"
        room = NAME_MAX - len(os.fsencode(tag + dot + ext))
        short = os.fsencode(stem)[:room].decode("utf-8", "ignore")
        candidate = f"{parent}/{short}{tag}{dot}{ext}" if parent else f"{short}{tag}{dot}{ext}"
        if not taken(candidate):
            return candidate
    raise MirrorConfigError(f"no free conflicted-copy name next to {path!r}")


def _is_under(key: str, ancestor: str) -> bool:
    return key.startswith(ancestor + "/")


@dataclass
class _Run:
    client: TwoWayClient
    remote: str  # "" or "/Folder"
    root: str  # real local path
    index: SyncIndex
    synced: dict[str, Synced]
    report: TwoWayReport
    log: logging.Logger
    conflict: ConflictPolicy
    stamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%d", time.gmtime()))

    # ------------------------------------------------------------------ paths
    def rpath(self, rel: str) -> str:
        return f"{self.remote}/{rel}"

    def lpath(self, rel: str) -> str:
        return safe_local_path(self.root, rel)

    def staging(self) -> str:
        return os.path.join(self.root, STATE_DIR_NAME, "staging")

    # ------------------------------------------------------------------ index rows
    def put(self, key: str, row: Synced | None) -> None:
        if row is None:
            self.synced.pop(key, None)
        else:
            self.synced[key] = row
        self.index.write({key: row})

    def row_after_local(self, rel: str, meta: Mapping[str, Any] | None, is_dir: bool) -> Synced:
        st = os.lstat(self.lpath(rel))
        return Synced(
            rel, is_dir, None if is_dir or meta is None else meta.get("rev"),
            None if is_dir or meta is None else meta.get("content_hash"),
            0 if is_dir else st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns,
        )  # fmt: skip

    def done(self, op: str) -> None:
        self.report.done[op] = self.report.done.get(op, 0) + 1

    # ------------------------------------------------------------------ transfers
    def download(self, key: str, rel: str, seen: LocalItem | None) -> None:
        """Verified download to staging, then rename over ``rel``; a local version that appeared or changed
        since the scan is kept as a conflicted copy first (no edit lost)."""
        os.makedirs(self.staging(), exist_ok=True)
        tmp = os.path.join(self.staging(), f"{os.getpid()}-{abs(hash(key))}.part")
        meta = self.client.download_file(self.rpath(rel), tmp)
        try:
            target = self.lpath(rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                st = os.lstat(target)
                now = (st.st_size, st.st_mtime_ns, st.st_ino)
            except FileNotFoundError:
                now = None
            before = None if seen is None else (seen.size, seen.mtime_ns, seen.inode)
            if now is not None and now != before:
                self.set_aside(rel, "changed locally while the sync ran")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.put(key, self.row_after_local(rel, meta, False))
        self.done("download")

    def set_aside(self, rel: str, reason: str) -> str:
        """Rename a local file to its conflicted-copy name and upload it under that name too."""
        new = conflicted_name(rel, self.stamp, lambda p: os.path.lexists(self.lpath(p)))
        os.replace(self.lpath(rel), self.lpath(new))
        meta = self.client.upload_file(self.lpath(new), self.rpath(new), mode="add", autorename=True)
        stored = str(meta.get("name") or new.rpartition("/")[2])
        if stored != new.rpartition("/")[2]:  # Dropbox had that name already and chose another: follow it
            parent = new.rpartition("/")[0]
            renamed = f"{parent}/{stored}" if parent else stored
            os.replace(self.lpath(new), self.lpath(renamed))
            new = renamed
        self.report.conflicts.append({"path": rel, "kept_as": new, "reason": reason})
        self.put(path_key(new), self.row_after_local(new, meta, False))
        return new

    def upload(self, key: str, rel: str, item: LocalItem, base: Synced | None) -> None:
        """Upload a local edit; ``mode=update`` with the rev last seen, so a concurrent remote edit is never
        overwritten: Dropbox's conflict answer keeps both versions."""
        mode: Any = {"update": base.rev} if base and not base.is_dir and base.rev else "add"
        try:
            meta = self.client.upload_file(self.lpath(rel), self.rpath(rel), mode=mode, autorename=False)
        except client_errors.PathConflictError:
            self.set_aside(rel, "changed on Dropbox while the local edit was being uploaded")
            fresh = self.client.get_metadata(self.rpath(rel))
            if fresh.get(".tag") == "file":
                self.download(key, rel, None)
            return
        st = os.lstat(self.lpath(rel))
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (item.size, item.mtime_ns, item.inode):
            meta = {**meta, "content_hash": None}  # changed since: the next run uploads it again
        self.put(key, self.row_after_local(rel, meta, False))
        self.done("upload")


def _remote_items(
    entries: Sequence[Mapping[str, Any]], root_lower: str
) -> tuple[dict[str, RemoteItem | None], list[str]]:
    """Changes (or a listing) in order -> key -> item (``None``: deleted); also the deleted folder keys."""
    depth = len([p for p in root_lower.split("/") if p])
    out: dict[str, RemoteItem | None] = {}
    deleted: list[str] = []
    for e in entries:
        pl = e.get("path_lower")
        key = remote_key(pl, root_lower) if isinstance(pl, str) else None
        if key is None or (key == "" and e.get(".tag") != "deleted"):
            continue
        rel = "/".join(str(e.get("path_display") or pl).split("/")[depth + 1 :]) or key
        tag = e.get(".tag")
        if tag == "deleted":
            for k in [k for k in out if _is_under(k, key) or not key]:
                out[k] = None
            out[key] = None
            deleted.append(key)
        elif tag == "folder":
            out[key] = RemoteItem(rel, True)
        elif tag == "file":
            if e.get("is_downloadable", True) is False:
                continue
            out[key] = RemoteItem(
                rel, False, e.get("rev"), e.get("content_hash"), int(e.get("size") or 0),
                str(e.get("server_modified") or ""),
            )  # fmt: skip
    return out, deleted


def sync_two_way(
    client: TwoWayClient,
    remote_path: str,
    local_dir: str | os.PathLike[str],
    *,
    conflict: ConflictPolicy = "keep_both",
    dry_run: bool = False,
    max_deletes: int | str | None = None,
    allow_empty: bool = False,
    exclude: Sequence[str] = (),
    lock_timeout: float = 0.0,
    raise_on_error: bool = True,
    logger: logging.Logger | None = None,
) -> TwoWayReport:
    """Two-way sync of Dropbox folder ``remote_path`` and ``local_dir``. See docs/two-way-sync.md."""
    log = logger or logging.getLogger(__name__)
    if conflict not in POLICIES:
        raise MirrorConfigError(f"conflict={conflict!r}: use one of {', '.join(POLICIES)}")
    remote = normalize_remote_root(remote_path)
    limit = parse_max_deletes(max_deletes)
    if isinstance(exclude, str):
        exclude = (exclude,)
    local = check_local_dir(os.fspath(local_dir))
    state = os.path.join(local, STATE_DIR_NAME)
    if not dry_run:
        os.makedirs(state, exist_ok=True)
    root = os.path.realpath(local)
    report = TwoWayReport(remote_path=remote or "/", local_dir=local, dry_run=dry_run)
    t0 = time.monotonic()
    lock = None if dry_run else MirrorLock(state, timeout=lock_timeout, logger=log)
    if lock is not None:
        lock.acquire()
    try:
        if not os.path.isdir(state):  # a dry run before the first run
            report.first_run = True
            index = None
        else:
            index = SyncIndex.open(state)
        try:
            _sync(client, remote, root, index, report, log, conflict, dry_run, limit, max_deletes,
                  allow_empty, exclude_matcher(tuple(exclude)), lock)  # fmt: skip
        finally:
            if index is not None:
                index.close()
    finally:
        if lock is not None:
            lock.release()
    report.duration_s = time.monotonic() - t0
    log.info("%s", report.summary())
    if report.errors and raise_on_error:
        raise TwoWayFailedError(report)
    return report


def _root_lower(client: TwoWayClient, remote: str, create: bool) -> str:
    if remote == "":
        return ""
    try:
        meta = client.get_metadata(remote)
    except client_errors.PathNotFoundError:
        if not create:
            raise RemoteRootError(
                f"The Dropbox folder {remote!r} is gone (or this app cannot see it any more); nothing was "
                "changed on either side. If it was moved, point remote_path at its new place; to start over, "
                f"remove the {STATE_DIR_NAME} folder in the local folder (the next run then only merges)"
            ) from None
        meta = client.create_folder(remote)
    if meta.get(".tag", "folder") != "folder":
        raise RemoteRootError(f"The Dropbox path {remote!r} is a file, not a folder; sync a folder")
    return str(meta.get("path_lower") or path_key(remote))


def _sync(
    client: TwoWayClient,
    remote: str,
    root: str,
    index: SyncIndex | None,
    report: TwoWayReport,
    log: logging.Logger,
    conflict: ConflictPolicy,
    dry_run: bool,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty: bool,
    excluded: Callable[[str], bool],
    lock: MirrorLock | None,
) -> None:
    meta = index.meta() if index is not None else {}
    synced = index.entries() if index is not None else {}
    if meta.get("remote_path") is not None and path_key(meta["remote_path"]) != path_key(remote):
        raise MirrorConfigError(
            f"{root} is synced with Dropbox folder {meta['remote_path'] or '/'!r}, not {remote or '/'!r}; "
            "use "
            f"another local folder, or remove its {STATE_DIR_NAME} folder to start over (first run: merge)"
        )
    cursor = meta.get("cursor")
    report.first_run = not cursor
    root_lower = meta.get("root_lower")
    if root_lower is None or not cursor:
        root_lower = _root_lower(client, remote, create=not dry_run)
    # ---- remote side
    remote_now: dict[str, RemoteItem | None]
    full = True
    if cursor:
        try:
            changes, new_cursor = client.list_changes(cursor)
            remote_now, deleted_dirs = _remote_items(changes, root_lower)
            for d in deleted_dirs:
                for k in synced:
                    if d == "" or _is_under(k, d):
                        remote_now[k] = None
            remote_now.pop("", None)
            full = False
        except client_errors.CursorResetError:
            log.warning(
                "Dropbox reset the sync cursor for %r; comparing a full listing with the index", remote
            )
    if full:
        if cursor:  # a reset: the folder must still be there
            _root_lower(client, remote, create=False)
        entries, new_cursor = client.list_folder_snapshot(remote, recursive=True)
        listed, _ = _remote_items(entries, root_lower)
        remote_now = {k: v for k, v in listed.items()}
        for k in synced:
            remote_now.setdefault(k, None)
    # ---- local side
    scan = scan_local(root, excluded)
    report.skipped.extend(scan.skipped)
    actions = _decide(synced, remote_now, scan, root, excluded, conflict, first=report.first_run)
    report.planned = {}
    for a in actions:
        report.planned[a.op] = report.planned.get(a.op, 0) + 1
    report.plan = [a.to_dict() for a in actions]
    _guard(actions, synced, scan, remote_now, full, limit, raw_limit, allow_empty)
    if dry_run or index is None:
        return
    run = _Run(client, remote, root, index, synced, report, log, conflict)
    if report.first_run:
        index.write(meta={"remote_path": remote, "root_lower": root_lower})
    _apply(run, actions, scan, remote_now, lock)
    if not report.errors:
        index.write(meta={"cursor": new_cursor, "remote_path": remote, "root_lower": root_lower})
        report.cursor_advanced = True


def _local_changed(
    s: Synced | None, item: LocalItem | None, root: str, hashes: dict[str, str | None]
) -> bool:
    if s is None or item is None:
        return (s is None) != (item is None)
    if s.is_dir != item.is_dir:
        return True
    if item.is_dir:
        return False
    if (s.size, s.mtime_ns, s.inode, s.ctime_ns) == (item.size, item.mtime_ns, item.inode, item.ctime_ns):
        return False
    h = hashes.setdefault(item.path, _hash(root, item.path))
    return h != s.content_hash


def _hash(root: str, rel: str) -> str | None:
    try:
        return file_content_hash(os.path.join(root, *rel.split("/")))
    except OSError:
        return None


def _remote_changed(s: Synced | None, r: RemoteItem | None) -> bool:
    if s is None or r is None:
        return (s is None) != (r is None)
    if s.is_dir != r.is_dir:
        return True
    return not r.is_dir and r.content_hash != s.content_hash


def _decide(
    synced: Mapping[str, Synced],
    remote_now: Mapping[str, RemoteItem | None],
    scan: LocalScan,
    root: str,
    excluded: Callable[[str], bool],
    policy: ConflictPolicy,
    *,
    first: bool,
) -> list[Action]:
    hashes: dict[str, str | None] = {}
    local = scan.items
    keys = set(local) | set(remote_now) | set(synced)
    acts: list[Action] = []
    for key in sorted(keys):
        s = synced.get(key)
        if key in scan.colliding or any(key.startswith(c + "/") for c in scan.colliding):
            continue
        if s is not None and excluded(s.path):
            continue
        item = local.get(key)
        r = remote_now[key] if key in remote_now else _as_remote(s)
        if r is not None and excluded(r.path):
            continue
        lc = _local_changed(s, item, root, hashes)
        rc = key in remote_now and _remote_changed(s, r)
        if not lc and not rc:
            if (
                item is not None
                and s is not None
                and not item.is_dir
                and (
                    (s.size, s.mtime_ns, s.inode, s.ctime_ns)
                    != (item.size, item.mtime_ns, item.inode, item.ctime_ns)
                    or (r is not None and r.rev != s.rev)
                )
            ):
                acts.append(Action("record", key, item.path, reason="same content, new stat or revision"))
            continue
        acts.extend(_decide_one(key, s, item, r, lc, rc, hashes, root, policy, first))
    return _detect_remote_moves(_detect_moves(acts, synced, local, remote_now, root), synced, remote_now)


def _as_remote(s: Synced | None) -> RemoteItem | None:
    return None if s is None else RemoteItem(s.path, s.is_dir, s.rev, s.content_hash, s.size)


def _decide_one(
    key: str,
    s: Synced | None,
    item: LocalItem | None,
    r: RemoteItem | None,
    lc: bool,
    rc: bool,
    hashes: dict[str, str | None],
    root: str,
    policy: ConflictPolicy,
    first: bool,
) -> list[Action]:
    if lc and not rc:
        if item is None:
            assert s is not None
            return [Action("delete_remote", key, s.path, s.is_dir)]
        if s is not None and s.is_dir != item.is_dir:  # a flip: the old one goes, the new one comes
            return [Action("delete_remote", key, s.path, s.is_dir, reason="replaced locally"),
                    Action("mkdir_remote" if item.is_dir else "upload", key, item.path,
                           item.is_dir)]  # fmt: skip
        return [Action("mkdir_remote" if item.is_dir else "upload", key, item.path, item.is_dir)]
    if rc and not lc:
        if r is None:
            assert s is not None
            return [Action("delete_local", key, s.path, s.is_dir)]
        path = item.path if item is not None and item.path.lower() == r.path.lower() else r.path
        if item is not None and item.is_dir != r.is_dir:
            return [Action("delete_local", key, item.path, item.is_dir, reason="replaced on Dropbox"),
                    Action("mkdir_local" if r.is_dir else "download", key, r.path, r.is_dir)]  # fmt: skip
        return [Action("mkdir_local" if r.is_dir else "download", key, path, r.is_dir)]
    # both sides changed
    if item is None and r is None:
        return [Action("forget", key, s.path if s else key, reason="deleted on both sides")]
    if item is None:
        assert r is not None
        return [Action("mkdir_local" if r.is_dir else "download", key, r.path, r.is_dir,
                       reason="edited on Dropbox, deleted locally: the edit wins")]  # fmt: skip
    if r is None:
        return [Action("mkdir_remote" if item.is_dir else "upload", key, item.path, item.is_dir,
                       reason="edited locally, deleted on Dropbox: the edit wins")]  # fmt: skip
    if item.is_dir and r.is_dir:
        return [Action("record", key, item.path, True, reason="folder on both sides")]
    if item.is_dir != r.is_dir:
        return [Action("conflict_skip", key, item.path, item.is_dir,
                       reason="a file on one side and a folder on the other; left alone")]  # fmt: skip
    h = hashes.setdefault(item.path, _hash(root, item.path))
    if h is not None and h == r.content_hash:
        return [Action("record", key, item.path, reason="same content on both sides")]
    winner = "remote"
    if not first and policy == "local":
        winner = "local"
    elif not first and policy == "newer":
        winner = "local" if _local_is_newer(root, item, r) else "remote"
    reason = "changed on both sides" if s is not None else "different files on both sides"
    if first or policy in ("keep_both",):
        return [Action("conflict", key, item.path, reason=reason + "; both kept", winner="remote")]
    return [Action("upload" if winner == "local" else "download", key, item.path,
                   reason=f"{reason}; conflict={policy}: the {winner} version wins",
                   winner=winner)]  # fmt: skip


def _local_is_newer(root: str, item: LocalItem, r: RemoteItem) -> bool:
    try:
        remote_ts = time.mktime(time.strptime(r.modified, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except ValueError:
        return False
    return item.mtime_ns / 1e9 > remote_ts


def _detect_moves(
    acts: list[Action],
    synced: Mapping[str, Synced],
    local: Mapping[str, LocalItem],
    remote_now: Mapping[str, RemoteItem | None],
    root: str,
) -> list[Action]:
    """A local rename (same inode, and same content for a file) becomes one ``move_remote`` instead of a
    delete and an upload; a moved folder's children come along with it."""
    deletes = {a.key: a for a in acts if a.op == "delete_remote" and not a.reason}
    creates = {
        a.key: a for a in acts if a.op in ("upload", "mkdir_remote") and not a.reason and a.key not in synced
    }
    by_inode: dict[tuple[int, bool], str] = {}
    for k in creates:
        it = local[k]
        by_inode.setdefault((it.inode, it.is_dir), k)
    moved: dict[str, str] = {}  # old key -> new key
    for old_key in sorted(deletes):
        if any(_is_under(old_key, o) for o in moved):
            continue
        s = synced[old_key]
        new_key = by_inode.get((s.inode, s.is_dir))
        if new_key is None or new_key in moved.values() or any(_is_under(new_key, n) for n in moved.values()):
            continue
        if not s.is_dir and (
            local[new_key].size != s.size or _hash(root, local[new_key].path) != s.content_hash
        ):
            continue
        if remote_now.get(new_key) is not None:
            continue
        moved[old_key] = new_key
    if not moved:
        return acts
    out: list[Action] = []
    for a in acts:
        gone = any(a.key == o or _is_under(a.key, o) for o in moved)
        came = any(a.key == n or _is_under(a.key, n) for n in moved.values())
        if (gone and a.op == "delete_remote") or (came and a.op in ("upload", "mkdir_remote")):
            continue
        out.append(a)
    for old_key, new_key in moved.items():
        out.append(
            Action(
                "move_remote",
                new_key,
                local[new_key].path,
                local[new_key].is_dir,
                source=synced[old_key].path,
            )
        )
    return out


def _detect_remote_moves(
    acts: list[Action], synced: Mapping[str, Synced], remote_now: Mapping[str, RemoteItem | None]
) -> list[Action]:
    """A file Dropbox moved (a deletion plus a new file with the same content) becomes a local rename
    instead of a download and a delete."""
    gone: dict[str, list[Action]] = {}
    for a in acts:
        s = synced.get(a.key)
        if a.op == "delete_local" and not a.is_dir and not a.reason and s is not None and s.content_hash:
            gone.setdefault(s.content_hash, []).append(a)
    if not gone:
        return acts
    out: list[Action] = []
    used: set[str] = set()
    for a in acts:
        r = remote_now.get(a.key)
        if a.op == "download" and not a.reason and a.key not in synced and r is not None and r.content_hash:
            source = next((d for d in gone.get(r.content_hash, ()) if d.key not in used), None)
            if source is not None:
                used.add(source.key)
                out.append(Action("move_local", a.key, a.path, source=source.path))
                continue
        out.append(a)
    return [a for a in out if not (a.op == "delete_local" and a.key in used)]


def _guard(
    actions: list[Action],
    synced: Mapping[str, Synced],
    scan: LocalScan,
    remote_now: Mapping[str, RemoteItem | None],
    full: bool,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty: bool,
) -> None:
    files = sum(1 for s in synced.values() if not s.is_dir)
    remote_deletes = sum(1 for a in actions if a.op == "delete_remote" and not a.is_dir)
    local_deletes = sum(1 for a in actions if a.op == "delete_local" and not a.is_dir)
    if remote_deletes and files and not any(not i.is_dir for i in scan.items.values()) and not allow_empty:
        raise EmptySideError(
            f"The local folder has no files but the index holds {files}; refusing to delete {remote_deletes} "
            "file(s) on Dropbox (an unmounted or emptied volume?). Nothing was changed. If the files were "
            "really deleted, re-run with allow_empty=True"
        )
    remote_files_left = files - sum(
        1 for k, s in synced.items() if not s.is_dir and remote_now.get(k, s) is None
    )
    if full:
        remote_files_left = sum(1 for r in remote_now.values() if r is not None and not r.is_dir)
    if local_deletes and files and remote_files_left <= 0 and not allow_empty:
        raise EmptySideError(
            f"The Dropbox folder has no files left but the index holds {files}; refusing to delete "
            f"{local_deletes} local file(s). Nothing was changed. If the folder really was emptied, re-run "
            "with allow_empty=True"
        )
    if limit is None:
        return
    kind, value = limit
    for side, n in (("Dropbox", remote_deletes), ("local", local_deletes)):
        pct = 100.0 * n / max(files, 1)
        if n and ((kind == "count" and n > value) or (kind == "pct" and pct > value)):
            raise TooManyDeletesError(
                f"The sync would delete {n} of {files} file(s) on the {side} side ({pct:.0f}%), over "
                f"max_deletes={raw_limit}; nothing was changed. Re-run with a higher max_deletes if intended"
            )


_ORDER = {"move_remote": 0, "mkdir_remote": 1, "mkdir_local": 1, "record": 2, "forget": 2, "conflict_skip": 2,
          "move_local": 2,
          "conflict": 3, "upload": 3, "download": 3, "delete_remote": 4, "delete_local": 4}  # fmt: skip


def _apply(
    run: _Run,
    actions: list[Action],
    scan: LocalScan,
    remote_now: Mapping[str, RemoteItem | None],
    lock: MirrorLock | None,
) -> None:
    ordered = sorted(actions, key=lambda a: (_ORDER[a.op], a.key if _ORDER[a.op] < 4 else _neg(a.key)))
    for a in ordered:
        if lock is not None:
            lock.check()
        if _ORDER[a.op] == 4 and run.report.errors:
            run.report.deletes_skipped += 1
            continue
        try:
            _apply_one(run, a, scan, remote_now)
        except (client_errors.DropboxApiError, OSError) as exc:
            run.log.warning("Two-way sync: %s %r failed: %s", a.op, a.path, exc)
            run.report.errors.append({"op": a.op, "path": a.path, "error": f"{type(exc).__name__}: {exc}"})


def _neg(key: str) -> tuple[int, str]:
    return (-key.count("/"), key)  # deletes: deepest first


def _apply_one(run: _Run, a: Action, scan: LocalScan, remote_now: Mapping[str, RemoteItem | None]) -> None:
    key, item = a.key, scan.items.get(a.key)
    base = run.synced.get(key)
    if a.op == "move_remote":
        meta = run.client.move(run.rpath(a.source), run.rpath(a.path))
        old = path_key(a.source)
        for k in [k for k in run.synced if k == old or _is_under(k, old)]:
            s = run.synced[k]
            new_rel = a.path + s.path[len(a.source) :]
            new_key = path_key(new_rel)
            run.put(k, None)
            if os.path.lexists(run.lpath(new_rel)):
                row = run.row_after_local(new_rel, None, s.is_dir)
                rev = meta.get("rev") if k == old else s.rev
                run.put(new_key, Synced(new_rel, s.is_dir, rev, s.content_hash,
                                        row.size, row.mtime_ns, row.inode, row.ctime_ns))  # fmt: skip
        run.done("move_remote")
    elif a.op == "move_local":
        _move_local(run, a, scan, remote_now)
    elif a.op == "mkdir_remote":
        run.client.create_folder(run.rpath(a.path))
        run.put(key, run.row_after_local(a.path, None, True))
        run.done("mkdir_remote")
    elif a.op == "mkdir_local":
        os.makedirs(run.lpath(a.path), exist_ok=True)
        run.put(key, run.row_after_local(a.path, None, True))
        run.done("mkdir_local")
    elif a.op == "upload":
        assert item is not None
        run.upload(key, a.path, item, base if a.winner != "local" else _with_rev(base, remote_now.get(key)))
    elif a.op == "download":
        run.download(key, a.path, item)
    elif a.op == "record":
        r = remote_now.get(key) if key in remote_now else _as_remote(base)
        seen = None if r is None else {"rev": r.rev, "content_hash": r.content_hash}
        run.put(key, run.row_after_local(a.path, seen, a.is_dir))
        run.done("record")
    elif a.op == "forget":
        run.put(key, None)
    elif a.op == "conflict":
        run.set_aside(a.path, a.reason)
        r = remote_now.get(key)
        if r is not None:
            run.download(key, r.path if r.path.lower() == a.path.lower() else a.path, None)
    elif a.op == "conflict_skip":
        run.report.conflicts.append({"path": a.path, "reason": a.reason})
    elif a.op == "delete_remote":
        try:
            run.client.delete(run.rpath(a.path))
        except client_errors.PathNotFoundError:
            pass
        for k in [k for k in run.synced if k == key or _is_under(k, key)]:
            run.put(k, None)
        run.done("delete_remote")
    elif a.op == "delete_local":
        _delete_local(run, a)


def _with_rev(base: Synced | None, r: RemoteItem | None) -> Synced | None:
    """``conflict="local"``: overwrite exactly the remote version this run saw, nothing newer."""
    if r is None or base is None:
        return base if r is None else Synced(r.path, False, r.rev, r.content_hash)
    return Synced(
        base.path, base.is_dir, r.rev, base.content_hash, base.size, base.mtime_ns, base.inode, base.ctime_ns
    )


def _move_local(run: _Run, a: Action, scan: LocalScan, remote_now: Mapping[str, RemoteItem | None]) -> None:
    """Rename the local file Dropbox moved, if it still is what the index says; else download the new one
    (and the old local file stays: it was edited)."""
    old_key = path_key(a.source)
    base = run.synced.get(old_key)
    r = remote_now.get(a.key)
    try:
        st = os.lstat(run.lpath(a.source))
        same = base is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == (
            base.size,
            base.mtime_ns,
            base.inode,
        )
    except FileNotFoundError:
        same = False
    if not same or os.path.lexists(run.lpath(a.path)):
        run.download(a.key, a.path, scan.items.get(a.key))
        return
    os.makedirs(os.path.dirname(run.lpath(a.path)), exist_ok=True)
    os.replace(run.lpath(a.source), run.lpath(a.path))
    run.put(old_key, None)
    meta = None if r is None else {"rev": r.rev, "content_hash": r.content_hash}
    run.put(a.key, run.row_after_local(a.path, meta, False))
    run.done("move_local")


def _delete_local(run: _Run, a: Action) -> None:
    """Delete a local file only if it still is what the index says (else keep it: the edit wins); a folder
    only once empty (what is left in it was not synced, or is kept)."""
    path = run.lpath(a.path)
    base = run.synced.get(a.key)
    if a.is_dir:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            run.report.conflicts.append(
                {"path": a.path, "reason": "deleted on Dropbox; kept locally: not empty"}
            )
            return
    else:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if base is not None and (st.st_size, st.st_mtime_ns, st.st_ino) != (
                base.size,
                base.mtime_ns,
                base.inode,
            ):
                if _hash(run.root, a.path) != base.content_hash:
                    run.report.conflicts.append(
                        {"path": a.path, "reason": "deleted on Dropbox, edited locally: kept"}
                    )
                    run.put(a.key, None)
                    return
            os.unlink(path)
    for k in [k for k in run.synced if k == a.key or _is_under(k, a.key)]:
        run.put(k, None)
    run.done("delete_local")
