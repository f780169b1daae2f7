"""Which planned downloads to fetch as one ``files/download_zip`` of their folder, and how to find them in it.

Each download is a round trip; a folder of many small files costs its files' count in round trips, which at
a 20 ms round trip bounds a mirror at about 300 files/s however wide the pool is. One zip of the folder is
one round trip. A zip carries no revision and no ``client_modified``, so only files listed in this run
(their ``client_modified`` is known) go into a group, and each member is kept only when its bytes hash to
the listed content hash; anything not matched is downloaded on its own. A zip holds the folder's whole
subtree, so it is dropped (and its files downloaded one by one) once it grows past what the group is worth:
the group's bytes plus ``SLACK_PER_FILE`` for each round trip it saves.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_dropbox.sync.paths import key_parent
from airflow_provider_dropbox.sync.plan import Action

MIN_FILES = 4  # fewer files than this are not worth a zip's extra work
MAX_FILE = 1 << 20  # above this a round trip is small next to the transfer itself
MAX_GROUP = 64 << 20  # a larger group goes one file at a time, in parallel and resumable
SLACK_PER_FILE = 64 << 10  # zip bytes accepted per saved round trip (about 20 ms at 25 Mbit/s)


@dataclass(frozen=True)
class ZipGroup:
    folder: str  # the remote key of the folder to zip ("" for the mirror root)
    actions: tuple[Action, ...]

    @property
    def max_bytes(self) -> int:
        return sum(a.size for a in self.actions) + len(self.actions) * SLACK_PER_FILE


def _zippable(a: Action) -> bool:
    return (
        a.op == "download"
        and bool(a.key)
        and a.modified is not None
        and a.content_hash is not None
        and a.size <= MAX_FILE
    )


def zip_groups(actions: Sequence[Action]) -> tuple[list[ZipGroup], list[Action]]:
    """Split transfers into folder groups worth a zip and the rest (in their planned order)."""
    by_folder: dict[str, list[Action]] = {}
    for a in actions:
        if _zippable(a):
            by_folder.setdefault(key_parent(a.key or ""), []).append(a)
    groups = [
        ZipGroup(folder, tuple(acts))
        for folder, acts in by_folder.items()
        if len(acts) >= MIN_FILES and sum(a.size for a in acts) <= MAX_GROUP
    ]
    grouped = {id(a) for g in groups for a in g.actions}
    return groups, [a for a in actions if id(a) not in grouped]


def direct_members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's files directly inside its top folder, by lower-cased name (the key's last part).

    Dropbox names members ``<folder name>/<path below it>``. Two members folding to one name are both
    left out (the files are then downloaded on their own)."""
    found: dict[str, zipfile.ZipInfo] = {}
    twice: set[str] = set()
    for info in zf.infolist():
        parts = info.filename.split("/")
        if info.is_dir() or len(parts) != 2 or not parts[1]:
            continue
        name = parts[1].lower()
        if name in found:
            twice.add(name)
        found[name] = info
    for name in twice:
        del found[name]
    return found
