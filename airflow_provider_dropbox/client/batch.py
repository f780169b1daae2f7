"""Many-path calls (delete/copy/move/create_folder batches and their async jobs), search_v2 and temporary
links, over a :class:`DropboxClient`. No Airflow here.

A batch answers per entry; :class:`BatchError` is raised when any entry failed and carries every entry's
outcome, so a caller sees what did happen as well as what did not.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_dropbox.client.api import DropboxClient
from airflow_provider_dropbox.client.errors import (
    DownloadTooLargeError,
    DropboxApiError,
    LocalPathError,
    iter_tags,
)
from airflow_provider_dropbox.client.paths import check_remote_path

BATCH_LIMIT = 1000  # Dropbox's cap on entries per batch call
DEFAULT_JOB_TIMEOUT = 600.0


@dataclass
class BatchEntry:
    """One entry's outcome: ``metadata`` on success, ``error`` (the stone error tree) on failure."""

    path: str
    metadata: dict[str, Any] | None = None
    error: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tags(self) -> list[str]:
        return list(iter_tags(self.error))


class BatchError(DropboxApiError):
    """Some entries of a batch failed; ``entries`` holds every entry's outcome, in request order."""

    def __init__(self, message: str, *, entries: list[BatchEntry], route: str) -> None:
        super().__init__(message, route=route)
        self.entries = entries


class BatchJobTimeout(DropboxApiError):
    """The async job did not finish within the wait; its outcome is unknown (check again later)."""


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), BATCH_LIMIT):
        yield items[i : i + BATCH_LIMIT]


def wait_for_job(
    client: DropboxClient,
    check_route: str,
    launch: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_JOB_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The ``complete`` value of a launch answer, polling ``check_route`` while it is ``in_progress``."""
    tag = launch.get(".tag")
    if tag == "complete":
        return dict(launch)
    if tag != "async_job_id":
        raise DropboxApiError(f"Dropbox answered {check_route} launch with '{tag}'", route=check_route)
    job = str(launch["async_job_id"])
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        status = client.rpc(check_route, {"async_job_id": job})
        tag = status.get(".tag")
        if tag == "complete":
            return dict(status)
        if tag == "failed":
            raise DropboxApiError(
                f"Dropbox batch job failed as a whole ({check_route}): {status.get('failed')}",
                route=check_route,
                error=status.get("failed"),
            )
        if time.monotonic() + delay > deadline:
            raise BatchJobTimeout(
                f"Dropbox batch job {job} still running after {timeout:g} s ({check_route}); its changes may "
                "still land: check the paths, or raise the timeout",
                route=check_route,
            )
        sleep(delay)
        delay = min(delay * 2, 5.0)


def _entries(paths: Sequence[str], results: Sequence[Mapping[str, Any]], value: str) -> list[BatchEntry]:
    """One entry per launched path from a job's ``complete`` entries; ``value`` names the metadata field."""
    return [
        BatchEntry(p, metadata=e[value]) if e[".tag"] == "success" else BatchEntry(p, error=e.get("failure"))
        for p, e in zip(paths, results, strict=True)
    ]


def _finish(route: str, entries: list[BatchEntry], raise_on_failure: bool) -> list[BatchEntry]:
    failed = [e for e in entries if not e.ok]
    if failed and raise_on_failure:
        shown = ", ".join(f"'{e.path}' ({'/'.join(e.tags) or 'error'})" for e in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise BatchError(
            f"{len(failed)} of {len(entries)} entries failed ({route}): {shown}{more}; the others were done",
            entries=entries,
            route=route,
        )
    return entries


def delete_batch(
    client: DropboxClient, paths: Sequence[str], *, raise_on_failure: bool = True, timeout: float = 600.0
) -> list[BatchEntry]:
    """Delete many paths with one job per 1000; entries in the order given."""
    route = "files/delete_batch"
    paths = [check_remote_path(p, route=route) for p in paths]
    out: list[BatchEntry] = []
    for chunk in _chunks(paths):
        launch = client.rpc(route, {"entries": [{"path": p} for p in chunk]})
        done = wait_for_job(client, route + "/check", launch, timeout=timeout)
        out.extend(_entries(chunk, done["entries"], "metadata"))
    return _finish(route, out, raise_on_failure)


def create_folder_batch(
    client: DropboxClient,
    paths: Sequence[str],
    *,
    autorename: bool = False,
    raise_on_failure: bool = True,
    timeout: float = 600.0,
) -> list[BatchEntry]:
    """Create many folders (and their parents); entries in the order given."""
    route = "files/create_folder_batch"
    paths = [check_remote_path(p, route=route, allow_id=False) for p in paths]
    out: list[BatchEntry] = []
    for chunk in _chunks(paths):
        launch = client.rpc(route, {"paths": list(chunk), "autorename": autorename})
        done = wait_for_job(client, route + "/check", launch, timeout=timeout)
        out.extend(_entries(chunk, done["entries"], "metadata"))
    return _finish(route, out, raise_on_failure)


def relocate_batch(
    client: DropboxClient,
    pairs: Sequence[tuple[str, str]],
    *,
    copy: bool,
    autorename: bool = False,
    raise_on_failure: bool = True,
    timeout: float = 600.0,
) -> list[BatchEntry]:
    """copy_batch_v2 / move_batch_v2 over ``(from, to)`` pairs; entries carry the ``from`` path."""
    route = "files/copy_batch_v2" if copy else "files/move_batch_v2"
    check = "files/copy_batch/check_v2" if copy else "files/move_batch/check_v2"
    pairs = [(check_remote_path(a, route=route), check_remote_path(b, route=route)) for a, b in pairs]
    out: list[BatchEntry] = []
    for chunk in _chunks(pairs):
        arg = {"entries": [{"from_path": a, "to_path": b} for a, b in chunk], "autorename": autorename}
        done = wait_for_job(client, check, client.rpc(route, arg), timeout=timeout)
        out.extend(_entries([a for a, _ in chunk], done["entries"], "success"))
    return _finish(route, out, raise_on_failure)


def search(
    client: DropboxClient,
    query: str,
    *,
    path: str | None = None,
    file_extensions: Sequence[str] | None = None,
    max_results: int | None = None,
    page_size: int = 100,
) -> Iterator[dict[str, Any]]:
    """Metadata of every search_v2 match (all pages), up to ``max_results``."""
    options: dict[str, Any] = {"max_results": max(1, min(page_size, 1000))}
    if path not in (None, "", "/"):
        assert path is not None
        options["path"] = check_remote_path(path, route="files/search_v2")
    if file_extensions:
        options["file_extensions"] = [e.lstrip(".") for e in file_extensions]
    page = client.rpc("files/search_v2", {"query": query, "options": options})
    sent = 0
    while True:
        for match in page.get("matches", []):
            md = match.get("metadata", {})
            if md.get(".tag") != "metadata":
                continue
            if max_results is not None and sent >= max_results:
                return
            sent += 1
            yield dict(md["metadata"])
        if not page.get("has_more") or not page.get("cursor"):
            return
        page = client.rpc("files/search/continue_v2", {"cursor": page["cursor"]})


def get_temporary_link(client: DropboxClient, path: str) -> dict[str, Any]:
    """``{"link": url, "metadata": FileMetadata}``; the link serves the file for four hours, no token."""
    path = check_remote_path(path, route="files/get_temporary_link")
    return dict(client.rpc("files/get_temporary_link", {"path": path}, path=path))


def restore(client: DropboxClient, path: str, rev: str) -> dict[str, Any]:
    """Make revision ``rev`` the file's current content again (a new revision); returns its metadata."""
    path = check_remote_path(path, route="files/restore", allow_id=False)
    if not isinstance(rev, str) or len(rev) < 9 or any(ch not in "0123456789abcdef" for ch in rev):
        raise DropboxApiError(
            f"Not a Dropbox revision: {rev!r} (files/restore); use a file's 'rev' or one from list_revisions",
            route="files/restore",
            path=path,
        )
    return dict(client.rpc("files/restore", {"path": path, "rev": rev}, path=path))


def _save_stream(
    client: DropboxClient,
    route: str,
    arg: Any,
    local_path: str | os.PathLike[str],
    max_bytes: int | None = None,
) -> Any:
    """Stream a download-style answer to a temp file beside ``local_path``, fsync, then rename into place:
    an interrupted transfer never leaves a partial file under the final name. Returns the API result.
    An answer longer than ``max_bytes`` is dropped (``DownloadTooLargeError``) as soon as it gets there."""
    target = Path(local_path)
    if target.is_dir():
        raise LocalPathError(f"{target} is a directory; give a file path ({route})", route=route)
    if not target.parent.is_dir():
        raise LocalPathError(f"Folder {target.parent} does not exist ({route})", route=route)

    def attempt() -> Any:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                resp = client.download_response(route, arg, path=arg.get("path"))
                try:
                    result = json.loads(resp.headers.get("Dropbox-API-Result", "null"))
                    got = 0
                    for chunk in resp.iter_content(1 << 20):
                        got += len(chunk)
                        if max_bytes is not None and got > max_bytes:
                            raise DownloadTooLargeError(
                                f"{route} answer for {arg.get('path')!r} is over the {max_bytes} bytes "
                                "allowed; dropped",
                                route=route,
                                path=arg.get("path"),
                            )
                        out.write(chunk)
                finally:
                    resp.close()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            return result
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    return client.call(route, attempt)


def download_zip(
    client: DropboxClient,
    path: str,
    local_path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Save a Dropbox folder as one zip file (files/download_zip); returns the folder's metadata.
    ``max_bytes`` drops a zip that turns out longer (``DownloadTooLargeError``)."""
    path = check_remote_path(path, route="files/download_zip")
    return dict(_save_stream(client, "files/download_zip", {"path": path}, local_path, max_bytes)["metadata"])


def download_shared_link_file(
    client: DropboxClient, url: str, local_path: str | os.PathLike[str], *, path: str | None = None
) -> dict[str, Any]:
    """Save the file behind a shared link (``path``: a file in a shared folder); returns its link metadata."""
    arg: dict[str, Any] = {"url": url}
    if path:
        arg["path"] = path
    return dict(_save_stream(client, "sharing/get_shared_link_file", arg, local_path))


def shared_link_metadata(client: DropboxClient, url: str, *, path: str | None = None) -> dict[str, Any]:
    arg: dict[str, Any] = {"url": url}
    if path:
        arg["path"] = path
    return dict(client.rpc("sharing/get_shared_link_metadata", arg))


def modify_shared_link(
    client: DropboxClient,
    url: str,
    *,
    expires: str | None = None,
    remove_expiration: bool = False,
    allow_download: bool | None = None,
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if expires is not None:
        settings["expires"] = expires
    if allow_download is not None:
        settings["allow_download"] = allow_download
    arg = {"url": url, "settings": settings, "remove_expiration": remove_expiration}
    return dict(client.rpc("sharing/modify_shared_link_settings", arg))


def revoke_shared_link(client: DropboxClient, url: str) -> None:
    client.rpc("sharing/revoke_shared_link", {"url": url})


__all__ = [
    "BatchEntry",
    "BatchError",
    "BatchJobTimeout",
    "create_folder_batch",
    "delete_batch",
    "download_shared_link_file",
    "download_zip",
    "get_temporary_link",
    "modify_shared_link",
    "relocate_batch",
    "restore",
    "revoke_shared_link",
    "search",
    "shared_link_metadata",
    "wait_for_job",
]
