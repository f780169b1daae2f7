"""The namespace: a case-insensitive, case-preserving tree with ids, revs, blobs, a change journal and a
bounded revision history per path (``files/list_revisions``, ``rev:`` downloads of recent small revisions).

Reads come from memory; every mutation is written through to sqlite in one transaction so a
restart with the same ``--data-dir`` sees the same tree, journal and cursors. All public methods
are blocking and take ``self.lock``: call them from a thread pool.
"""

from __future__ import annotations

import bisect
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .db import Db
from .hashing import BlockHasher
from .model import (
    LookupFail,
    Node,
    RelocationFail,
    StoreError,
    WriteFail,
    deleted_metadata,
    new_id,
    now_ts,
    tag,
)
from .paths import basename, is_disallowed, malformed_reason, norm, numbered_name, parent_key, sort_key

ROOT_NAMESPACE_ID = "3235641"
MAX_RELOCATION = 10_000
# History bounds: the newest revisions per path are listed; the bytes of an old revision stay readable with
# ``rev:`` only for small files and the newest few per path (a hard link, so keeping them costs no copy).
MAX_REVISIONS_PER_PATH = 100
KEEP_CONTENT_MAX_BYTES = 1 << 20
KEEP_CONTENT_PER_PATH = 10
LISTING_CACHE_SIZE = 8  # listings (root, recursive, include_deleted) whose key order is kept between pages
Items = list[tuple[str, str]]  # (op "u"|"d", display) changes of a journal window
__all__ = ["LookupFail", "Node", "RelocationFail", "Store", "StoreError", "WriteFail", "deleted_metadata"]


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class Store:
    """The tree, its journal and everything persisted under ``data_dir``."""

    def __init__(self, data_dir: Path, autorename_start: int = 1) -> None:
        self.data_dir = data_dir
        self.blob_dir = data_dir / "blobs"
        self.tmp_dir = data_dir / "tmp"
        self.rev_dir = data_dir / "revblobs"
        for d in (self.blob_dir, self.tmp_dir, self.rev_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.autorename_start = autorename_start
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.children: dict[str, set[str]] = {"": set()}
        self.by_id: dict[str, str] = {}
        self.by_rev: dict[str, str] = {}
        self.deleted: dict[str, str] = {}
        self.journal: list[tuple[str, str]] = []  # (op "u"|"d", display); seq = index + 1
        self.blob_refs: dict[str, int] = {}
        self.listeners: list[Callable[[], None]] = []
        self._rev_counter = 0
        self.used = 0  # bytes in all files (copies count again, as on Dropbox)
        self.quota_bytes: int | None = None  # None: no quota (set from the faults)
        self._garbage: set[str] = set()
        self._rev_garbage: list[Path] = []
        # Bumped by every change to the tree or the deleted set; a cached listing order is valid while equal.
        self.version = 0
        self._listings: OrderedDict[tuple[str, bool, bool], tuple[int, list[str]]] = OrderedDict()
        # The journal is append-only, so the items of a window never change: pages of one window reuse them.
        self._windows: OrderedDict[tuple[str, bool, int, int, bool], Items | None] = OrderedDict()
        self.db = Db(data_dir / "emulator.sqlite3")
        self._load()
        self._clean_tmp()

    # ------------------------------------------------------------ persistence

    def _load(self) -> None:
        for node in self.db.nodes():
            self._index(node)
        self.deleted.update(self.db.deleted())
        self.journal.extend(self.db.journal())
        secret = self.kv_get("meta", "secret")
        if secret is None:
            secret = secrets.token_hex(32)
            self.kv_put("meta", "secret", secret)
        self.secret = bytes.fromhex(secret)
        self.epoch = int(self.kv_get("meta", "epoch") or 0)
        self._rev_counter = int(self.kv_get("meta", "rev_counter") or 0)

    def _clean_tmp(self) -> None:
        """Drop half-received uploads and blobs orphaned by a crash between commit and unlink."""
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)
        for p in self.blob_dir.iterdir():
            if p.name not in self.blob_refs:
                p.unlink(missing_ok=True)
        kept = self.db.kept_revs()
        for p in self.rev_dir.iterdir():
            if p.name not in kept:
                p.unlink(missing_ok=True)

    def kv_get(self, tbl: str, key: str) -> Any:
        """Small persisted values (tokens, links, meta) next to the tree, under the same lock."""
        with self.lock:
            return self.db.kv_get(tbl, key)

    def kv_all(self, tbl: str) -> dict[str, Any]:
        with self.lock:
            return self.db.kv_all(tbl)

    def kv_put(self, tbl: str, key: str, value: Any) -> None:
        with self.lock:
            self.db.kv_put(tbl, key, value)

    def kv_del(self, tbl: str, key: str) -> None:
        with self.lock:
            self.db.kv_del(tbl, key)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One sqlite transaction per mutation; listeners hear about it after commit."""
        before = len(self.journal)
        with self.db.transaction():
            yield
        dead = [b for b in self._garbage if self.blob_refs.get(b, 0) <= 0]
        self._garbage.clear()
        for blob in dead:
            self.blob_refs.pop(blob, None)
        paths = [self.blob_dir / b for b in dead] + self._rev_garbage
        self._rev_garbage = []
        if paths:
            # Unlinking a multi-GB file can take a while: not under the tree lock.
            threading.Thread(target=_unlink_all, args=(paths,), daemon=True).start()
        if len(self.journal) != before:
            for listener in list(self.listeners):
                listener()

    def _index(self, node: Node) -> None:
        key = node.key
        self.version += 1
        self.nodes[key] = node
        self.children.setdefault(parent_key(key), set()).add(key)
        if node.kind == "folder":
            self.children.setdefault(key, set())
        self.by_id[node.id] = key
        if node.kind == "file":
            self.by_rev[node.rev] = key
            self.blob_refs[node.blob] = self.blob_refs.get(node.blob, 0) + 1
            self.used += node.size

    def _put(self, node: Node) -> None:
        old = self.nodes.get(node.key)
        if old is not None:
            self._unindex(old)
        self._index(node)
        self.deleted.pop(node.key, None)
        self.db.put_node(node)
        if node.kind == "file" and (old is None or old.rev != node.rev):
            self._record_revision(node)

    def _unindex(self, node: Node) -> None:
        key = node.key
        self.version += 1
        self.nodes.pop(key, None)
        self.children.get(parent_key(key), set()).discard(key)
        if self.by_id.get(node.id) == key:
            del self.by_id[node.id]
        if node.kind == "file":
            self.by_rev.pop(node.rev, None)
            self.blob_refs[node.blob] = self.blob_refs.get(node.blob, 1) - 1
            self.used -= node.size
            self._garbage.add(node.blob)

    def _remove(self, node: Node) -> None:
        self._unindex(node)
        self.version += 1
        self.deleted[node.key] = node.display
        self.db.remove_node(node)
        if node.kind == "file":  # server_deleted / is_deleted of list_revisions
            self.db.add_revision(node.key, node.id, "d", "", {"ts": now_ts()})

    def _record_revision(self, node: Node) -> None:
        """A new revision at ``node.key``: a history row, its bytes linked if small, old rows pruned.

        Every revision row has its own rev (identical re-uploads make none; copies and moves make new ones),
        so kept bytes are ``revblobs/<rev>``. The pruning query returns no row until a path has more than
        ``KEEP_CONTENT_PER_PATH`` revisions, so a typical write pays one insert and one empty select.
        """
        kept = False
        if node.size <= KEEP_CONTENT_MAX_BYTES:
            try:
                os.link(self.blob_dir / node.blob, self.rev_dir / node.rev)
                kept = True
            except OSError:
                pass  # no hard links here: the history is listed, old bytes are not kept
        self.db.add_revision(node.key, node.id, "u", node.rev, node.metadata(tagged=False), kept)
        older = self.db.older_revisions(node.key, KEEP_CONTENT_PER_PATH)
        for position, (row_seq, rev, row_kept) in enumerate(older, start=KEEP_CONTENT_PER_PATH):
            if position >= MAX_REVISIONS_PER_PATH:
                self.db.drop_history(node.key, row_seq)  # this row and everything older at the path
            elif row_kept:
                self.db.set_kept(row_seq, False)
            if row_kept:
                self._rev_garbage.append(self.rev_dir / rev)
            if position >= MAX_REVISIONS_PER_PATH:
                break

    def _log(self, op: str, display: str) -> None:
        self.journal.append((op, display))
        self.db.append_journal(len(self.journal), op, display)

    def _new_rev(self) -> str:
        self._rev_counter += 1
        self.db.kv_put("meta", "rev_counter", self._rev_counter)
        return f"{self._rev_counter:09x}{secrets.token_hex(4)}"

    # ------------------------------------------------------------ lookups

    @property
    def seq(self) -> int:
        return len(self.journal)

    def _key_of(self, path: str, allow_root: bool = False) -> str:
        """Turn an API path (``/a``, ``id:..``, ``id:../rest``, ``ns:..``, ``rev:..``) into a key."""
        if path.startswith("id:"):
            ident, sep, rest = path.partition("/")
            base = self.by_id.get(ident)
            if base is None:
                raise LookupFail(tag("not_found"))
            return base + (self._validated("/" + rest) if sep else "")
        if path.startswith("rev:"):
            key = self.by_rev.get(path[4:])
            if key is None:
                raise LookupFail(tag("not_found"))
            return key
        if path.startswith("ns:"):
            ns, sep, rest = path[3:].partition("/")
            if ns != ROOT_NAMESPACE_ID:
                raise LookupFail(tag("not_found"))
            path = "/" + rest if sep else ""
        if path == "":
            if allow_root:
                return ""
            raise LookupFail(tag("malformed_path"))
        return self._validated(path)

    @staticmethod
    def _validated(path: str) -> str:
        if malformed_reason(path) is not None:
            raise LookupFail(tag("malformed_path"))  # Dropbox sends the tag alone, no text
        return norm(path)

    def display_of(self, path: str) -> str:
        """Display path for a new item: existing ancestors keep their case, the rest as given."""
        if path.startswith(("id:", "ns:")):
            key = self._key_of(path)
            node = self.nodes.get(key)
            if node is not None:
                return node.display
            if path.startswith("id:"):
                ident, _, rest = path.partition("/")
                return self.nodes[self.by_id[ident]].display + "/" + rest
            _, _, rest = path[3:].partition("/")
            path = "/" + rest
        parts = path.split("/")
        out = ""
        for i in range(1, len(parts)):
            cand = out + "/" + parts[i]
            existing = self.nodes.get(norm(cand))
            out = existing.display if existing is not None and i < len(parts) - 1 else cand
        return out

    def lookup(self, path: str) -> Node:
        with self.lock:
            node = self.nodes.get(self._key_of(path))
            if node is None:
                raise LookupFail(tag("not_found"))
            return node

    def get_metadata(self, path: str, include_deleted: bool) -> dict[str, Any]:
        with self.lock:
            key = self._key_of(path)
            node = self.nodes.get(key)
            if node is not None:
                return node.metadata(tagged=True)
            if include_deleted and key in self.deleted:
                return deleted_metadata(self.deleted[key])
            raise LookupFail(tag("not_found"))

    def folder_key(self, path: str) -> str:
        """Resolve a list_folder root; ``""`` is the root. Files give ``not_folder``."""
        with self.lock:
            key = self._key_of(path, allow_root=True)
            if key == "":
                return ""
            node = self.nodes.get(key)
            if node is None:
                raise LookupFail(tag("not_found"))
            if node.kind != "folder":
                raise LookupFail(tag("not_folder"))
            return key

    def open_file(self, path: str) -> tuple[Node, int]:
        """Metadata plus an open fd of its blob, taken under the lock so no overwrite unlinks it first."""
        with self.lock:
            if path.startswith("rev:") and path[4:] not in self.by_rev:
                md = self.db.kept_revision(path[4:])
                if md is not None:
                    fields = ("id", "rev", "size", "content_hash", "client_modified", "server_modified")
                    old = Node(kind="file", display=md["path_display"], **{f: md[f] for f in fields})
                    try:
                        return old, os.open(self.rev_dir / old.rev, os.O_RDONLY)
                    except FileNotFoundError:
                        raise LookupFail(tag("not_found")) from None
            node = self.lookup(path)
            if node.kind != "file":
                raise LookupFail(tag("not_file"))
            return node, os.open(self.blob_dir / node.blob, os.O_RDONLY)

    def list_revisions(
        self, path: str, by_id: bool, limit: int, before_rev: str | None, restorable: bool
    ) -> dict[str, Any]:
        """ListRevisionsResult: revisions at the path (across deletes and re-adds) or of the file's id
        (across moves), newest first. ``before_rev`` is checked by the route (path mode only)."""
        with self.lock:
            key = self._key_of(path)
            node = self.nodes.get(key)
            if node is not None and node.kind != "file":
                raise LookupFail(tag("not_file"))
            rows = self.db.revisions_at(key)
            fid = node.id if node is not None else next((r[1] for r in rows if r[2] == "u"), None)
            if fid is None:
                raise LookupFail(tag("not_found"))
            if by_id:
                rows = self.db.revisions_of(fid)
                is_deleted = fid not in self.by_id
            else:
                is_deleted = node is None
            entries: list[dict[str, Any]] = []
            seen: set[str] = set()
            for _seq, _fid, op, kept, data in rows:
                if op == "u" and data["rev"] not in seen:
                    seen.add(data["rev"])
                    if restorable:
                        data["is_restorable"] = kept or data["rev"] in self.by_rev
                    entries.append(data)
            if node is not None and node.rev not in seen:  # a tree from before histories were kept
                current = node.metadata(tagged=False)
                if restorable:
                    current["is_restorable"] = True
                entries.insert(0, current)
            if before_rev is not None:
                index = next((i for i, e in enumerate(entries) if e["rev"] == before_rev), None)
                if index is None:
                    raise StoreError(tag("invalid_before_rev"))
                entries = entries[index + 1 :]
            result: dict[str, Any] = {"is_deleted": is_deleted}
            if is_deleted:
                deletion = next((r[4] for r in rows if r[2] == "d"), None)
                if deletion is not None:
                    result["server_deleted"] = deletion["ts"]
            result.update(entries=entries[:limit], has_more=len(entries) > limit)
            return result

    def _subtree(self, key: str, extra: dict[str, list[str]] | None = None) -> list[str]:
        """Keys at or under ``key`` in ``sort_key`` order (root first, parents before children).

        A pre-order walk with each folder's children sorted: siblings share their parent's key as a prefix,
        so plain string order among them is component order. O(N log fanout), no list per key. ``extra``
        adds children (deleted items) to the walk."""
        out = [key]
        stack = [iter(self._sorted_children(key, extra))]
        while stack:
            k = next(stack[-1], None)
            if k is None:
                stack.pop()
                continue
            out.append(k)
            if self.children.get(k) or (extra and k in extra):
                stack.append(iter(self._sorted_children(k, extra)))
        return out

    def _sorted_children(self, key: str, extra: dict[str, list[str]] | None) -> list[str]:
        kids = self.children.get(key, ())
        if extra and key in extra:
            return sorted([*kids, *extra[key]], key=sort_key)
        return sorted(kids, key=sort_key)

    def _listing_keys(self, root: str, recursive: bool, include_deleted: bool) -> list[str]:
        """The full ordered key list of a listing, built once per tree version and reused by every page."""
        cache_key = (root, recursive, include_deleted)
        cached = self._listings.get(cache_key)
        if cached is not None and cached[0] == self.version:
            self._listings.move_to_end(cache_key)
            return cached[1]
        extra: dict[str, list[str]] = {}
        if include_deleted:
            prefix = root + "/"
            for k in self.deleted:
                if (recursive and k.startswith(prefix)) or (not recursive and parent_key(k) == root):
                    extra.setdefault(parent_key(k), []).append(k)
        if recursive:
            keys = self._subtree(root, extra)
            keys = keys[1:] if root == "" else keys
        else:
            keys = self._sorted_children(root, extra)
        self._listings[cache_key] = (self.version, keys)
        self._listings.move_to_end(cache_key)
        while len(self._listings) > LISTING_CACHE_SIZE:
            self._listings.popitem(last=False)
        return keys

    def listing_page(
        self, root: str, recursive: bool, include_deleted: bool, after: str | None, limit: int
    ) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        """One page of (key, metadata) in scope after key ``after``, parents before children; and has_more.

        The ordered key list is built once per tree version (O(N log fanout)) and cached, so a full listing of
        N items costs O(N) plus one binary search per page; only the page's items are rendered.
        """
        with self.lock:
            keys = self._listing_keys(root, recursive, include_deleted)
            start = 0 if after is None else bisect.bisect_right(keys, sort_key(after), key=sort_key)
            chosen = keys[start : start + limit]
            page = []
            for k in chosen:
                node = self.nodes.get(k)
                page.append(
                    (k, node.metadata(tagged=True) if node is not None else deleted_metadata(self.deleted[k]))
                )
            return page, start + limit < len(keys)

    def changes(
        self, root: str, recursive: bool, since: int, upto: int, repeat: bool = False
    ) -> list[tuple[str, str]] | None:
        """``_changes`` of a window, computed once and reused by every page of it (a continue after a million
        changes costs one pass over them, not one per page)."""
        cache_key = (root, recursive, since, upto, repeat)
        with self.lock:
            if cache_key in self._windows:
                self._windows.move_to_end(cache_key)
                return self._windows[cache_key]
            items = self._changes(root, recursive, since, upto, repeat)
            if upto - since > 1000:  # small windows are cheap; keep the cache for the big ones
                self._windows[cache_key] = items
                while len(self._windows) > LISTING_CACHE_SIZE:
                    self._windows.popitem(last=False)
            return items

    def _changes(
        self, root: str, recursive: bool, since: int, upto: int, repeat: bool
    ) -> list[tuple[str, str]] | None:
        """Ordered (op, display) items changed in the window ``(since, upto]``; None means reset.

        Deletions come first (one per deleted subtree root), then the keys written to, parents
        before children. The routes render ``u`` items from the current tree (skipping gone ones).
        With ``repeat`` every in-scope journal item is returned in journal order, so one path may appear
        several times (the spec allows it: apply in order, last wins).
        """
        with self.lock:
            if repeat:
                out: list[tuple[str, str]] = []
                for op, display in self.journal[since:upto]:
                    key = norm(display)
                    if op == "d" and root and (key == root or root.startswith(key + "/")):
                        return None
                    if key.startswith(root + "/") if recursive else parent_key(key) == root:
                        out.append((op, display))
                return out
            dels: dict[str, str] = {}
            ups: dict[str, str] = {}
            prefix = root + "/"
            for op, display in self.journal[since:upto]:
                key = norm(display)
                if op == "d" and root and (key == root or root.startswith(key + "/")):
                    return None
                in_scope = key.startswith(prefix) if recursive else parent_key(key) == root
                if not in_scope:
                    continue
                if op == "d":
                    dels.pop(key, None)
                    dels[key] = display
                else:
                    ups[key] = display
            items = [("d", d) for d in dels.values()]
            items += [("u", ups[k]) for k in sorted(ups, key=sort_key)]
            return items

    def render(self, op: str, display: str) -> dict[str, Any] | None:
        with self.lock:
            if op == "d":
                return deleted_metadata(display)
            node = self.nodes.get(norm(display))
            return None if node is None else node.metadata(tagged=True)

    def space_used(self) -> int:
        return self.used

    def _check_quota(self, added: int) -> bool:
        return self.quota_bytes is None or added <= 0 or self.used + added <= self.quota_bytes

    # ------------------------------------------------------------ writes

    def _write_target(self, path: str) -> tuple[str, str]:
        """(key, display) of a write path, or WriteFail(malformed_path / disallowed_name)."""
        try:
            key = self._key_of(path)
        except LookupFail as e:
            if e.reason[".tag"] == "not_found":
                raise WriteFail(tag("malformed_path")) from None
            raise WriteFail(e.reason) from None
        display = self.display_of(path)
        if is_disallowed(basename(display)):
            raise WriteFail(tag("disallowed_name"))
        return key, display

    def _check_ancestors(self, key: str) -> None:
        k = parent_key(key)
        while k:
            node = self.nodes.get(k)
            if node is not None and node.kind == "file":
                raise WriteFail(tag("conflict", tag("file_ancestor")))
            k = parent_key(k)

    def _ensure_parents(self, display: str) -> None:
        parts = display.split("/")
        for i in range(2, len(parts)):
            anc = "/".join(parts[:i])
            if norm(anc) not in self.nodes:
                self._put(Node(kind="folder", display=anc, id=new_id()))
                self._log("u", anc)

    def _free_name(self, display: str, is_file: bool, label: str = "") -> str:
        parent, name = display.rsplit("/", 1)
        n = 0 if label else self.autorename_start
        while True:
            cand = parent + "/" + numbered_name(name, n, is_file, label)
            if norm(cand) not in self.nodes:
                return cand
            n += 1

    def commit_file(
        self,
        path: str,
        mode: tuple[str, Any],
        autorename: bool,
        strict_conflict: bool,
        client_modified: str | None,
        tmp_blob: Path,
        size: int,
        content_hash: str,
    ) -> dict[str, Any]:
        """Commit uploaded bytes (a temp file, renamed into the blob store) per the WriteMode rules."""
        with self.lock:
            key, display = self._write_target(path)
            self._check_ancestors(key)
            existing = self.nodes.get(key)
            mode_tag, mode_rev = mode
            label = ""
            if existing is not None and existing.kind == "folder":
                conflict = "folder"
            elif existing is not None:
                same = existing.content_hash == content_hash
                if mode_tag == "update" and existing.rev != mode_rev and strict_conflict:
                    conflict, label = "file", "conflicted copy"
                elif same:
                    tmp_blob.unlink(missing_ok=True)
                    return existing.metadata(tagged=False)
                elif mode_tag == "overwrite" or (mode_tag == "update" and existing.rev == mode_rev):
                    conflict = ""
                elif mode_tag == "update":
                    conflict, label = "file", "conflicted copy"
                else:
                    conflict = "file"
            elif mode_tag == "update" and strict_conflict:
                conflict = "file"
            else:
                conflict = ""
            if conflict:
                if not autorename:
                    raise WriteFail(tag("conflict", tag(conflict)))
                display = self._free_name(display, is_file=True, label=label)
                existing = None
            if not self._check_quota(size - (existing.size if existing is not None else 0)):
                raise WriteFail(tag("insufficient_space"))
            with self._tx():
                blob = secrets.token_hex(16)
                os.replace(tmp_blob, self.blob_dir / blob)
                self._ensure_parents(display)
                ts = now_ts()
                node = Node(
                    kind="file",
                    display=existing.display if existing is not None else display,
                    id=existing.id if existing is not None else new_id(),
                    rev=self._new_rev(),
                    size=size,
                    content_hash=content_hash,
                    blob=blob,
                    client_modified=client_modified or ts,
                    server_modified=ts,
                )
                self._put(node)
                self._log("u", node.display)
            return node.metadata(tagged=False)

    def create_folder(self, path: str, autorename: bool) -> dict[str, Any]:
        with self.lock:
            key, display = self._write_target(path)
            self._check_ancestors(key)
            existing = self.nodes.get(key)
            if existing is not None:
                if not autorename:
                    raise WriteFail(tag("conflict", tag(existing.kind)))
                display = self._free_name(display, is_file=False)
            with self._tx():
                self._ensure_parents(display)
                node = Node(kind="folder", display=display, id=new_id())
                self._put(node)
                self._log("u", display)
            return node.metadata(tagged=False)

    def populate(
        self, path: str, files: int, size: int, per_folder: int = 0, unique: bool = False, prefix: str = "f"
    ) -> dict[str, Any]:
        """Create ``files`` files of ``size`` bytes under the folder ``path`` in one transaction (tests and
        benchmarks: no upload requests, no per-file fsync).

        Names are ``<prefix><n>.bin`` (zero-padded), grouped into subfolders ``d<m>`` of ``per_folder`` files
        when ``per_folder`` > 0. Without ``unique`` every file shares one blob (one file on disk, one content
        hash); with it each file gets its own bytes (its name, repeated) and hash. The journal records every
        item, so cursors see them like uploads; no revision history rows are written (``list_revisions``
        still shows each file's current revision). Existing names are refused before anything is written.
        """
        if files < 1 or size < 0 or per_folder < 0:
            raise WriteFail(tag("malformed_path"))
        with self.lock:
            key, display = self._write_target(path)
            self._check_ancestors(key)
            existing = self.nodes.get(key)
            if existing is not None and existing.kind == "file":
                raise WriteFail(tag("conflict", tag("file")))
            if existing is not None:
                display = existing.display
            width = len(str(files - 1))
            groups = (files - 1) // per_folder + 1 if per_folder else 0
            gwidth = len(str(max(groups - 1, 0)))
            names = []
            for i in range(files):
                name = f"{prefix}{i:0{width}d}.bin"
                if per_folder:
                    name = f"d{i // per_folder:0{gwidth}d}/{name}"
                names.append(display + "/" + name)
            group_names = [display + f"/d{g:0{gwidth}d}" for g in range(groups)]
            for g in group_names:
                node = self.nodes.get(norm(g))
                if node is not None and node.kind == "file":
                    raise WriteFail(tag("conflict", tag("file")))
            for n in names:
                if norm(n) in self.nodes:
                    raise WriteFail(tag("conflict", tag(self.nodes[norm(n)].kind)))
            if not self._check_quota(files * size):
                raise WriteFail(tag("insufficient_space"))
            started = time.monotonic()
            shared_blob, shared_hash = ("", "") if unique else self._write_blob(b"\0" * size)
            ts = now_ts()
            base = self._rev_counter
            self._rev_counter += files
            with self._tx():
                self._ensure_parents(display + "/-")
                for folder in group_names:
                    if norm(folder) not in self.nodes:
                        self._put(Node(kind="folder", display=folder, id=new_id()))
                        self._log("u", folder)
                rows = []
                salt = secrets.token_hex(4)
                for i, name in enumerate(names):
                    if unique:
                        seed = name.encode()
                        data = (seed * (size // max(len(seed), 1) + 1))[:size]
                        blob, chash = self._write_blob(data)
                    else:
                        blob, chash = shared_blob, shared_hash
                    node = Node(
                        kind="file",
                        display=name,
                        id=new_id(),
                        rev=f"{base + i + 1:09x}{salt}",
                        size=size,
                        content_hash=chash,
                        blob=blob,
                        client_modified=ts,
                        server_modified=ts,
                    )
                    self._index(node)
                    self.deleted.pop(node.key, None)
                    rows.append(node)
                    self.journal.append(("u", name))
                self.db.put_nodes(rows)
                self.db.append_journal_many(len(self.journal) - files + 1, [("u", n) for n in names])
                self.db.kv_put("meta", "rev_counter", self._rev_counter)
            return {"files": files, "folders": groups, "seconds": round(time.monotonic() - started, 3)}

    def _write_blob(self, data: bytes) -> tuple[str, str]:
        """A new blob file holding ``data``; (blob name, content hash)."""
        blob = secrets.token_hex(16)
        with open(self.blob_dir / blob, "wb") as f:
            f.write(data)
        hasher = BlockHasher()
        hasher.update(data)
        return blob, hasher.hexdigest()

    def delete(self, path: str, parent_rev: str | None) -> dict[str, Any]:
        """Remove an item and its subtree; the journal gets one ``d`` for the subtree root."""
        with self.lock:
            node = self.lookup(path)
            if parent_rev is not None and (node.kind != "file" or node.rev != parent_rev):
                raise WriteFail(tag("conflict", tag(node.kind)))
            md = node.metadata(tagged=True)
            with self._tx():
                for k in reversed(self._subtree(node.key)):
                    self._remove(self.nodes[k])
                self._log("d", node.display)
            return md

    def relocate(self, from_path: str, to_path: str, autorename: bool, copy: bool) -> dict[str, Any]:
        """move_v2 / copy_v2. A move keeps ids (journal: ``d`` old root + ``u`` per new item)."""
        with self.lock:
            try:
                src = self.lookup(from_path)
            except LookupFail as e:
                raise RelocationFail(tag("from_lookup", e.reason)) from None
            try:
                key, display = self._write_target(to_path)
            except WriteFail as e:
                raise RelocationFail(tag("to", e.reason)) from None
            if key.startswith(src.key + "/"):
                raise RelocationFail(tag("cant_move_folder_into_itself"))
            try:
                self._check_ancestors(key)
            except WriteFail as e:
                raise RelocationFail(tag("to", e.reason)) from None
            case_only = key == src.key and not copy
            if key == src.key and display == src.display:
                raise RelocationFail(tag("to", tag("conflict", tag(src.kind))))
            if key in self.nodes and not case_only:
                if not autorename:
                    raise RelocationFail(tag("to", tag("conflict", tag(self.nodes[key].kind))))
                display = self._free_name(display, is_file=src.kind == "file")
            keys = self._subtree(src.key)
            if len(keys) > MAX_RELOCATION:
                raise RelocationFail(tag("too_many_files"))
            old_nodes = [self.nodes[k] for k in keys]
            if copy and not self._check_quota(sum(n.size for n in old_nodes)):
                raise RelocationFail(tag("insufficient_quota"))
            with self._tx():
                if not copy:
                    for n in reversed(old_nodes):
                        self._remove(n)
                    if not case_only:
                        self._log("d", src.display)
                self._ensure_parents(display)
                new_root = None
                for n in old_nodes:
                    moved = Node(**asdict(n))
                    moved.display = display + n.display[len(src.display) :]
                    if copy:
                        moved.id = new_id()
                    if n.kind == "file":  # a copy or a move is a new revision at its new path
                        moved.rev = self._new_rev()
                        moved.server_modified = now_ts()
                    self._put(moved)
                    self.deleted.pop(moved.key, None)
                    if not case_only:  # list_folder/continue does not report case-only renames
                        self._log("u", moved.display)
                    new_root = new_root or moved
                assert new_root is not None
            return new_root.metadata(tagged=True)

    def reset_cursors(self) -> None:
        with self.lock:
            self.epoch += 1
            self.kv_put("meta", "epoch", self.epoch)
            for listener in list(self.listeners):
                listener()
