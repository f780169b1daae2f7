"""Apply the decided actions: each one, then its index row, so a crash loses at most the action in flight."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.sync.errors import MirrorConfigError
from airflow_provider_dropbox.sync.hashing import hash_under
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.paths import safe_local_path
from airflow_provider_dropbox.sync.two_way.decide import Action, RemoteItem, as_remote
from airflow_provider_dropbox.sync.two_way.index import STATE_DIR_NAME, Synced, SyncIndex
from airflow_provider_dropbox.sync.two_way.model import ConflictPolicy, TwoWayClient, TwoWayReport
from airflow_provider_dropbox.sync.two_way.scan import LocalItem, LocalScan, is_under

NAME_MAX = 255
CASE_RENAME = "case_rename"  # meta key: the Dropbox moves of a case rename in flight (JSON)


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


@dataclass
class Run:
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

    def local_rel(self, rel: str) -> str:
        """``rel`` (a Dropbox-side path) with each existing local folder in the name the local disk gives
        it: Dropbox folds case, so ``x/new.txt`` from Dropbox belongs in a local folder ``X`` (on a
        case-sensitive disk a second folder ``x`` would collide with it)."""
        parent, _, name = rel.rpartition("/")
        if not parent or os.path.isdir(self.lpath(parent)):
            return rel
        done: list[str] = []
        for i, part in enumerate(parts := parent.split("/")):
            here = os.path.join(self.root, *done)
            if not os.path.isdir(os.path.join(here, part)):
                want = path_key(part)
                try:
                    match = [e.name for e in os.scandir(here) if e.is_dir(follow_symlinks=False)
                             and path_key(e.name) == want]  # fmt: skip
                except OSError:
                    match = []
                if len(match) != 1:
                    done.extend(parts[i:])
                    break
                part = match[0]
            done.append(part)
        return "/".join([*done, name])

    def staging(self) -> str:
        return os.path.join(self.root, STATE_DIR_NAME, "staging")

    def clear_staging(self) -> None:
        folder = self.staging()
        if os.path.isdir(folder) and not os.path.islink(folder):
            for name in os.listdir(folder):
                os.unlink(os.path.join(folder, name))

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
            if os.path.isdir(target) and not os.path.islink(target):
                raise IsADirectoryError(
                    errno.EISDIR, "a local folder with files the sync does not know is in the way", target
                )
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
        st = os.lstat(self.lpath(new))
        before = LocalItem(new, False, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        meta = self.client.upload_file(self.lpath(new), self.rpath(new), mode="add", autorename=True)
        stored = str(meta.get("name") or new.rpartition("/")[2])
        parent = new.rpartition("/")[0]
        renamed = f"{parent}/{stored}" if parent else stored
        if stored != new.rpartition("/")[2] and not os.path.lexists(self.lpath(renamed)):
            os.rename(self.lpath(new), self.lpath(renamed))  # Dropbox chose another free name: follow it
            new = renamed
        self.report.conflicts.append({"path": rel, "kept_as": new, "reason": reason})
        if new == renamed:
            self.put(path_key(new), row_from_scan(new, meta, before))
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
        # The local stat as the scan saw it, never as it is now: a change made while the upload ran then
        # differs from the row, and the next run hashes and uploads it instead of overwriting it.
        self.put(key, row_from_scan(rel, meta, item))
        self.done("upload")


def row_from_scan(rel: str, meta: Mapping[str, Any] | None, item: LocalItem) -> Synced:
    """The index row for a file both sides agree on, with the local stat the decision was made from."""
    meta = meta or {}
    return Synced(
        rel,
        False,
        meta.get("rev"),
        meta.get("content_hash"),
        item.size,
        item.mtime_ns,
        item.inode,
        item.ctime_ns,
    )


_ORDER = {"move_remote": 0, "rename_remote": 0, "mkdir_remote": 1, "mkdir_local": 1, "record": 2, "forget": 2,
          "conflict_skip": 2, "move_local": 2,
          "conflict": 3, "upload": 3, "download": 3, "delete_remote": 4, "delete_local": 4}  # fmt: skip


def apply_actions(
    run: Run,
    actions: list[Action],
    scan: LocalScan,
    remote_now: Mapping[str, RemoteItem | None],
    lock: MirrorLock | None,
) -> None:
    flips = {a.key for a in actions if _ORDER[a.op] == 4 and a.reason.startswith("replaced")}

    def step(a: Action) -> float:
        """Moves, folders, records, transfers, then deletes; the delete half of a file/folder flip (and the
        deletes below it) goes first: the new item cannot be made while the old one is there."""
        if _ORDER[a.op] == 4 and any(a.key == f or is_under(a.key, f) for f in flips):
            return 0.5
        return _ORDER[a.op]

    ordered = sorted(actions, key=lambda a: (step(a), a.key if _ORDER[a.op] < 4 else _neg(a.key)))
    for a in ordered:
        if lock is not None:
            lock.check()
        if step(a) >= 4 and run.report.errors:
            run.report.deletes_skipped += 1
            continue
        try:
            _apply_one(run, a, scan, remote_now)
        except (client_errors.DropboxApiError, OSError) as exc:
            run.log.warning("Two-way sync: %s %r failed: %s", a.op, a.path, exc)
            run.report.errors.append({"op": a.op, "path": a.path, "error": f"{type(exc).__name__}: {exc}"})


def _rename_case(run: Run, source: str, name: str) -> dict[str, Any]:
    """Give the Dropbox file ``source`` the name ``name`` that differs only in case or Unicode form. The
    API documents no case-only ``move_v2``, so it goes through a free temporary name in the same folder;
    if the second move fails, the file is moved back."""
    parent = source.rpartition("/")[0]

    def rel(n: str) -> str:
        return f"{parent}/{n}" if parent else n

    temp = rel(f".{name}.case-rename-{secrets.token_hex(4)}")
    intent = {"temp": run.rpath(temp), "to": run.rpath(rel(name)), "from": run.rpath(source)}
    run.index.write(meta={CASE_RENAME: json.dumps(intent)})  # a run killed between the moves: finished next
    run.client.move(run.rpath(source), run.rpath(temp))
    try:
        meta = run.client.move(run.rpath(temp), run.rpath(rel(name)))
    except client_errors.DropboxApiError:
        run.client.move(run.rpath(temp), run.rpath(source))
        run.index.write(meta={CASE_RENAME: ""})
        raise
    run.index.write(meta={CASE_RENAME: ""})  # only once no item is left under the temporary name
    return meta


def finish_case_rename(client: TwoWayClient, index: SyncIndex, log: logging.Logger) -> None:
    """A run killed between a case rename's two moves left the item under its temporary name on Dropbox:
    give it the name it was going to (or back its old one if that fails), before anything else."""
    raw = index.meta().get(CASE_RENAME)
    if not raw:
        return
    intent = json.loads(raw)
    try:
        client.get_metadata(intent["temp"])
    except client_errors.PathNotFoundError:
        pass  # killed before the first move, or after the second
    else:
        log.warning("Two-way sync: finishing a case rename a stopped run left as %s", intent["temp"])
        try:
            client.move(intent["temp"], intent["to"])
        except client_errors.DropboxApiError:
            client.move(intent["temp"], intent["from"])
    index.write(meta={CASE_RENAME: ""})


def _neg(key: str) -> tuple[int, str]:
    return (-key.count("/"), key)  # deletes: deepest first


def _apply_one(run: Run, a: Action, scan: LocalScan, remote_now: Mapping[str, RemoteItem | None]) -> None:
    key, item = a.key, scan.items.get(a.key)
    base = run.synced.get(key)
    if a.op in ("download", "mkdir_local", "move_local"):  # named by Dropbox: into the local folders' names
        a = replace(a, path=run.local_rel(a.path))
    if a.op == "move_remote":
        meta = run.client.move(run.rpath(a.source), run.rpath(a.path))
        old = path_key(a.source)
        for k in [k for k in run.synced if k == old or is_under(k, old)]:
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
    elif a.op == "rename_remote":
        assert item is not None
        meta = _rename_case(run, a.source, a.path.rpartition("/")[2])
        if item.is_dir:  # the rows below take the new name through their own "record" actions
            assert base is not None
            run.put(key, replace(base, path=a.path))
        else:
            run.put(key, row_from_scan(a.path, meta, item))  # the new rev: a later edit uploads against it
        run.done("rename_remote")
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
        r = remote_now.get(key) if key in remote_now else as_remote(base)
        seen = None if r is None else {"rev": r.rev, "content_hash": r.content_hash}
        found = scan.items.get(key)
        if found is not None and not found.is_dir:
            run.put(key, row_from_scan(a.path, seen, found))
        else:
            run.put(key, run.row_after_local(a.path, seen, a.is_dir))
        run.done("record")
    elif a.op == "forget":
        run.put(key, None)
    elif a.op == "conflict":
        run.set_aside(a.path, a.reason)
        r = remote_now.get(key)
        if r is not None:
            run.download(key, run.local_rel(r.path) if r.path.lower() == a.path.lower() else a.path, None)
    elif a.op == "conflict_skip":
        run.report.conflicts.append({"path": a.path, "reason": a.reason})
    elif a.op == "delete_remote":
        base = run.synced.get(key)
        rev = base.rev if base is not None and not base.is_dir else None
        try:  # a file only at the rev last seen: an edit made on Dropbox meanwhile is never deleted
            run.client.delete(run.rpath(a.path), parent_rev=rev)
        except client_errors.PathNotFoundError:
            pass
        except client_errors.PathConflictError:
            # Changed on Dropbox after this run listed it: the edit wins over the local delete and comes
            # back now (a folder there now is left to the next run, which sees the change after the cursor).
            run.report.conflicts.append(
                {"path": a.path, "reason": "changed on Dropbox after this run listed it; kept, not deleted"}
            )
            if run.client.get_metadata(run.rpath(a.path)).get(".tag") == "file":
                run.download(key, run.local_rel(a.path), None)
            return
        for k in [k for k in run.synced if k == key or is_under(k, key)]:
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


def _move_local(run: Run, a: Action, scan: LocalScan, remote_now: Mapping[str, RemoteItem | None]) -> None:
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


def _delete_local(run: Run, a: Action) -> None:
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
            if base is not None and base.path != a.path:  # the row keeps the local name (case)
                run.put(a.key, replace(base, path=a.path))
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
                if hash_under(run.root, a.path) != base.content_hash:
                    run.report.conflicts.append(
                        {"path": a.path, "reason": "deleted on Dropbox, edited locally: kept"}
                    )
                    run.put(a.key, None)
                    return
            os.unlink(path)
    for k in [k for k in run.synced if k == a.key or is_under(k, a.key)]:
        run.put(k, None)
    run.done("delete_local")
