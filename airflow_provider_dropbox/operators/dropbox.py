"""Dropbox operators: upload, chunked upload, download, delete, create folder, move, copy, shared link.

All of them take keyword-only arguments, template every path, build the hook in ``execute`` (never at
DAG parse time) and declare ``dropbox://<conn_id>/<path>`` inlets/outlets when the paths are static, so
asset scheduling and lineage work; templated paths are reported through hook lineage at run time.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_dropbox.client.errors import LocalPathError, NotAFolderError, PathNotFoundError
from airflow_provider_dropbox.client.folders import (
    Exclude,
    UploadSelection,
    check_upload_targets,
    local_files,
)
from airflow_provider_dropbox.operators.base import (
    XCOM_FILE_LIMIT,
    DropboxBaseOperator,
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

    from airflow_provider_dropbox.client import DropboxClient

MiB = 1024 * 1024
WRITE_MODES = ("add", "overwrite", "update")
OVERWRITE_POLICIES = ("if_changed", "never", "error")
_GLOB_CHARS = ("*", "?", "[")
_METADATA_LOOKUPS_PER_FOLDER = 16


def _rooted_glob(pattern: str) -> bool:
    """True for an absolute glob whose first component is a wildcard (``/**``, ``/*/x.csv``, ``//*``)."""
    norm = os.path.normpath(pattern)
    if not norm.startswith("/"):
        return False
    first = norm.lstrip("/").split("/", 1)[0]
    return first == "" or any(ch in first for ch in _GLOB_CHARS)


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder not in ("", "/") else f"/{name}"


def _glob_base(pattern: str) -> str:
    """The folder a glob starts from (``/data`` for ``/data/**/*.csv``): ``exclude`` sees paths below it."""
    fixed: list[str] = []
    for part in pattern.split("/")[:-1]:
        if any(ch in part for ch in _GLOB_CHARS):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"


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
        exclude: Exclude = None,
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

    def _plan(self) -> list[tuple[Path, str]]:
        """(local file, Dropbox path) pairs for everything ``local_path`` designates."""
        local = str(self.local_path)
        remote = str(self.remote_path)
        if any(ch in local for ch in _GLOB_CHARS) and not os.path.exists(local):
            if _rooted_glob(local):
                raise LocalPathError(
                    f"local_path {local!r} is a glob rooted at '/': expanding it would walk the whole file "
                    "system (every mount, /proc, network shares) and upload whatever matches; refusing. "
                    "A template such as '{{ params.dir }}/**' with an empty value? Start the glob at the "
                    "folder you mean, e.g. '/data/**/*.csv'",
                    route=type(self).__name__,
                    path=local,
                )
            selection = self._selection(pattern=None)
            base = _glob_base(local)
            matches = sorted(
                Path(p)
                for p in glob.glob(local, recursive=True)
                if os.path.isfile(p) and selection.keep(Path(os.path.relpath(p, base)).as_posix())
            )
            selection.report(self.log, local)
            return [(p, _join(remote, p.name)) for p in matches]
        path = Path(local)
        if path.is_dir():
            selection = self._selection(pattern=str(self.pattern) if self.pattern else None)
            files = sorted(local_files(path, self.recursive, selection, route=type(self).__name__))
            selection.report(self.log, local)
            return [(f, _join(remote, rel)) for f, rel in files]
        if not path.exists():
            raise AirflowException(f"Local path '{local}' does not exist (and is not a glob that matched)")
        if remote.endswith("/"):
            remote = _join(remote, path.name)
        return [(path, remote)]

    def _selection(self, *, pattern: str | None) -> UploadSelection:
        return UploadSelection(
            pattern=pattern, exclude=self.exclude or None, skip_disallowed_names=self.skip_disallowed_names
        )

    def _skip_identical(
        self, client: DropboxClient, pairs: list[tuple[Path, str]]
    ) -> tuple[list[tuple[Path, str]], dict[str, dict[str, Any]]]:
        """Split off files whose content is already on Dropbox (one folder listing per parent)."""
        from airflow_provider_dropbox.client.content_hash import content_hash_file

        remote_meta: dict[str, dict[str, Any]] = {}
        by_parent: dict[str, list[str]] = {}
        for _, remote in pairs:
            by_parent.setdefault(remote.rsplit("/", 1)[0], []).append(remote)
        for parent, remotes in sorted(by_parent.items()):
            try:
                if len(remotes) <= _METADATA_LOOKUPS_PER_FOLDER:
                    # A few files into a possibly huge folder: ask for them, don't list the folder.
                    for remote in remotes:
                        try:
                            entry = client.get_metadata(remote)
                        except Exception as exc:
                            if isinstance(exc, PathNotFoundError):
                                continue
                            raise
                        if entry.get(".tag", "file") == "file" and entry.get("path_lower"):
                            remote_meta[entry["path_lower"]] = entry
                    continue
                for entry in client.list_folder(parent, recursive=False):
                    if entry.get(".tag") == "file" and entry.get("path_lower"):
                        remote_meta[entry["path_lower"]] = entry
            except Exception as exc:
                if not (isinstance(exc, PathNotFoundError) or isinstance(exc, NotAFolderError)):
                    raise
        todo: list[tuple[Path, str]] = []
        skipped: dict[str, dict[str, Any]] = {}
        for local, remote in pairs:
            meta = remote_meta.get(remote.lower())
            if meta is not None and meta.get("size") == local.stat().st_size:
                if meta.get("content_hash") == content_hash_file(local):
                    skipped[remote] = meta
                    continue
            todo.append((local, remote))
        return todo, skipped

    def execute(self, context: Context) -> dict[str, Any] | list[Any]:
        self._check_inputs()
        pairs = self._plan()
        check_upload_targets(pairs, route=type(self).__name__)  # before any request: nothing partial
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
        client = self.hook.get_conn()
        todo, skipped = (
            self._skip_identical(client, pairs)
            if self.skip_identical and self.mode != "update"
            else (pairs, {})
        )
        if skipped:
            self.log.info("%d file(s) already identical on Dropbox, not sent again", len(skipped))
        uploaded: dict[str, dict[str, Any]] = {}
        single_limit = 0 if self._force_session else self.single_request_limit
        if len(todo) == 1 or (todo and (self._force_session or self.mode == "update")):
            for local, remote in todo:
                self.log.info("Uploading %s to Dropbox %s", local, remote)
                kwargs: dict[str, Any] = {
                    "mode": self._write_mode(),
                    "autorename": self.autorename,
                    "chunk_size": self.chunk_size,
                    "parallelism": self.parallelism,
                    "skip_if_identical": False,
                }
                if single_limit is not None:
                    kwargs["single_request_limit"] = single_limit
                uploaded[remote] = client.upload_file(local, remote, **kwargs)
        elif todo:
            self.log.info("Uploading %d files to Dropbox %s", len(todo), self.remote_path)
            metas = client.upload_files(
                [(str(local), remote) for local, remote in todo],
                mode=self._write_mode(),
                autorename=self.autorename,
                chunk_size=self.chunk_size,
                parallelism=self.parallelism,
            )
            uploaded.update({remote: meta for (_, remote), meta in zip(todo, metas, strict=True)})
        results = [uploaded.get(remote) or skipped[remote] for _, remote in pairs]
        self._lineage(outputs=[remote for _, remote in pairs][:100])
        self.log.info("Uploaded %d file(s), skipped %d identical", len(uploaded), len(skipped))
        return self._result(results, uploaded=len(uploaded), skipped=len(skipped))

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

    @staticmethod
    def _same_content(local: Path, meta: dict[str, Any]) -> bool:
        from airflow_provider_dropbox.client.content_hash import content_hash_file

        if not local.is_file() or local.stat().st_size != meta.get("size"):
            return False
        return bool(meta.get("content_hash")) and content_hash_file(local) == meta.get("content_hash")

    def _download_one(self, meta: dict[str, Any]) -> list[str]:
        local = Path(str(self.local_path))
        if local.is_dir() or str(self.local_path).endswith(("/", os.sep)):
            local = local / meta["name"]
        if local.exists():
            if local.is_dir():
                raise AirflowException(
                    f"Local path '{local}' is a folder; give a file path or a folder to fill"
                )
            if self._same_content(local, meta):
                self.log.info("%s already has the same content; not downloaded again", local)
                return []
            if self.overwrite == "never":
                self.log.info("%s exists and overwrite='never'; kept", local)
                return []
            if self.overwrite == "error":
                raise AirflowException(
                    f"Local file '{local}' exists with different content (overwrite='error')"
                )
        self.hook.download_file(meta.get("path_display") or str(self.remote_path), local)
        return [str(local)]

    def _check_no_conflicts(self) -> None:
        """``overwrite='error'``: refuse before writing anything if a differing local file is in the way."""
        root = str(self.remote_path).rstrip("/")
        prefix = root.lower() + "/"
        conflicts = []
        for entry in self.hook.list_folder(root, recursive=self.recursive):
            if entry.get(".tag") != "file":
                continue
            rel = (
                entry["path_lower"][len(prefix) :]
                if entry["path_lower"].startswith(prefix)
                else entry["name"]
            )
            if self.pattern and not fnmatch.fnmatchcase(rel, str(self.pattern).lower()):
                continue
            display_rel = (entry.get("path_display") or entry["path_lower"])[len(prefix) :] or entry["name"]
            local = Path(str(self.local_path)) / display_rel
            if local.exists() and not self._same_content(local, entry):
                conflicts.append(str(local))
        if conflicts:
            shown = ", ".join(conflicts[:10]) + (" ..." if len(conflicts) > 10 else "")
            raise AirflowException(
                f"{len(conflicts)} local file(s) exist with different content (overwrite='error'): {shown}"
            )

    def execute(self, context: Context) -> dict[str, Any] | list[Any]:
        self._check_inputs()
        try:
            meta = self.hook.get_metadata(str(self.remote_path))
        except Exception as exc:
            if isinstance(exc, PathNotFoundError):
                raise AirflowException(f"Dropbox path '{self.remote_path}' does not exist: {exc}") from exc
            raise
        self._lineage(inputs=[str(self.remote_path)])
        if meta.get(".tag", "file") == "file":
            written = self._download_one(meta)
        else:
            if self.overwrite == "error":
                self._check_no_conflicts()
            written = self.hook.download_folder(
                str(self.remote_path),
                str(self.local_path),
                recursive=self.recursive,
                pattern=self.pattern,
                overwrite=self.overwrite != "never",
                parallelism=self.parallelism,
            )
            if not written:
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
        results: list[dict[str, Any] | None] = []
        for path in paths:
            try:
                results.append(self.hook.delete(path))
                self.log.info("Deleted Dropbox %s", path)
            except Exception as exc:
                if self.missing_ok and isinstance(exc, PathNotFoundError):
                    self.log.info("Dropbox %s was already gone", path)
                    results.append(None)
                    continue
                raise
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


class DropboxCreateSharedLinkOperator(DropboxBaseOperator):
    """
    Share a Dropbox file or folder: return its shared link URL (the existing link when there is one).

    :param path: Dropbox path. Templated.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: The URL.
    """

    template_fields: Sequence[str] = ("path", "dropbox_conn_id")

    def __init__(self, *, path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._declare_assets(inlets=[path])

    def execute(self, context: Context) -> str:
        self._check_inputs()
        url = self.hook.create_shared_link(self.path)
        self._lineage(inputs=[self.path])
        self.log.info("Shared link for Dropbox %s: %s", self.path, url)
        return url
