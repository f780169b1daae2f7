"""Turning ``list_folder/continue`` entries into the change records the sensor and triggers return.

Shared by the change sensor (poke/reschedule), its deferrable trigger and the AssetWatcher trigger so all
three report exactly the same thing (peers differ between modes; users file bugs about it).

A change record is a small JSON dict: ``path`` (display case), ``path_lower``, ``kind`` (``added`` /
``modified`` / ``deleted`` / ``changed``), ``kind_exact``, ``type`` (``file`` / ``folder`` /
``deleted``), ``id``, ``rev``, ``size``, ``content_hash`` and ``server_modified`` (``None`` where Dropbox
gives none).

A kind is only ever a statement that was established: ``added``, ``modified`` and ``deleted`` are exact
(``kind_exact`` True). When it was not established whether a path is new or edited, the kind is ``changed``
("this path now holds this content; new or edited is unknown") and ``kind_exact`` is False.

Added or modified is decided relative to the CURSOR the changes were read from, not by counting revisions
(a file created and then edited twice since the cursor has three revisions and is still new to the watcher):

* a file is ``added`` when no file with its id was at that path when the cursor was taken: new, moved or
  copied in, or deleted and re-created (a ``deleted`` entry for the path earlier in the same batch is
  enough; Dropbox gives a re-created file a new id); ``modified`` when the same file (same id) was there.
* a path that changed in the batch which produced the cursor is known exactly: that batch's last entry for
  it is the state at the cursor (``cursor_paths``: path -> file id, None for no file; carried next to the
  cursor when the batch had at most ``MAX_CURSOR_PATHS`` paths). No lookup is needed for it.
* otherwise "when the cursor was taken" is the server's clock: the HTTP ``Date`` of the response that
  returned the cursor (``cursor_time``, kept next to the cursor), compared with the ``server_modified`` of
  the path's revisions from ``files/list_revisions`` (path mode, newest first, ``REVISION_LOOKUP_LIMIT`` per
  file, at most ``MAX_KIND_LOOKUPS`` files per batch). The newest revision older than ``cursor_time`` decides:
  same id -> ``modified``, another id -> ``added``; none at all -> ``added``.
* Dropbox times are whole seconds: a revision in the same second as ``cursor_time`` may be on either side
  of it, so each possible reading is tried and the kind is exact only when they all agree (a file edited
  twice in that second is still ``modified``; a file created in it is not exact).
* A batch with no entries at all keeps the earlier ``cursor_time`` and ``cursor_paths`` for the new cursor:
  nothing in scope changed in between, so they describe the same state (and leave fewer same-second ties).
* Nor is it exact when ``cursor_time`` is unknown (a cursor given by hand, or saved by an older version),
  when the server cannot answer ``list_revisions`` (one failure per path; a 400/404 stops the lookups for
  the batch), when a file has more revisions since the cursor than one lookup returns, or past
  ``MAX_KIND_LOOKUPS``.

Kinds are looked up only when the caller's ``kinds`` separates added from modified (one of them without
the other); watching both costs no lookup and reports files as ``changed``. A ``changed`` entry passes any
filter naming ``added`` or ``modified``: a watcher must not miss a new file because the kind is unknown, and
it keeps its ``changed`` label (never relabelled). Folders reported by ``list_folder/continue`` are ``added``
and deletions ``deleted``, exactly; a relist after a cursor reset reports every entry as ``changed``
(``exact_kinds=False``: nothing says what was there before).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from airflow_provider_dropbox.casefold import path_key

UTC = timezone.utc  # datetime.UTC is Python 3.11+; the package supports 3.10

ChangeKind = Literal["added", "modified", "deleted", "changed"]
ALL_KINDS: tuple[ChangeKind, ...] = ("added", "modified", "deleted")
"""The kinds a watcher can filter on; ``changed`` (undetermined) is reported, never asked for."""
UNDETERMINED: ChangeKind = "changed"
"""The kind of a change whose added/modified status was not established (``kind_exact`` False)."""
MAX_KIND_LOOKUPS = 200
# Revisions asked for per file: enough for a file edited this often between two looks at Dropbox.
REVISION_LOOKUP_LIMIT = 20
# Paths of the batch that produced a cursor kept next to it (XCom, trigger kwargs, asset state): small.
MAX_CURSOR_PATHS = 100
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
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
        if kind == UNDETERMINED:
            raise ValueError(
                f"kinds cannot name {UNDETERMINED!r}: it is reported for files whose kind was not "
                "established, and such changes already pass any filter naming 'added' or 'modified'"
            )
        if kind not in ALL_KINDS:
            raise ValueError(f"Unknown change kind {kind!r}; use any of {', '.join(ALL_KINDS)}")
        if kind not in out:
            out.append(kind)
    if not out:
        raise ValueError("kinds must name at least one of added, modified, deleted")
    return tuple(out)


def _lower(path: str) -> str:
    return path_key(path)


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
    """The change record of ``entry``; ``kind`` None means not established: ``changed`` for a file."""
    tag = entry.get(".tag", "file")
    path_lower = entry.get("path_lower") or _lower(entry.get("path_display") or entry.get("name", ""))
    if kind is None:
        kind = "deleted" if tag == "deleted" else ("added" if tag == "folder" else UNDETERMINED)
    exact = kind != UNDETERMINED
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


def server_time(http_date: str | None) -> str | None:
    """An HTTP ``Date`` header as a Dropbox timestamp (``2026-01-02T03:04:05Z``); None if absent or bad."""
    if not http_date:
        return None
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _parse_ts(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), TIMESTAMP_FORMAT)
    except ValueError:
        return None


def kind_since(
    entry: Mapping[str, Any], revisions: Mapping[str, Any] | None, cursor_time: str | None
) -> ChangeKind | None:
    """``added`` / ``modified`` for a changed file relative to a cursor taken at ``cursor_time`` (server
    clock), from its ``list_revisions`` result (path mode, newest first); None when that cannot be told.

    Revisions in the cursor's own second may be on either side of it: each such revision, or the first
    older one, could be the one the path held at the cursor. The kind is exact only if all agree.
    """
    taken = _parse_ts(cursor_time) if cursor_time else None
    if revisions is None or taken is None:
        return None
    outcomes: set[ChangeKind] = set()
    for revision in revisions.get("entries") or []:
        when = _parse_ts(revision.get("server_modified"))
        if when is None:
            return None
        if when > taken:
            continue
        outcomes.add("modified" if revision.get("id") == entry.get("id") else "added")
        if when < taken:
            break
    else:
        if revisions.get("has_more"):
            return None  # more revisions since the cursor than one lookup returns
        outcomes.add("added")  # (possibly) nothing at this path when the cursor was taken
    return outcomes.pop() if len(outcomes) == 1 else None


def _under_deleted(path_lower: str, deleted: set[str]) -> bool:
    """The path or a folder above it was deleted earlier in the batch (a folder delete lists no children)."""
    while path_lower:
        if path_lower in deleted:
            return True
        path_lower = path_lower.rsplit("/", 1)[0]
    return False


def _latest(
    entries: Iterable[dict[str, Any]], root: str, file_pattern: str | None, include_folders: bool
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Last event per path (Dropbox can report several in one batch), and the paths deleted (themselves or
    with a folder above them) then re-created in the batch."""
    latest: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    recreated: set[str] = set()
    for entry in entries:
        tag = entry.get(".tag", "file")
        path_lower = entry.get("path_lower") or _lower(entry.get("path_display") or "")
        if tag == "deleted":
            deleted.add(path_lower)
        elif deleted and _under_deleted(path_lower, deleted):
            recreated.add(path_lower)
        if tag == "folder" and not include_folders:
            continue
        if not matches_glob(path_lower, root, file_pattern):
            continue
        latest.pop(path_lower, None)
        latest[path_lower] = entry
    return latest, recreated


def state_at_cursor(entries: Iterable[dict[str, Any]]) -> dict[str, str | None] | None:
    """What each path of a batch held when the batch's new cursor was taken: the file id, or None (deleted,
    or a folder). None when the batch is too big to carry next to the cursor."""
    state: dict[str, str | None] = {}
    for entry in entries:
        path_lower = entry.get("path_lower") or _lower(entry.get("path_display") or "")
        state[path_lower] = entry.get("id") if entry.get(".tag", "file") == "file" else None
        if len(state) > MAX_CURSOR_PATHS:
            return None
    return state


def kind_lookups(
    entries: Iterable[dict[str, Any]],
    *,
    root: str,
    file_pattern: str | None = None,
    kinds: Sequence[str] = ALL_KINDS,
    include_folders: bool = False,
    cursor_paths: Mapping[str, str | None] | None = None,
) -> list[str]:
    """The ``path_lower`` of files whose kind needs a ``list_revisions`` call (at most ``MAX_KIND_LOOKUPS``).

    Callers fetch those (the sensor directly, the triggers without blocking the event loop) and hand the
    results to ``select_changes(revisions=...)``.
    """
    if not _needs_kind_lookup(kinds):
        return []
    latest, recreated = _latest(entries, root, file_pattern, include_folders)
    known = cursor_paths or {}
    paths = [
        p
        for p, e in latest.items()
        if e.get(".tag", "file") == "file" and p not in recreated and p not in known
    ]
    if len(paths) > MAX_KIND_LOOKUPS:
        log.warning(
            "More than %d changed files in one batch: the rest are reported as 'changed' (kind unknown)",
            MAX_KIND_LOOKUPS,
        )
    return paths[:MAX_KIND_LOOKUPS]


def select_changes(
    entries: Iterable[dict[str, Any]],
    *,
    root: str,
    file_pattern: str | None = None,
    kinds: Sequence[str] = ALL_KINDS,
    include_folders: bool = False,
    revisions: Mapping[str, Mapping[str, Any] | None] | None = None,
    cursor_time: str | None = None,
    cursor_paths: Mapping[str, str | None] | None = None,
    exact_kinds: bool | None = None,
    from_empty: bool = False,
) -> list[dict[str, Any]]:
    """Filter raw entries to the changes the user asked for, last event per path winning.

    ``revisions`` maps ``path_lower`` to its ``list_revisions`` result (None: the lookup failed) for the
    paths ``kind_lookups`` named; ``cursor_time`` is when the cursor these entries were read from was taken
    and ``cursor_paths`` what the batch that produced it said (``state_at_cursor``).
    ``exact_kinds=False`` reports every entry as ``changed`` without deciding (the relist after a reset).
    A ``changed`` entry passes when ``kinds`` names ``added`` or ``modified``. ``from_empty=True`` says the
    reference point is an empty folder (watching from the beginning): every entry is then exactly ``added``.
    """
    latest, recreated = _latest(entries, root, file_pattern, include_folders)
    decide = exact_kinds is not False
    lookup = _needs_kind_lookup(kinds) if exact_kinds is None else exact_kinds
    out: list[dict[str, Any]] = []
    for path_lower, entry in latest.items():
        kind: ChangeKind | None = None
        if from_empty:
            kind = "deleted" if entry.get(".tag") == "deleted" else "added"
        elif entry.get(".tag", "file") == "file" and decide:
            if path_lower in recreated:
                kind = "added"  # needs no lookup, so it is exact whatever ``kinds`` asks for
            elif cursor_paths is not None and path_lower in cursor_paths:
                kind = "modified" if cursor_paths[path_lower] == entry.get("id") else "added"
            elif lookup and revisions is not None and path_lower in revisions:
                kind = kind_since(entry, revisions[path_lower], cursor_time)
        elif not decide and entry.get(".tag", "file") == "folder":
            kind = UNDETERMINED  # a relisted folder may have been there all along
        change = to_change(entry, kind)
        if change["kind"] in kinds:
            out.append(change)
        elif change["kind"] == UNDETERMINED and ("added" in kinds or "modified" in kinds):
            out.append(change)
    return out


def revisions_arg(path_lower: str) -> dict[str, Any]:
    return {"path": path_lower, "mode": "path", "limit": REVISION_LOOKUP_LIMIT}


def lookup_gave_up(exc: BaseException, logger: Any = log) -> bool:
    """Log a failed ``list_revisions``; True when the server cannot do it at all (400/404: stop asking)."""
    status = getattr(exc, "status", None)
    if status in (400, 404):
        logger.warning("files/list_revisions unavailable (%s): reporting files as 'changed'", exc)
        return True
    logger.info("files/list_revisions failed (%s): that file's kind is not exact", exc)
    return False


def fetch_revisions(rpc: Callable[[str, Any], Any], paths: Sequence[str]) -> dict[str, Any]:
    """``list_revisions`` of each path via the sync client's ``rpc``; None for a path that failed."""
    out: dict[str, Any] = {}
    for path_lower in paths:
        try:
            out[path_lower] = rpc("files/list_revisions", revisions_arg(path_lower))
        except Exception as exc:  # never fail the batch over a kind: fall back to "not exact"
            out[path_lower] = None
            if lookup_gave_up(exc):
                break
    return out


def reset_message(path: str, policy: str) -> str:
    what = {
        "relist": "listing the whole folder again and reporting every entry as 'changed' (nothing is lost)",
        "restart": "starting again from the latest cursor (changes made meanwhile are skipped)",
        "fail": "failing as configured (on_cursor_reset='fail'); rerun with cursor=None to start afresh",
    }[policy]
    return (
        f"Dropbox reset the change cursor for {path or '/'} (it expired or the folder was rebuilt); {what}."
    )
