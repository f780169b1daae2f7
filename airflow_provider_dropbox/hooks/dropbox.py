"""This module contains the Dropbox hook: an Airflow ``dropbox`` connection made into a ``DropboxClient``."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import mask_secret

from airflow_provider_dropbox.changes import fetch_revisions, server_time
from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, errors, folders
from airflow_provider_dropbox.client.auth import secret_forms
from airflow_provider_dropbox.client.config import (
    MAX_SECONDS,
    check_parallelism,
    check_seconds,
    header_problem,
)
from airflow_provider_dropbox.client.progress import ProgressLogger

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_dropbox.client.folders import Exclude
    from airflow_provider_dropbox.client.upload import WriteMode

log = logging.getLogger(__name__)

# Older UIs stored the conn-fields in ``extra`` under prefixed keys.
_LEGACY_PREFIX = "extra__dropbox__"

# test_connection answers within seconds instead of riding the transfer retry deadline (minutes).
_TEST_RETRY_DEADLINE = 5.0
_TEST_TIMEOUT = 15.0


class DropboxConnectionConfigError(AirflowException):
    """The Airflow connection lacks what is needed to authenticate (raised before any request)."""

    permanent = True  # fixed by editing the connection, not by a retry


class DropboxHook(BaseHook):
    """
    Talk to Dropbox (HTTP API v2) with the credentials of an Airflow ``dropbox`` connection.

    The client is built lazily on first use, so creating the hook (e.g. while a DAG is parsed) does no I/O.
    Every access token the client obtains is passed to ``mask_secret`` so task logs never show it.

    :param dropbox_conn_id: The Airflow connection to use.
    :param parallelism: Parallel requests for large transfers and folder transfers (also sizes the
        HTTP connection pool); 1 to ``MAX_PARALLELISM`` (64), else ``InvalidArgumentError``.
    :param retry_deadline: Seconds after which retries of one call give up; default: the connection's
        "Retry deadline (s)" field (extra ``retry_deadline``), else 600.
    """

    OVERWRITE_POLICIES = folders.OVERWRITE_POLICIES
    """What ``download`` does with a differing local file: ``if_changed``, ``never``, ``error``."""

    conn_name_attr = "dropbox_conn_id"
    default_conn_name = "dropbox_default"
    conn_type = "dropbox"
    hook_name = "Dropbox"

    def __init__(
        self,
        dropbox_conn_id: str = default_conn_name,
        *,
        parallelism: int = 8,
        retry_deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dropbox_conn_id = dropbox_conn_id
        self.parallelism = check_parallelism(parallelism) or 1
        self.retry_deadline = retry_deadline
        self._client: DropboxClient | None = None

    # -- connection -> client -------------------------------------------------------------------------------

    def get_conn(self) -> DropboxClient:
        """Return the (cached) client for this hook's connection."""
        if self._client is None:
            self._client = self._build_client(retry_deadline=self.retry_deadline)
        return self._client

    def close(self) -> None:
        """Close the HTTP session; the next call builds a new client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _build_client(self, *, retry_deadline: float | None, timeout: float | None = None) -> DropboxClient:
        conn = self.get_connection(self.dropbox_conn_id)
        options = connection_options(conn)
        if retry_deadline is None:
            retry_deadline = options["retry_deadline"]
        return DropboxClient(
            options["credentials"],
            endpoints=options["endpoints"],
            timeout=min(options["timeout"], timeout) if timeout else options["timeout"],
            parallelism=self.parallelism,
            team_member_id=options["team_member_id"],
            root_namespace_id=options["root_namespace_id"],
            on_new_token=_mask_token,
            retry_deadline=retry_deadline,
            connect_retry_deadline=options["connect_retry_deadline"],
            ca_bundle=options["ca_bundle"],
        )

    def test_connection(self) -> tuple[bool, str]:
        """Call ``users/get_current_account`` and say who we are connected as, or why not."""
        client: DropboxClient | None = None
        try:
            client = self._build_client(retry_deadline=_TEST_RETRY_DEADLINE, timeout=_TEST_TIMEOUT)
            account = client.get_current_account()
        except DropboxConnectionConfigError as e:
            return False, str(e)
        except errors.InvalidRefreshTokenError as e:
            return False, f"{e}. The helper is the airflow-dropbox-auth command."
        except errors.AuthError as e:
            return False, str(e)  # the client's message names the field to check
        except (errors.DropboxConnectionError, requests.RequestException) as e:
            if _is_plain_http_answer(e):
                return False, (
                    f"{_api_base(client)} answered in plain HTTP, not TLS: the server there does not speak "
                    "https. Use http:// in the host field if it is a local test server (the emulator), or "
                    "check the port"
                )
            if _is_tls_failure(e):
                return False, (
                    f"TLS certificate verification failed for {_api_base(client)}: the server's certificate "
                    "is not trusted. If a company proxy or a private CA signs it, set the connection's CA "
                    "bundle field (ca_bundle) to that CA's PEM file; otherwise check the API base URL (host)"
                )
            return False, (
                f"Cannot reach Dropbox at {_api_base(client)} ({_network_reason(e)}); "
                "check the API base URL (host) and the network"
            )
        except errors.InvalidArgumentError as e:  # refused before any request: no answer to speak of
            return False, f"Dropbox connection '{self.dropbox_conn_id}': {e}"
        except errors.DropboxApiError as e:
            return False, f"Dropbox answered with an error: {e}"
        except Exception as e:  # the Test button shows a message; it must never get a traceback
            return False, (
                f"Dropbox connection '{self.dropbox_conn_id}' could not be tested: {type(e).__name__}: "
                f"{errors.redact(str(e))[:300]}"
            )
        finally:
            if client is not None:
                client.close()
        name = (account.get("name") or {}).get("display_name") or account.get("account_id", "?")
        return True, f"Connected as {name} ({account.get('email', 'no email')})"

    # -- metadata -------------------------------------------------------------------------------------------

    def get_metadata(self, path: str, include_deleted: bool = False) -> dict[str, Any]:
        """
        Return the metadata of a file or folder.

        :param path: Dropbox path, e.g. ``/reports/q1.csv``.
        :param include_deleted: Also return metadata of a deleted item.
        """
        return self.get_conn().get_metadata(path, include_deleted=include_deleted)

    def exists(self, path: str) -> bool:
        """
        Tell whether a file or folder exists at ``path``.

        :param path: Dropbox path.
        """
        return self.get_conn().exists(path)

    def list_folder(self, path: str, recursive: bool = False) -> Iterator[dict[str, Any]]:
        """
        Yield the metadata of every entry under ``path``, across all pages.

        :param path: Dropbox folder; ``""`` or ``"/"`` is the root.
        :param recursive: Also list subfolders.
        """
        return self.get_conn().list_folder(path, recursive=recursive)

    def get_latest_cursor(self, path: str, recursive: bool = True) -> str:
        """
        Return a cursor for "now", to ask later what changed since.

        :param path: Dropbox folder to watch.
        :param recursive: Include changes in subfolders.
        """
        return self.get_conn().get_latest_cursor(path, recursive=recursive)

    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]:
        """
        Return the entries changed since ``cursor`` and the cursor to use next time.

        Raises ``CursorResetError`` when Dropbox invalidated the cursor; list the folder again then.

        :param cursor: A cursor from ``get_latest_cursor`` or a previous ``list_changes``.
        """
        return self.get_conn().list_changes(cursor)

    def longpoll(self, cursor: str, timeout: int = 30) -> dict[str, Any]:
        """
        Wait until something changes after ``cursor`` or ``timeout`` seconds pass.

        :param cursor: A cursor from ``get_latest_cursor`` or ``list_changes``.
        :param timeout: Seconds to wait (30..480); Dropbox adds jitter.
        :return: ``{"changes": bool, "backoff": seconds or None}``
        """
        return self.get_conn().longpoll(cursor, timeout=timeout)

    def get_space_usage(self) -> dict[str, Any]:
        """Return the account's used and allocated space."""
        return self.get_conn().get_space_usage()

    # -- transfers ------------------------------------------------------------------------------------------

    def download_file(
        self, remote_path: str, local_path: str | os.PathLike[str], *, parallelism: int | None = None
    ) -> dict[str, Any]:
        """
        Download a file, verified against its content hash, replacing ``local_path`` atomically.

        :param remote_path: Dropbox file path.
        :param local_path: Local file to write (its folder is created).
        :param parallelism: Parallel range requests for a large file (default: the hook's).
        :return: The file's metadata.
        """
        return self.get_conn().download_file(
            remote_path,
            local_path,
            parallelism=parallelism,
            progress=self._progress(f"Download {remote_path}"),
        )

    def upload_file(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        mode: WriteMode = "add",
        *,
        autorename: bool = False,
        chunk_size: int | None = None,
        parallelism: int | None = None,
    ) -> dict[str, Any]:
        """
        Upload a file: one request when small, a (parallel) upload session when large.

        :param local_path: Local file to read.
        :param remote_path: Dropbox file path to write.
        :param mode: ``"add"``, ``"overwrite"`` or ``{"update": "<rev>"}``.
        :param autorename: Pick a free name instead of failing on a conflict.
        :param chunk_size: Upload-session chunk in bytes, a multiple of 4 MiB (default: the client's).
        :param parallelism: Parallel chunk uploads (default: the hook's).
        :return: The file's metadata.
        """
        return self.get_conn().upload_file(
            local_path,
            remote_path,
            mode=mode,
            autorename=autorename,
            chunk_size=chunk_size,
            parallelism=parallelism,
            progress=self._progress(f"Upload {remote_path}"),
        )

    def download_folder(
        self,
        remote_dir: str,
        local_dir: str | os.PathLike[str],
        *,
        recursive: bool = True,
        pattern: str | None = None,
        overwrite: bool | str = True,
        parallelism: int | None = None,
    ) -> list[str]:
        """
        Download the files of a folder; files whose local content already matches are skipped.

        :param remote_dir: Dropbox folder.
        :param local_dir: Local folder to write into (created; not blank, not ``/``); nothing is written
            outside it.
        :param recursive: Include subfolders.
        :param pattern: Glob on the path relative to ``remote_dir``, e.g. ``*.csv`` (case-insensitive).
        :param overwrite: ``True``/``"if_changed"`` replaces local files that differ; ``False``/``"never"``
            keeps existing local files; ``"error"`` raises ``LocalConflictError`` before writing anything if
            a local file would be replaced by different content.
        :param parallelism: Files downloaded at once (default: the hook's).
        :return: The local paths written.
        """
        return folders.download_folder(
            self.get_conn(),
            remote_dir,
            local_dir,
            recursive=recursive,
            pattern=pattern,
            overwrite=overwrite,
            parallelism=check_parallelism(parallelism, allow_none=True) or self.parallelism,
        )

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        recursive: bool = True,
        pattern: str | None = None,
        overwrite: bool | str = "if_changed",
        parallelism: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[str]:
        """
        Download a file or a folder's files, skipping local files that already hold the same content.

        :param remote_path: Dropbox file or folder.
        :param local_path: Local file, or folder (an existing folder, or a path ending in the separator,
            receives a file under its own name).
        :param recursive: Include subfolders (folders).
        :param pattern: Glob on the path relative to ``remote_path`` (folders, case-insensitive).
        :param overwrite: ``"if_changed"``, ``"never"`` or ``"error"`` (raises ``LocalConflictError``
            before writing anything if a local file holds different content).
        :param parallelism: Files (or ranges of one large file) fetched at once (default: the hook's).
        :param metadata: The item's metadata when the caller already has it (saves one request).
        :return: The local paths written.
        """
        meta = metadata if metadata is not None else self.get_metadata(remote_path)
        if meta.get(".tag", "file") == "file":
            return folders.download_file_to(
                self.get_conn(),
                meta,
                local_path,
                overwrite=overwrite,
                progress=self._progress(f"Download {remote_path}"),
            )
        return self.download_folder(
            remote_path,
            local_path,
            recursive=recursive,
            pattern=pattern,
            overwrite=overwrite,
            parallelism=parallelism,
        )

    def plan_upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        pattern: str | None = None,
        exclude: Exclude = None,
        skip_disallowed_names: bool = True,
        recursive: bool = True,
    ) -> list[tuple[Path, str]]:
        """
        The ``(local file, Dropbox path)`` pairs a file, folder or glob upload would send; no request.

        :param local_path: Local file, folder or glob (not blank, not ``/``, no glob rooted at ``/``).
        :param remote_path: Dropbox file (single file; ending in ``/``: into that folder) or folder.
        :param pattern: Glob on the path relative to a local folder (case-insensitive).
        :param exclude: Glob(s) to leave out, matched on the relative path, its folders and its names.
        :param skip_disallowed_names: Skip, with a log line, names Dropbox never syncs; False refuses.
        :param recursive: Include subfolders of a local folder.
        """
        return folders.plan_upload(
            local_path,
            remote_path,
            pattern=pattern,
            exclude=exclude,
            skip_disallowed_names=skip_disallowed_names,
            recursive=recursive,
            logger=self.log,
        )

    def upload_pairs(
        self,
        pairs: Sequence[tuple[str | os.PathLike[str], str]],
        *,
        mode: WriteMode = "add",
        autorename: bool = False,
        chunk_size: int | None = None,
        parallelism: int | None = None,
        single_request_limit: int | None = None,
        skip_identical: bool = True,
    ) -> dict[str, Any]:
        """
        Upload ``(local file, Dropbox path)`` pairs, logging progress (MB/s, ETA) every few seconds.

        One file goes through ``upload_file`` (an upload session above ``single_request_limit``; 0 forces
        one); several go up in parallel with batched commits. With ``skip_identical``, files whose Dropbox
        size and content hash already match are not sent (not with an ``update`` mode).

        :param pairs: Local files and their Dropbox paths (``plan_upload`` makes them).
        :param mode: ``"add"``, ``"overwrite"`` or ``{"update": "<rev>"}`` (single file).
        :param autorename: Pick a free name instead of failing on a conflict.
        :param chunk_size: Upload-session chunk in bytes, a multiple of 4 MiB.
        :param parallelism: Parallel chunks of one file, files at once for several.
        :param single_request_limit: Files up to this size go in one request (default 150 MiB).
        :param skip_identical: Leave out files Dropbox already has unchanged.
        :return: ``{"files": metadata per pair in order, "uploaded": n, "skipped_identical": n}``.
        """
        client = self.get_conn()
        checked = [(Path(local), remote) for local, remote in pairs]
        is_update = not isinstance(mode, str)
        todo, skipped = (
            folders.split_identical(client, checked) if skip_identical and not is_update else (checked, {})
        )
        if skipped:
            self.log.info("%d file(s) already identical on Dropbox, not sent again", len(skipped))
        uploaded: dict[str, dict[str, Any]] = {}
        if len(todo) == 1 or (todo and (single_request_limit == 0 or is_update)):
            for local, remote in todo:
                self.log.info("Uploading %s to Dropbox %s", local, remote)
                extra: dict[str, Any] = {}
                if single_request_limit is not None:
                    extra["single_request_limit"] = single_request_limit
                uploaded[remote] = client.upload_file(
                    local,
                    remote,
                    mode=mode,
                    autorename=autorename,
                    chunk_size=chunk_size,
                    parallelism=parallelism,
                    skip_if_identical=False,
                    progress=self._progress(f"Upload {remote}"),
                    **extra,
                )
        elif todo:
            self.log.info("Uploading %d files to Dropbox", len(todo))
            metas = client.upload_files(
                [(str(local), remote) for local, remote in todo],
                mode=mode,
                autorename=autorename,
                chunk_size=chunk_size,
                parallelism=parallelism,
                progress=self._progress(f"Upload of {len(todo)} files"),
            )
            uploaded.update({remote: meta for (_, remote), meta in zip(todo, metas, strict=True)})
        self.log.info("Uploaded %d file(s), skipped %d identical", len(uploaded), len(skipped))
        return {
            "files": [uploaded.get(remote) or skipped[remote] for _, remote in checked],
            "uploaded": len(uploaded),
            "skipped_identical": len(skipped),
        }

    def upload_folder(
        self,
        local_dir: str | os.PathLike[str],
        remote_dir: str,
        *,
        recursive: bool = True,
        pattern: str | None = None,
        exclude: Exclude = None,
        skip_disallowed_names: bool = True,
        mode: WriteMode = "add",
        parallelism: int | None = None,
        skip_identical: bool = False,
    ) -> list[dict[str, Any]]:
        """
        Upload the files of a local folder, committing them in batches, with progress lines.

        :param local_dir: Local folder to read (not blank, not ``/``).
        :param remote_dir: Dropbox folder to write into.
        :param recursive: Include subfolders.
        :param pattern: Glob on the path relative to ``local_dir``, e.g. ``*.csv`` (case-insensitive).
        :param exclude: Glob(s) to leave out, matched on the relative path, its folders and its names,
            e.g. ``["*.tmp", ".git"]`` (case-insensitive).
        :param skip_disallowed_names: Skip, with a log line, names Dropbox never syncs (``desktop.ini``,
            ``.DS_Store``, ...); False fails the whole upload instead.
        :param mode: ``"add"`` or ``"overwrite"``.
        :param parallelism: Files uploaded at once (default: the hook's).
        :param skip_identical: Leave out files Dropbox already has unchanged.
        :return: Metadata of every file (uploaded or already identical).
        """
        base = os.fspath(local_dir)
        folders.check_local_path_arg(base, field="local_dir", route="upload_folder")
        if not os.path.isdir(base):
            raise errors.LocalPathError(
                f"Local folder '{base}' does not exist or is not a folder (upload_folder)",
                route="upload_folder",
                path=base,
            )
        pairs = self.plan_upload(
            base,
            remote_dir.rstrip("/") or "/",
            pattern=pattern,
            exclude=exclude,
            skip_disallowed_names=skip_disallowed_names,
            recursive=recursive,
        )
        result = self.upload_pairs(
            pairs,
            mode=mode,
            parallelism=check_parallelism(parallelism, allow_none=True) or self.parallelism,
            skip_identical=skip_identical,
        )
        files: list[dict[str, Any]] = result["files"]
        return files

    @staticmethod
    def check_local_path(value: str | os.PathLike[str], *, field: str, route: str) -> None:
        """Refuse a blank, relative or ``/`` local path before any request (``LocalPathError``)."""
        folders.check_local_path_arg(value, field=field, route=route, allow_relative=False)

    # -- changes --------------------------------------------------------------------------------------------

    def delete(self, path: str) -> dict[str, Any]:
        """
        Delete a file or folder (with its contents).

        :param path: Dropbox path.
        :return: Metadata of the deleted item.
        """
        return self.get_conn().delete(path)

    def create_folder(self, path: str, exist_ok: bool = True) -> dict[str, Any]:
        """
        Create a folder and its missing parents.

        :param path: Dropbox folder path.
        :param exist_ok: Succeed when the folder already exists.
        """
        return self.get_conn().create_folder(path, exist_ok=exist_ok)

    def move(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]:
        """
        Move or rename a file or folder.

        :param from_path: Existing Dropbox path.
        :param to_path: New Dropbox path.
        :param autorename: Pick a free name instead of failing on a conflict.
        """
        return self.get_conn().move(from_path, to_path, autorename=autorename)

    def copy(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]:
        """
        Copy a file or folder.

        :param from_path: Existing Dropbox path.
        :param to_path: Path of the copy.
        :param autorename: Pick a free name instead of failing on a conflict.
        """
        return self.get_conn().copy(from_path, to_path, autorename=autorename)

    def create_shared_link(self, path: str) -> str:
        """
        Return a shared link to ``path``; the existing one when there is one.

        :param path: Dropbox path.
        """
        return self.get_conn().create_shared_link(path)

    # -- mirror ---------------------------------------------------------------------------------------------

    def sync_to_local_dir(
        self,
        remote_path: str,
        local_dir: str | os.PathLike[str],
        *,
        delete_stale: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """
        Mirror the Dropbox folder ``remote_path`` into ``local_dir`` (one way, incremental, verified).

        The name matches the S3, GCS and Azure hooks. ``options`` go to
        :func:`airflow_provider_dropbox.sync.mirror` (``dry_run``, ``max_deletes``, ``allow_empty_remote``,
        ``parallelism``, ``exclude``, ``adopt_local``, ``conflict``, ``full_rescan``, ``zip_small_files``,
        ...).

        :param remote_path: Dropbox folder (``/`` for the whole app folder).
        :param local_dir: Local destination directory; mirror state lives inside it.
        :param delete_stale: Delete local files the mirror created whose Dropbox copy is gone.
        :return: The run report as plain data (counts, bytes, duration, errors, plan summary).
        """
        from airflow_provider_dropbox.sync import mirror

        options.setdefault("parallelism", self.parallelism)
        report = mirror(self.get_conn(), remote_path, local_dir, delete_stale=delete_stale, **options)
        return report.to_dict()

    def sync_two_way(
        self, remote_path: str, local_dir: str | os.PathLike[str], **options: Any
    ) -> dict[str, Any]:
        """
        Two-way sync of the Dropbox folder ``remote_path`` and ``local_dir`` (edits win over deletes; an
        edit on both sides keeps both versions). ``options`` go to
        :func:`airflow_provider_dropbox.sync.two_way.sync_two_way` (``conflict``, ``dry_run``,
        ``max_deletes``, ``allow_empty``, ``exclude``, ``local_changes`` for a focused run, ...). See
        docs/two-way-sync.md.

        :return: The run report as plain data (counts, conflicts, skipped names, errors, plan).
        """
        from airflow_provider_dropbox.sync.two_way import sync_two_way

        options.setdefault("logger", cast("logging.Logger", self.log))
        report = sync_two_way(self.get_conn(), remote_path, local_dir, **options)
        return report.to_dict()

    def _progress(self, label: str) -> ProgressLogger:
        """Log bytes done, percent, MB/s and ETA every few seconds, in the task log."""
        # The hook's own logger: in a task it writes to the task log (the module logger may not).
        return ProgressLogger(label, logger=cast("logging.Logger", self.log))

    # -- many paths, search, temporary links ----------------------------------------------------------------
    # Imported per call so this block stays independent of the connection code above.

    def delete_batch(self, paths: list[str], *, raise_on_failure: bool = True) -> list[dict[str, Any]]:
        """
        Delete many files or folders with one async job per 1000 paths (files/delete_batch).

        :param paths: Dropbox paths.
        :param raise_on_failure: Raise ``BatchError`` (every entry's outcome attached) if any entry failed.
        :return: Per path, in the order given: ``{"path", "metadata"}`` or ``{"path", "error"}``.
        """
        from airflow_provider_dropbox.client import batch

        return _entries(batch.delete_batch(self.get_conn(), paths, raise_on_failure=raise_on_failure))

    def delete_many(self, paths: Sequence[str], *, missing_ok: bool = False) -> list[dict[str, Any] | None]:
        """
        Delete several files or folders: one ``files/delete_batch`` job per 1000 paths, not a call each.

        A path already gone is ``None`` with ``missing_ok``; otherwise ``PathNotFoundError`` names every
        missing path. Any other failed entry raises ``BatchError`` (every entry's outcome attached); the
        entries that succeeded are deleted either way, as with one call per path.

        :param paths: Dropbox paths.
        :param missing_ok: Accept paths that are already gone.
        :return: Per path, in the order given: the deleted item's metadata, or ``None`` (missing).
        """
        from airflow_provider_dropbox.client import batch

        if len(paths) == 1:
            try:
                return [self.delete(paths[0])]
            except errors.PathNotFoundError:
                if missing_ok:
                    return [None]
                raise
        route = "files/delete_batch"
        entries = batch.delete_batch(self.get_conn(), list(paths), raise_on_failure=False)
        missing = [e.path for e in entries if not e.ok and "not_found" in e.tags]
        failed = [e for e in entries if not e.ok and "not_found" not in e.tags]
        if failed:
            shown = ", ".join(f"'{e.path}' ({'/'.join(e.tags) or 'error'})" for e in failed[:5])
            raise batch.BatchError(
                f"{len(failed)} of {len(entries)} deletes failed ({route}): {shown}; the others were done",
                entries=entries,
                route=route,
            )
        if missing and not missing_ok:
            # As ``delete`` does after a lost answer: a path Dropbox remembers as deleted was deleted (by a
            # re-sent job or an earlier attempt of this task); one that never existed is an error.
            remembered: dict[str, dict[str, Any]] = {}
            for path in missing:
                try:
                    meta = self.get_metadata(path, include_deleted=True)
                except errors.PathNotFoundError:
                    continue
                if meta.get(".tag") == "deleted":
                    remembered[path] = meta
            missing = [p for p in missing if p not in remembered]
            entries = [
                batch.BatchEntry(e.path, metadata=remembered[e.path]) if e.path in remembered else e
                for e in entries
            ]
        if missing and not missing_ok:
            raise errors.PathNotFoundError(
                f"{len(missing)} path(s) to delete do not exist: {', '.join(missing[:10])}; pass "
                "missing_ok=True to accept paths that are already gone (the others were deleted)",
                route=route,
                path=missing[0],
            )
        return [e.metadata if e.ok else None for e in entries]

    def create_folder_batch(
        self, paths: list[str], *, autorename: bool = False, raise_on_failure: bool = True
    ) -> list[dict[str, Any]]:
        """
        Create many folders (files/create_folder_batch).

        :param paths: Dropbox folder paths.
        :param autorename: Pick a free name instead of failing on a conflict.
        :param raise_on_failure: Raise ``BatchError`` if any entry failed.
        """
        from airflow_provider_dropbox.client import batch

        entries = batch.create_folder_batch(
            self.get_conn(), paths, autorename=autorename, raise_on_failure=raise_on_failure
        )
        return _entries(entries)

    def copy_batch(
        self, pairs: list[tuple[str, str]], *, autorename: bool = False, raise_on_failure: bool = True
    ) -> list[dict[str, Any]]:
        """
        Copy many ``(from_path, to_path)`` pairs in one job per 1000 (files/copy_batch_v2).

        :param pairs: Source and destination Dropbox paths.
        :param autorename: Pick a free name instead of failing on a conflict.
        :param raise_on_failure: Raise ``BatchError`` if any entry failed.
        """
        return self._relocate_batch(
            pairs, copy=True, autorename=autorename, raise_on_failure=raise_on_failure
        )

    def move_batch(
        self, pairs: list[tuple[str, str]], *, autorename: bool = False, raise_on_failure: bool = True
    ) -> list[dict[str, Any]]:
        """
        Move many ``(from_path, to_path)`` pairs in one job per 1000 (files/move_batch_v2).

        :param pairs: Source and destination Dropbox paths.
        :param autorename: Pick a free name instead of failing on a conflict.
        :param raise_on_failure: Raise ``BatchError`` if any entry failed.
        """
        return self._relocate_batch(
            pairs, copy=False, autorename=autorename, raise_on_failure=raise_on_failure
        )

    def _relocate_batch(
        self, pairs: list[tuple[str, str]], *, copy: bool, autorename: bool, raise_on_failure: bool
    ) -> list[dict[str, Any]]:
        from airflow_provider_dropbox.client import batch

        entries = batch.relocate_batch(
            self.get_conn(), pairs, copy=copy, autorename=autorename, raise_on_failure=raise_on_failure
        )
        return _entries(entries)

    def search(
        self,
        query: str,
        *,
        path: str | None = None,
        file_extensions: list[str] | None = None,
        max_results: int | None = None,
    ) -> list[dict[str, Any]]:
        """
        Metadata of the files and folders whose names match ``query`` (files/search_v2, every page).

        :param query: Words that must all occur in the name (case-insensitive).
        :param path: Folder to search under; the whole Dropbox when unset.
        :param file_extensions: Only files with these extensions (``["csv", "txt"]``).
        :param max_results: Stop after this many matches.
        """
        from airflow_provider_dropbox.client import batch

        found = batch.search(
            self.get_conn(), query, path=path, file_extensions=file_extensions, max_results=max_results
        )
        return list(found)

    def get_temporary_link(self, path: str) -> str:
        """
        A direct download URL for the file at ``path``, valid for four hours, needing no token.

        The URL is a credential for that file: hand it only to whoever may read it.

        :param path: Dropbox file path.
        """
        from airflow_provider_dropbox.client import batch

        return str(batch.get_temporary_link(self.get_conn(), path)["link"])

    def restore(self, path: str, rev: str) -> dict[str, Any]:
        """
        Bring back an earlier revision of a file as its newest revision (files/restore).

        :param path: Dropbox file path (the file may have been deleted since).
        :param rev: The revision to restore, as in a file's ``rev`` or ``list_revisions``.
        :return: Metadata of the new revision.
        """
        from airflow_provider_dropbox.client import batch

        return batch.restore(self.get_conn(), path, rev)

    def download_zip(self, path: str, local_path: str | os.PathLike[str]) -> dict[str, Any]:
        """
        Save a Dropbox folder as one zip file (files/download_zip: up to 20 GB and 10,000 files).

        The zip is written beside ``local_path`` and renamed into place only when complete.

        :param path: Dropbox folder path.
        :param local_path: Local zip file to write (replaced if it exists).
        :return: Metadata of the folder.
        """
        from airflow_provider_dropbox.client import batch

        return batch.download_zip(self.get_conn(), path, local_path)

    def get_shared_link_metadata(self, url: str, path: str | None = None) -> dict[str, Any]:
        """
        Metadata of a shared link's item (``path``: an item inside a shared folder).

        :param url: Shared link URL.
        :param path: Path relative to the shared folder, starting with ``/``.
        """
        from airflow_provider_dropbox.client import batch

        return batch.shared_link_metadata(self.get_conn(), url, path=path)

    def download_shared_link_file(
        self, url: str, local_path: str | os.PathLike[str], path: str | None = None
    ) -> dict[str, Any]:
        """
        Save the file behind a shared link, complete or not at all.

        :param url: Shared link URL.
        :param local_path: Local file to write.
        :param path: For a shared folder, the file inside it, starting with ``/``.
        """
        from airflow_provider_dropbox.client import batch

        return batch.download_shared_link_file(self.get_conn(), url, local_path, path=path)

    def modify_shared_link_settings(
        self,
        url: str,
        *,
        expires: str | None = None,
        remove_expiration: bool = False,
        allow_download: bool | None = None,
    ) -> dict[str, Any]:
        """
        Change a shared link's expiry (``YYYY-MM-DDTHH:MM:SSZ``) or whether it allows downloads.

        :param url: Shared link URL.
        :param expires: New expiry time, UTC.
        :param remove_expiration: Drop the expiry.
        :param allow_download: Allow or forbid downloading through the link.
        """
        from airflow_provider_dropbox.client import batch

        return batch.modify_shared_link(
            self.get_conn(),
            url,
            expires=expires,
            remove_expiration=remove_expiration,
            allow_download=allow_download,
        )

    def revoke_shared_link(self, url: str) -> None:
        """
        Revoke a shared link; it stops working at once.

        :param url: Shared link URL.
        """
        from airflow_provider_dropbox.client import batch

        batch.revoke_shared_link(self.get_conn(), url)

    # --- change listing (sensor) ---

    def latest_cursor_at(self, path: str, recursive: bool = True) -> tuple[str, str | None]:
        """
        Return a cursor for "now" and the server time it was taken (``2026-01-02T03:04:05Z``, or None).

        The server's clock, not the worker's, tells later whether a file changed since the cursor was
        added or modified (its revisions carry server times).

        :param path: Dropbox folder to watch.
        :param recursive: Include changes in subfolders.
        """
        client = self.get_conn()
        cursor = client.get_latest_cursor(path, recursive=recursive)
        return cursor, server_time(client.last_server_date())

    def list_changes_at(self, cursor: str) -> tuple[list[dict[str, Any]], str, str | None]:
        """
        Return the entries changed since ``cursor``, the next cursor and the server time it was taken.

        Raises ``CursorResetError`` when Dropbox invalidated the cursor.

        :param cursor: A cursor from ``latest_cursor_at``, ``list_changes_at`` or ``snapshot_at``.
        """
        client = self.get_conn()
        entries, new_cursor = client.list_changes(cursor)
        return entries, new_cursor, server_time(client.last_server_date())

    def snapshot_at(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str, str | None]:
        """
        Return every entry under ``path``, the cursor after the listing and the server time it was taken.

        :param path: Dropbox folder; ``""`` or ``"/"`` is the root.
        :param recursive: Also list subfolders.
        """
        client = self.get_conn()
        entries, cursor = client.list_folder_snapshot(path, recursive=recursive)
        return entries, cursor, server_time(client.last_server_date())

    def kind_revisions(self, paths_lower: Sequence[str]) -> dict[str, Any]:
        """
        Return ``files/list_revisions`` (path mode) of each path, None where it failed.

        What tells a changed file added from modified since a cursor (``airflow_provider_dropbox.changes``).

        :param paths_lower: Dropbox ``path_lower`` values.
        """
        return fetch_revisions(self.get_conn().rpc, paths_lower)


def _api_base(client: DropboxClient | None) -> str:
    return client.endpoints.api if client is not None else "?"


def _network_reason(exc: BaseException) -> str:
    """The gist of a network error: requests nests the socket error deep inside its message."""
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker
    return type(exc.__cause__ or exc).__name__


def _is_tls_failure(exc: BaseException) -> bool:
    """True when a certificate/TLS handshake problem is anywhere in the cause chain (not a network one)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, (requests.exceptions.SSLError, ssl.SSLError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _mask_token(token: str) -> None:
    """Mask the token in every spelling a message could hold (escaped, encoded, line by line)."""
    for form in secret_forms(token):
        mask_secret(form)


def _is_plain_http_answer(exc: BaseException) -> bool:
    """True when a TLS handshake got an HTTP answer (``https://`` to a plain-HTTP server): OpenSSL then
    reports a record-layer error, not a certificate one."""
    seen: BaseException | None = exc
    markers = (
        "wrong version number",
        "wrong_version_number",
        "record layer failure",
        "packet length too long",
    )
    for _ in range(10):
        if seen is None:
            return False
        if any(m in str(seen).lower() for m in markers):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _extra_value(extra: dict[str, Any], name: str) -> Any:
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"{_LEGACY_PREFIX}{name}")
    if isinstance(value, str):
        value = value.strip() or None
    return value


def base_url_from_host(host: str, port: int | None = None) -> str:
    """The API base URL from the connection's host and Port fields.

    As is with a scheme, else https, or http for loopback (``localhost``, ``127.x``, ``::1``/``[::1]``). A
    bare IPv6 address is bracketed; the Port field goes into the authority, before any path
    (``http://127.0.0.1:8765/dropbox``). Raises ``ValueError`` for what cannot be a base URL."""
    raw = host
    host = host.strip().rstrip("/")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in host):
        raise ValueError(f"host {raw!r} contains whitespace or a control character")
    if "://" not in host:
        if _is_ip(host) and ":" in host:  # a bare IPv6 address: its colons are not a port
            host = f"[{host}]"
        authority = host.split("/", 1)[0]
        name = urlsplit(f"//{authority}").hostname or ""
        scheme = "http" if name == "localhost" or _is_loopback(name) else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"host {raw!r} has the scheme {parts.scheme!r}; use https:// (or http:// for loopback)"
        )
    if not parts.hostname:
        raise ValueError(f"host {raw!r} names no host")
    try:
        url_port = parts.port
    except ValueError:
        raise ValueError(f"host {raw!r} has a port that is not a number from 0 to 65535") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"Port {port} is not a port number (1 to 65535)")
    if port and url_port is not None and url_port != port:
        raise ValueError(f"host {raw!r} has port {url_port} but the Port field says {port}; keep one")
    if port and url_port is None:
        netloc = f"{parts.netloc}:{port}"
        host = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def connection_options(conn: Connection) -> dict[str, Any]:
    """
    Read the client settings from an Airflow connection, validating them before any request.

    Also used by the async hook; keys: credentials, endpoints, timeout, retry_deadline,
    connect_retry_deadline, team_member_id,
    root_namespace_id, ca_bundle.

    :param conn: A ``dropbox`` connection (login = app key, password = app secret, extra = conn-fields).
    """
    conn_type = (conn.conn_type or "").strip()
    if conn_type and conn_type.lower() != DropboxHook.conn_type:
        # Checked first: the credential checks below would send the user to re-authorize instead.
        raise DropboxConnectionConfigError(
            f"Connection '{conn.conn_id}' is of type {conn_type!r}, not 'dropbox'; check dropbox_conn_id, or "
            "create a connection of type dropbox"
        )
    where = f"Dropbox connection '{conn.conn_id}'"
    extra = _extra_dict(conn, where)
    refresh_token = _extra_value(extra, "refresh_token")
    access_token = _extra_value(extra, "access_token")
    app_key = (conn.login or "").strip() or None
    app_secret = conn.password or None
    if not refresh_token and not access_token:
        raise DropboxConnectionConfigError(
            f"{where} has no refresh token or access token; run airflow-dropbox-auth to get a refresh token "
            "and put it in the connection's Refresh token field"
        )
    if refresh_token and not app_key:
        raise DropboxConnectionConfigError(
            f"{where} has a refresh token but no App key (login); the app key is needed to refresh tokens"
        )
    for secret in (app_secret, refresh_token, access_token):
        if secret:
            for form in secret_forms(secret):
                mask_secret(form)
    for name, value in (("access token", access_token), ("refresh token", refresh_token)):
        problem = header_problem(value) if value else None
        if problem:
            raise DropboxConnectionConfigError(
                f"{where}: the {name} {problem}; paste it again as one line without spaces"
            )
    timeout = _seconds(extra, "timeout", 100.0, where)
    retry_deadline = _seconds(extra, "retry_deadline", 600.0, where)
    team_member_id = _header_field(extra, "team_member_id", where)
    root_namespace_id = _header_field(extra, "root_namespace_id", where)
    connect_retry_deadline = _seconds(extra, "connect_retry_deadline", 30.0, where)
    host = (conn.host or "").strip()
    try:
        base_url = base_url_from_host(host, conn.port) if host else None
    except ValueError as exc:
        raise DropboxConnectionConfigError(
            f"{where}: {exc}. Give the API base URL, e.g. https://api.example.com, http://127.0.0.1:8765 or "
            "http://[::1]:8765 (the Port field is optional)"
        ) from None
    if base_url is not None:
        _check_cleartext(base_url, _as_bool(_extra_value(extra, "allow_insecure_http")), where)
    return {
        "credentials": Credentials(
            app_key=app_key, app_secret=app_secret, refresh_token=refresh_token, access_token=access_token
        ),
        "endpoints": Endpoints.single_host(base_url) if base_url else Endpoints(),
        "timeout": timeout,
        "retry_deadline": retry_deadline,
        "connect_retry_deadline": connect_retry_deadline,
        "team_member_id": team_member_id,
        "root_namespace_id": root_namespace_id,
        "ca_bundle": _ca_bundle(_extra_value(extra, "ca_bundle"), where),
    }


def _seconds(extra: dict[str, Any], name: str, default: float, where: str) -> float:
    raw = _extra_value(extra, name)
    if raw is None:
        return default
    try:
        return check_seconds(raw, name=name, maximum=MAX_SECONDS)
    except errors.InvalidArgumentError as exc:
        raise DropboxConnectionConfigError(f"{where}: {exc}") from None


def _extra_dict(conn: Connection, where: str) -> dict[str, Any]:
    """The connection's extra as a dict; text that is not a JSON object is reported as such (by position:
    the text itself may hold secrets), not as missing fields."""
    raw = conn.extra
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            where_in = (
                f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            raise DropboxConnectionConfigError(
                f"{where}: the Extra field is not valid JSON{where_in}; it must be a JSON object such as "
                '{"refresh_token": "...", "timeout": 100}'
            ) from None
        if not isinstance(parsed, dict):
            raise DropboxConnectionConfigError(
                f"{where}: the Extra field is JSON but not an object (it is a {type(parsed).__name__}); it "
                'must be a JSON object such as {"refresh_token": "..."}'
            )
    return conn.extra_dejson


def _header_field(extra: dict[str, Any], name: str, where: str) -> str | None:
    """An id sent in a request header (team member, root namespace): one line of printable ASCII."""
    value = _as_str(_extra_value(extra, name))
    problem = header_problem(value) if value else None
    if problem:
        raise DropboxConnectionConfigError(f"{where}: {name} {problem}; enter the id again")
    return value


def _ca_bundle(value: Any, where: str) -> str | None:
    """The connection's CA bundle: a PEM file that must exist on this worker (checked before any request)."""
    if value is None:
        return None
    path = os.path.expanduser(str(value))
    if not os.path.isfile(path):
        raise DropboxConnectionConfigError(
            f"{where}: CA bundle {path!r} is not a file on this worker; give the path of a PEM file with the "
            "CA certificates to trust, readable by the worker (or leave the field empty)"
        )
    return path


def _check_cleartext(base_url: str, allowed: bool, where: str) -> None:
    """``http://`` only to loopback (the local emulator), unless the connection opts in explicitly."""
    parts = urlsplit(base_url)
    name = parts.hostname or ""
    if parts.scheme.lower() != "http" or name == "localhost" or _is_loopback(name):
        return
    if not allowed:
        raise DropboxConnectionConfigError(
            f"{where}: host {base_url!r} uses http:// to a host that is not loopback, which would send the "
            f"app secret and tokens unencrypted; use https://{parts.netloc}, or set the extra "
            '"allow_insecure_http": true if this really is a private test network (e.g. the emulator in '
            "docker compose)"
        )
    log.warning(
        "%s: allow_insecure_http is set; the app secret and tokens go to %s unencrypted", where, base_url
    )


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return value is True or value == 1


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _entries(entries: list[Any]) -> list[dict[str, Any]]:
    """Batch outcomes as plain data (XCom-safe)."""
    out: list[dict[str, Any]] = []
    for e in entries:
        out.append({"path": e.path, "metadata": e.metadata} if e.ok else {"path": e.path, "error": e.error})
    return out
