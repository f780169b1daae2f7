"""Verified, atomic, resumable downloads, in parallel ``Range`` parts for large files.

The bytes go to ``.<name>.dropbox-part-<random>`` in the destination folder (same filesystem, so the final
``os.replace`` is atomic), are checked against the size and ``content_hash`` from ``Dropbox-API-Result``,
fsynced, then renamed over the target. Any failure removes the temp file and leaves the old target untouched.

Hashing costs no extra pass: parts start on 4 MiB boundaries, each part hashes its own blocks as they arrive
(hashlib releases the GIL, so parts hash in parallel), and the block digests are joined in file order at the
end. A connection that drops mid-body resumes with ``Range`` from the last byte written, as long as every
answer still reports the same ``rev``; if the file changed on Dropbox the download starts over."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import secrets
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from airflow_provider_dropbox.client.content_hash import BLOCK_SIZE, ContentHasher, combine
from airflow_provider_dropbox.client.errors import (
    ContentHashMismatchError,
    DropboxApiError,
    LocalPathError,
)
from airflow_provider_dropbox.client.paths import check_local_destination, check_remote_path
from airflow_provider_dropbox.client.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from airflow_provider_dropbox.client.api import DropboxClient

log = logging.getLogger(__name__)

ROUTE = "files/download"
MiB = 1024 * 1024
FIRST_PART = 8 * MiB
"""Size of the first ranged request when downloading in parallel; smaller files need only that request."""
MIN_PART = 8 * MiB
MAX_PART = 64 * MiB
"""Parallel part size is total / (2 x parallelism), rounded up to 4 MiB and clamped to these bounds: two parts
per thread balance the tail, and 64 MiB parts keep per-request latency a small share of the transfer time."""
READ_CHUNK = 1 * MiB
MAX_RESTARTS = 2
PIPE_MIN = 8 * MiB
TEMP_MARKER = ".dropbox-part-"


class _RestartDownload(Exception):
    """The file changed on Dropbox mid-download (rev differs), or the bytes failed verification."""


class _Cancelled(Exception):
    """Another part failed; stop this one quickly."""


class _ShortBody(ConnectionError):
    """The server closed the body early; retryable like any dropped connection (resumes from what we have)."""


class _HashPipe:
    """Hashes in a helper thread so a single-stream download receives, writes and hashes at the same time.

    At most ``depth`` chunks wait in the queue, so memory stays bounded (depth x READ_CHUNK).
    """

    def __init__(self, hasher: ContentHasher, depth: int = 8) -> None:
        self._hasher = hasher
        self._queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="dropbox-download-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._hasher.update(item)

    def update(self, data: memoryview) -> None:
        self._queue.put(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


@dataclass
class _Part:
    start: int
    end: int  # exclusive
    pos: int = 0
    hasher: ContentHasher = field(default_factory=ContentHasher)
    pipe: _HashPipe | None = None

    def __post_init__(self) -> None:
        self.pos = self.start

    def feed(self, data: memoryview) -> None:
        if self.pipe is not None:
            self.pipe.update(data)
        else:
            self.hasher.update(data)

    def digests(self) -> list[bytes]:
        if self.pipe is not None:
            self.pipe.close()
        return self.hasher.finish_blocks()


def part_size_for(size: int, parallelism: int) -> int:
    want = -(-size // (2 * max(1, parallelism)))
    want = -(-want // BLOCK_SIZE) * BLOCK_SIZE
    return max(MIN_PART, min(MAX_PART, want))


def temp_path_for(dest: Path) -> Path:
    return dest.parent / f".{dest.name}{TEMP_MARKER}{secrets.token_hex(6)}"


def _result(resp: requests.Response) -> dict[str, Any]:
    raw = resp.headers.get("Dropbox-API-Result")
    if not raw:
        raise DropboxApiError(
            "Dropbox answered files/download without a Dropbox-API-Result header",
            route=ROUTE,
            status=resp.status_code,
        )
    meta = json.loads(raw)
    if not isinstance(meta, dict):
        raise DropboxApiError("Dropbox-API-Result is not a JSON object", route=ROUTE, status=resp.status_code)
    return meta


def _body_start(resp: requests.Response) -> int:
    """File offset of the first body byte: 0 for 200, the Content-Range start for 206."""
    if resp.status_code != 206:
        return 0
    content_range = resp.headers.get("Content-Range", "")
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise DropboxApiError(
            f"Dropbox sent 206 with an unreadable Content-Range {content_range!r}", route=ROUTE, status=206
        ) from None


class _Download:
    def __init__(
        self,
        client: DropboxClient,
        remote: str,
        dest: Path,
        parallelism: int,
        progress: Progress,
        fsync: bool = True,
    ) -> None:
        self.client = client
        self.fsync = fsync
        self.remote = remote
        self.dest = dest
        self.parallelism = parallelism
        self.progress = progress
        self.arg = {"path": remote}
        self.rev: str | None = None
        self.fd = -1
        self.cancel = threading.Event()

    def open(self, byte_range: tuple[int, int | None] | None) -> tuple[requests.Response, dict[str, Any]]:
        resp = self.client.download_response(ROUTE, self.arg, byte_range=byte_range, path=self.remote)
        try:
            meta = _result(resp)
            if self.rev is not None and meta.get("rev") != self.rev:
                log.info(
                    "Dropbox file %s changed during the download (rev %s -> %s); starting over",
                    self.remote,
                    self.rev,
                    meta.get("rev"),
                )
                raise _RestartDownload()
        except BaseException:
            resp.close()
            raise
        return resp, meta

    def write_error(self, exc: OSError) -> LocalPathError:
        """A local write failed (disk full, quota, I/O error): say where and what to do, not a bare OSError.

        The temp file is removed by ``run`` and the old target is untouched."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free space on that file system or choose another local path"
        else:
            fix = "check that the local folder is writable, or choose another local path"
        return LocalPathError(
            f"Cannot write '{self.dest}' for {self.remote}: {exc.strerror or exc}; {fix}. The existing local "
            "file (if any) was left untouched",
            route=ROUTE,
            path=str(self.dest),
        )

    def _open_retrying(
        self, byte_range: tuple[int, int | None] | None
    ) -> tuple[requests.Response, dict[str, Any]]:
        opened: tuple[requests.Response, dict[str, Any]] = self.client.call(
            ROUTE, lambda: self.open(byte_range)
        )
        return opened

    def fill(self, part: _Part, resp: requests.Response) -> None:
        """Write the body into ``part`` from its current position; raise _ShortBody if it ends early."""
        offset = _body_start(resp)
        if offset > part.pos:
            raise DropboxApiError(
                f"Dropbox sent bytes from {offset}, but {part.pos} was requested", route=ROUTE, status=206
            )
        for chunk in resp.iter_content(READ_CHUNK):
            if self.cancel.is_set():
                raise _Cancelled()
            if offset + len(chunk) <= part.pos:  # bytes before what we need (server ignored Range)
                offset += len(chunk)
                continue
            view = memoryview(chunk)[max(0, part.pos - offset) :]
            offset += len(chunk)
            view = view[: part.end - part.pos]
            written = 0
            try:
                while written < len(view):
                    written += os.pwrite(self.fd, view[written:], part.pos + written)
            except OSError as exc:
                raise self.write_error(exc) from exc
            part.feed(view)
            part.pos += len(view)
            self.progress.add(len(view))
            if part.pos >= part.end:
                return
        if part.pos < part.end:
            raise _ShortBody(f"body ended at byte {part.pos} of part ending at {part.end}")

    def fetch(self, part: _Part, first: requests.Response | None = None) -> None:
        """Complete ``part``, retrying and resuming with Range from what is already written."""
        pending = [first] if first is not None else []

        def attempt() -> None:
            if part.pos >= part.end:
                return
            resp = pending.pop() if pending else self.open((part.pos, part.end - 1))[0]
            try:
                self.fill(part, resp)
            finally:
                resp.close()

        try:
            self.client.call(f"files/download {self.remote} [{part.start}:{part.end}]", attempt)
        finally:
            for resp in pending:
                resp.close()

    def run(self) -> dict[str, Any]:
        ranged = self.parallelism > 1
        try:
            resp, meta = self._open_retrying((0, FIRST_PART - 1) if ranged else None)
        except DropboxApiError as exc:
            if exc.status != 416:
                raise
            # An empty file has no satisfiable range; ask again for the whole (empty) body.
            resp, meta = self._open_retrying(None)
        try:
            self.rev = meta.get("rev")
            size = int(meta["size"])
            self.progress.total = size
            try:
                self.dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LocalPathError(
                    f"Cannot create the local folder '{self.dest.parent}' for {self.remote}: {exc.strerror}",
                    route=ROUTE,
                    path=str(self.dest),
                ) from exc
            tmp = temp_path_for(self.dest)
        except BaseException:
            resp.close()
            raise
        created = False
        try:
            try:
                self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                created = True
            except OSError as exc:
                resp.close()
                raise LocalPathError(
                    f"Cannot write in the local folder '{self.dest.parent}' for {self.remote}: "
                    f"{exc.strerror}",
                    route=ROUTE,
                    path=str(self.dest),
                ) from exc
            parts = self._transfer(resp, size)
            self._verify(parts, size, meta)
            try:
                if self.fsync:
                    os.fsync(self.fd)
                fd, self.fd = self.fd, -1
                os.close(fd)
                _set_mtime(tmp, meta)
                # The folder itself is not fsynced (that costs ~6 ms per file, doubling a mirror of small
                # files): the rename survives a process crash, and after a power cut the worst case is the
                # old file back, never a torn one.
                os.replace(tmp, self.dest)
            except OSError as exc:
                raise self.write_error(exc) from exc
            return meta
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            # Only the temp file this call created: on a read-only mount, unlinking a name that was never
            # created fails with EROFS (not FileNotFoundError) and would hide the LocalPathError above.
            if created:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _transfer(self, first: requests.Response, size: int) -> list[_Part]:
        if first.status_code != 206 or size <= FIRST_PART or self.parallelism == 1:
            # Sequential: the first answer carries the whole file (or the whole file fits its range).
            whole = _Part(0, size)
            if size > PIPE_MIN:  # a helper thread pays off only when there is a lot to hash
                whole.pipe = _HashPipe(whole.hasher)
            try:
                self.fetch(whole, first)
            finally:
                if whole.pipe is not None:
                    whole.pipe.close()
            return [whole]
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise self.write_error(exc) from exc
        step = part_size_for(size - FIRST_PART, self.parallelism)
        parts = [_Part(0, FIRST_PART)]
        parts += [_Part(s, min(s + step, size)) for s in range(FIRST_PART, size, step)]
        with ThreadPoolExecutor(
            max_workers=min(self.parallelism, len(parts)), thread_name_prefix="dropbox-download"
        ) as pool:
            futures = [pool.submit(self.fetch, parts[0], first)]
            futures += [pool.submit(self.fetch, p) for p in parts[1:]]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self.cancel.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
                real = [e for e in errors if not isinstance(e, _Cancelled)]
                raise (real or errors)[0]  # type: ignore[misc]
        return parts

    def _verify(self, parts: list[_Part], size: int, meta: dict[str, Any]) -> None:
        got = sum(p.pos - p.start for p in parts)
        if got != size or os.fstat(self.fd).st_size != size:
            log.warning("Dropbox download of %s: got %d bytes, expected %d", self.remote, got, size)
            raise _RestartDownload()
        expected = meta.get("content_hash")
        if expected:
            actual = combine(d for p in parts for d in p.digests())
            if actual != expected:
                log.warning(
                    "Dropbox download of %s failed verification: content_hash %s, expected %s",
                    self.remote,
                    actual,
                    expected,
                )
                raise _RestartDownload("content_hash")


def _set_mtime(path: Path, meta: dict[str, Any]) -> None:
    """Give the local file Dropbox's client_modified time, like rclone, so tools comparing mtimes agree."""
    stamp = meta.get("client_modified")
    if not isinstance(stamp, str):
        return
    try:
        import calendar

        mtime = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return
    with contextlib.suppress(OSError):
        os.utime(path, (time.time(), mtime))


def download_file(
    client: DropboxClient,
    remote_path: str,
    local_path: str | os.PathLike[str],
    *,
    parallelism: int,
    progress: ProgressCallback | None = None,
    fsync: bool = True,
) -> dict[str, Any]:
    """See ``DropboxClient.download_file``."""
    remote = check_remote_path(remote_path, route=ROUTE)
    dest = check_local_destination(local_path, route=ROUTE)
    counter = Progress(0, progress)
    last: _RestartDownload | None = None
    for attempt in range(MAX_RESTARTS + 1):
        counter.reset()
        try:
            return _Download(client, remote, dest, max(1, parallelism), counter, fsync).run()
        except _RestartDownload as exc:
            last = exc
            if attempt < MAX_RESTARTS:
                log.info("Dropbox download of %s restarting (attempt %d)", remote, attempt + 2)
    if last is not None and last.args == ("content_hash",):
        raise ContentHashMismatchError(
            f"Downloaded bytes of Dropbox file '{remote}' do not match its content_hash after "
            f"{MAX_RESTARTS + 1} tries; the local file was left untouched",
            route=ROUTE,
            path=remote,
        )
    raise DropboxApiError(
        f"Dropbox file '{remote}' kept changing (or came back short) during {MAX_RESTARTS + 1} download "
        "attempts; try again when it is stable. The local file was left untouched",
        route=ROUTE,
        path=remote,
    )
