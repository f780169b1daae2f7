"""Mirror a Dropbox folder into a local directory: a thin operator over the plain ``sync`` library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dropbox.operators.base import DropboxBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DropboxMirrorOperator(DropboxBaseOperator):
    """
    Keep ``local_path`` a verified, one-way copy of the Dropbox folder ``dropbox_path``.

    The first run lists and downloads everything; later runs continue from the cursor stored in
    ``local_path`` and touch only what changed. Nothing is deleted when anything failed, when the plan
    would delete more than ``max_deletes``, or when Dropbox suddenly reports an empty folder. Returns the
    run report (counts, bytes, duration, errors) through XCom. See docs/mirror.md.

    :param dropbox_path: Dropbox folder to mirror (``/`` for the whole app folder). Templated.
    :param local_path: Local destination directory, absolute (put it on a shared volume for Celery/K8s).
        Templated.
    :param delete_stale: Delete local files the mirror created whose Dropbox copy is gone.
    :param dry_run: Plan only: return the plan, change nothing.
    :param max_deletes: Abort before deleting more than this count, or percent such as ``"10%"``.
    :param allow_empty_remote: Allow an empty Dropbox folder to empty the destination, and a full listing
        (first run, ``full_rescan``, cursor reset) to delete more than half of its files.
    :param parallelism: Downloads at once.
    :param exclude: fnmatch patterns (relative paths) never mirrored.
    :param adopt_local: Take over identical local files the mirror did not create.
    :param conflict: A locally modified file about to be replaced: ``copy`` keeps a conflicted copy,
        ``skip`` leaves it and reports it.
    :param full_rescan: Ignore the stored cursor and reconcile against a full listing (also rebuilds an
        unreadable mirror index, adopting files whose content matches).
    :param zip_small_files: Fetch a folder's many small new files as one zip (one request instead of one
        per file; every file still verified by its content hash). ``False``: one request per file.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    """

    template_fields: Sequence[str] = ("dropbox_path", "local_path", "max_deletes", "dropbox_conn_id")
    _local_path_fields = ("local_path",)

    def __init__(
        self,
        *,
        dropbox_path: str,
        local_path: str,
        delete_stale: bool = True,
        dry_run: bool = False,
        max_deletes: int | str | None = None,
        allow_empty_remote: bool = False,
        parallelism: int = 8,
        exclude: Sequence[str] = (),
        adopt_local: bool = False,
        conflict: str = "copy",
        full_rescan: bool = False,
        zip_small_files: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dropbox_path = dropbox_path
        self.local_path = local_path
        self.delete_stale = delete_stale
        self.mirror_dry_run = dry_run  # BaseOperator.dry_run is a method
        self.max_deletes = max_deletes
        self.allow_empty_remote = allow_empty_remote
        self.parallelism = parallelism
        self.exclude = tuple(exclude)
        self.adopt_local = adopt_local
        self.conflict = conflict
        self.full_rescan = full_rescan
        self.zip_small_files = zip_small_files
        self._declare_assets(inlets=[dropbox_path])

    def _hook_kwargs(self) -> dict[str, Any]:
        return {"parallelism": self.parallelism}

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        report = self.hook.sync_to_local_dir(
            self.dropbox_path,
            self.local_path,
            delete_stale=self.delete_stale,
            dry_run=self.mirror_dry_run,
            max_deletes=self.max_deletes,
            allow_empty_remote=self.allow_empty_remote,
            parallelism=self.parallelism,
            exclude=self.exclude,
            adopt_local=self.adopt_local,
            conflict=self.conflict,
            full_rescan=self.full_rescan,
            zip_small_files=self.zip_small_files,
        )
        self._lineage(inputs=[self.dropbox_path])
        return report
