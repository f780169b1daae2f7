"""``sync_two_way()``: keep a local folder and a Dropbox folder equal, propagating changes both ways.

Flow: lock -> index -> remote changes (the cursor; a full listing on the first run or after a reset) ->
local changes (a stat walk; hash only what the index says changed) -> decide per path (decide.py) ->
guards -> (not for a dry run) apply (apply.py): remote moves, folders, transfers, then deletes only if
nothing failed -> cursor.

Every decision compares each side with the index row both sides last agreed on, so what the sync wrote
itself is no change on the next run (no echo). An edit always wins over a delete; an edit on both sides
keeps both versions (``conflict="keep_both"``) unless another policy is asked for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.client.folders import exclude_matcher
from airflow_provider_dropbox.sync.engine import MaxDeletes, parse_max_deletes
from airflow_provider_dropbox.sync.errors import MirrorConfigError, RemoteRootError, TooManyDeletesError
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.paths import check_local_dir, normalize_remote_root, remote_key
from airflow_provider_dropbox.sync.two_way import focus
from airflow_provider_dropbox.sync.two_way.apply import Run, apply_actions, finish_case_rename
from airflow_provider_dropbox.sync.two_way.decide import Action, RemoteItem, decide, remote_items
from airflow_provider_dropbox.sync.two_way.index import STATE_DIR_NAME, Synced, SyncIndex
from airflow_provider_dropbox.sync.two_way.model import (
    POLICIES,
    ConflictPolicy,
    EmptySideError,
    TwoWayClient,
    TwoWayFailedError,
    TwoWayReport,
)
from airflow_provider_dropbox.sync.two_way.scan import LocalScan, scan_local


def sync_two_way(
    client: TwoWayClient,
    remote_path: str,
    local_dir: str | os.PathLike[str],
    *,
    conflict: ConflictPolicy = "keep_both",
    dry_run: bool = False,
    max_deletes: int | str | None = None,
    allow_empty: bool = False,
    exclude: Sequence[str] = (),
    local_changes: Iterable[str] | None = None,
    lock_timeout: float = 0.0,
    raise_on_error: bool = True,
    logger: logging.Logger | None = None,
) -> TwoWayReport:
    """Two-way sync of Dropbox folder ``remote_path`` and ``local_dir``. See docs/two-way-sync.md.

    ``local_changes``: the local paths (relative) known to have changed since the last run, e.g. from a
    local-folder watcher's events; the run then looks only at them and at what changed on Dropbox instead
    of walking the whole folder (``None``, the default: walk it)."""
    log = logger or logging.getLogger(__name__)
    if conflict not in POLICIES:
        raise MirrorConfigError(f"conflict={conflict!r}: use one of {', '.join(POLICIES)}")
    remote = normalize_remote_root(remote_path)
    limit = parse_max_deletes(max_deletes)
    if isinstance(exclude, str):
        exclude = (exclude,)
    changed = None if local_changes is None else focus.check_local_changes(local_changes)
    local = check_local_dir(os.fspath(local_dir))
    state = os.path.join(local, STATE_DIR_NAME)
    if not dry_run:
        os.makedirs(state, exist_ok=True)
    root = os.path.realpath(local)
    report = TwoWayReport(remote_path=remote or "/", local_dir=local, dry_run=dry_run)
    t0 = time.monotonic()
    lock = None if dry_run else MirrorLock(state, timeout=lock_timeout, logger=log)
    if lock is not None:
        lock.acquire()
    try:
        if not os.path.isdir(state):  # a dry run before the first run
            report.first_run = True
            index = None
        else:
            index = SyncIndex.open(state)
        try:
            _sync(client, remote, root, index, report, log, conflict, dry_run, limit, max_deletes,
                  allow_empty, exclude_matcher(tuple(exclude)), lock, changed)  # fmt: skip
        finally:
            if index is not None:
                index.close()
    finally:
        if lock is not None:
            lock.release()
    report.duration_s = time.monotonic() - t0
    log.info("%s", report.summary())
    if report.errors and raise_on_error:
        raise TwoWayFailedError(report)
    return report


def _root_lower(client: TwoWayClient, remote: str, create: bool) -> str:
    if remote == "":
        return ""
    try:
        meta = client.get_metadata(remote)
    except client_errors.PathNotFoundError:
        if not create:
            raise RemoteRootError(
                f"The Dropbox folder {remote!r} is gone (or this app cannot see it any more); nothing was "
                "changed on either side. If it was moved, point remote_path at its new place; to start over, "
                f"remove the {STATE_DIR_NAME} folder in the local folder (the next run then only merges)"
            ) from None
        meta = client.create_folder(remote)
    if meta.get(".tag", "folder") != "folder":
        raise RemoteRootError(f"The Dropbox path {remote!r} is a file, not a folder; sync a folder")
    return str(meta.get("path_lower") or path_key(remote))


def _sync(
    client: TwoWayClient,
    remote: str,
    root: str,
    index: SyncIndex | None,
    report: TwoWayReport,
    log: logging.Logger,
    conflict: ConflictPolicy,
    dry_run: bool,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty: bool,
    excluded: Callable[[str], bool],
    lock: MirrorLock | None,
    local_changes: list[str] | None,
) -> None:
    meta = index.meta() if index is not None else {}
    if meta.get("remote_path") is not None and path_key(meta["remote_path"]) != path_key(remote):
        raise MirrorConfigError(
            f"{root} is synced with Dropbox folder {meta['remote_path'] or '/'!r}, not {remote or '/'!r}; "
            "use "
            f"another local folder, or remove its {STATE_DIR_NAME} folder to start over (first run: merge)"
        )
    cursor = meta.get("cursor")
    report.first_run = not cursor
    root_lower = meta.get("root_lower")
    if root_lower is None or not cursor:
        root_lower = _root_lower(client, remote, create=not dry_run)
    if index is not None and not dry_run:
        finish_case_rename(client, index, log)
    earlier = focus.pending(meta)
    looking_at = None if local_changes is None or earlier is None else [*local_changes, *earlier]
    # ---- remote side
    changes: list[dict[str, Any]] = []
    if cursor:
        try:
            changes, new_cursor = client.list_changes(cursor)
        except client_errors.CursorResetError:
            log.warning(
                "Dropbox reset the sync cursor for %r; comparing a full listing with the index", remote
            )
            cursor = None
            _root_lower(client, remote, create=False)  # a reset: the folder must still be there
    full = not cursor
    if full:
        changes, new_cursor = client.list_folder_snapshot(remote, recursive=True)
    remote_keys = _keys(changes, root_lower)
    if full or index is None or "" in remote_keys:
        looking_at = None
    # ---- what to look at: everything, or (a focused run) the subtrees of what changed
    synced, remote_now, scan = _view(
        changes, root_lower, root, index, excluded, full, looking_at, remote_keys
    )
    actions = decide(synced, remote_now, scan, root, excluded, conflict, first=report.first_run)
    if looking_at is not None and _needs_whole_view(actions, scan):
        log.info(
            "Two-way sync: deletes planned on Dropbox with no local file in view; walking the whole folder"
        )
        looking_at = None
        synced, remote_now, scan = _view(changes, root_lower, root, index, excluded, full, None, remote_keys)
        actions = decide(synced, remote_now, scan, root, excluded, conflict, first=report.first_run)
    report.focused = looking_at is not None
    report.skipped.extend(scan.skipped)
    report.planned = {}
    for a in actions:
        report.planned[a.op] = report.planned.get(a.op, 0) + 1
    report.plan = [a.to_dict() for a in actions]
    files = 0  # synced files, for the delete guards
    if any(a.op in ("delete_remote", "delete_local") for a in actions):
        if looking_at is not None and index is not None:
            files = index.file_count()
        else:
            files = sum(1 for r in synced.values() if not r.is_dir)
    _guard(actions, files, synced, scan, remote_now, full, limit, raw_limit, allow_empty)
    if dry_run or index is None:
        return
    if looking_at:
        focus.remember(index, looking_at)  # a run killed from here on: the next one looks at them again
    run = Run(client, remote, root, index, synced, report, log, conflict)
    run.clear_staging()  # partial downloads of a run that was killed
    if report.first_run:
        index.write(meta={"remote_path": remote, "root_lower": root_lower})
    apply_actions(run, actions, scan, remote_now, lock)
    held = any(a.op == "conflict_skip" for a in actions)  # left alone: the next run must see it again
    if not report.errors and not held:
        index.write(
            meta={"cursor": new_cursor, "remote_path": remote, "root_lower": root_lower, focus.PENDING: ""}
        )
        report.cursor_advanced = True
    elif looking_at is None:
        focus.remember(index, None)  # what a walk did not finish is found by a walk: the next run walks


def _keys(changes: list[dict[str, Any]], root_lower: str) -> set[str]:
    """Keys Dropbox reports changed (``""``: the synced folder itself)."""
    out: set[str] = set()
    for e in changes:
        pl = e.get("path_lower")
        key = remote_key(pl, root_lower) if isinstance(pl, str) else None
        if key is not None:
            out.add(key)
    return out


def _view(
    changes: list[dict[str, Any]],
    root_lower: str,
    root: str,
    index: SyncIndex | None,
    excluded: Callable[[str], bool],
    full: bool,
    looking_at: list[str] | None,
    remote_keys: set[str],
) -> tuple[dict[str, Synced], dict[str, RemoteItem | None], LocalScan]:
    """Index rows, Dropbox's side and the local side: of everything, or of the focused subtrees only."""
    if looking_at is not None and index is not None:
        keys = focus.scope(index, root, looking_at, remote_keys)
        synced = index.subtrees(keys)
        return synced, remote_items(changes, root_lower, known=synced), scan_local(root, excluded, only=keys)
    synced = index.entries() if index is not None else {}
    if not full:
        return synced, remote_items(changes, root_lower, known=synced), scan_local(root, excluded)
    remote_now = remote_items(changes, root_lower)
    for k in synced:
        remote_now.setdefault(k, None)
    return synced, remote_now, scan_local(root, excluded)


def _needs_whole_view(actions: list[Action], scan: LocalScan) -> bool:
    """Deletes on Dropbox with no local file in view: whether the local folder was emptied (an unmounted
    volume?) can only be told from the whole folder."""
    return any(a.op == "delete_remote" for a in actions) and not any(
        not i.is_dir for i in scan.items.values()
    )


def _guard(
    actions: list[Action],
    files: int,
    synced: Mapping[str, Synced],
    scan: LocalScan,
    remote_now: Mapping[str, RemoteItem | None],
    full: bool,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty: bool,
) -> None:
    remote_deletes = sum(1 for a in actions if a.op == "delete_remote" and not a.is_dir)
    local_deletes = sum(1 for a in actions if a.op == "delete_local" and not a.is_dir)
    if remote_deletes and files and not any(not i.is_dir for i in scan.items.values()) and not allow_empty:
        raise EmptySideError(
            f"The local folder has no files but the index holds {files}; refusing to delete {remote_deletes} "
            "file(s) on Dropbox (an unmounted or emptied volume?). Nothing was changed. If the files were "
            "really deleted, re-run with allow_empty=True"
        )
    remote_files_left = files - sum(
        1 for k, s in synced.items() if not s.is_dir and remote_now.get(k, s) is None
    )
    if full:
        remote_files_left = sum(1 for r in remote_now.values() if r is not None and not r.is_dir)
    if local_deletes and files and remote_files_left <= 0 and not allow_empty:
        raise EmptySideError(
            f"The Dropbox folder has no files left but the index holds {files}; refusing to delete "
            f"{local_deletes} local file(s). Nothing was changed. If the folder really was emptied, re-run "
            "with allow_empty=True"
        )
    if limit is None:
        return
    kind, value = limit
    for side, n in (("Dropbox", remote_deletes), ("local", local_deletes)):
        pct = 100.0 * n / max(files, 1)
        if n and ((kind == "count" and n > value) or (kind == "pct" and pct > value)):
            raise TooManyDeletesError(
                f"The sync would delete {n} of {files} file(s) on the {side} side ({pct:.0f}%), over "
                f"max_deletes={raw_limit}; nothing was changed. Re-run with a higher max_deletes if intended"
            )
