"""Dropbox operators: upload, chunked upload, download, delete, create folder, move, copy, shared link.

All of them take keyword-only arguments, template every path, build the hook in ``execute`` (never at
DAG parse time) and declare ``dropbox://<conn_id>/<path>`` inlets/outlets when the paths are static, so
asset scheduling and lineage work; templated paths are reported through hook lineage at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_dropbox.client.errors import (
    LocalConflictError,
    LocalSourceMissingError,
    PathNotFoundError,
)
from airflow_provider_dropbox.hooks.dropbox import DropboxHook
from airflow_provider_dropbox.operators.base import (
    XCOM_FILE_LIMIT,
    DropboxBaseOperator,
    DropboxInputPathOperator,
    DropboxPermanentError,
    UnrenderedTemplateError,
    file_summary,
    reject_unrendered_fields,
)

__all__ = [
    "XCOM_FILE_LIMIT",
    "DropboxBaseOperator",
    "DropboxChunkedUploadOperator",
    "DropboxCopyOperator",
    "DropboxCreateFolderOperator",
    "DropboxCreateSharedLinkOperator",
    "DropboxDeleteOperator",
    "DropboxDownloadOperator",
    "DropboxMoveOperator",
    "DropboxPermanentError",
    "DropboxUploadOperator",
    "UnrenderedTemplateError",
    "file_summary",
    "reject_unrendered_fields",
]

if TYPE_CHECKING:
    from airflow.sdk import Context


OVERWRITE_POLICIES = DropboxHook.OVERWRITE_POLICIES


MiB = 1024 * 1024
WRITE_MODES = ("add", "overwrite", "update")


class DropboxUploadOperator(DropboxBaseOperator):
    """
    Upload a local file, a local folder, or the files a local glob matches, to Dropbox.

    Small files go in one request, large ones (above ``single_request_limit``) through an upload
    session of ``chunk_size`` chunks, ``parallelism`` at a time. Files whose Dropbox content hash already
    equals the local one are not sent again (``skip_identical``). Returns a summary (``count``,
    ``uploaded``, ``skipped_identical``, ``bytes``, the metadata of the first 100 files in order, how many
    more and where they are); ``full_list=True`` returns the metadata of every file instead.

    ``local_path`` may be a file, a folder (uploaded with its layout under ``remote_path``, recursive
    by default, filtered by ``pattern``), or a glob like ``/data/*.csv`` (each match goes into the
    ``remote_path`` folder). A glob or pattern that matches nothing uploads nothing: the task logs a
    warning and returns a summary with ``count`` 0, or fails when ``fail_on_empty=True``. For a single
    file, a ``remote_path``
    ending in ``/`` means "into this folder, same name". A folder or glob upload leaves out what
    ``exclude`` matches and skips, logging them, names Dropbox never syncs (``desktop.ini``,
    ``.DS_Store``, ``thumbs.db``, ``Icon\\r``, ``.dropbox``, ``.dropbox.attr``).

    :param local_path: Local file, folder or glob. Templated. Absolute (a relative path would depend on
        the worker's cwd); not blank, not ``/`` and not a glob starting at the root (``/**``, ``/*/x``):
        those would read the whole file system.
    :param remote_path: Dropbox file path (single file) or folder. Templated.
    :param pattern: fnmatch glob on the path relative to a local folder (``*`` crosses ``/``). Templated.
    :param exclude: Glob(s) to leave out of a folder or glob upload, matched case-insensitively on the
        path relative to the folder (or to the glob's fixed start), on each of its folders and on each
        name: ``["*.tmp", ".git", "cache/*"]``. Templated.
    :param skip_disallowed_names: Skip, with a log line, files Dropbox never syncs (default); False fails
        the task before any request instead. A single file named explicitly is always refused.
    :param recursive: Include subfolders of a local folder.
    :param mode: ``add`` (fail or autorename on conflict), ``overwrite`` or ``update`` (only if the
        Dropbox file still has revision ``rev``; single files only).
    :param rev: Revision for ``mode="update"``. Templated.
    :param autorename: With ``add``/``update``, pick a free name instead of failing on a conflict.
    :param chunk_size: Upload-session chunk in bytes, a multiple of 4 MiB (default: the client's).
    :param parallelism: Parallel chunks of one file, and files at once for a folder.
    :param single_request_limit: Files up to this size go in one request (default 150 MiB).
    :param skip_identical: Skip files whose content hash already matches on Dropbox.
    :param fail_on_empty: Fail when nothing matches instead of returning an empty result.
    :param full_list: Return every file's metadata (a list) instead of the bounded summary.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    """

    template_fields: Sequence[str] = (
        "local_path",
        "remote_path",
        "pattern",
        "exclude",
        "rev",
        "dropbox_conn_id",
    )
    _local_path_fields = ("local_path",)

    _force_session = False

    def __init__(
        self,
        *,
        local_path: str,
        remote_path: str,
        pattern: str | None = None,
        exclude: str | Sequence[str] | None = None,
        skip_disallowed_names: bool = True,
        recursive: bool = True,
        mode: str = "add",
        rev: str | None = None,
        autorename: bool = False,
        chunk_size: int | None = None,
        parallelism: int | None = None,
        single_request_limit: int | None = None,
        skip_identical: bool = True,
        fail_on_empty: bool = False,
        full_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.full_list = full_list
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {', '.join(WRITE_MODES)}, not {mode!r}")
        if mode == "update" and not rev:
            raise ValueError("mode='update' needs rev=<the revision you expect Dropbox to have>")
        if chunk_size is not None and (chunk_size <= 0 or chunk_size % (4 * MiB)):
            raise ValueError(f"chunk_size must be a positive multiple of 4 MiB (4194304), got {chunk_size}")
        if parallelism is not None and parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {parallelism}")
        if exclude is not None and not (
            isinstance(exclude, str)
            or (isinstance(exclude, (list, tuple)) and all(isinstance(p, str) for p in exclude))
        ):
            raise ValueError(f"exclude must be a glob or a list of globs (strings), got {exclude!r}")
        self.local_path = local_path
        self.remote_path = remote_path
        self.pattern = pattern
        self.exclude = exclude
        self.skip_disallowed_names = skip_disallowed_names
        self.recursive = recursive
        self.mode = mode
        self.rev = rev
        self.autorename = autorename
        self.chunk_size = chunk_size
        self.parallelism = parallelism
        self.single_request_limit = single_request_limit
        self.skip_identical = skip_identical
        self.fail_on_empty = fail_on_empty
        self._declare_assets(outlets=[remote_path.rstrip("/") or "/"] if isinstance(remote_path, str) else [])

    def _hook_kwargs(self) -> dict[str, Any]:
        return {"parallelism": self.parallelism} if self.parallelism else {}

    def _write_mode(self) -> str | dict[str, str]:
        return {"update": str(self.rev)} if self.mode == "update" else self.mode

    def execute(self, context: Context) -> dict[str, Any] | list[Any]:
        self._check_inputs()
        try:
            pairs = self.hook.plan_upload(
                str(self.local_path),
                str(self.remote_path),
                pattern=str(self.pattern) if self.pattern else None,
                exclude=self.exclude or None,
                skip_disallowed_names=self.skip_disallowed_names,
                recursive=self.recursive,
            )
        except LocalSourceMissingError as exc:  # may appear later (an upstream task): retryable
            raise AirflowException(str(exc)) from exc
        if not pairs:
            message = f"Nothing to upload: '{self.local_path}'"
            if self.pattern:
                message += f" with pattern '{self.pattern}'"
            message += " matched no files"
            if self.fail_on_empty:
                raise AirflowException(message)
            self.log.warning("%s", message)
            return self._result([], uploaded=0, skipped=0)
        if self.mode == "update" and len(pairs) > 1:
            raise AirflowFailException(  # the arguments, not the moment, are wrong: no retry
                "mode='update' (by revision) applies to a single file, not a folder or glob"
            )
        if len(pairs) > 1:
            self.log.info("Uploading %d files to Dropbox %s", len(pairs), self.remote_path)
        done = self.hook.upload_pairs(
            pairs,
            mode=self._write_mode(),
            autorename=self.autorename,
            chunk_size=self.chunk_size,
            parallelism=self.parallelism,
            single_request_limit=0 if self._force_session else self.single_request_limit,
            skip_identical=self.skip_identical and self.mode != "update",
        )
        self._lineage(outputs=[remote for _, remote in pairs][:100])
        self.log.info(
            "Uploaded %d file(s), skipped %d identical", done["uploaded"], done["skipped_identical"]
        )
        return self._result(done["files"], uploaded=done["uploaded"], skipped=done["skipped_identical"])

    def _result(
        self, metas: list[dict[str, Any]], *, uploaded: int, skipped: int
    ) -> dict[str, Any] | list[Any]:
        return file_summary(
            metas,
            where=f"Dropbox {self.remote_path}",
            full_list=self.full_list,
            uploaded=uploaded,
            skipped_identical=skipped,
            bytes=sum(int(m.get("size") or 0) for m in metas),
            remote_path=str(self.remote_path),
        )


class DropboxChunkedUploadOperator(DropboxUploadOperator):
    """
    Upload very large files through a Dropbox upload session, always, with explicit chunking.

    Same arguments and result as :class:`DropboxUploadOperator`, but every file goes through
    ``upload_session/start`` + ``append_v2`` + ``finish`` in ``chunk_size`` chunks (default 32 MiB, a
    multiple of 4 MiB), ``parallelism`` chunks at a time (concurrent session), whatever its size. Memory
    stays bounded by ``chunk_size * parallelism``; a failed chunk is retried alone.
    """

    _force_session = True

    def __init__(self, *, chunk_size: int = 32 * MiB, parallelism: int = 4, **kwargs: Any) -> None:
        super().__init__(chunk_size=chunk_size, parallelism=parallelism, **kwargs)


class DropboxDownloadOperator(DropboxBaseOperator):
    """
    Download a Dropbox file, or a folder's files (recursive, ``pattern`` glob), to a local path.

    Every file is verified against its Dropbox content hash and moved into place atomically, so readers
    never see a partial file. Returns the local paths of the files this run wrote.

    Overwrite policy for files that already exist locally: ``if_changed`` (default) replaces them only
    when their content differs (identical files are skipped); ``never`` keeps them; ``error`` fails the
    task before writing anything if any would be replaced by different content. A pattern that matches
    nothing downloads nothing: a warning and a summary with ``count`` 0, or a failure with
    ``fail_on_empty=True``.

    :param remote_path: Dropbox file or folder. Templated.
    :param local_path: Local file (for a file) or folder; an existing folder or a path ending in the
        separator receives a file under its own name. Templated. Absolute, not blank and not ``/``
        (refused before any request: a relative path would land in the worker's arbitrary cwd).
    :param pattern: fnmatch glob on the path relative to ``remote_path`` (folders). Templated.
    :param recursive: Include subfolders.
    :param overwrite: ``if_changed``, ``never`` or ``error`` (``True``/``False`` mean if_changed/never).
    :param parallelism: Files (or ranges of one large file) fetched at once.
    :param fail_on_empty: Fail when nothing matches.
    :param full_list: Return every local path written (a list) instead of the bounded summary.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    """

    template_fields: Sequence[str] = ("remote_path", "local_path", "pattern", "dropbox_conn_id")
    _local_path_fields = ("local_path",)

    def __init__(
        self,
        *,
        remote_path: str,
        local_path: str,
        pattern: str | None = None,
        recursive: bool = True,
        overwrite: str | bool = "if_changed",
        parallelism: int | None = None,
        fail_on_empty: bool = False,
        full_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.full_list = full_list
        if overwrite is True:
            overwrite = "if_changed"
        elif overwrite is False:
            overwrite = "never"
        if overwrite not in OVERWRITE_POLICIES:
            raise ValueError(f"overwrite must be one of {', '.join(OVERWRITE_POLICIES)}, not {overwrite!r}")
        self.remote_path = remote_path
        self.local_path = local_path
        self.pattern = pattern
        self.recursive = recursive
        self.overwrite = overwrite
        self.parallelism = parallelism
        self.fail_on_empty = fail_on_empty
        self._declare_assets(inlets=[remote_path])

    def _hook_kwargs(self) -> dict[str, Any]:
        return {"parallelism": self.parallelism} if self.parallelism else {}

    def execute(self, context: Context) -> dict[str, Any] | list[Any]:
        self._check_inputs()
        try:
            meta = self.hook.get_metadata(str(self.remote_path))
        except Exception as exc:
            if isinstance(exc, PathNotFoundError):
                raise AirflowException(f"Dropbox path '{self.remote_path}' does not exist: {exc}") from exc
            raise
        self._lineage(inputs=[str(self.remote_path)])
        try:
            written = self.hook.download(
                str(self.remote_path),
                str(self.local_path),
                recursive=self.recursive,
                pattern=self.pattern,
                overwrite=self.overwrite,
                parallelism=self.parallelism,
                metadata=meta,
            )
        except LocalConflictError as exc:  # someone may move the local files away: retryable
            raise AirflowException(str(exc)) from exc
        if meta.get(".tag", "file") != "file" and not written:
            message = f"Nothing downloaded from Dropbox '{self.remote_path}'"
            message += f" matching '{self.pattern}'" if self.pattern else ""
            message += " (no files, or all already up to date)"
            if self.fail_on_empty:
                raise AirflowException(message)
            self.log.warning("%s", message)
        self.log.info("Downloaded %d file(s) to %s", len(written), self.local_path)
        return file_summary(
            [str(p) for p in written],
            where=f"local {self.local_path}",
            full_list=self.full_list,
            local_path=str(self.local_path),
        )


class DropboxDeleteOperator(DropboxBaseOperator):
    """
    Delete Dropbox files or folders (a folder goes with its contents).

    :param path: One Dropbox path or a list. Templated.
    :param missing_ok: Succeed when a path is already gone (default False: fail naming it).
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: Metadata of each deleted item (``None`` for a missing one with ``missing_ok``).
    """

    template_fields: Sequence[str] = ("path", "dropbox_conn_id")

    def __init__(self, *, path: str | list[str], missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.missing_ok = missing_ok
        self._declare_assets(outlets=[path] if isinstance(path, str) else list(path))

    def execute(self, context: Context) -> list[dict[str, Any] | None]:
        self._check_inputs()
        paths = [self.path] if isinstance(self.path, str) else list(self.path)
        results = self.hook.delete_many(paths, missing_ok=self.missing_ok)  # one batch job, not a call each
        for path, meta in zip(paths, results, strict=True):
            self.log.info("Deleted Dropbox %s" if meta else "Dropbox %s was already gone", path)
        self._lineage(outputs=paths)
        return results


class DropboxCreateFolderOperator(DropboxBaseOperator):
    """
    Create a Dropbox folder (and missing parents).

    :param path: Dropbox folder path. Templated.
    :param exist_ok: Succeed when it already exists (default True).
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: The folder's metadata.
    """

    template_fields: Sequence[str] = ("path", "dropbox_conn_id")

    def __init__(self, *, path: str, exist_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.exist_ok = exist_ok
        self._declare_assets(outlets=[path])

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        meta = self.hook.create_folder(self.path, exist_ok=self.exist_ok)
        self._lineage(outputs=[self.path])
        self.log.info("Dropbox folder %s ready", self.path)
        return meta


class _DropboxRelocateOperator(DropboxBaseOperator):
    template_fields: Sequence[str] = ("from_path", "to_path", "dropbox_conn_id")
    _verb = "relocate"

    def __init__(self, *, from_path: str, to_path: str, autorename: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.from_path = from_path
        self.to_path = to_path
        self.autorename = autorename

    def _relocate(self) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        meta = self._relocate()
        self._lineage(inputs=[self.from_path], outputs=[self.to_path])
        self.log.info(
            "Dropbox %s %s -> %s", self._verb, self.from_path, meta.get("path_display", self.to_path)
        )
        return meta


class DropboxMoveOperator(_DropboxRelocateOperator):
    """
    Move or rename a Dropbox file or folder.

    :param from_path: Existing Dropbox path. Templated.
    :param to_path: New Dropbox path. Templated.
    :param autorename: Pick a free name instead of failing when ``to_path`` exists.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: Metadata at the new path.
    """

    _verb = "move"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._declare_assets(inlets=[self.from_path], outlets=[self.to_path, self.from_path])

    def _relocate(self) -> dict[str, Any]:
        return self.hook.move(self.from_path, self.to_path, autorename=self.autorename)


class DropboxCopyOperator(_DropboxRelocateOperator):
    """
    Copy a Dropbox file or folder.

    :param from_path: Existing Dropbox path. Templated.
    :param to_path: Path of the copy. Templated.
    :param autorename: Pick a free name instead of failing when ``to_path`` exists.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: Metadata of the copy.
    """

    _verb = "copy"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._declare_assets(inlets=[self.from_path], outlets=[self.to_path])

    def _relocate(self) -> dict[str, Any]:
        return self.hook.copy(self.from_path, self.to_path, autorename=self.autorename)


class DropboxCreateSharedLinkOperator(DropboxInputPathOperator):
    """
    Share a Dropbox file or folder: return its shared link URL (the existing link when there is one).

    :param path: Dropbox path. Templated.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: The URL.
    """

    def execute(self, context: Context) -> str:
        self._check_inputs()
        url = self.hook.create_shared_link(self.path)
        self._lineage(inputs=[self.path])
        self.log.info("Shared link for Dropbox %s: %s", self.path, url)
        return url
