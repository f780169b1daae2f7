"""Two-way sync of a Dropbox folder and a local directory: a thin operator over the plain ``sync`` library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dropbox.operators.base import DropboxBaseOperator

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        )
        self._lineage(inputs=[self.dropbox_path], outputs=[self.dropbox_path])
        return report
