"""Dropbox change sensor: wait until files under a folder change since a cursor (the old ``/delta``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.changes import (
    CURSOR_RESET_POLICIES,
    kind_lookups,
    normalize_kinds,
    reset_message,
    select_changes,
    state_at_cursor,
)
from airflow_provider_dropbox.client.errors import CursorResetError, NotAFolderError, PathNotFoundError
from airflow_provider_dropbox.hooks.dropbox import DropboxHook
from airflow_provider_dropbox.longpoll import LONGPOLL_MIN, clamp_longpoll_timeout
from airflow_provider_dropbox.operators.common import bounded_list, reject_unrendered_fields
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

CURSOR_XCOM_KEY = "dropbox_cursor"
START_FROM = ("latest", "beginning")
# Reschedule mode: runs of one sensor task whose cursor progress is kept at once (one Variable per task).
MAX_RESCHEDULE_RUNS = 16


class DropboxChangeSensor(BaseSensorOperator):
    """
    Wait for files under a Dropbox folder to be added, modified or deleted; return what changed.

    The result (XCom ``return_value``) is ``{"path", "count", "by_kind", "changes": [{path, kind,
    kind_exact, type, rev, size, content_hash, ...}], "truncated", "rest", "cursor", "from_cursor",
    "reset"}``: at most 100 changes are listed (``truncated`` says how many more, ``rest`` where they are:
    ``DropboxHook.list_changes(from_cursor)``), every one with ``full_list=True``. The new cursor is also
    pushed as XCom
    ``dropbox_cursor`` (``{"cursor", "watch", "cursor_time", "cursor_paths"}``: the last two tell added from
    modified relative to the cursor, see ``changes.py``), and the next run of the same task
    continues from it when it watches the same folder, so every change is reported once across DAG runs (at
    least once if a run fails after the sensor succeeded).

    Where the cursor comes from: ``cursor`` when given (templated); else the ``dropbox_cursor`` XCom of
    the latest earlier successful run of this task; else, on the very first run, ``start_from="latest"``
    (only changes from now on) or ``start_from="beginning"`` (every existing entry is reported as
    ``added``, so the first run succeeds at once when the folder is not empty).

    Modes: ``poke`` and ``reschedule`` call ``list_folder/continue`` every ``poke_interval``; in
    reschedule mode the cursor reached so far is kept in an Airflow Variable between pokes (so a first-run
    cursor survives and no change is lost between reschedules) and deleted on success.
    ``deferrable=True`` (default ``[operators] default_deferrable``) pokes once, then waits in the
    triggerer on ``list_folder/longpoll`` (honouring its ``backoff``) and reacts within about a second.

    Cursor reset (Dropbox expired or rebuilt the cursor; 409 ``reset``), per ``on_cursor_reset``:
    ``relist`` (default) lists the folder again and reports every current entry as ``changed`` with
    ``reset: True``, so no change is lost; ``restart`` continues from the latest cursor (changes made
    meanwhile are skipped); ``fail`` fails the task with a message saying so.

    :param path: Dropbox folder to watch; ``""`` or ``"/"`` for everything the app sees. Templated.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :param cursor: Explicit cursor to start from (overrides the previous run's). Templated.
    :param recursive: Watch subfolders too (default True).
    :param file_pattern: fnmatch glob on the path relative to ``path`` or on the name, case-insensitive;
        changes that don't match are skipped (the sensor keeps waiting). Templated.
    :param kinds: Which changes count: any of ``added``, ``modified``, ``deleted`` (default all). Added vs
        modified is relative to the cursor; with only one of them a changed file may cost a
        ``files/list_revisions`` call, and a file whose kind cannot be told passes as ``changed``.
    :param include_folders: Report folder entries too (default: files and deletions only).
    :param start_from: First-run cursor: ``latest`` or ``beginning``.
    :param use_previous_cursor: Continue from the previous successful run's cursor (default True).
    :param on_cursor_reset: ``relist``, ``restart`` or ``fail``.
    :param longpoll_timeout: Seconds per longpoll in deferrable mode (30..480).
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param full_list: List every change in the result instead of the first ``XCOM_FILE_LIMIT`` (100).
    """

    template_fields: Sequence[str] = ("path", "dropbox_conn_id", "cursor", "file_pattern")
    ui_color = "#0061fe"

    def __init__(
        self,
        *,
        path: str,
        dropbox_conn_id: str = DropboxHook.default_conn_name,
        cursor: str | None = None,
        recursive: bool = True,
        file_pattern: str | None = None,
        kinds: Sequence[str] | str | None = None,
        include_folders: bool = False,
        start_from: str = "latest",
        use_previous_cursor: bool = True,
        on_cursor_reset: str = "relist",
        longpoll_timeout: int = LONGPOLL_MIN,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        full_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if start_from not in START_FROM:
            raise ValueError(f"start_from must be 'latest' or 'beginning', not {start_from!r}")
        if on_cursor_reset not in CURSOR_RESET_POLICIES:
            raise ValueError(
                f"on_cursor_reset must be one of {', '.join(CURSOR_RESET_POLICIES)}, not {on_cursor_reset!r}"
            )
        self.path = path
        self.dropbox_conn_id = dropbox_conn_id
        self.cursor = cursor
        self.recursive = recursive
        self.file_pattern = file_pattern
        self.kinds = normalize_kinds(kinds)
        self.include_folders = include_folders
        self.start_from = start_from
        self.use_previous_cursor = use_previous_cursor
        self.on_cursor_reset = on_cursor_reset
        self.longpoll_timeout = clamp_longpoll_timeout(longpoll_timeout)
        self.deferrable = deferrable
        self.full_list = full_list
        self._cursor: str | None = None
        # What tells added from modified relative to the cursor (``changes.py``): the server time
        # it was taken and the state of the paths of the batch that produced it.
        self._cursor_time: str | None = None
        self._cursor_paths: dict[str, str | None] | None = None
        self._ready: dict[str, Any] | None = None
        self._hook: DropboxHook | None = None

    # -- helpers --------------------------------------------------------------------------------------------

    @property
    def hook(self) -> DropboxHook:
        if self._hook is None:
            self._hook = DropboxHook(dropbox_conn_id=self.dropbox_conn_id)
        return self._hook

    @property
    def _root(self) -> str:
        return "" if self.path in ("", "/") else self.path

    def _variable_key(self, context: Context) -> str:
        """One Variable per sensor task (not per run): reused by every run, so failed runs add nothing."""
        ti = context["ti"]
        raw = f"{ti.dag_id}|{ti.task_id}|{ti.map_index}"
        return f"dropbox_sensor_cursor_{hashlib.sha256(raw.encode()).hexdigest()[:32]}"

    def _saved_runs(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import Variable

        saved = Variable.get(self._variable_key(context), default=None)
        try:
            value = json.loads(str(saved)) if saved else None
        except ValueError:
            value = None
        runs = value.get("runs") if isinstance(value, dict) else None
        return dict(runs) if isinstance(runs, dict) else {}

    def _store_runs(self, context: Context, runs: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        key = self._variable_key(context)
        if runs:
            Variable.set(key, json.dumps({"runs": runs}))
            return
        try:
            Variable.delete(key)
        except Exception as exc:
            self.log.debug("Could not delete the reschedule cursor variable: %s", exc)

    def _result(
        self, changes: list[dict[str, Any]], cursor: str, reset: bool, from_cursor: str | None
    ) -> dict[str, Any]:
        """Counts, a bounded list of changes and where the rest are (all of them with ``full_list``)."""
        by_kind: dict[str, int] = {}
        for change in changes:
            by_kind[change["kind"]] = by_kind.get(change["kind"], 0) + 1
        if from_cursor:
            rest = (
                "they are the matching entries of DropboxHook.list_changes(from_cursor) under "
                f"{self.path or '/'}"
            )
        else:
            rest = f"they are the matching entries of a listing of {self.path or '/'}"
        return {
            "path": self.path,
            **bounded_list(
                changes, key="changes", noun="change(s)", rest=rest, full_list=self.full_list, by_kind=by_kind
            ),
            "cursor": cursor,
            "from_cursor": from_cursor,
            "reset": reset,
        }

    def _missing_folder(self, exc: Exception) -> AirflowException:
        return AirflowException(
            f"Cannot watch Dropbox folder '{self.path}': it does not exist or is not a folder ({exc}). "
            "Create it first or fix `path`."
        )

    def _initial_cursor(self, context: Context) -> str | None:
        """This run's progress (reschedule) > explicit > previous successful run > first run.

        ``None`` means "list from the beginning".
        """
        if self.reschedule:
            saved = self._saved_runs(context).get(context["ti"].run_id)
            if isinstance(saved, dict) and saved.get("cursor") and saved.get("watch") == self._watch_marker():
                self._cursor_time, self._cursor_paths = saved.get("cursor_time"), saved.get("cursor_paths")
                return str(saved["cursor"])
        if self.cursor:
            self.log.info("Starting from the cursor given to the sensor")
            self._cursor_time = self._cursor_paths = None  # unknown: kinds not exact for the first batch
            return self.cursor
        if self.use_previous_cursor:
            # With ``map_indexes`` the Task SDK returns the newest value; without it, every prior run's
            # value as a list once there are several (the cursor would then never be reused).
            previous = context["ti"].xcom_pull(
                task_ids=self.task_id,
                key=CURSOR_XCOM_KEY,
                include_prior_dates=True,
                map_indexes=context["ti"].map_index,
            )
            if isinstance(previous, dict) and previous.get("cursor"):
                if previous.get("watch") == self._watch_marker():
                    self._cursor_time = previous.get("cursor_time")
                    self._cursor_paths = previous.get("cursor_paths")
                    self.log.info(
                        "Continuing from the cursor of the previous successful run (taken at %s)",
                        self._cursor_time or "an unknown time",
                    )
                    return str(previous["cursor"])
                self.log.info("The previous run watched another folder; not reusing its cursor")
        if self.start_from == "beginning":
            return None
        try:
            cursor, cursor_time = self._latest_cursor()
        except Exception as exc:
            if isinstance(exc, (PathNotFoundError, NotAFolderError)):
                raise self._missing_folder(exc) from exc
            raise
        self.log.info("First run: watching %s for changes from now on", self.path or "/")
        self._remember(context, cursor, cursor_time)
        return cursor

    def _latest_cursor(self) -> tuple[str, str | None]:
        return self.hook.latest_cursor_at(self._root, recursive=self.recursive)

    def _remember(
        self,
        context: Context,
        cursor: str,
        cursor_time: str | None,
        cursor_paths: dict[str, str | None] | None = None,
    ) -> None:
        """Reschedule mode starts each poke afresh: keep the advanced cursor in a Variable meanwhile."""
        self._cursor, self._cursor_time, self._cursor_paths = cursor, cursor_time, cursor_paths
        if self.reschedule:
            runs = self._saved_runs(context)
            run_id = context["ti"].run_id
            runs.pop(run_id, None)
            runs[run_id] = {
                "cursor": cursor,
                "watch": self._watch_marker(),
                "cursor_time": cursor_time,
                "cursor_paths": cursor_paths,
            }
            # Runs that ended without ``_forget`` (killed, marked failed or skipped by hand) leave an
            # entry; the oldest go once more runs than ``MAX_RESCHEDULE_RUNS`` wait at the same time.
            while len(runs) > MAX_RESCHEDULE_RUNS:
                runs.pop(next(iter(runs)))
            self._store_runs(context, runs)

    def _forget(self, context: Context) -> None:
        """Drop this run's entry (success, timeout, failure); the Variable goes with its last entry."""
        if self.reschedule:
            try:
                runs = self._saved_runs(context)
                if runs.pop(context["ti"].run_id, None) is not None or not runs:
                    self._store_runs(context, runs)
            except Exception as exc:
                self.log.warning("Could not remove this run's reschedule cursor: %s", exc)

    def _relist(self, *, from_beginning: bool) -> tuple[list[dict[str, Any]], str, str | None]:
        """Every entry now: ``added`` when watching from the beginning, ``changed`` after a reset."""
        try:
            entries, cursor, cursor_time = self.hook.snapshot_at(self._root, recursive=self.recursive)
        except Exception as exc:
            if isinstance(exc, (PathNotFoundError, NotAFolderError)):
                raise self._missing_folder(exc) from exc
            raise
        selected = select_changes(
            entries,
            root=self._root,
            file_pattern=self.file_pattern,
            kinds=self.kinds,
            include_folders=self.include_folders,
            exact_kinds=False,
            from_empty=from_beginning,
        )
        return selected, cursor, cursor_time

    def _check(self, context: Context) -> dict[str, Any] | None:
        """One look at Dropbox; the result dict when matching changes arrived, else None."""
        if self._ready is not None:
            return self._ready
        if self._cursor is None:
            changes, cursor, cursor_time = self._relist(from_beginning=True)
            self.log.info("Listed %s from the beginning: %d matching entries", self.path or "/", len(changes))
            self._remember(context, cursor, cursor_time)
            if changes:
                self._ready = self._result(changes, cursor, reset=False, from_cursor=None)
            return self._ready
        from_cursor = self._cursor
        try:
            entries, cursor, taken_at = self.hook.list_changes_at(self._cursor)
            # Nothing in scope changed since the old cursor: what was known at it stays true (fewer ties).
            cursor_time = taken_at if entries or self._cursor_time is None else self._cursor_time
            cursor_paths = state_at_cursor(entries) if entries else self._cursor_paths
        except Exception as exc:
            if not isinstance(exc, CursorResetError):
                raise
            msg = reset_message(self.path, self.on_cursor_reset)
            self.log.warning("%s", msg)
            if self.on_cursor_reset == "fail":
                raise AirflowException(msg) from exc
            if self.on_cursor_reset == "restart":
                self._remember(context, *self._latest_cursor())
                return None
            changes, cursor, cursor_time = self._relist(from_beginning=False)
            self._remember(context, cursor, cursor_time)
            if changes:
                self._ready = self._result(changes, cursor, reset=True, from_cursor=None)
            return self._ready
        filters: dict[str, Any] = {
            "root": self._root,
            "file_pattern": self.file_pattern,
            "kinds": self.kinds,
            "include_folders": self.include_folders,
        }
        lookups = kind_lookups(entries, cursor_paths=self._cursor_paths, **filters)
        revisions = self.hook.kind_revisions(lookups) if lookups else {}
        changes = select_changes(
            entries,
            revisions=revisions,
            cursor_time=self._cursor_time,
            cursor_paths=self._cursor_paths,
            **filters,
        )
        self.log.info(
            "Dropbox %s: %d entr%s since the cursor, %d matching",
            self.path or "/",
            len(entries),
            "y" if len(entries) == 1 else "ies",
            len(changes),
        )
        self._remember(context, cursor, cursor_time, cursor_paths)
        if changes:
            self._ready = self._result(changes, cursor, reset=False, from_cursor=from_cursor)
        return self._ready

    def _watch_marker(self) -> str:
        """What a cursor is valid for; a cursor saved for another folder or recursion is not reused."""
        return f"{path_key(self._root or '/')}|recursive={self.recursive}"

    def _finish(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        context["ti"].xcom_push(
            key=CURSOR_XCOM_KEY,
            value={
                "cursor": result["cursor"],
                "watch": self._watch_marker(),
                "cursor_time": self._cursor_time,
                "cursor_paths": self._cursor_paths,
            },
        )
        self._forget(context)
        for change in result["changes"][:20]:
            self.log.info("  %s %s", change["kind"], change["path"])
        if result["count"] > 20:
            self.log.info("  ... and %d more", result["count"] - 20)
        return result

    # -- operator API ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        reject_unrendered_fields(self)  # a literal '{{ ds }}' folder would be watched forever
        self._ready = None
        self._cursor = self._initial_cursor(context)
        if not self.deferrable:
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowFailException, AirflowSkipException):
                # Final for this run (no retry resumes it): its reschedule cursor goes now. Other errors
                # keep it for the retry; the Variable is bounded either way (``MAX_RESCHEDULE_RUNS``).
                self._forget(context)
                raise
        result = self._check(context)
        if result is not None:
            return self._finish(context, result)
        assert self._cursor is not None
        self.log.info("No matching changes yet; deferring to the triggerer (longpoll)")
        self.defer(
            trigger=DropboxChangeTrigger(
                path=self._root,
                cursor=self._cursor,
                cursor_time=self._cursor_time,
                cursor_paths=self._cursor_paths,
                dropbox_conn_id=self.dropbox_conn_id,
                recursive=self.recursive,
                file_pattern=self.file_pattern,
                kinds=list(self.kinds),
                include_folders=self.include_folders,
                longpoll_timeout=self.longpoll_timeout,
                on_cursor_reset=self.on_cursor_reset,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self._cursor is None and self._ready is None and self.start_from != "beginning":
            # BaseSensorOperator may call poke without execute (e.g. tests); resolve lazily.
            self._cursor = self._initial_cursor(context)
        result = self._check(context)
        if result is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, result))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: hand on its changes and new cursor."""
        if not event:
            raise AirflowException("Dropbox change trigger returned no event")
        if event.get("status") != "success":
            message = event.get("message", "unknown error")
            if event.get("reset"):
                message = f"{reset_message(self.path, 'fail')} ({message})"
            raise AirflowException(f"Waiting for Dropbox changes under '{self.path}' failed: {message}")
        self._cursor_time = event.get("cursor_time")
        self._cursor_paths = event.get("cursor_paths")
        result = self._result(
            list(event.get("changes") or []),
            str(event["cursor"]),
            bool(event.get("reset")),
            from_cursor=None if event.get("reset") else event.get("from_cursor"),
        )
        return self._finish(context, result)
