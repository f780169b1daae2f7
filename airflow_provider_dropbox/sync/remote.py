"""The remote tree as of a cursor, kept in the state so changes from ``list_folder/continue`` can be applied.

Change processing follows the list_folder contract, entry by entry in order: a file replaces whatever was
at its path (dropping children), a folder replaces a file but keeps children, a deletion removes the path
and its whole subtree (Dropbox reports one deletion for a deleted or moved folder, not one per child).
Parents are not guaranteed to arrive before children, so missing parents are synthesised and corrected
when their own entry arrives. Keys are ``path_lower`` relative to the mirror root; names keep their case.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dropbox.sync.paths import key_parent, remote_key


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    key: str
    name: str
    is_dir: bool
    id: str | None = None
    rev: str | None = None
    content_hash: str | None = None
    size: int = 0
    downloadable: bool = True
    synthetic: bool = False  # a parent we inferred before its own entry arrived
    # client_modified as listed; not kept in the state or the index (rows read back from them have None), so
    # only entries listed in this run can be fetched from a folder zip (which carries no times)
    modified: str | None = field(default=None, compare=False)

    def to_json(self) -> list[Any]:
        return [
            self.name,
            1 if self.is_dir else 0,
            self.id,
            self.rev,
            self.content_hash,
            self.size,
            1 if self.downloadable else 0,
            1 if self.synthetic else 0,
        ]

    @classmethod
    def from_json(cls, key: str, raw: list[Any]) -> RemoteEntry:
        name, is_dir, id_, rev, content_hash, size, downloadable, synthetic = raw
        return cls(
            key, name, bool(is_dir), id_, rev, content_hash, int(size), bool(downloadable), bool(synthetic)
        )


def _name_from(meta: Mapping[str, Any], key: str) -> str:
    name = meta.get("name")
    if isinstance(name, str) and name:
        return name
    display = meta.get("path_display") or meta.get("path_lower") or key
    return str(display).rsplit("/", 1)[-1]


class RemoteTree:
    """Entries by key plus a children index, so deleting a subtree costs its size, not the tree's."""

    def __init__(self) -> None:
        self.entries: dict[str, RemoteEntry] = {}
        self.children: dict[str, set[str]] = {}
        self.changed: set[str] = set()  # keys put or removed since the copy (the index writes only these)

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def from_listing(cls, metas: Iterable[Mapping[str, Any]], root_lower: str) -> RemoteTree:
        tree = cls()
        tree.apply_changes(metas, root_lower)
        return tree

    def copy(self) -> RemoteTree:
        other = RemoteTree()
        other.entries = dict(self.entries)
        other.children = {k: set(v) for k, v in self.children.items()}
        return other

    def _put(self, entry: RemoteEntry) -> None:
        self.changed.add(entry.key)
        self.entries[entry.key] = entry
        self.children.setdefault(key_parent(entry.key), set()).add(entry.key)

    def _remove_subtree(self, key: str) -> None:
        stack = [key]
        while stack:
            k = stack.pop()
            stack.extend(self.children.pop(k, ()))
            if self.entries.pop(k, None) is not None:
                self.changed.add(k)
                siblings = self.children.get(key_parent(k))
                if siblings is not None:
                    siblings.discard(k)
                    if not siblings:
                        del self.children[key_parent(k)]

    def _ensure_parents(self, key: str, meta: Mapping[str, Any]) -> None:
        parent = key_parent(key)
        if not parent:
            return
        display = str(meta.get("path_display") or "").split("/")
        parts = parent.split("/")
        for depth in range(len(parts), 0, -1):
            anc = "/".join(parts[:depth])
            existing = self.entries.get(anc)
            if existing is not None and existing.is_dir:
                break
            if existing is not None:  # a file where a folder must be: the folder replaced it
                self._remove_subtree(anc)
            # path_display's ancestors are unreliable in case but right in length; best effort until the
            # real entry arrives.
            offset = len(display) - (len(key.split("/")) - depth) - 1
            name = display[offset] if 0 <= offset < len(display) and display[offset] else parts[depth - 1]
            self._put(RemoteEntry(anc, name, True, synthetic=True))

    def apply_changes(self, metas: Iterable[Mapping[str, Any]], root_lower: str) -> set[str]:
        """Apply listing or change entries in order; return the keys they touched (for disk verification)."""
        touched: set[str] = set()
        for meta in metas:
            path_lower = meta.get("path_lower")
            if not isinstance(path_lower, str):
                continue
            key = remote_key(path_lower, root_lower)
            if key is None:
                continue
            tag = meta.get(".tag")
            touched.add(key)
            if key == "":
                if tag == "deleted":  # the mirror root itself went away
                    touched.update(self.entries)
                    self.changed.update(self.entries)
                    self.entries.clear()
                    self.children.clear()
                continue
            if tag == "deleted":
                touched.update(self.iter_subtree(key))
                self._remove_subtree(key)
                continue
            existing = self.entries.get(key)
            name = _name_from(meta, key)
            if tag == "folder":
                if existing is not None and not existing.is_dir:
                    self._remove_subtree(key)
                self._ensure_parents(key, meta)
                self._put(RemoteEntry(key, name, True, id=meta.get("id")))
            elif tag == "file":
                if existing is not None:
                    touched.update(self.iter_subtree(key))
                    self._remove_subtree(key)
                self._ensure_parents(key, meta)
                self._put(
                    RemoteEntry(
                        key,
                        name,
                        False,
                        id=meta.get("id"),
                        rev=meta.get("rev"),
                        content_hash=meta.get("content_hash"),
                        size=int(meta.get("size") or 0),
                        downloadable=bool(meta.get("is_downloadable", True)),
                        modified=meta.get("client_modified"),
                    )
                )
        return touched

    # -- reading ------------------------------------------------------------------------------------
    def iter_subtree(self, key: str) -> Iterator[str]:
        stack = [key]
        while stack:
            k = stack.pop()
            if k in self.entries:
                yield k
            stack.extend(self.children.get(k, ()))

    def child_entries(self, key: str) -> list[RemoteEntry]:
        return [self.entries[k] for k in self.children.get(key, ()) if k in self.entries]

    def file_count(self) -> int:
        return sum(1 for e in self.entries.values() if not e.is_dir)

    # -- persistence --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, list[Any]]:
        return {k: e.to_json() for k, e in self.entries.items()}

    @classmethod
    def from_json(cls, raw: Mapping[str, list[Any]]) -> RemoteTree:
        tree = cls()
        for key, value in raw.items():
            tree._put(RemoteEntry.from_json(key, value))
        return tree
