"""Dropbox change triggers: one for the deferrable change sensor, one for AssetWatcher scheduling.

Both wait with ``list_folder/longpoll`` (no worker slot, no auth on the wire), honour its ``backoff``
whether or not it reported changes, then read the changes with ``list_folder/continue`` and filter them
exactly like the poke-mode sensor (``changes.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.changes import (
    CURSOR_RESET_POLICIES,
    kind_lookups,
    lookup_gave_up,
    normalize_kinds,
    reset_message,
    select_changes,
    state_at_cursor,
)
from airflow_provider_dropbox.client.errors import (
    AuthError,
    BadInputError,
    CursorResetError,
    MalformedPathError,
    NotAFolderError,
    PathNotFoundError,
)
from airflow_provider_dropbox.hooks.dropbox_async import DropboxAsyncHook
from airflow_provider_dropbox.longpoll import LONGPOLL_MIN, clamp_longpoll_timeout, jittered
from airflow_provider_dropbox.version_compat import AIRFLOW_V_3_3_PLUS

# Transient trouble (network, 5xx, 429) is retried with capped exponential backoff; these give up for good.
_PERMANENT = (AuthError, PathNotFoundError, MalformedPathError, BadInputError, NotAFolderError)
_MAX_RETRY_DELAY = 300.0
CURSOR_STATE_KEY = "dropbox_cursor"


def watcher_digest(kw: dict[str, Any]) -> str:
    """A short stable digest of what makes a watcher's cursor meaningful (see ``state_key``)."""
    identity = {
        "conn": kw["dropbox_conn_id"],
        "path": path_key(kw["path"] or "").rstrip("/"),
        "recursive": bool(kw["recursive"]),
        "file_pattern": kw["file_pattern"],
        "kinds": sorted(kw["kinds"]),
        "include_folders": bool(kw["include_folders"]),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


def _is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, _PERMANENT)


def _is_reset(exc: BaseException) -> bool:
    return isinstance(exc, CursorResetError)


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, (PathNotFoundError, NotAFolderError))


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if value else None


class _ChangeWaiter:
    """The longpoll + continue loop shared by both triggers; keeps the cursor it has advanced to."""

    def __init__(
        self,
        *,
        hook: DropboxAsyncHook,
        path: str,
        recursive: bool,
        file_pattern: str | None,
        kinds: Sequence[str],
        include_folders: bool,
        longpoll_timeout: int,
        on_cursor_reset: str,
        log: Any,
        on_cursor: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.hook = hook
        self._on_cursor = on_cursor
        self.pending_backoff: float | None = None
        self.path = path
        self.recursive = recursive
        self.file_pattern = file_pattern
        self.kinds = normalize_kinds(kinds)
        self.include_folders = include_folders
        self.longpoll_timeout = clamp_longpoll_timeout(longpoll_timeout)
        self.on_cursor_reset = on_cursor_reset
        self.log = log
        # Server time the current cursor was taken (``changes.py``): set by the owner for the
        # cursor it starts from, then advanced with every cursor this waiter obtains.
        self.cursor_time: str | None = None
        self.cursor_paths: dict[str, str | None] | None = None

    async def select(
        self,
        entries: list[dict[str, Any]],
        cursor_time: str | None,
        cursor_paths: dict[str, str | None] | None,
    ) -> list[dict[str, Any]]:
        # Kind lookups are sync RPCs; resolve them first (in threads), then filter synchronously.
        filters: dict[str, Any] = {
            "root": self.path,
            "file_pattern": self.file_pattern,
            "kinds": self.kinds,
            "include_folders": self.include_folders,
        }
        revisions: dict[str, Any] = {}
        for path_lower in kind_lookups(entries, cursor_paths=cursor_paths, **filters):
            try:
                revisions[path_lower] = await self.hook.list_revisions(path_lower)
            except Exception as exc:  # never fail the batch over a kind: fall back to "not exact"
                revisions[path_lower] = None
                if lookup_gave_up(exc, self.log):
                    break
        return select_changes(
            entries, revisions=revisions, cursor_time=cursor_time, cursor_paths=cursor_paths, **filters
        )

    async def latest_cursor(self) -> str:
        cursor, self.cursor_time = await self.hook.latest_cursor_at(self.path, recursive=self.recursive)
        self.cursor_paths = None
        return cursor

    async def relist(self) -> tuple[list[dict[str, Any]], str]:
        """Every current entry as ``changed`` plus a fresh cursor: the no-loss answer to a cursor reset."""
        entries, cursor, self.cursor_time = await self.hook.snapshot_at(self.path, recursive=self.recursive)
        self.cursor_paths = None
        selected = select_changes(
            entries,
            root=self.path,
            file_pattern=self.file_pattern,
            kinds=self.kinds,
            include_folders=self.include_folders,
            exact_kinds=False,
        )
        return selected, cursor

    async def next_batch(self, cursor: str) -> tuple[list[dict[str, Any]], str, bool]:
        """Wait until a batch of matching changes arrives: ``(changes, new_cursor, reset)``.

        A cursor advanced past changes that were all filtered out is handed to ``on_cursor`` at once; the
        cursor of a returned batch is not: the caller saves it after handing the batch on. Raises for
        permanent errors and for a reset under ``on_cursor_reset="fail"``.
        """
        failures = 0
        while True:
            try:
                result = await self.hook.longpoll(cursor, self.longpoll_timeout)
                backoff = result.get("backoff")
                if result.get("changes"):
                    entries, new_cursor, taken_at = await self.hook.list_changes_at(cursor)
                    # Nothing in scope changed since the old cursor: what was known at it stays true.
                    new_time = taken_at if entries or self.cursor_time is None else self.cursor_time
                    new_paths = state_at_cursor(entries) if entries else self.cursor_paths
                    changes = await self.select(entries, self.cursor_time, self.cursor_paths)
                    cursor, self.cursor_time, self.cursor_paths = new_cursor, new_time, new_paths
                    if changes:
                        if backoff:
                            # Honour it on the next longpoll even though we return now.
                            self.pending_backoff = float(backoff)
                        return changes, cursor, False
                    await self.on_cursor(cursor)
                failures = 0
                if backoff:
                    self.log.info("Dropbox asked to back off %s s before the next longpoll", backoff)
                    await asyncio.sleep(float(backoff))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _is_reset(exc):
                    msg = reset_message(self.path, self.on_cursor_reset)
                    self.log.warning("%s", msg)
                    if self.on_cursor_reset == "fail":
                        raise
                    if self.on_cursor_reset == "restart":
                        cursor = await self.latest_cursor()
                        await self.on_cursor(cursor)
                        continue
                    changes, cursor = await self.relist()
                    if changes:
                        return changes, cursor, True
                    await self.on_cursor(cursor)
                    continue
                if _is_permanent(exc):
                    raise
                failures += 1
                delay = _retry_after(exc) or min(_MAX_RETRY_DELAY, 2.0 ** min(failures, 9))
                self.log.warning(
                    "Dropbox change watch on %s hit %s (attempt %d); retrying in %.1f s",
                    self.path or "/",
                    exc,
                    failures,
                    delay,
                )
                await asyncio.sleep(jittered(delay))

    async def honour_pending_backoff(self) -> None:
        if self.pending_backoff:
            delay, self.pending_backoff = self.pending_backoff, None
            await asyncio.sleep(delay)

    async def on_cursor(self, cursor: str) -> None:
        """Let the caller persist the cursor as it advances (the event trigger's state store)."""
        if self._on_cursor is not None:
            await self._on_cursor(cursor)


def _common_kwargs(
    *,
    path: str,
    dropbox_conn_id: str,
    recursive: bool,
    file_pattern: str | None,
    kinds: Sequence[str] | None,
    include_folders: bool,
    longpoll_timeout: int,
    on_cursor_reset: str,
) -> dict[str, Any]:
    if on_cursor_reset not in CURSOR_RESET_POLICIES:
        raise ValueError(
            f"on_cursor_reset must be one of {', '.join(CURSOR_RESET_POLICIES)}, not {on_cursor_reset!r}"
        )
    return {
        "path": path,
        "dropbox_conn_id": dropbox_conn_id,
        "recursive": recursive,
        "file_pattern": file_pattern,
        "kinds": list(normalize_kinds(kinds)),
        "include_folders": include_folders,
        "longpoll_timeout": clamp_longpoll_timeout(longpoll_timeout),
        "on_cursor_reset": on_cursor_reset,
    }


class DropboxChangeTrigger(BaseTrigger):
    """Wait in the triggerer for changes under ``path`` after ``cursor`` (the deferrable sensor's trigger).

    Fires once: ``{"status": "success", "changes": [...], "cursor": <new>, "reset": bool}``, or
    ``{"status": "error", "message": ...}`` for problems that retrying will not fix. A restarted triggerer
    resumes from the serialized ``cursor``, so nothing is lost (changes may be seen again).

    :param path: Dropbox folder to watch (``""`` or ``"/"`` for everything the app can see).
    :param cursor: ``list_folder`` cursor to wait from.
    :param cursor_time: server time that cursor was taken (tells added from modified; None: not exact).
    :param cursor_paths: what the batch that produced the cursor said about its paths (path -> file id).
    :param dropbox_conn_id: connection id of type ``dropbox``.
    :param recursive: the cursor's recursion (used only when a reset forces a re-list).
    :param file_pattern: fnmatch pattern on the path relative to ``path`` or on the name.
    :param kinds: any of ``added``, ``modified``, ``deleted``.
    :param include_folders: report folder entries too.
    :param longpoll_timeout: seconds per longpoll (Dropbox allows 30..480).
    :param on_cursor_reset: ``relist``, ``restart`` or ``fail`` (see ``DropboxChangeSensor``).
    """

    def __init__(
        self,
        *,
        path: str,
        cursor: str,
        cursor_time: str | None = None,
        cursor_paths: dict[str, str | None] | None = None,
        dropbox_conn_id: str = "dropbox_default",
        recursive: bool = True,
        file_pattern: str | None = None,
        kinds: Sequence[str] | None = None,
        include_folders: bool = False,
        longpoll_timeout: int = LONGPOLL_MIN,
        on_cursor_reset: str = "relist",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.cursor = cursor
        self.cursor_time = cursor_time
        self.cursor_paths = cursor_paths
        self.kw = _common_kwargs(
            path=path,
            dropbox_conn_id=dropbox_conn_id,
            recursive=recursive,
            file_pattern=file_pattern,
            kinds=kinds,
            include_folders=include_folders,
            longpoll_timeout=longpoll_timeout,
            on_cursor_reset=on_cursor_reset,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {**self.kw, "cursor": self.cursor}
        # Absent in triggers serialized before they existed, which still load (kinds then not exact).
        if self.cursor_time is not None:
            kwargs["cursor_time"] = self.cursor_time
        if self.cursor_paths is not None:
            kwargs["cursor_paths"] = self.cursor_paths
        return "airflow_provider_dropbox.triggers.dropbox.DropboxChangeTrigger", kwargs

    def _waiter(self, hook: DropboxAsyncHook) -> _ChangeWaiter:
        kw = {k: v for k, v in self.kw.items() if k != "dropbox_conn_id"}
        waiter = _ChangeWaiter(hook=hook, log=self.log, **kw)
        waiter.cursor_time, waiter.cursor_paths = self.cursor_time, self.cursor_paths
        return waiter

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DropboxAsyncHook(dropbox_conn_id=self.kw["dropbox_conn_id"])
        self.log.info("Waiting for Dropbox changes under %s (longpoll)", self.kw["path"] or "/")
        try:
            waiter = self._waiter(hook)
            changes, cursor, reset = await waiter.next_batch(self.cursor)
            payload = {
                "status": "success",
                "changes": changes,
                "cursor": cursor,
                "from_cursor": self.cursor,
                "cursor_time": waiter.cursor_time,
                "cursor_paths": waiter.cursor_paths,
                "reset": reset,
                "count": len(changes),
            }
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            payload = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "reset": _is_reset(exc)}
        finally:
            # One-shot: release the HTTP clients before handing the event over, so nothing is left
            # open however the triggerer (or dag.test's inline runner) disposes of this generator.
            await hook.aclose()
        yield _event(payload)


class DropboxChangeEventTrigger(BaseEventTrigger):
    """Schedule DAGs on Dropbox changes: ``Asset(..., watchers=[AssetWatcher(name, trigger=this)])``.

    Loops forever and yields one event per batch of matching changes, never on a quiet timeout. The
    payload is ``{"path", "changes" (at most ``max_changes_in_event``), "count", "truncated", "cursor",
    "reset"}``; downstream tasks read it from ``triggering_asset_events``.

    Cursor durability: on Airflow 3.3+ the cursor is kept in the asset state store of every watched asset
    under a key naming this watcher (``dropbox_cursor.<digest of connection, folder, recursion and
    filters>``, see ``state_key``) and saved every time it advances, so a triggerer restart resumes where
    it stopped, also when several assets share one watcher or one asset has several watchers
    (neither replaying nor skipping changes, except for a crash in the sub-second window between handing an
    event to the triggerer and saving the cursor). On Airflow 3.2 there is no state store: every (re)start
    begins at the latest cursor, so changes made while the triggerer was down are not reported.

    Errors never end the watcher nor produce an event: a missing folder is logged and looked for again
    every ``missing_retry_s`` (the DAG may be deployed before the folder exists), other errors that
    retrying cannot fix (credentials) every ``error_retry_s``; transient ones are retried with backoff.
    """

    missing_retry_s: float = 60.0
    error_retry_s: float = 300.0

    def __init__(
        self,
        *,
        path: str,
        dropbox_conn_id: str = "dropbox_default",
        recursive: bool = True,
        file_pattern: str | None = None,
        kinds: Sequence[str] | None = None,
        include_folders: bool = False,
        longpoll_timeout: int = LONGPOLL_MIN,
        on_cursor_reset: str = "relist",
        max_changes_in_event: int = 1000,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.kw = _common_kwargs(
            path=path,
            dropbox_conn_id=dropbox_conn_id,
            recursive=recursive,
            file_pattern=file_pattern,
            kinds=kinds,
            include_folders=include_folders,
            longpoll_timeout=longpoll_timeout,
            on_cursor_reset=on_cursor_reset,
        )
        self.max_changes_in_event = int(max_changes_in_event)
        self._waiter: _ChangeWaiter | None = None
        self._loaded: dict[str, Any] = {}
        self._seq = 0  # save counter: tells the least recently saved of several assets' cursors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_dropbox.triggers.dropbox.DropboxChangeEventTrigger",
            {**self.kw, "max_changes_in_event": self.max_changes_in_event},
        )

    def _accessors(self) -> list[Any]:
        """One state accessor per watched asset (the 3.3+ triggerer injects ``asset_state_store``).

        The triggerer hands a trigger shared by several assets one ``AssetStateStoreAccessors`` over all
        of them, whose plain ``aget``/``aset`` refuse to pick one; Airflow offers no public way to list
        its per-asset accessors, so they are read from its two mappings (absent: it is a single accessor).
        """
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        per_asset = [
            *getattr(store, "_by_name", {}).values(),
            *getattr(store, "_by_uri", {}).values(),
        ]
        return per_asset or [store]

    def state_key(self) -> str:
        """The state-store key of this watcher: one per (connection, folder key, recursion, filters).

        Two watchers on one asset (different folders or filters) never overwrite each other's cursor,
        and a changed path or filter starts afresh instead of resuming a cursor meant for another scope.
        """
        return f"{CURSOR_STATE_KEY}.{watcher_digest(self.kw)}"

    def _state_marker(self) -> dict[str, Any]:
        return {"path": path_key(self.kw["path"] or "").rstrip("/"), "recursive": self.kw["recursive"]}

    async def load_cursor(self) -> str | None:
        """The cursor every watched asset agrees on, or the least recently saved one (replay, never lose)."""
        accessors = self._accessors()
        if not accessors:
            if not AIRFLOW_V_3_3_PLUS:
                self.log.info("Airflow < 3.3 has no asset state store: watching from the latest cursor")
            return None
        found = await self._read_saved(accessors, self.state_key())
        if not found:
            # Saved by a version that used one key per asset: resumable if it names this folder.
            legacy = await self._read_saved(accessors, CURSOR_STATE_KEY)
            found = [
                s for s in legacy if {k: s.get(k) for k in ("path", "recursive")} == self._state_marker()
            ]
        if not found:
            self.log.info("No saved Dropbox cursor for this watcher; starting from the latest")
            return None
        oldest = min(found, key=lambda saved: int(saved.get("seq") or 0))
        if len({str(saved["cursor"]) for saved in found}) > 1:
            self.log.warning(
                "The watched assets hold different saved cursors; resuming from the oldest (changes since "
                "then may be reported again, none are lost)"
            )
        self._loaded = oldest
        self._seq = max(int(saved.get("seq") or 0) for saved in found)
        return str(oldest["cursor"])

    async def _read_saved(self, accessors: list[Any], key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for accessor in accessors:
            try:
                saved = await accessor.aget(key)
            except Exception as exc:
                self.log.warning("Cannot read the saved Dropbox cursor from %s (%s)", accessor, exc)
                continue
            if isinstance(saved, dict) and saved.get("cursor"):
                found.append(saved)
        return found

    async def save_cursor(self, cursor: str) -> None:
        """Save the cursor under this watcher's key through every watched asset's own accessor."""
        accessors = self._accessors()
        if not accessors:
            return
        waiter = self._waiter
        self._seq += 1
        value = {
            **self._state_marker(),
            "cursor": cursor,
            "seq": self._seq,
            "cursor_time": waiter.cursor_time if waiter else None,
            "cursor_paths": waiter.cursor_paths if waiter else None,
        }
        key = self.state_key()
        for accessor in accessors:
            try:
                await accessor.aset(key, value)
            except Exception as exc:
                self.log.warning(
                    "Cannot save the Dropbox cursor in the asset state store (%s): %s", accessor, exc
                )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DropboxAsyncHook(dropbox_conn_id=self.kw["dropbox_conn_id"])
        path = self.kw["path"]
        try:
            kw = {k: v for k, v in self.kw.items() if k != "dropbox_conn_id"}
            waiter = self._waiter = _ChangeWaiter(hook=hook, log=self.log, on_cursor=self.save_cursor, **kw)
            cursor: str | None = await self.load_cursor()
            waiter.cursor_time = self._loaded.get("cursor_time")
            waiter.cursor_paths = self._loaded.get("cursor_paths")
            if cursor is not None:
                self.log.info("Watching Dropbox %s from the saved cursor", path or "/")
            while True:
                try:
                    if cursor is None:
                        cursor = await waiter.latest_cursor()
                        await self.save_cursor(cursor)
                        self.log.info("Watching Dropbox %s from the latest cursor", path or "/")
                    await waiter.honour_pending_backoff()
                    changes, cursor, reset = await waiter.next_batch(cursor)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # A watcher must not end (the triggerer would restart it every ~2 s) nor fire: say
                    # what is wrong and look again later; the folder may be created, a token fixed.
                    if _is_reset(exc):
                        cursor = None
                    delay = self.missing_retry_s if _is_missing(exc) else self.error_retry_s
                    self.log.error(
                        "Dropbox watcher on %s cannot proceed: %s: %s; trying again in %.0f s",
                        path or "/",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                self.log.info(
                    "Dropbox %s: %d change(s)%s", path or "/", len(changes), " after reset" if reset else ""
                )
                yield _event(
                    {
                        "path": path,
                        "changes": changes[: self.max_changes_in_event],
                        "count": len(changes),
                        "truncated": len(changes) > self.max_changes_in_event,
                        "cursor": cursor,
                        "reset": reset,
                    }
                )
                # Saved only once the triggerer has the event: a restart before this replays the batch
                # (at least once) rather than losing it.
                await self.save_cursor(cursor)
        finally:
            await hook.aclose()
