"""The local side of a two-way sync: one ``scandir`` walk, stat only (hashing is the engine's, and only for
paths whose stat differs from the index)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
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


def scan_local(root: str, excluded: Callable[[str], bool]) -> LocalScan:
    out = LocalScan()
    stack = [("", "")]  # (relative folder, its key): a child's key is its folder's key plus its folded name
    while stack:
        rel_dir, key_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, *rel_dir.split("/")) if rel_dir else root))
        except OSError as exc:
            out.skipped.append({"path": rel_dir or "/", "reason": f"cannot list: {exc.strerror or exc}"})
            continue
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not rel_dir and name in RESERVED:
                continue
            if excluded(rel):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                out.skipped.append({"path": rel, "reason": "not a regular file or folder (symlink, device)"})
                continue
            if name.lower() in DISALLOWED_NAMES:
                out.skipped.append({"path": rel, "reason": "Dropbox does not store this name"})
                continue
            if name[-1] in " .":
                out.skipped.append(
                    {"path": rel, "reason": "trailing space or dot: Dropbox changes this name"}
                )
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            key = f"{key_dir}/{path_key(name)}" if key_dir else path_key(name)
            if key in out.items or key in out.colliding:
                other = out.items.pop(key, None)
                out.colliding.add(key)
                for p in (rel, other.path if other else None):
                    if p:
                        out.skipped.append({"path": p, "reason": COLLIDING})
                continue
            out.items[key] = LocalItem(
                rel, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
            )
            if is_dir:
                stack.append((rel, key))
    # the subtree of a colliding folder is left alone too
    for key in list(out.items):
        parts = key.split("/")
        if any("/".join(parts[:i]) in out.colliding for i in range(1, len(parts))):
            del out.items[key]
    return out
