"""An incremental run's slice of the index: only the rows the changes touch and what their layout needs.

Which remote rows a change at key ``a/b/c`` needs, and why:

- the children of its folder ``a/b``: a local name depends on the names next to it (case and
  Unicode-normalisation collisions). The folder's own local path comes from the manifest when no change
  can rename it; otherwise the same applies one level up, to the root if need be;
- the rows of its folders ``a`` and ``a/b`` (so a change below them never synthesises a stored folder);
- the whole stored subtree of a touched key that is a folder (a deleted, replaced or renamed folder changes
  every path below it), and of the folders in its collision group (their local names may change).

Manifest rows: those of the touched keys (where they were written), the manifest subtree of each such
folder, and the rows at every local path of the partial layout. A manifest row is only judged (kept,
moved or deleted) when the slice can decide where its key belongs now; any other row is left out of the
run, so an incomplete slice can skip work but never delete a file.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dropbox.sync.index import MirrorIndex, TrackedManifest
from airflow_provider_dropbox.sync.layout import Layout
from airflow_provider_dropbox.sync.paths import collision_key, key_parent, remote_key
from airflow_provider_dropbox.sync.remote import RemoteTree, _name_from


def change_keys(changes: Iterable[Mapping[str, Any]], root_lower: str) -> dict[str, str]:
    """Key -> name of every entry the changes name inside the mirror root (``""`` for the root itself)."""
    out: dict[str, str] = {}
    for meta in changes:
        path_lower = meta.get("path_lower")
        if not isinstance(path_lower, str):
            continue
        key = remote_key(path_lower, root_lower)
        if key is not None:
            out[key] = _name_from(meta, key)
    return out


@dataclass
class RemoteSlice:
    """The loaded part of the stored remote tree, and which folders it holds completely."""

    tree: RemoteTree = field(default_factory=RemoteTree)
    expanded: set[str] = field(default_factory=set)  # folders whose children are all loaded
    subtree_roots: set[str] = field(default_factory=set)  # folders whose whole subtree is loaded
    files_before: int = 0  # downloadable files among the loaded rows, before the changes
    roots: dict[str, str] = field(default_factory=dict)  # where the layout starts: folder key -> local path

    def decidable(self, key: str) -> bool:
        """Whether the slice knows for sure if ``key`` exists now (and so where it belongs locally)."""
        k = key
        while k:
            parent = key_parent(k)
            if parent in self.expanded:
                if k == key:
                    return True
                e = self.tree.entries.get(k)  # an ancestor that is gone or a file: the key cannot exist
                return e is None or not e.is_dir
            k = parent
        return False

    def file_count(self) -> int:
        return sum(1 for e in self.tree.entries.values() if not e.is_dir and e.downloadable)


def load_remote_slice(
    index: MirrorIndex,
    names: Mapping[str, str],
    *,
    whole_tree: bool = False,
    shallow: Container[str] = (),
) -> RemoteSlice:
    """Load what the changes in ``names`` (key -> new name) need from the index (see the module doc);
    ``whole_tree`` when the mirror root itself was deleted. ``shallow``: folders listed again as they are
    stored (a full listing names every folder): their subtrees did not change, so they are not loaded."""
    s = RemoteSlice()
    tree = s.tree
    by_parent: dict[str, list[tuple[str, str]]] = {}
    for key, name in names.items():
        if key:
            by_parent.setdefault(key_parent(key), []).append((key, name))

    def put(rows: Mapping[str, Any]) -> None:
        for e in rows.values():
            if e.key not in tree.entries:
                tree._put(e)

    def expand(folder: str) -> None:
        if folder not in s.expanded:
            s.expanded.add(folder)
            put(index.remote_children(folder))

    def load_subtree(folder: str) -> None:
        if folder in s.subtree_roots:
            return
        s.subtree_roots.add(folder)
        s.expanded.add(folder)
        for e in index.remote_subtree(folder).values():
            if e.key not in tree.entries:
                tree._put(e)
            if e.is_dir:
                s.expanded.add(e.key)
                s.subtree_roots.add(e.key)

    def affected(folder: str) -> bool:
        """Whether a change may rename ``folder`` locally (it, or a name in its collision group, changed)."""
        group = collision_key(folder.rpartition("/")[2])
        return any(
            k == folder or group in (collision_key(n), collision_key(k.rpartition("/")[2]))
            for k, n in by_parent.get(key_parent(folder), ())
        )

    def anchor(folder: str) -> None:
        """Load ``folder``'s children and make its local path known: from the manifest when no change can
        rename it, else from its parent's layout (anchored the same way, up to the root)."""
        if folder in s.expanded:
            return
        expand(folder)
        if folder == "":
            s.roots[""] = ""
            return
        if not affected(folder):
            dirs = [p for p, m in index.manifest_by_key(folder).items() if m.is_dir]
            if len(dirs) == 1:
                s.roots[folder] = dirs[0]
                return
        anchor(key_parent(folder))

    if whole_tree:
        load_subtree("")
        s.roots[""] = ""
    for parent, members in by_parent.items():  # one pass over each folder's children, however many changed
        parts = parent.split("/") if parent else []
        put(index.remote_rows("/".join(parts[:depth]) for depth in range(1, len(parts) + 1)))  # its folders
        anchor(parent)
        changed = [(k, n) for k, n in members if k not in shallow]
        keys = {k for k, _ in changed}
        groups = {collision_key(n) for _, n in changed}
        groups.update(collision_key(e.name) for e in (tree.entries.get(k) for k in keys) if e is not None)
        for sibling in tree.child_entries(parent):
            if sibling.is_dir and (sibling.key in keys or collision_key(sibling.name) in groups):
                load_subtree(sibling.key)
    tree.changed = set()
    s.files_before = s.file_count()
    return s


def collision_siblings(s: RemoteSlice, names: Mapping[str, str]) -> set[str]:
    """Keys sharing a collision group with a changed key in its folder (their local names may change)."""
    groups: dict[str, set[str]] = {}
    for key, name in names.items():
        if key:
            groups.setdefault(key_parent(key), set()).add(collision_key(name))
    return {
        sibling.key
        for parent, in_parent in groups.items()
        for sibling in s.tree.child_entries(parent)
        if collision_key(sibling.name) in in_parent
    }


def load_manifest_slice(
    index: MirrorIndex, s: RemoteSlice, keys: Iterable[str], layout: Layout, extra_paths: Iterable[str]
) -> tuple[TrackedManifest, int]:
    """The manifest rows the run may judge: of ``keys`` (and the subtrees of those that are folders), at
    the partial layout's paths, and at ``extra_paths`` (a crashed run's intents). Rows whose key the slice
    cannot place are left out; the second value counts them."""
    rows: dict[str, Any] = {}
    for key in keys:
        for p, m in index.manifest_by_key(key).items():
            rows[p] = m
            if m.is_dir:
                rows.update(index.manifest_subtree(p))
    rows.update(index.manifest_rows(layout.paths))
    rows.update(index.manifest_rows(extra_paths))
    manifest = TrackedManifest()
    left_out = 0
    for p, m in rows.items():
        if p in layout.paths or s.decidable(m.key):
            dict.__setitem__(manifest, p, m)
        else:
            left_out += 1
    return manifest, left_out
