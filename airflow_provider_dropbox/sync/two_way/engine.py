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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.client.folders import exclude_matcher
from airflow_provider_dropbox.sync.engine import MaxDeletes, parse_max_deletes
from airflow_provider_dropbox.sync.errors import MirrorConfigError, RemoteRootError, TooManyDeletesError
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.paths import check_local_dir, normalize_remote_root
from airflow_provider_dropbox.sync.two_way.apply import Run, apply_actions
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
    lock_timeout: float = 0.0,
    raise_on_error: bool = True,
    logger: logging.Logger | None = None,
) -> TwoWayReport:
    """Two-way sync of Dropbox folder ``remote_path`` and ``local_dir``. See docs/two-way-sync.md."""
    log = logger or logging.getLogger(__name__)
    if conflict not in POLICIES:
        raise MirrorConfigError(f"conflict={conflict!r}: use one of {', '.join(POLICIES)}")
    remote = normalize_remote_root(remote_path)
    limit = parse_max_deletes(max_deletes)
    if isinstance(exclude, str):
        exclude = (exclude,)
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
                  allow_empty, exclude_matcher(tuple(exclude)), lock)  # fmt: skip
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
) -> None:
    meta = index.meta() if index is not None else {}
    synced = index.entries() if index is not None else {}
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
    # ---- remote side
    remote_now: dict[str, RemoteItem | None]
    full = True
    if cursor:
        try:
            changes, new_cursor = client.list_changes(cursor)
            remote_now = remote_items(changes, root_lower, known=synced)
            full = False
        except client_errors.CursorResetError:
            log.warning(
                "Dropbox reset the sync cursor for %r; comparing a full listing with the index", remote
            )
    if full:
        if cursor:  # a reset: the folder must still be there
            _root_lower(client, remote, create=False)
        entries, new_cursor = client.list_folder_snapshot(remote, recursive=True)
        remote_now = remote_items(entries, root_lower)
        for k in synced:
            remote_now.setdefault(k, None)
    # ---- local side
    scan = scan_local(root, excluded)
    report.skipped.extend(scan.skipped)
    actions = decide(synced, remote_now, scan, root, excluded, conflict, first=report.first_run)
    report.planned = {}
    for a in actions:
        report.planned[a.op] = report.planned.get(a.op, 0) + 1
    report.plan = [a.to_dict() for a in actions]
    _guard(actions, synced, scan, remote_now, full, limit, raw_limit, allow_empty)
    if dry_run or index is None:
        return
    run = Run(client, remote, root, index, synced, report, log, conflict)
    run.clear_staging()  # partial downloads of a run that was killed
    if report.first_run:
        index.write(meta={"remote_path": remote, "root_lower": root_lower})
    apply_actions(run, actions, scan, remote_now, lock)
    held = any(a.op == "conflict_skip" for a in actions)  # left alone: the next run must see it again
    if not report.errors and not held:
        index.write(meta={"cursor": new_cursor, "remote_path": remote, "root_lower": root_lower})
        report.cursor_advanced = True


def _guard(
    actions: list[Action],
    synced: Mapping[str, Synced],
    scan: LocalScan,
    remote_now: Mapping[str, RemoteItem | None],
    full: bool,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty: bool,
) -> None:
    files = sum(1 for s in synced.values() if not s.is_dir)
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
