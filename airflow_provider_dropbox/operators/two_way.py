"""Two-way sync of a Dropbox folder and a local directory: a thin operator over the plain ``sync`` library."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dropbox.operators.base import DropboxBaseOperator
from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DropboxTwoWaySyncOperator(DropboxBaseOperator):
    """
    Keep ``local_path`` and the Dropbox folder ``dropbox_path`` equal, propagating creates, edits, deletes
    and local renames both ways. An edit always wins over a delete; a file edited on both sides keeps both
    versions (the local one as ``name (conflicted copy YYYY-MM-DD).ext``) unless ``conflict`` says
    otherwise. The first run only merges. Returns the run report through XCom. See docs/two-way-sync.md.

    :param dropbox_path: Dropbox folder (``/`` for the whole app folder). Templated.
    :param local_path: Local directory, absolute (a shared volume for Celery/K8s). Templated.
    :param conflict: Edited on both sides: ``keep_both`` (default), or the winner ``newer``, ``local`` or
        ``remote`` (the other version is then replaced).
    :param dry_run: Plan only: return the two-sided plan, change nothing.
    :param max_deletes: Abort before deleting more than this count (or percent, ``"10%"``) on a side.
    :param allow_empty: Let a side that looks emptied (no files left) propagate its deletes.
    :param exclude: fnmatch patterns (relative paths) never synced.
    :param local_scan: ``"walk"`` (default): every run walks the whole local folder (stat only).
        ``"watcher"``: a run made by asset events looks only at the local paths that the
        ``LocalFolderChangeTrigger`` watching ``local_path`` (in this DAG's schedule) named in its events,
        and at what changed on Dropbox, so its cost follows the changes, not the tree. A run made by the
        schedule or by hand, or whose events could not name every path, walks.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    """

    template_fields: Sequence[str] = ("dropbox_path", "local_path", "max_deletes", "dropbox_conn_id")
    _local_path_fields = ("local_path",)

    def __init__(
        self,
        *,
        dropbox_path: str,
        local_path: str,
        conflict: str = "keep_both",
        dry_run: bool = False,
        max_deletes: int | str | None = None,
        allow_empty: bool = False,
        exclude: Sequence[str] = (),
        local_scan: str = "walk",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if local_scan not in ("walk", "watcher"):
            raise ValueError(f"local_scan={local_scan!r}: use 'walk' or 'watcher'")
        self.local_scan = local_scan
        self.dropbox_path = dropbox_path
        self.local_path = local_path
        self.conflict = conflict
        self.sync_dry_run = dry_run  # BaseOperator.dry_run is a method
        self.max_deletes = max_deletes
        self.allow_empty = allow_empty
        self.exclude = tuple(exclude)
        self._declare_assets(inlets=[dropbox_path], outlets=[dropbox_path])

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        report = self.hook.sync_two_way(
            self.dropbox_path,
            self.local_path,
            conflict=self.conflict,
            dry_run=self.sync_dry_run,
            max_deletes=self.max_deletes,
            allow_empty=self.allow_empty,
            exclude=self.exclude,
            local_changes=self._watched_changes(context),
        )
        self._lineage(inputs=[self.dropbox_path], outputs=[self.dropbox_path])
        return report

    def _watched_changes(self, context: Context) -> list[str] | None:
        """The local paths this run's watcher events named, or None: walk the whole folder."""
        if self.local_scan != "watcher":
            return None
        here = os.path.realpath(self.local_path)
        watched = any(
            isinstance(w.trigger, LocalFolderChangeTrigger) and os.path.realpath(w.trigger.path) == here
            for asset in self._scheduling_assets()
            for w in getattr(asset, "watchers", None) or ()
        )
        run_type = getattr(context.get("dag_run"), "run_type", None)
        if not watched or getattr(run_type, "value", run_type) != "asset_triggered":
            if not watched:
                self.log.warning(
                    "local_scan='watcher' but no LocalFolderChangeTrigger in this DAG's schedule watches %s; "
                    "walking the whole folder",
                    self.local_path,
                )
            return None
        paths: list[str] = []
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                payload = (getattr(event, "extra", None) or {}).get("payload")
                if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
                    continue
                if os.path.realpath(payload["path"]) != here:
                    continue
                if payload.get("truncated"):
                    return None  # more changes than one event names
                paths.extend([*payload.get("changed", ()), *payload.get("deleted", ())])
        self.log.info(
            "Looking at %d local path(s) the folder watcher named, and at Dropbox's changes", len(paths)
        )
        return paths
