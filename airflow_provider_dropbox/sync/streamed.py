"""Full listings streamed page by page: a first run, a ``full_rescan`` and a reconcile after a cursor reset.

Each ``list_folder`` page goes through the same steps as an incremental run's changes (the slice, layout,
plan, guards, intents, apply, commit; engine.py), while the next page is fetched, so memory follows the
page and the folders it touches, not the tree. A first run commits every page with its cursor (a stopped
run continues from its last page). A reconcile first spools the listing to a temporary table of the index
(on disk), checks the delete guards on the counts (before anything is written, as any full listing does),
then applies the spooled pages, then deletes what the listing did not name (as ``deleted`` changes, in
pages too), and commits the cursor last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.sync import engine as steps
from airflow_provider_dropbox.sync.index import MirrorIndex
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.pages import prefetched
from airflow_provider_dropbox.sync.partial import change_keys
from airflow_provider_dropbox.sync.paths import remote_key
from airflow_provider_dropbox.sync.report import MirrorReport

StreamKind = Literal["first", "rescan", "reset"]
PAGE = 2_000  # spooled entries or unlisted keys applied per step (Dropbox's largest listing page)


def streamed_listing(
    client: Any, index: MirrorIndex | None, remote: str, o: Any, *, reset: bool = False
) -> StreamKind | None:
    """Which streamed listing this run is, if any: ``first`` (an empty index), ``rescan``
    (``full_rescan=True``) or ``reset`` (Dropbox reset the cursor). ``None``: the run reads the whole
    listing (dry runs, ``adopt_local``, a client without ``list_folder_pages``, another remote folder
    than the index's, changed ``exclude``/``delete_stale``, a crashed first page's intents)."""
    if (
        index is None
        or o.dry_run
        or o.adopt_local
        or not callable(getattr(client, "list_folder_pages", None))
    ):
        return None
    if index.is_empty():
        return "first"
    if not (o.full_rescan or reset):
        return None
    meta = index.meta()
    stored = meta.get("remote_path")
    if stored is None or path_key(stored) != path_key(remote) or not meta.get("cursor"):
        return None
    if meta.get("slice_options") != steps._slice_options(o):
        return None
    return "reset" if reset else "rescan"


def stream_listing(
    client: Any,
    remote: str,
    root: str,
    report: MirrorReport,
    lock: MirrorLock,
    log: logging.Logger,
    index: MirrorIndex,
    o: Any,
    excluded: Callable[[str], bool],
    *,
    kind: StreamKind,
) -> None:
    first = kind == "first"
    root_lower = o.known_root if first and o.known_root is not None else steps._resolve_root(client, remote)
    report.mode = "reset" if kind == "reset" else "full"
    cursor = None if first else index.meta().get("cursor")
    meta: dict[str, str | None] = {"cursor": cursor, "root_lower": root_lower, "remote_path": remote}
    run = _Pages(client, remote, root, report, lock, log, index, o, excluded, meta, first)
    held = index.counts()["managed_files"]  # what the destination held before this listing
    # closed here, not by the garbage collector: collected in some other thread, its listing thread's
    # shutdown can deadlock that thread's start (seen in a pool worker starting during a later run)
    with contextlib.closing(prefetched(client.list_folder_pages(remote, recursive=True))) as pages:
        if first:
            for entries, page_cursor in pages:
                if not run.step(entries, page_cursor):
                    return
            log.info("Listed %d remote entries under %r, page by page", run.listed, remote or "/")
            return
        index.start_listing()
        try:
            listed_files = 0
            for entries, page_cursor in pages:  # spooled first: the delete guards need the whole listing
                index.spool((k, e) for k, e in ((_key(e, root_lower), e) for e in entries) if k is not None)
                listed_files += sum(1 for e in entries if e.get(".tag") == "file")
                run.cursor = page_cursor
            doomed = index.unlisted_managed_files() if o.delete_stale else 0
            steps.guard_deletes(
                doomed, held, listed_files, o.limit, o.raw_limit, o.allow_empty_remote, remote,
                full_listing=True,
            )  # fmt: skip
            for entries in index.spooled(PAGE):
                if not run.step(entries, run.cursor):
                    return
            log.info("Listed %d remote entries under %r, page by page", run.listed, remote or "/")
            if report.errors:  # as in any run: nothing is deleted after an error, the cursor stays
                report.deletes_skipped += doomed
                return
            tops = index.unlisted_tops()
            for start in range(0, len(tops), PAGE):
                gone = [
                    {".tag": "deleted", "name": k.rpartition("/")[2], "path_lower": f"{root_lower}/{k}"}
                    for k in tops[start : start + PAGE]
                ]
                if not run.step(gone, None):
                    return
            if not report.errors:
                index.write(meta={**meta, "cursor": run.cursor, "slice_options": steps._slice_options(o)})
                report.cursor_advanced = True
        finally:
            index.end_listing()


def _key(entry: dict[str, Any], root_lower: str) -> str | None:
    path_lower = entry.get("path_lower")
    return remote_key(path_lower, root_lower) if isinstance(path_lower, str) else None


@dataclasses.dataclass
class _Pages:
    """One page (or one batch of deletions) at a time through the incremental steps."""

    client: Any
    remote: str
    root: str
    report: MirrorReport
    lock: MirrorLock
    log: logging.Logger
    index: MirrorIndex
    o: Any  # engine._RunOptions
    excluded: Callable[[str], bool]
    meta: dict[str, str | None]  # the committed cursor, root and folder the slices start from
    first: bool
    cursor: str = ""  # the last page's cursor
    listed: int = 0
    deleted: int = 0  # files the pages deleted so far (the delete guards count them)
    leave: set[str] = dataclasses.field(default_factory=set)  # keys failed or left alone on an earlier page

    def __post_init__(self) -> None:
        if self.first:
            self.report.cursor_advanced = True

    def _same_folders(self, entries: list[dict[str, Any]]) -> set[str]:
        """Folders this page lists exactly as the index holds them (a reconcile names every folder again;
        loading each one's stored subtree would cost the tree, not the page)."""
        if self.first:
            return set()
        named = change_keys((e for e in entries if e.get(".tag") == "folder"), str(self.meta["root_lower"]))
        stored = self.index.remote_rows(named)
        same = (stored.get(k) for k in named)
        return {
            r.key for r in same if r is not None and r.is_dir and not r.synthetic and r.name == named[r.key]
        }

    def step(self, entries: list[dict[str, Any]], cursor: str | None) -> bool:
        """Apply ``entries`` as changes; ``False`` when the run must stop (e.g. it lost its lock)."""
        o, report = self.o, self.report
        self.listed += len(entries) if cursor is not None else 0
        part = MirrorReport(remote_path=report.remote_path, local_dir=report.local_dir, mode=report.mode)
        new_cursor = cursor if cursor is not None else self.cursor
        state, listing, layout, verify, known, sources = steps._slice(
            self.index, entries, new_cursor, self.meta, self.root, self.excluded, part, self.log,
            look_again=False, shallow=self._same_folders(entries) if cursor is not None else None,
        )  # fmt: skip
        counted = listing.touched if cursor is not None else set()
        plan = steps._plan(
            layout, state, self.root, verify, False, part, self.log, self.remote,
            dry_run=False, delete_stale=o.delete_stale, adopt_local=False, conflict=o.conflict,
            excluded=self.excluded, copy_sources=sources, known=known, leave=self.leave, counted=counted,
        )  # fmt: skip
        held = max(plan.local_files, plan.managed_files)
        steps.guard_deletes(
            plan.file_deletes + self.deleted, held, plan.remote_files, o.limit, o.raw_limit,
            o.allow_empty_remote or cursor is None, self.remote,
        )  # fmt: skip
        later = steps._apply_and_commit(
            self.client, self.index, self.lock, self.remote, self.root, part, self.log, o, state, listing,
            layout, plan, verify, whole=False, retry_failed_later=True, commit_cursor=self.first,
        )  # fmt: skip
        report.absorb(part)
        self.deleted += part.done.get("delete_file", 0)
        if later is None:  # the run stopped (e.g. lost its lock): the next run starts from the last commit
            report.cursor_advanced = False
            return False
        self.leave |= later
        if cursor is not None:
            self.cursor = cursor
            if self.first:
                self.meta["cursor"] = cursor
        return True
