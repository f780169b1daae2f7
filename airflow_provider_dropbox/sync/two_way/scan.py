"""The local side of a two-way sync: one ``scandir`` walk, stat only (hashing is the engine's, and only for
paths whose stat differs from the index)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client.paths import DISALLOWED_NAMES
from airflow_provider_dropbox.sync.two_way.index import STATE_DIR_NAME

RESERVED = {STATE_DIR_NAME, ".dropbox-mirror"}
COLLIDING = (
    "another local name differs only in case or Unicode normalisation; Dropbox would store them as one"
)


@dataclass(frozen=True, slots=True)
class LocalItem:
    path: str  # relative, "/"-separated
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    ctime_ns: int = 0


@dataclass
class LocalScan:
    items: dict[str, LocalItem] = field(default_factory=dict)  # key -> item
    skipped: list[dict[str, str]] = field(default_factory=list)  # reported, left alone
    colliding: set[str] = field(default_factory=set)  # keys two local names fold to (case/NFC)


def scan_local(root: str, excluded: Callable[[str], bool], only: Iterable[str] | None = None) -> LocalScan:
    """Walk ``root`` (stat only). ``only``: keys of the subtrees to look at instead (a focused run); each is
    found the way the whole walk would reach it, so both see the same items, skips and collisions there."""
    out = LocalScan()
    stack = [("", "")] if only is None else _find(root, excluded, only, out)
    while stack:
        rel_dir, key_dir = stack.pop()
        try:
            entries = _list(root, rel_dir)
        except OSError as exc:
            out.skipped.append({"path": rel_dir or "/", "reason": f"cannot list: {exc.strerror or exc}"})
            continue
        for entry in entries:
            item = _admit(out, entry, rel_dir, key_dir, excluded)
            if item is not None and item.is_dir:
                stack.append((item.path, _key(key_dir, entry.name)))
    # the subtree of a colliding folder is left alone too
    for key in list(out.items):
        parts = key.split("/")
        if any("/".join(parts[:i]) in out.colliding for i in range(1, len(parts))):
            del out.items[key]
    return out


def _list(root: str, rel_dir: str) -> list[os.DirEntry[str]]:
    return list(os.scandir(os.path.join(root, *rel_dir.split("/")) if rel_dir else root))


def _key(key_dir: str, name: str) -> str:
    return f"{key_dir}/{path_key(name)}" if key_dir else path_key(name)


def _admit(
    out: LocalScan, entry: os.DirEntry[str], rel_dir: str, key_dir: str, excluded: Callable[[str], bool]
) -> LocalItem | None:
    """The walk's rules for one directory entry: the item it records, or None (left out, or reported)."""
    name = entry.name
    rel = f"{rel_dir}/{name}" if rel_dir else name
    if (not rel_dir and name in RESERVED) or excluded(rel):
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        out.skipped.append({"path": rel, "reason": "not a regular file or folder (symlink, device)"})
        return None
    if name.lower() in DISALLOWED_NAMES:
        out.skipped.append({"path": rel, "reason": "Dropbox does not store this name"})
        return None
    if name[-1] in " .":
        out.skipped.append({"path": rel, "reason": "trailing space or dot: Dropbox changes this name"})
        return None
    is_dir = stat.S_ISDIR(st.st_mode)
    key = _key(key_dir, name)
    if key in out.items or key in out.colliding:
        other = out.items.pop(key, None)
        out.colliding.add(key)
        for p in (rel, other.path if other else None):
            if p:
                out.skipped.append({"path": p, "reason": COLLIDING})
        return None
    item = LocalItem(rel, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    out.items[key] = item
    return item


def _find(
    root: str, excluded: Callable[[str], bool], keys: Iterable[str], out: LocalScan
) -> list[tuple[str, str]]:
    """Reach each key's item from ``root`` one folder at a time, by folded name, with the walk's rules:
    records the items found and returns the folders among them (their subtrees are walked next). A key
    whose folder the walk would not enter is absent; one below a colliding name is left alone."""
    listings: dict[str, dict[str, list[os.DirEntry[str]]]] = {}  # folder -> folded name -> entries
    folders: dict[str, str | None] = {"": ""}  # key -> local path of a folder the walk enters, else None

    def matches(rel_dir: str, part: str) -> list[os.DirEntry[str]]:
        if rel_dir not in listings:
            by_key: dict[str, list[os.DirEntry[str]]] = {}
            try:
                for entry in _list(root, rel_dir):
                    by_key.setdefault(path_key(entry.name), []).append(entry)
            except OSError as exc:
                out.skipped.append({"path": rel_dir or "/", "reason": f"cannot list: {exc.strerror or exc}"})
            listings[rel_dir] = by_key
        return listings[rel_dir].get(part, [])

    found: list[tuple[str, str]] = []
    for key in outermost(keys):
        parent_key, _, part = key.rpartition("/")
        rel_dir = _enter(parent_key, folders, matches, excluded, out)
        if rel_dir is None:
            if parent_key in out.colliding or any(is_under(parent_key, c) for c in out.colliding):
                out.colliding.add(key)
            continue
        for entry in matches(rel_dir, part):
            _admit(out, entry, rel_dir, parent_key, excluded)
        item = out.items.get(key)
        if item is not None and item.is_dir:
            found.append((item.path, key))
    return found


def _enter(
    key: str,
    folders: dict[str, str | None],
    matches: Callable[[str, str], list[os.DirEntry[str]]],
    excluded: Callable[[str], bool],
    out: LocalScan,
) -> str | None:
    """Local path of the folder ``key`` if the walk would enter it (a lone folder, all the way down)."""
    if key in folders:
        return folders[key]
    parent_key, _, part = key.rpartition("/")
    rel_dir = _enter(parent_key, folders, matches, excluded, out)
    path = None
    if rel_dir is not None:
        probe = LocalScan()
        for entry in matches(rel_dir, part):
            _admit(probe, entry, rel_dir, parent_key, excluded)
        out.skipped.extend(probe.skipped)
        if probe.colliding:
            out.colliding.add(key)  # the walk leaves a colliding folder's subtree alone
        item = probe.items.get(key)
        if item is not None and item.is_dir:
            path = item.path
    folders[key] = path
    return path


def is_under(key: str, ancestor: str) -> bool:
    return key.startswith(ancestor + "/")


def outermost(keys: Iterable[str]) -> list[str]:
    """The keys not below another one of them, sorted."""
    every = set(keys)
    return sorted(
        k for k in every if not any("/".join(k.split("/")[:i]) in every for i in range(1, k.count("/") + 1))
    )
