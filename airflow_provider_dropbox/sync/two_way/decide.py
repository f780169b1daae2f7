"""Decide per path, from each side compared with the index row both sides last agreed on (pure: reads the
local disk only to hash files whose stat changed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_dropbox.sync.hashing import hash_under
from airflow_provider_dropbox.sync.paths import remote_key
from airflow_provider_dropbox.sync.two_way.index import Synced
from airflow_provider_dropbox.sync.two_way.model import ConflictPolicy
from airflow_provider_dropbox.sync.two_way.scan import LocalItem, LocalScan, is_under


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
    op: str  # upload, download, mkdir_remote, mkdir_local, delete_remote, delete_local, move_remote,
    #          rename_remote (a file's case-only rename), record, forget, conflict (both versions kept),
    #          conflict_skip (left alone)
    key: str
    path: str
    is_dir: bool = False
    source: str = ""  # move_remote: the old local path; rename_remote: the Dropbox path it renames
    reason: str = ""
    winner: str = ""  # conflict: "remote" keeps the name (the local version becomes the conflicted copy)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        for name in ("is_dir", "source", "reason", "winner"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def remote_items(
    entries: Sequence[Mapping[str, Any]], root_lower: str, known: Iterable[str] = ()
) -> dict[str, RemoteItem | None]:
    """Changes (or a listing) in order -> key -> item (``None``: deleted). A deleted folder takes the
    ``known`` keys under it along at that point of the list, so what is created again later stays."""
    depth = len([p for p in root_lower.split("/") if p])
    out: dict[str, RemoteItem | None] = {}
    known = sorted(known)
    for e in entries:
        pl = e.get("path_lower")
        key = remote_key(pl, root_lower) if isinstance(pl, str) else None
        if key is None or (key == "" and e.get(".tag") != "deleted"):
            continue
        rel = "/".join(str(e.get("path_display") or pl).split("/")[depth + 1 :]) or key
        tag = e.get(".tag")
        if tag == "deleted":
            for k in [*out, *known]:
                if not key or is_under(k, key):
                    out[k] = None
            if key:
                out[key] = None
        elif tag == "folder":
            out[key] = RemoteItem(rel, True)
        elif tag == "file":
            if e.get("is_downloadable", True) is False:
                continue
            out[key] = RemoteItem(
                rel, False, e.get("rev"), e.get("content_hash"), int(e.get("size") or 0),
                str(e.get("server_modified") or ""),
            )  # fmt: skip
    return out


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
    h = hashes.setdefault(item.path, hash_under(root, item.path))
    return h != s.content_hash


def _remote_changed(s: Synced | None, r: RemoteItem | None) -> bool:
    if s is None or r is None:
        return (s is None) != (r is None)
    if s.is_dir != r.is_dir:
        return True
    return not r.is_dir and r.content_hash != s.content_hash


def decide(
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
    arrived: set[str] = set()  # keys created or edited on Dropbox since the last sync
    for key in sorted(keys):
        s = synced.get(key)
        if scan.colliding and (key in scan.colliding or any(key.startswith(c + "/") for c in scan.colliding)):
            continue
        if s is not None and excluded(s.path):
            continue
        item = local.get(key)
        listed = key in remote_now
        if (
            not listed
            and s is not None
            and item is not None
            and not item.is_dir
            and not s.is_dir
            and (
                (s.size, s.mtime_ns, s.inode, s.ctime_ns)
                == (item.size, item.mtime_ns, item.inode, item.ctime_ns)
            )
            and item.path == s.path
        ):
            continue  # the common case, unchanged on both sides: decided without building anything
        r = remote_now[key] if listed else as_remote(s)
        if r is not None and excluded(r.path):
            continue
        lc = _local_changed(s, item, root, hashes)
        rc = listed and _remote_changed(s, r)
        if not lc and not rc:
            renamed = _case_renamed(key, s, item, r)
            if renamed is not None:
                acts.append(renamed)
                continue
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
            elif item is not None and s is not None and item.path != s.path:  # both sides have the new case
                acts.append(Action("record", key, item.path, item.is_dir, reason="same item, new local name"))
            continue
        if rc and r is not None:
            arrived.add(key)
        acts.extend(_decide_one(key, s, item, r, lc, rc, hashes, root, policy, first))
    # a folder deleted locally is not deleted on Dropbox while something in it changed there: that edit
    # wins and the folder comes back, under its Dropbox name; its unchanged files are deleted one by one
    acts = [
        _comes_back(a, remote_now.get(a.key) or as_remote(synced.get(a.key)))
        if a.op == "delete_remote" and a.is_dir and any(is_under(k, a.key) for k in arrived)
        else a
        for a in acts
    ]
    acts = _hold_flips_with_changes_below(acts)
    skipped = [a.key for a in acts if a.op == "conflict_skip"]
    if skipped:  # what is below an item left alone waits with it
        acts = [a for a in acts if a.op == "conflict_skip" or not any(is_under(a.key, k) for k in skipped)]
    return _detect_remote_moves(_detect_moves(acts, synced, local, remote_now, root), synced, remote_now)


def _comes_back(a: Action, r: RemoteItem | None) -> Action:
    why = "deleted locally while something in it changed on Dropbox: it comes back"
    return Action("mkdir_local", a.key, r.path if r is not None else a.path, True, reason=why)


_LOCAL_SIDE = ("upload", "mkdir_remote", "conflict", "move_remote", "rename_remote", "delete_remote")
_REMOTE_SIDE = ("download", "mkdir_local", "move_local", "delete_local")


def _hold_flips_with_changes_below(acts: list[Action]) -> list[Action]:
    """A folder one side turned into a file (or back) while the other side changed something below it is a
    conflict with no safe automatic answer: it is reported and left alone, with everything below it, until
    someone renames one of them (the cursor stays, so the next run looks again)."""
    flips = {
        a.key: a
        for a in acts
        if a.op in ("delete_local", "delete_remote") and a.reason.startswith("replaced")
    }
    held: set[str] = set()
    for key, flip in flips.items():
        other = _LOCAL_SIDE if flip.op == "delete_local" else _REMOTE_SIDE
        if any(is_under(a.key, key) and a.op in other for a in acts):
            held.add(key)
    if not held:
        return acts
    out = [a for a in acts if not any(a.key == k or is_under(a.key, k) for k in held)]
    for key in sorted(held):
        out.append(Action("conflict_skip", key, flips[key].path, flips[key].is_dir,
                          reason="a folder became a file on one side while the other side changed something "
                          "in it; left alone until one of them is renamed"))  # fmt: skip
    return out


def _case_renamed(key: str, s: Synced | None, item: LocalItem | None, r: RemoteItem | None) -> Action | None:
    """A file or folder renamed locally in case (or Unicode form) only, its Dropbox name still the one last
    synced: Dropbox gets the new name. (Dropbox does not report its own case-only renames to a cursor, so
    the other way cannot be seen.)"""
    if s is None or item is None or r is None or not s.is_dir == item.is_dir == r.is_dir:
        return None
    name, synced_name = item.path.rpartition("/")[2], s.path.rpartition("/")[2]
    if name == synced_name or r.path.rpartition("/")[2] != synced_name:
        return None
    return Action(
        "rename_remote", key, item.path, item.is_dir, source=r.path, reason="renamed locally (case only)"
    )


def as_remote(s: Synced | None) -> RemoteItem | None:
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
            assert s is not None  # the local name, which may differ in case from the one last synced
            return [Action("delete_local", key, item.path if item is not None else s.path, s.is_dir)]
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
    h = hashes.setdefault(item.path, hash_under(root, item.path))
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
        if any(is_under(old_key, o) for o in moved):
            continue
        s = synced[old_key]
        new_key = by_inode.get((s.inode, s.is_dir))
        if new_key is None or new_key in moved.values() or any(is_under(new_key, n) for n in moved.values()):
            continue
        if not s.is_dir and (
            local[new_key].size != s.size or hash_under(root, local[new_key].path) != s.content_hash
        ):
            continue
        if s.is_dir and not _same_children(old_key, new_key, synced, local):
            continue  # a reused inode number (deleted, then another folder made), not a rename
        if remote_now.get(new_key) is not None:
            continue
        moved[old_key] = new_key
    if not moved:
        return acts
    out: list[Action] = []
    for a in acts:
        gone = any(a.key == o or is_under(a.key, o) for o in moved)
        came = any(a.key == n or is_under(a.key, n) for n in moved.values())
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


def _same_children(
    old_key: str, new_key: str, synced: Mapping[str, Synced], local: Mapping[str, LocalItem]
) -> bool:
    """A folder counts as renamed only if the files it held are below the new name, same inode each."""
    files = [(k, s) for k, s in synced.items() if is_under(k, old_key) and not s.is_dir]
    if not files:
        return False
    for k, s in files:
        moved = local.get(new_key + k[len(old_key) :])
        if moved is None or moved.inode != s.inode:
            return False
    return True


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
