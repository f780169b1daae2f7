"""Map the remote tree to local paths: names, collisions, excludes, and entries we cannot mirror.

Collision policy (deterministic and stable): within one local folder, names whose collision key matches
(case-insensitive, Unicode-normalisation-insensitive) form a group. The name that sorts first (by NFC
form, then names already in NFC, then raw code points) keeps its name; every other one becomes
``"<stem> (case conflict <8 hex>)<ext>"`` where the hex comes from its own remote key, so its local name
does not change when other entries come and go.
The mirror's state folder ``.dropbox-mirror`` is a reserved name at the top level and always wins.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dropbox.client.folders import exclude_matcher
from airflow_provider_dropbox.sync.paths import (
    STATE_DIR_NAME,
    collision_key,
    collision_name,
    invalid_name_reason,
    join,
)
from airflow_provider_dropbox.sync.remote import RemoteEntry, RemoteTree


@dataclass(frozen=True, slots=True)
class Desired:
    """One local path the mirror should hold."""

    path: str
    entry: RemoteEntry

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir


@dataclass
class Layout:
    paths: dict[str, Desired] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    collisions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def file_count(self) -> int:
        return sum(1 for d in self.paths.values() if not d.is_dir)


def make_exclude(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Glob excludes matched against the relative path, its folders and each name (``*.tmp``, ``cache/*``),
    ignoring case as Dropbox compares names: the same rule as folder uploads' ``exclude``."""
    return exclude_matcher(patterns)


def _sort_key(entry: RemoteEntry) -> tuple[str, bool, str, str]:
    nfc = unicodedata.normalize("NFC", entry.name)
    return (nfc, entry.name != nfc, entry.name, entry.key)


def build_layout(
    tree: RemoteTree,
    excluded: Callable[[str], bool] | None = None,
    max_path_bytes: int | None = None,
    roots: Sequence[tuple[str, str]] = (("", ""),),
    complete: Container[str] | None = None,
) -> Layout:
    """``max_path_bytes``: longest relative path the destination can hold (PATH_MAX minus its own path).

    ``roots`` (remote key, local path) are the folders the walk starts from: the mirror root, or for an
    incremental slice the folders whose children it loaded, each at the local path it already has; the walk
    then descends only into ``complete`` folders (those whose children are all in ``tree``)."""
    layout = Layout()
    stack: list[tuple[str, str]] = list(reversed(roots))  # (remote key, local path) of folders to expand
    seen: set[str] = set()
    while stack:
        key, local = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        children = sorted(tree.child_entries(key), key=_sort_key)
        taken: dict[str, str] = {}  # collision key -> local name in this folder
        if local == "":
            taken[collision_key(STATE_DIR_NAME)] = STATE_DIR_NAME
        groups: dict[str, list[tuple[str, str]]] = {}
        for entry in children:
            reason = invalid_name_reason(entry.name)
            if reason:
                layout.skipped.append({"remote": entry.key, "reason": reason})
                continue
            if not entry.is_dir and not entry.downloadable:
                layout.skipped.append({"remote": entry.key, "reason": "not downloadable (e.g. a Paper doc)"})
                continue
            name = entry.name
            ckey = collision_key(name)
            if ckey in taken:
                attempt = 0
                name = collision_name(entry.name, entry.key)
                while collision_key(name) in taken or any(
                    collision_key(name) == collision_key(e.name) for e in children
                ):
                    attempt += 1
                    name = collision_name(entry.name, entry.key, attempt)
                groups.setdefault(ckey, [(taken[ckey], taken[ckey])]).append((entry.name, name))
            taken[collision_key(name)] = name
            path = join(local, name)
            if excluded is not None and excluded(path):
                layout.skipped.append({"remote": entry.key, "reason": "excluded"})
                continue
            if max_path_bytes is not None and len(os.fsencode(path)) > max_path_bytes:
                layout.skipped.append({"remote": entry.key, "reason": "path too long locally"})
                continue
            layout.paths[path] = Desired(path, entry)
            layout.by_key[entry.key] = path
            if entry.is_dir and (complete is None or entry.key in complete):
                stack.append((entry.key, path))
        for _ckey, members in sorted(groups.items()):
            layout.collisions.append(
                {
                    "folder": local or "/",
                    "kept": members[0][0],
                    "renamed": {remote: local_name for remote, local_name in members[1:]},
                }
            )
    return layout
