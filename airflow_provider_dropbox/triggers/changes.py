"""Turning ``list_folder/continue`` entries into the change records the sensor and triggers return.

Shared by the change sensor (poke/reschedule), its deferrable trigger and the AssetWatcher trigger so all
three report exactly the same thing (peers differ between modes; users file bugs about it).

A change record is a small JSON dict: ``path`` (display case), ``path_lower``, ``kind``
(``added`` / ``modified`` / ``deleted``), ``type`` (``file`` / ``folder`` / ``deleted``), ``id``, ``rev``,
``size``, ``content_hash`` and ``server_modified`` (``None`` where Dropbox gives none).

``list_folder/continue`` does not say whether a file is new or changed. When the caller asks for the
distinction (``kinds`` holds one of added/modified but not both), a file whose revision history holds a
single revision is ``added``, otherwise ``modified`` (one ``files/list_revisions`` call per changed file,
at most ``MAX_KIND_LOOKUPS`` per batch), and ``kind_exact`` is True. Otherwise, or when the server cannot
answer, a file is reported as ``modified`` ("this path now has this content") with ``kind_exact`` False,
and it passes an added-only filter too: a watcher must not miss a new file because the kind is unknown.
"""

from __future__ import annotations

import fnmatch
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

ChangeKind = Literal["added", "modified", "deleted"]
ALL_KINDS: tuple[ChangeKind, ...] = ("added", "modified", "deleted")
MAX_KIND_LOOKUPS = 200
# What the sensor does when Dropbox invalidates its cursor (409 ``reset``); see ``DropboxChangeSensor``.
CursorResetPolicy = Literal["relist", "restart", "fail"]
CURSOR_RESET_POLICIES: tuple[str, ...] = ("relist", "restart", "fail")

log = logging.getLogger(__name__)


def normalize_kinds(kinds: Iterable[str] | str | None) -> tuple[ChangeKind, ...]:
    """Validate ``kinds`` early (at DAG parse time) with a message naming the bad value."""
    if kinds is None:
        return ALL_KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    out: list[ChangeKind] = []
    for kind in kinds:
        if kind not in ALL_KINDS:
            raise ValueError(f"Unknown change kind {kind!r}; use any of {', '.join(ALL_KINDS)}")
        if kind not in out:
            out.append(kind)
    if not out:
        raise ValueError("kinds must name at least one of added, modified, deleted")
    return tuple(out)


def _lower(path: str) -> str:
    return unicodedata.normalize("NFC", path).lower()


def relative_path(path_lower: str, root: str) -> str:
    """``path_lower`` relative to the watched folder (``root`` ``""`` or ``"/"`` is the whole Dropbox)."""
    root_l = _lower(root).rstrip("/")
    if root_l and path_lower.startswith(root_l + "/"):
        return path_lower[len(root_l) + 1 :]
    return path_lower.lstrip("/")


def matches_glob(path_lower: str, root: str, pattern: str | None) -> bool:
    """Case-insensitive fnmatch on the path relative to ``root`` or on the name (``*`` crosses ``/``)."""
    if not pattern:
        return True
    pat = _lower(pattern).lstrip("/")
    rel = relative_path(path_lower, root)
    name = rel.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(name, pat)


def to_change(entry: dict[str, Any], kind: ChangeKind | None = None) -> dict[str, Any]:
    tag = entry.get(".tag", "file")
    path_lower = entry.get("path_lower") or _lower(entry.get("path_display") or entry.get("name", ""))
    exact = kind is not None or tag != "file"
    if kind is None:
        kind = "deleted" if tag == "deleted" else ("added" if tag == "folder" else "modified")
    return {
        "path": entry.get("path_display") or path_lower,
        "path_lower": path_lower,
        "kind": kind,
        "kind_exact": exact,
        "type": tag,
        "id": entry.get("id"),
        "rev": entry.get("rev"),
        "size": entry.get("size"),
        "content_hash": entry.get("content_hash"),
        "server_modified": entry.get("server_modified"),
    }


def _needs_kind_lookup(kinds: Sequence[str]) -> bool:
    return ("added" in kinds) != ("modified" in kinds)


def select_changes(
    entries: Iterable[dict[str, Any]],
    *,
    root: str,
    file_pattern: str | None = None,
    kinds: Sequence[str] = ALL_KINDS,
    include_folders: bool = False,
    revision_count: Callable[[str], int | None] | None = None,
    exact_kinds: bool | None = None,
) -> list[dict[str, Any]]:
    """Filter raw entries to the changes the user asked for, last event per path winning.

    ``revision_count(path_lower)`` returns how many revisions a file has (``None`` = unknown); it is
    consulted when ``exact_kinds`` (default: only when ``kinds`` separates added from modified).
    """
    latest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        tag = entry.get(".tag", "file")
        if tag == "folder" and not include_folders:
            continue
        path_lower = entry.get("path_lower") or _lower(entry.get("path_display") or "")
        if not matches_glob(path_lower, root, file_pattern):
            continue
        # Dropbox can report several events per path in one batch; the last one is the state now.
        latest.pop(path_lower, None)
        latest[path_lower] = entry

    if exact_kinds is None:
        exact_kinds = _needs_kind_lookup(kinds)
    lookups = 0
    out: list[dict[str, Any]] = []
    for path_lower, entry in latest.items():
        kind: ChangeKind | None = None
        if entry.get(".tag", "file") == "file" and exact_kinds and revision_count is not None:
            if lookups < MAX_KIND_LOOKUPS:
                lookups += 1
                count = revision_count(path_lower)
                if count is not None:
                    kind = "added" if count <= 1 else "modified"
            elif lookups == MAX_KIND_LOOKUPS:
                lookups += 1
                log.warning(
                    "More than %d changed files in one batch: the rest are reported as 'modified'",
                    MAX_KIND_LOOKUPS,
                )
        change = to_change(entry, kind)
        if change["kind"] in kinds:
            out.append(change)
        elif not change["kind_exact"] and "added" in kinds:
            out.append({**change, "kind": "added"})
    return out


def make_revision_counter(rpc: Callable[[str, Any], Any]) -> Callable[[str], int | None]:
    """``revision_count`` backed by ``files/list_revisions``; answers ``None`` if the server cannot tell."""
    state = {"supported": True}

    def count(path_lower: str) -> int | None:
        if not state["supported"]:
            return None
        try:
            result = rpc("files/list_revisions", {"path": path_lower, "mode": "path", "limit": 2})
        except Exception as exc:  # unsupported route, file gone again, ...: fall back, never fail the batch
            status = getattr(exc, "status", None)
            if status in (400, 404):
                state["supported"] = False
                log.warning("files/list_revisions unavailable (%s): reporting files as 'modified'", exc)
            return None
        entries = (result or {}).get("entries") or []
        return len(entries)

    return count


def reset_message(path: str, policy: str) -> str:
    what = {
        "relist": "listing the whole folder again and reporting every entry as 'added' (nothing is lost)",
        "restart": "starting again from the latest cursor (changes made meanwhile are skipped)",
        "fail": "failing as configured (on_cursor_reset='fail'); rerun with cursor=None to start afresh",
    }[policy]
    return (
        f"Dropbox reset the change cursor for {path or '/'} (it expired or the folder was rebuilt); {what}."
    )
