"""``mirror()``: one call that keeps a local directory a faithful copy of a Dropbox folder.

Flow: lock -> load state (recover a crashed run's intents) -> list (full, or changes since the cursor;
a cursor ``reset`` falls back to a full re-list) -> layout (local names, collisions) -> plan -> guards
-> write intents -> apply -> commit state (cursor advances only if every action succeeded) -> report.
An incremental run reads only its slice of the index (partial.py); a first run, a ``full_rescan`` and a
cursor reset stream the listing page by page through the same steps (streamed.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any, Protocol

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.sync.apply import Applier
from airflow_provider_dropbox.sync.durable import make_durable
from airflow_provider_dropbox.sync.errors import (
    DestinationError,
    EmptyRemoteError,
    MirrorAbortedError,
    MirrorConfigError,
    MirrorFailedError,
    RemoteRootError,
    RemoteShrankError,
    StateError,
    UnsafePathError,
)
from airflow_provider_dropbox.sync.hashing import hash_under
from airflow_provider_dropbox.sync.index import INDEX_FILE, IndexVersionError, MirrorIndex, TrackedManifest
from airflow_provider_dropbox.sync.layout import Layout, build_layout, make_exclude
from airflow_provider_dropbox.sync.lock import DEFAULT_STALE_AFTER, MirrorLock
from airflow_provider_dropbox.sync.partial import (
    change_keys,
    collision_siblings,
    load_manifest_slice,
    load_remote_slice,
)
from airflow_provider_dropbox.sync.paths import (
    FOREIGN_STAGING_PREFIX,
    STATE_DIR_NAME,
    check_local_dir,
    check_private_dirs,
    normalize_remote_root,
    remote_key,
    safe_local_path,
)
from airflow_provider_dropbox.sync.plan import ConflictPolicy, DiskFact, Plan, make_plan
from airflow_provider_dropbox.sync.remote import RemoteTree
from airflow_provider_dropbox.sync.report import MirrorReport
from airflow_provider_dropbox.sync.state import (
    Managed,
    MirrorState,
    Pending,
    fsync_dir,
    load_json_state,
    open_index,
    staging_dir,
    state_dir,
)
from airflow_provider_dropbox.sync.streamed import stream_listing, streamed_listing

__all__ = ["MirrorClient", "mirror", "parse_max_deletes"]


class MirrorClient(Protocol):
    """The four client calls the engine needs (``DropboxClient`` satisfies it; tests may pass a fake)."""

    def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]: ...

    # optional: ``list_folder_pages(path, recursive=True)`` yielding (entries, cursor) per page lets full
    # listings stream (streamed.py); without it they are read whole

    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]: ...

    def download_file(self, remote_path: str, local_path: str) -> dict[str, Any]: ...  # fsync= optional

    # optional: ``download_zip(path, local_path, max_bytes=None)`` lets folders of many small files come
    # as one zip (zipped.py); without it every file is downloaded on its own

    def get_metadata(self, path: str) -> dict[str, Any]: ...


MaxDeletes = tuple[str, float]


def parse_max_deletes(value: int | str | None) -> MaxDeletes | None:
    """``None`` (no limit), a count (``100``, ``"100"``) or a percentage of the mirrored files (``"10%"``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MirrorConfigError(f"max_deletes={value!r}: pass a count like 100 or a percentage like '10%'")
    if isinstance(value, int):
        if value < 0:
            raise MirrorConfigError(f"max_deletes={value!r} is negative; pass 0 to forbid deletes")
        return ("count", float(value))
    text = str(value).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError(text)
            return ("pct", pct)
        count = int(text)
        if count < 0:
            raise ValueError(text)
        return ("count", float(count))
    except ValueError:
        raise MirrorConfigError(
            f"max_deletes={value!r} is not a count (e.g. 100) or a percentage from 0% to 100% (e.g. '10%')"
        ) from None


SHRINK_LIMIT_PCT = 50.0  # a full listing may delete at most this share of the destination's files by default


def _guard(
    plan: Plan,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty_remote: bool,
    remote: str,
    *,
    full_listing: bool = False,
) -> None:
    """Refuse plans that delete what an empty or wrong listing would delete, before anything is written.

    Counted against every file the run could delete (``plan.local_files``: the mirror's files, plus the
    unmanaged ones ``adopt_local`` deletes), so a first run, an adopted destination and a managed mirror
    are all protected alike."""
    held = max(plan.local_files, plan.managed_files)
    guard_deletes(
        plan.file_deletes, held, plan.remote_files, limit, raw_limit, allow_empty_remote, remote,
        full_listing=full_listing,
    )  # fmt: skip


def guard_deletes(
    deletes: int,
    held: int,
    remote_files: int,
    limit: MaxDeletes | None,
    raw_limit: Any,
    allow_empty_remote: bool,
    remote: str,
    *,
    full_listing: bool = False,
) -> None:
    """The guards on counts: ``deletes`` of the ``held`` files the run could delete, with ``remote_files``
    listed (a streamed full listing checks its deletes this way before making any)."""
    where = remote or "/"
    if deletes and remote_files == 0 and not allow_empty_remote:
        raise EmptyRemoteError(
            f"The remote folder {where!r} has no files but the destination holds {held}; refusing to "
            f"delete {deletes} local file(s) because of an empty listing. If the folder really was "
            "emptied, re-run with allow_empty_remote=True"
        )
    if (
        full_listing
        and limit is None
        and not allow_empty_remote
        and deletes
        and 100.0 * deletes / max(held, 1) > SHRINK_LIMIT_PCT
    ):
        raise RemoteShrankError(
            f"The listing of {where!r} has {remote_files} file(s) and would delete {deletes} of the "
            f"{held} file(s) in the destination ({100.0 * deletes / max(held, 1):.0f}%); a full listing "
            f"may delete at most {SHRINK_LIMIT_PCT:.0f}% unless told so. Check remote_path and local_dir; "
            "if the remote folder really shrank, re-run with allow_empty_remote=True or an explicit "
            "max_deletes"
        )
    if limit is None or not deletes:
        return
    kind, value = limit
    managed = held
    pct = 100.0 * deletes / max(managed, 1)
    if (kind == "count" and deletes > value) or (kind == "pct" and pct > value):
        from airflow_provider_dropbox.sync.errors import TooManyDeletesError

        raise TooManyDeletesError(
            f"Plan deletes {deletes} of {managed} files ({pct:.0f}%), over max_deletes={raw_limit}; "
            "nothing was changed. Re-run with a higher max_deletes if intended"
        )


def _probe(root: str, rel: str) -> DiskFact:
    try:
        st = os.lstat(os.path.join(root, *rel.split("/")))
    except (FileNotFoundError, NotADirectoryError):
        return DiskFact("missing")
    if stat.S_ISLNK(st.st_mode):
        return DiskFact("symlink")
    if stat.S_ISDIR(st.st_mode):
        return DiskFact("dir")
    if stat.S_ISREG(st.st_mode):
        return DiskFact("file", st.st_size, st.st_mtime_ns)
    return DiskFact("other")


def _case_insensitive(folder: str) -> bool:
    """Probe the destination's file system once (shared volumes may be SMB or APFS)."""
    token = secrets.token_hex(4)
    probe = os.path.join(folder, f"CaseProbe-{token}")
    try:
        with open(probe, "x"):
            pass
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(folder, f"caseprobe-{token}"))
    finally:
        os.unlink(probe)


def _walk_unmanaged(root: str, manifest: Mapping[str, Managed]) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        if rel_dir == "":
            dirnames[:] = [d for d in dirnames if d != STATE_DIR_NAME]
        for name in dirnames + filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel not in manifest:
                found.append((rel, name in dirnames and not os.path.islink(os.path.join(dirpath, name))))
    return found


def _resolve_root(client: MirrorClient, remote: str) -> str:
    if remote == "":
        return ""
    try:
        meta = client.get_metadata(remote)
    except client_errors.PathNotFoundError as exc:
        raise RemoteRootError(
            f"The remote folder {remote!r} does not exist (or this app cannot see it); check remote_path and "
            "the app's access type (app folder vs full Dropbox)"
        ) from exc
    if meta.get(".tag") != "folder":
        raise RemoteRootError(
            f"The remote path {remote!r} is a {meta.get('.tag', 'non-folder')}, not a folder; mirror a "
            "folder, or use download_file for a single file"
        )
    return str(meta.get("path_lower") or path_key(remote))


def _recover(state: MirrorState, root: str, log: logging.Logger) -> None:
    """Claim what a crashed run finished but did not record (only exact intended content)."""
    claimed = 0
    for p, intent in state.pending.items():
        if intent.op != "create":
            continue
        f = _probe(root, p)
        if intent.is_dir:
            if f.kind == "dir" and p not in state.manifest:
                state.manifest[p] = Managed(True, intent.key)
                claimed += 1
            continue
        m = state.manifest.get(p)
        if f.kind != "file" or (m is not None and m.content_hash == intent.content_hash):
            continue
        if intent.content_hash and hash_under(root, p) == intent.content_hash:
            state.manifest[p] = Managed(
                False, intent.key, intent.content_hash, f.size, f.mtime_ns, intent.rev
            )
            claimed += 1
    log.warning(
        "Previous mirror run into %s did not finish; re-checking %d path(s) it was working on (%d recovered)",
        root, len(state.pending), claimed,
    )  # fmt: skip


FOREIGN_STAGING_LIST = "staging-elsewhere"  # in the state folder: staging folders made on other mounts


def _clean_staging(root: str) -> None:
    """Empty the staging folder and remove staging folders a crashed run left on other mounts.

    Both are checked first: a symlinked state or staging folder is refused (UnsafePathError), never
    followed, and a listed folder elsewhere is removed only if it resolves inside the destination."""
    folder = staging_dir(root)
    check_private_dirs(root, state_dir(root), folder)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.mkdir(folder, 0o700)
    check_private_dirs(root, state_dir(root), folder)
    listing = os.path.join(state_dir(root), FOREIGN_STAGING_LIST)
    try:
        with open(listing, encoding="utf-8", errors="surrogateescape") as fh:
            leftovers = [line.rstrip("\n") for line in fh if line.strip()]
    except FileNotFoundError:
        return
    for rel in leftovers:
        if not rel.rsplit("/", 1)[-1].startswith(FOREIGN_STAGING_PREFIX):
            continue
        try:
            path = safe_local_path(root, rel)
        except UnsafePathError:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
    os.unlink(listing)
    fsync_dir(state_dir(root))


def _forget_foreign_staging(root: str) -> None:
    """The run removed its staging folders on other mounts (apply.py): drop their list."""
    try:
        os.unlink(os.path.join(state_dir(root), FOREIGN_STAGING_LIST))
    except FileNotFoundError:
        pass


def _register_staging(root: str, rel: str) -> None:
    """Record a staging folder on another mount before creating it, so a crash cannot orphan it."""
    check_private_dirs(root, state_dir(root))
    fd = os.open(
        os.path.join(state_dir(root), FOREIGN_STAGING_LIST),
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
        0o600,
    )
    with os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(rel + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def mirror(
    client: MirrorClient,
    remote_path: str,
    local_dir: str | os.PathLike[str],
    *,
    delete_stale: bool = True,
    dry_run: bool = False,
    max_deletes: int | str | None = None,
    allow_empty_remote: bool = False,
    parallelism: int = 8,
    exclude: Sequence[str] = (),
    adopt_local: bool = False,
    conflict: ConflictPolicy = "copy",
    full_rescan: bool = False,
    lock_timeout: float = 0.0,
    stale_lock_after: float = DEFAULT_STALE_AFTER,
    raise_on_error: bool = True,
    zip_small_files: bool = True,
    logger: logging.Logger | None = None,
) -> MirrorReport:
    """Mirror the Dropbox folder ``remote_path`` into ``local_dir`` (one way). See docs/mirror.md."""
    log = logger or logging.getLogger(__name__)
    remote = normalize_remote_root(remote_path)
    limit = parse_max_deletes(max_deletes)
    if conflict not in ("copy", "skip"):
        raise MirrorConfigError(f"conflict={conflict!r}: use 'copy' (keep a conflicted copy) or 'skip'")
    if not isinstance(parallelism, int) or parallelism < 1:
        raise MirrorConfigError(f"parallelism={parallelism!r}: use a positive integer")
    if isinstance(exclude, str):
        exclude = (exclude,)
    if not os.fspath(local_dir).strip():
        raise MirrorConfigError(
            f"local_dir {os.fspath(local_dir)!r} is empty or blank, which would mean the worker's current "
            "directory; a blank template (e.g. '{{ params.dest }}' with the param unset)? Pass an absolute "
            "folder path"
        )
    local = check_local_dir(os.fspath(local_dir))
    if os.path.lexists(local) and not os.path.isdir(local):
        raise MirrorConfigError(f"local_dir {local!r} exists and is not a directory; pass a folder path")
    known_root: str | None = None
    if not dry_run and not os.path.isdir(state_dir(os.path.realpath(local))):
        # first run: check the remote folder before creating anything locally
        known_root = _resolve_root(client, remote)
    try:
        if not dry_run:
            os.makedirs(local, exist_ok=True)
        root = os.path.realpath(local)
        check_private_dirs(root, state_dir(root), staging_dir(root))
        lock: MirrorLock | None = None
        if not dry_run:
            lock = MirrorLock(state_dir(root), stale_after=stale_lock_after, timeout=lock_timeout, logger=log)
            lock.acquire()
    except OSError as exc:
        raise DestinationError(
            f"Cannot write to the mirror destination {local!r}: {exc.strerror or exc} ({exc.filename}). "
            "The mirror keeps its lock, state and partial downloads inside it; pass a writable local_dir"
        ) from exc
    report = MirrorReport(
        remote_path=remote or "/",
        local_dir=local,
        dry_run=dry_run,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    t0 = time.monotonic()
    try:
        options = _RunOptions(
            delete_stale=delete_stale, dry_run=dry_run, limit=limit, raw_limit=max_deletes,
            allow_empty_remote=allow_empty_remote, parallelism=parallelism, exclude=tuple(exclude),
            adopt_local=adopt_local, conflict=conflict, full_rescan=full_rescan, known_root=known_root,
            zip_small_files=zip_small_files,
        )  # fmt: skip
        _run(client, remote, root, report, lock, log, options)
    except MirrorAbortedError as exc:
        report.aborted = str(exc)
        report.duration_s = time.monotonic() - t0
        exc.report = report
        log.error("%s", exc)
        raise
    except OSError as exc:  # state, intents or staging could not be written (apply errors are per action)
        if exc.filename is None:  # not a local file (e.g. a network error some library let through)
            raise
        raise DestinationError(
            f"Cannot write the mirror's state in {local!r}: {exc.strerror or exc} ({exc.filename}); nothing "
            "was committed, the next run starts again from the last committed state"
        ) from exc
    finally:
        if lock is not None:
            lock.release()
    report.duration_s = time.monotonic() - t0
    log.info("%s", report.summary())
    if report.errors and raise_on_error:
        raise MirrorFailedError(report)
    return report


@dataclasses.dataclass(frozen=True)
class _RunOptions:
    """The caller's choices, checked by ``mirror``; read by the steps that need them."""

    delete_stale: bool
    dry_run: bool
    limit: MaxDeletes | None
    raw_limit: Any
    allow_empty_remote: bool
    parallelism: int
    exclude: tuple[str, ...]
    adopt_local: bool
    conflict: ConflictPolicy
    full_rescan: bool
    known_root: str | None = None
    zip_small_files: bool = True


def _run(
    client: MirrorClient,
    remote: str,
    root: str,
    report: MirrorReport,
    lock: MirrorLock | None,
    log: logging.Logger,
    options: _RunOptions,
) -> None:
    index = None if options.dry_run else _open_index(root, options.full_rescan, log)
    try:
        _run_steps(client, remote, root, report, lock, log, index, options)
    finally:
        if index is not None:
            index.close()


def _open_index(root: str, full_rescan: bool, log: logging.Logger) -> MirrorIndex:
    """Open (or migrate, or create) the index; with ``full_rescan=True`` an unreadable one is moved aside
    and rebuilt (a newer schema's index is never touched)."""
    try:
        index = open_index(root)
    except IndexVersionError:
        raise
    except StateError as exc:
        if not full_rescan:
            raise
        path = os.path.join(state_dir(root), INDEX_FILE)
        aside = f"{path}.unreadable-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        log.warning("%s; full_rescan=True: moving it to %s and rebuilding the index", exc, aside)
        for suffix in ("", "-wal", "-shm"):
            if os.path.lexists(path + suffix):
                os.replace(path + suffix, aside + suffix)
        index = open_index(root)
    assert index is not None
    return index


def _peek_state(root: str) -> MirrorState | None:
    """A dry run's view of the committed state: nothing is created or migrated."""
    if not os.path.isdir(state_dir(root)):
        return None
    if MirrorIndex.exists(state_dir(root)):
        index = open_index(root, create=False)
        assert index is not None
        try:
            return index.load()  # type: ignore[no-any-return]
        finally:
            index.close()
    return load_json_state(root)


@dataclasses.dataclass
class _Listing:
    tree: RemoteTree
    touched: set[str]  # keys the changes touched (incremental runs)
    cursor: str
    root_lower: str
    full: bool
    recheck: set[str] = dataclasses.field(default_factory=set)  # unsettled keys this run looked at again


def _run_steps(
    client: MirrorClient,
    remote: str,
    root: str,
    report: MirrorReport,
    lock: MirrorLock | None,
    log: logging.Logger,
    index: MirrorIndex | None,
    o: _RunOptions,
) -> None:
    """The named steps: load, list, layout, plan, guard, then (not for a dry run) intents, apply, commit."""
    excluded = make_exclude(o.exclude)
    streamed = streamed_listing(client, index, remote, o)
    sliced = None if streamed else _incremental_slice(client, index, remote, root, excluded, report, log, o)
    if sliced is None and not streamed and report.mode == "reset":
        streamed = streamed_listing(client, index, remote, o, reset=True)
    if streamed:
        assert index is not None and lock is not None
        stream_listing(client, remote, root, report, lock, log, index, o, excluded, kind=streamed)
        _forget_foreign_staging(root)
        return
    known: _KnownCounts | None = None
    if sliced is not None:
        state, listing, layout, verify, known, sources = sliced
    else:
        state, same_root, verify = _load(index, root, remote, o.dry_run, log)
        listing = _list(client, state, remote, same_root, o.full_rescan, o.known_root, report, log)
        layout = _layout(listing.tree, root, excluded, report, log)
        if not listing.full:
            assert isinstance(state.manifest, TrackedManifest)
            verify |= _touched_paths(listing.touched, layout, state.manifest, index)
        sources = {}
    plan = _plan(
        layout, state, root, verify, listing.full, report, log, remote,
        dry_run=o.dry_run, delete_stale=o.delete_stale, adopt_local=o.adopt_local, conflict=o.conflict,
        excluded=excluded, copy_sources=sources, known=known,
    )  # fmt: skip
    try:
        _guard(plan, o.limit, o.raw_limit, o.allow_empty_remote, remote, full_listing=listing.full)
    except MirrorAbortedError as exc:
        if o.dry_run:
            report.aborted = str(exc)
            return
        raise
    if o.dry_run:
        return
    assert lock is not None and index is not None
    _apply_and_commit(
        client, index, lock, remote, root, report, log, o, state, listing, layout, plan, verify,
        whole=sliced is None,
    )  # fmt: skip
    _forget_foreign_staging(root)


def _apply_and_commit(
    client: MirrorClient,
    index: MirrorIndex,
    lock: MirrorLock,
    remote: str,
    root: str,
    report: MirrorReport,
    log: logging.Logger,
    o: _RunOptions,
    state: MirrorState,
    listing: _Listing,
    layout: Layout,
    plan: Plan,
    verify: set[str],
    *,
    whole: bool,
    retry_failed_later: bool = False,
    commit_cursor: bool = True,
) -> set[str] | None:
    """Intents, apply, durable, commit. ``retry_failed_later``: actions that failed for one key do not hold
    the cursor back; their keys are kept for the next incremental run to try again (a streamed first run
    must move on, or one bad file would stop every page after it). ``commit_cursor=False``: the rows only
    (a page of a streamed full listing, whose cursor counts only once the listing is done).

    Returns the keys left for a later run (conflicts left alone, and with ``retry_failed_later`` the failed
    ones); ``None`` when an error names no key (the run stopped, e.g. it lost its lock)."""
    run_id = _write_intents(index, lock, state, plan, verify)
    _clean_staging(root)
    applier = _apply(
        client, index, lock, state, plan, root, remote, listing.root_lower, report, log,
        parallelism=o.parallelism, conflict=o.conflict, adopt_local=o.adopt_local,
        zip_small_files=o.zip_small_files,
    )  # fmt: skip
    assert isinstance(state.manifest, TrackedManifest)
    _refresh_unchanged(layout, state.manifest)
    applier.make_durable()  # data and folder entries on disk before the index rows that record them
    check_private_dirs(root, state_dir(root))
    lock.check()
    unsettled = {a.key for a in plan.actions if a.op == "conflict" and a.key}
    errors = report.errors
    failed = _failed_keys(plan, errors) if retry_failed_later and errors else None
    if failed is not None:
        unsettled |= failed
        errors = []
    extra_meta = {"slice_options": _slice_options(o)}
    _commit(
        index, state, listing, remote, run_id, report, errors, unsettled, extra_meta, whole=whole,
        commit_cursor=commit_cursor,
    )  # fmt: skip
    return None if errors else unsettled


def _failed_keys(plan: Plan, errors: list[dict[str, str]]) -> set[str] | None:
    """The remote keys of the failed actions; ``None`` if an error names no key (e.g. the run stopped)."""
    key_of = {a.path: a.key for a in plan.actions if a.key}
    keys = {key_of.get(e.get("path", "")) for e in errors}
    return None if None in keys else {k for k in keys if k}


def _load(
    index: MirrorIndex | None, root: str, remote: str, dry_run: bool, log: logging.Logger
) -> tuple[MirrorState, bool, set[str]]:
    """The committed state, checked against ``remote``; a crashed run's intents recovered (and to verify)."""
    state = index.load() if index is not None else _peek_state(root)
    if state is None:
        state = MirrorState(remote_path=remote)
    elif state.uncommitted:  # a first run that never committed left only its intents
        state.remote_path = remote
    if not isinstance(state.manifest, TrackedManifest):
        state.manifest = TrackedManifest(state.manifest)
    same_root = path_key(state.remote_path) == path_key(remote)
    if not same_root and (state.cursor or state.manifest):
        raise MirrorConfigError(
            f"{root} is the mirror of Dropbox folder {state.remote_path or '/'!r}, not {remote or '/'!r}; "
            "refusing to turn it into another folder's mirror (that would delete the old files). Use "
            f"another local_dir, or move {state_dir(root)} away: its files are then not the mirror's "
            "(left alone; identical ones adopted), or pass adopt_local=True as well to replace them"
        )
    verify: set[str] = set()
    if state.pending:
        if not dry_run:
            _recover(state, root, log)
        verify.update(state.pending)
    return state, same_root, verify


def _list(
    client: MirrorClient,
    state: MirrorState,
    remote: str,
    same_root: bool,
    full_rescan: bool,
    known_root: str | None,
    report: MirrorReport,
    log: logging.Logger,
) -> _Listing:
    """What the remote looks like now: the stored tree plus the changes since the cursor, or a full listing
    (first run, ``full_rescan``, or a cursor Dropbox reset)."""
    root_lower = state.root_lower
    if state.cursor and same_root and not full_rescan and root_lower is not None and report.mode != "reset":
        try:
            changes, new_cursor = client.list_changes(state.cursor)
            # applied in place: the loaded tree is this run's alone, and a copy doubled its memory
            tree = state.remote
            tree.changed = set()
            touched = tree.apply_changes(changes, root_lower)
            report.mode = "incremental"
            log.info("Dropbox reported %d change(s) since the last mirror run", len(changes))
            return _Listing(tree, touched, new_cursor, root_lower, full=False)
        except client_errors.CursorResetError:
            log.warning(
                "Dropbox reset the mirror cursor for %r; re-listing the whole folder to reconcile", remote
            )
            report.mode = "reset"
    if report.mode != "reset":
        report.mode = "full"
    root_lower = known_root if known_root is not None else _resolve_root(client, remote)
    entries, new_cursor = client.list_folder_snapshot(remote, recursive=True)
    tree = RemoteTree.from_listing(entries, root_lower)
    del entries  # the raw listing (about 1 KiB per entry) is not needed past this point
    log.info("Listed %d remote entries under %r", len(tree.entries), remote or "/")
    return _Listing(tree, set(), new_cursor, root_lower, full=True)


def _layout(
    tree: RemoteTree,
    root: str,
    excluded: Callable[[str], bool],
    report: MirrorReport,
    log: logging.Logger,
    roots: Sequence[tuple[str, str]] = (("", ""),),
    complete: Container[str] | None = None,
) -> Layout:
    """Remote tree -> local paths (collisions resolved, too-long paths skipped)."""
    try:
        path_max = os.pathconf(root if os.path.isdir(root) else os.path.dirname(root), "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    # room for the destination itself and a temp-name suffix
    layout = build_layout(
        tree, excluded, max_path_bytes=path_max - len(os.fsencode(root)) - 2, roots=roots, complete=complete
    )
    report.collisions = layout.collisions
    report.skipped = [s for s in layout.skipped if s["reason"] != "excluded"]
    for c in layout.collisions:
        log.warning("Name collision in %r: kept %r, renamed %s", c["folder"], c["kept"], c["renamed"])
    return layout


@dataclasses.dataclass(frozen=True)
class _KnownCounts:
    """What the guards count, from the whole index (an incremental slice holds only a few rows)."""

    managed_files: int
    remote_files: int
    unchanged_outside: int  # managed paths the slice did not load: unchanged by definition


_Slice = tuple[MirrorState, _Listing, Layout, set[str], _KnownCounts, dict[str, list[str]]]


def _incremental_slice(
    client: MirrorClient,
    index: MirrorIndex | None,
    remote: str,
    root: str,
    excluded: Callable[[str], bool],
    report: MirrorReport,
    log: logging.Logger,
    o: _RunOptions,
) -> _Slice | None:
    """An incremental run on the rows its changes touch (partial.py), so its cost follows the changes.

    ``None`` when the run needs the whole state: a dry run, a first or full run, ``adopt_local`` (it
    compares every local item), another remote folder than the index's, or a cursor Dropbox reset (then
    ``report.mode`` is ``"reset"`` and the caller lists the whole folder)."""
    if index is None or o.full_rescan or o.adopt_local:
        return None
    meta = index.meta()
    cursor, root_lower, stored_root = meta.get("cursor"), meta.get("root_lower"), meta.get("remote_path")
    if not cursor or root_lower is None or stored_root is None or path_key(stored_root) != path_key(remote):
        return None
    if meta.get("slice_options") != _slice_options(o):  # new excludes or delete_stale: judge every row once
        return None
    try:
        changes, new_cursor = client.list_changes(cursor)
    except client_errors.CursorResetError:
        log.warning(
            "Dropbox reset the mirror cursor for %r; re-listing the whole folder to reconcile", remote
        )
        report.mode = "reset"
        return None
    report.mode = "incremental"
    log.info("Dropbox reported %d change(s) since the last mirror run", len(changes))
    return _slice(index, changes, new_cursor, meta, root, excluded, report, log, look_again=True)


def _slice(
    index: MirrorIndex,
    changes: list[dict[str, Any]],
    new_cursor: str,
    meta: Mapping[str, str | None],
    root: str,
    excluded: Callable[[str], bool],
    report: MirrorReport,
    log: logging.Logger,
    *,
    look_again: bool,
    shallow: set[str] | None = None,
) -> _Slice:
    """The slice for ``changes`` on top of the committed index (``meta``: its cursor, root and folder).

    ``look_again``: also re-examine the keys earlier runs left unsettled (a streamed first run does not:
    its batches would retry them every page). ``shallow``: folders a full listing names again unchanged
    (their subtrees and manifest subtrees are not loaded; the folder itself is still checked on disk)."""
    cursor = meta.get("cursor") or ""
    root_lower, stored_root = str(meta["root_lower"]), str(meta["remote_path"])
    names = change_keys(changes, root_lower)
    root_gone = any(
        m.get(".tag") == "deleted" and remote_key(str(m.get("path_lower")), root_lower) == "" for m in changes
    )
    pending = index.pending()
    pending_keys = {i.key: i.key.rpartition("/")[2] for i in pending.values() if i.key}
    recheck = index.recheck_keys() if look_again else set()
    pending_keys.update((k, k.rpartition("/")[2]) for k in recheck)
    shallow = shallow or set()
    sliced = load_remote_slice(index, {**pending_keys, **names}, whole_tree=root_gone, shallow=shallow)
    touched = sliced.tree.apply_changes(changes, root_lower)
    layout = _layout(
        sliced.tree, root, excluded, report, log, roots=sorted(sliced.roots.items()), complete=sliced.expanded
    )
    siblings = collision_siblings(sliced, {k: n for k, n in names.items() if k not in shallow})
    keys = (touched - shallow) | siblings | set(pending_keys)  # a shallow folder a change may rename: loaded
    manifest, left_out = load_manifest_slice(index, sliced, keys, layout, pending)
    loaded = len(manifest) + left_out
    if left_out:
        log.debug("%d manifest row(s) outside this run's slice were left for a later run", left_out)
    state = MirrorState(
        remote_path=stored_root, root_lower=root_lower, cursor=cursor, remote=sliced.tree, manifest=manifest,
        pending=pending, last_run=meta.get("last_run"),
    )  # fmt: skip
    verify: set[str] = set()
    if pending:
        _recover(state, root, log)
        verify.update(pending)
    verify |= _touched_paths(touched | recheck, layout, manifest, index)
    counts = index.counts()
    known = _KnownCounts(
        managed_files=counts["managed_files"],
        remote_files=counts["remote_files"] + sliced.file_count() - sliced.files_before,
        unchanged_outside=max(counts["managed_paths"] - loaded, 0),
    )
    sources: dict[str, list[str]] = {}  # copy sources for every file the plan may fetch
    for p, d in layout.paths.items():
        h, m = d.entry.content_hash, manifest.get(p)
        if d.is_dir or not h or h in sources or (p not in verify and m is not None and m.content_hash == h):
            continue
        sources[h] = sorted(index.manifest_by_hash(h))
    listing = _Listing(sliced.tree, touched, new_cursor, root_lower, full=False, recheck=recheck)
    return state, listing, layout, verify, known, sources


def _slice_options(o: _RunOptions) -> str:
    """The options an incremental slice assumes unchanged since the last run (they decide about every row)."""
    return json.dumps({"exclude": sorted(o.exclude), "delete_stale": o.delete_stale}, sort_keys=True)


def _touched_paths(
    touched: set[str], layout: Layout, manifest: TrackedManifest, index: MirrorIndex | None
) -> set[str]:
    """Local paths an incremental run must check on disk: where the touched keys go, and where they were.

    Where they were comes from the index's key index (plus the rows this run already changed in memory,
    e.g. recovered ones), not a pass over the whole manifest."""
    out: set[str] = set()
    by_key: dict[str, list[str]] = {}
    if touched and index is not None:
        for key in touched:
            for p in index.manifest_by_key(key):
                rec = manifest.get(p)
                if rec is not None and rec.key == key:
                    by_key.setdefault(key, []).append(p)
        for p in manifest.changed:
            rec = manifest.get(p)
            if rec is not None and rec.key in touched:
                by_key.setdefault(rec.key, []).append(p)
    elif touched:
        for p, rec in manifest.items():
            by_key.setdefault(rec.key, []).append(p)
    for key in touched:
        if key in layout.by_key:
            out.add(layout.by_key[key])
        out.update(by_key.get(key, ()))
    return out


def _plan(
    layout: Layout,
    state: MirrorState,
    root: str,
    verify: set[str],
    full: bool,
    report: MirrorReport,
    log: logging.Logger,
    remote: str,
    *,
    dry_run: bool,
    delete_stale: bool,
    adopt_local: bool,
    conflict: ConflictPolicy,
    excluded: Callable[[str], bool],
    copy_sources: Mapping[str, list[str]],
    known: _KnownCounts | None,
    leave: Container[str] = (),
    counted: Container[str] | None = None,
) -> Plan:
    """``leave``: keys this run already failed on (a later page must not try them again); ``counted``: the
    keys whose unchanged paths this plan counts (a streamed page counts only its own entries)."""
    case_insensitive = (not dry_run) and _case_insensitive(state_dir(root))
    unmanaged = (
        _walk_unmanaged(root, state.manifest) if adopt_local and delete_stale and os.path.isdir(root) else []
    )
    plan = make_plan(
        layout,
        state.manifest,
        lambda p: _probe(root, p),
        lambda p: hash_under(root, p),
        verify=None if full else verify,
        delete_stale=delete_stale,
        adopt_local=adopt_local,
        conflict=conflict,
        excluded=excluded,
        unmanaged_local=unmanaged,
        case_insensitive_fs=case_insensitive,
        copy_sources=copy_sources,
    )
    if leave:
        plan.actions = [a for a in plan.actions if a.key not in leave]
    if known is not None:  # an incremental slice: the guards count the whole mirror, not the slice
        plan.managed_files = plan.local_files = known.managed_files
        plan.remote_files = known.remote_files
        plan.unchanged += known.unchanged_outside
    if counted is not None:
        acted = {a.path for a in plan.actions}
        plan.unchanged = sum(1 for p, d in layout.paths.items() if d.entry.key in counted and p not in acted)
    report.planned = plan.counts()
    report.plan = [a.to_dict() for a in plan.actions]
    report.bytes_planned = plan.download_bytes()
    report.remote_files = layout.file_count() if known is None else known.remote_files
    log.info("Mirror plan for %r -> %s (%s): %s", remote or "/", root, report.mode, plan.summary())
    for a in plan.actions:
        log.debug("plan: %s %r %s", a.op, a.path, a.reason)
    return plan


def _write_intents(
    index: MirrorIndex, lock: MirrorLock, state: MirrorState, plan: Plan, verify: set[str]
) -> str:
    """Record every path the run will create (with its content hash) or touch, in one transaction."""
    for a in plan.actions:
        if a.op in ("download", "copy_local", "create_folder", "adopt"):
            state.pending[a.path] = Pending("create", a.is_dir, a.key or "", a.content_hash, a.rev)
        else:
            state.pending.setdefault(a.path, Pending("touch", a.is_dir, a.key or ""))
    for p in verify:
        state.pending.setdefault(p, Pending("touch", False))
    run_id = secrets.token_hex(8)
    if state.pending:
        lock.check()
        index.write(pending=state.pending, meta={"pending_run": run_id})
    return run_id


def _apply(
    client: MirrorClient,
    index: MirrorIndex,
    lock: MirrorLock,
    state: MirrorState,
    plan: Plan,
    root: str,
    remote: str,
    root_lower: str,
    report: MirrorReport,
    log: logging.Logger,
    *,
    parallelism: int,
    conflict: ConflictPolicy,
    adopt_local: bool,
    zip_small_files: bool,
) -> Applier:
    """Run the plan's phases (apply.py), checkpointing the manifest rows placed since the last checkpoint."""

    def checkpoint(rows: Mapping[str, Managed | None]) -> None:
        # the applier made every file in ``rows`` durable just before calling this
        if not lock.lost.is_set():
            check_private_dirs(root, state_dir(root))
            index.write(manifest_rows=rows, meta={"remote_path": remote})

    applier = Applier(
        client,
        root,
        staging_dir(root),
        state.manifest,
        lambda key: f"{root_lower}/{key}" if key else root_lower,
        parallelism=parallelism,
        conflict=conflict,
        adopt_local=adopt_local,
        logger=log,
        should_stop=lock.lost.is_set,
        checkpoint=checkpoint,
        sync_batch=make_durable,  # module-level, so a test can check it runs before every state write
        register_staging=lambda rel: _register_staging(root, rel),
        zip_small_files=zip_small_files,
    )
    result = applier.run(plan)
    report.done = dict(sorted(result.done.items()))
    report.bytes_downloaded = result.bytes_downloaded
    report.bytes_copied = result.bytes_copied
    report.zipped = result.zipped
    report.errors = result.errors
    report.conflicts = result.conflicts
    report.kept_folders = result.kept_folders
    report.skipped.extend(result.skipped)
    report.deletes_skipped = result.deletes_skipped
    report.deferred_skipped = result.deferred_skipped
    return applier


def _refresh_unchanged(layout: Layout, manifest: TrackedManifest) -> None:
    """Refresh rev/key of unchanged files (same content, new revision or a moved parent) from the listing."""
    for p, d in layout.paths.items():
        m = manifest.get(p)
        if (
            m is not None
            and m.is_dir == d.is_dir
            and (m.key != d.entry.key or (not m.is_dir and m.rev != d.entry.rev))
        ):
            if m.is_dir or m.content_hash == d.entry.content_hash:
                m.key = d.entry.key
                m.rev = d.entry.rev if not m.is_dir else None
                manifest.mark(p)


def _commit(
    index: MirrorIndex,
    state: MirrorState,
    listing: _Listing,
    remote: str,
    run_id: str,
    report: MirrorReport,
    errors: list[dict[str, str]],
    unsettled: set[str],
    extra_meta: Mapping[str, str],
    whole: bool,
    commit_cursor: bool = True,
) -> None:
    """One transaction: the manifest rows this run changed since the last checkpoint, and, only if every
    action succeeded, the changed remote rows (all of them after a full listing), the cursor, and the
    retirement of the run's intents. A run with no change writes nothing (or only a moved cursor).

    ``unsettled``: keys of conflicts left alone, for later incremental runs to look at again; the ones this
    run looked at (every key when it judged the ``whole`` index) and settled are dropped."""
    assert isinstance(state.manifest, TrackedManifest)
    rows = state.manifest.take_changes()
    tree = listing.tree
    looked_at = index.recheck_keys() if whole else listing.recheck
    recheck = {k: False for k in looked_at - unsettled} | {k: True for k in unsettled - looked_at}
    if errors:
        if rows or unsettled:  # progress is kept; the cursor and the remote tree stay where they were
            index.write(
                manifest_rows=rows, meta={"remote_path": remote}, recheck=dict.fromkeys(unsettled, True)
            )
        return
    meta: dict[str, str | None] = {
        "cursor": listing.cursor, "root_lower": listing.root_lower, "remote_path": remote, **extra_meta
    }  # fmt: skip
    if state.pending:
        meta["last_run"] = run_id
    if not commit_cursor:
        del meta["cursor"]
    index.write(
        manifest_rows=rows,
        remote=tree if listing.full or tree.changed else None,
        remote_keys=None if listing.full else tree.changed,
        meta=meta,
        clear_pending=bool(state.pending),
        recheck=recheck,
    )
    tree.changed = set()
    state.remote, state.root_lower, state.remote_path, state.pending = tree, listing.root_lower, remote, {}
    if commit_cursor:
        state.cursor = listing.cursor
        report.cursor_advanced = True
