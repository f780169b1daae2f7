"""Uploads: one request for small files, upload sessions in 4 MiB-multiple chunks for large ones, batches for
many.

Memory stays small whatever the chunk size: a chunk is hashed with ``os.pread`` one 4 MiB block at a time,
then streamed from the file with ``os.pread`` again (the page cache serves the second read), so each transfer
thread holds about one block, not one chunk. Every request carries the ``content_hash`` of its own bytes, and
chunks are 4 MiB-aligned, so the block digests computed for the requests also give the whole-file hash, which
is checked against the hash Dropbox reports for the committed file.

Retries are per request (``retry.py``): a failed chunk is re-sent alone. ``incorrect_offset`` means Dropbox
has a different idea of how much it received (usually a response lost after the server stored the data), so
the sequential upload continues from ``correct_offset``. A commit whose response was lost is recognised on the
retry by finding the remote file with our content hash.

A file that changes while it is read (grows, shrinks, is rewritten or replaced) must never be reported as
uploaded: Dropbox would hold bytes that were never the file's content at one moment. The file's size,
mtime_ns, ctime_ns and inode are taken when it is opened and compared again, together with the bytes past
the end, after the last byte was read and before anything is committed (a session's data go up first, the
commit follows with an empty body); a file modified within one timestamp tick of being opened is also
hashed again and compared with the hash of what was sent, since a write inside that tick leaves the stamps
unchanged. A single-request upload carries data and commit together, so it is checked
after; a change there means Dropbox holds the complete version that was read, which the retry replaces
(``{"update": rev}``, so nobody else's write is overwritten). A changed file is retried from the start up
to ``CHANGE_RETRIES`` times, then ``LocalFileChangedError``."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_dropbox.client.batch_commit import CommitPipeline, Slot, gate_for
from airflow_provider_dropbox.client.content_hash import (
    BLOCK_SIZE,
    HASH_WORKERS,
    combine,
    parallel_block_digests,
)
from airflow_provider_dropbox.client.errors import (
    AuthError,
    BatchUploadError,
    ContentHashMismatchError,
    DropboxApiError,
    DropboxConnectionError,
    LocalFileChangedError,
    LocalPathError,
    NotAFileError,
    PathNotFoundError,
    RateLimitError,
    UploadSessionError,
    api_error_from_response,
    has_tag,
    iter_tags,
)
from airflow_provider_dropbox.client.paths import (
    check_allowed_name,
    check_local_source,
    check_remote_path,
    open_regular,
)
from airflow_provider_dropbox.client.progress import Progress, ProgressCallback
from airflow_provider_dropbox.client.retry import is_retryable

if TYPE_CHECKING:
    from airflow_provider_dropbox.client.api import DropboxClient

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_REQUEST = 150 * MiB
"""Dropbox's per-request body limit."""
SINGLE_REQUEST_LIMIT = 150 * MiB
"""Files up to this size go in one ``files/upload`` request (settable per call)."""
DEFAULT_CHUNK_SIZE = 32 * MiB
"""Upload-session chunk; a multiple of 4 MiB (concurrent sessions require it, and aligned chunks let the
request hashes add up to the file hash). 32 MiB: with 50 ms added latency and 8 threads it was the best
average of 8/16/32/48 MiB on the shared test machine (measurements noisy, CPU-bound loopback); 1 GiB is 32
chunks, four even rounds at parallelism 8; one request's latency stays under ~5 % of its transfer time at
>= 30 MB/s per connection; and memory does not grow with it because chunks are streamed from the file,
never held."""
MAX_CHUNK_SIZE = (MAX_REQUEST // BLOCK_SIZE) * BLOCK_SIZE
SKIP_CHECK_MIN_SIZE = 4 * MiB
"""``skip_if_identical`` asks for remote metadata only above this size: below it the upload is one small
request and Dropbox already treats identical content as a no-op, so the extra round trip would cost more than
it saves."""
BATCH_MAX = 1000
"""finish_batch_v2 accepts at most 1000 entries."""
MAX_CHUNK_ATTEMPTS = 5
"""Re-sends of one chunk after ``incorrect_offset`` answers that do not confirm it (on top of retry.py)."""
SMALL_BODY = 256 * 1024
"""Request bodies up to this size are read into memory and sent in one piece: for a 10 KiB file, requests'
streaming path (protocol checks, chunked reads) costs more client CPU than the bytes themselves."""
"""Re-sends of one chunk after ``incorrect_offset`` answers that do not confirm it (on top of retry.py)."""

CHANGE_RETRIES = 2
"""Fresh attempts after the local file changed during an upload, before ``LocalFileChangedError``."""
CHANGE_SETTLE = 0.5
"""Seconds to wait before such a fresh attempt, for the writer to finish."""
HOT_SECONDS = 0.05
"""A file modified this recently before it was opened is re-hashed after the upload's last read: a write
inside the same timestamp tick (the kernel's coarse clock, at most 10 ms) leaves mtime/ctime unchanged.
``HOT_SECONDS_COARSE`` applies instead when the stamp has no sub-second part (a file system that stores
whole seconds)."""
HOT_SECONDS_COARSE = 2.0

WriteMode = str | Mapping[str, str]


class _Changed(Exception):
    """The local file changed during this attempt; ``committed``: what Dropbox already holds (single
    request only, a complete version that was read), else None (nothing was committed)."""

    def __init__(self, reason: str, committed: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.committed = committed


class _FileRange:
    """A readable view of ``length`` bytes at ``offset`` of a file descriptor, read lazily with os.pread.

    ``requests`` sends it as a streamed body with a Content-Length (from ``__len__``); progress counts bytes
    as they are read for the socket and is rolled back with ``rollback`` when the request failed."""

    def __init__(self, fd: int, offset: int, length: int, progress: Progress | None) -> None:
        self._fd = fd
        self._offset = offset
        self._length = length
        self._pos = 0
        self._progress = progress
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        if left <= 0:
            return b""
        want = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._fd, want, self._offset + self._pos)
        if not data:
            raise LocalFileChangedError(
                "The local file shrank while it was being uploaded; upload it again when it is stable"
            )
        self._pos += len(data)
        self.sent += len(data)
        if self._progress is not None:
            self._progress.add(len(data))
        return data

    def whole(self) -> bytes:
        """All of the range at once (a small body: one ``sendall``, none of requests' streaming path)."""
        data = self.read(self._length)
        if len(data) != self._length:
            self.rollback()
            raise LocalFileChangedError(
                "The local file shrank while it was being uploaded; upload it again when it is stable"
            )
        return data

    def rollback(self) -> None:
        if self._progress is not None and self.sent:
            self._progress.add(-self.sent)
        self.sent = 0


class _Bodies:
    """Makes a fresh body per attempt for one request and takes back the progress of failed attempts."""

    def __init__(self, fd: int, offset: int, length: int, progress: Progress | None) -> None:
        self.fd, self.offset, self.length, self.progress = fd, offset, length, progress
        self._last: _FileRange | None = None

    def __call__(self) -> _FileRange | bytes:
        if self._last is not None:
            self._last.rollback()
        if self.length == 0:
            return b""
        self._last = _FileRange(self.fd, self.offset, self.length, self.progress)
        if self.length <= SMALL_BODY:
            return self._last.whole()
        return self._last

    def failed(self) -> None:
        if self._last is not None:
            self._last.rollback()
            self._last = None


@dataclass
class _LocalFile:
    path: Path
    remote: str
    fd: int
    size: int
    client_modified: str
    stat: os.stat_result | None = None
    digests: dict[int, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def change(self) -> str | None:
        """How the file differs from when it was opened (size, times, inode, bytes past the end, or, for a
        file modified just before, its content), or None. Call after the last read, before committing."""
        st0 = self.stat
        if st0 is None or self.fd < 0:
            return None
        st = os.fstat(self.fd)
        if st.st_size != st0.st_size:
            verb = "grew" if st.st_size > st0.st_size else "shrank"
            return f"it {verb} from {st0.st_size} to {st.st_size} bytes"
        if (st.st_mtime_ns, st.st_ctime_ns) != (st0.st_mtime_ns, st0.st_ctime_ns):
            return "it was written to (its modification or change time moved)"
        if os.pread(self.fd, 1, self.size):
            return f"reading it gives more than the {self.size} bytes its size says"
        try:
            now = os.stat(self.path)
        except OSError:
            return "it was deleted or moved away"
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return "another file was put in its place (its inode changed)"
        window = HOT_SECONDS_COARSE if st0.st_mtime_ns % 1_000_000_000 == 0 else HOT_SECONDS
        if time.time_ns() - st0.st_mtime_ns < window * 1e9 or st0.st_mtime_ns > time.time_ns():
            try:
                again = combine(parallel_block_digests(self.fd, 0, self.size))
            except EOFError:
                return "it shrank"
            if again != self.file_hash():
                return "its content changed (same size and times: a rewrite inside one timestamp tick)"
        return None

    def request_hash(self, offset: int, length: int, workers: int = HASH_WORKERS) -> str:
        """content_hash of the bytes [offset, offset+length); remembers block digests for the file hash."""
        digests = self._digests(self.fd, offset, length, workers)
        if offset % BLOCK_SIZE == 0:
            with self.lock:
                for i, digest in enumerate(digests):
                    self.digests[offset + i * BLOCK_SIZE] = digest
        return combine(digests)

    def file_hash(self) -> str:
        """Whole-file content hash, from the request hashes when they cover every block (the usual case)."""
        starts = range(0, self.size, BLOCK_SIZE)
        with self.lock:
            if all(s in self.digests for s in starts):
                return combine(self.digests[s] for s in starts)
        if self.fd >= 0:
            return combine(self._digests(self.fd, 0, self.size))
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return combine(self._digests(fd, 0, self.size))
        finally:
            os.close(fd)

    def _digests(self, fd: int, offset: int, length: int, workers: int = HASH_WORKERS) -> list[bytes]:
        """Block digests of a range; a file that shrank under us is the caller's input error, not EOFError."""
        try:
            return parallel_block_digests(fd, offset, length, workers)
        except EOFError as exc:
            raise LocalFileChangedError(
                f"The local file '{self.path}' shrank while it was being uploaded; upload it again when it "
                "is stable",
                path=str(self.path),
            ) from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_local(local_path: str | os.PathLike[str], remote: str, route: str) -> _LocalFile:
    path = check_local_source(local_path, route=route)
    fd, st = open_regular(path, route=route)  # a FIFO swapped in after the check is refused, not waited on
    if st.st_size == 0 and os.pread(fd, 1, 0):
        os.close(fd)
        raise LocalPathError(
            f"Local file '{path}' reports a size of 0 bytes but reading it gives data: a /proc or /sys style "
            f"file whose size stat does not tell ({route}); copy it to a regular file and upload that",
            route=route,
            path=str(path),
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(st.st_mtime)))
    return _LocalFile(path=path, remote=remote, fd=fd, size=st.st_size, client_modified=stamp, stat=st)


def _changed_during(f: _LocalFile, exc: BaseException) -> _Changed | None:
    """A failure that the file's own change explains (a request hash the body no longer matches, a short
    read, a final hash that differs) as ``_Changed``; None when the file did not change."""
    if not isinstance(exc, DropboxApiError) or isinstance(exc, (DropboxConnectionError, AuthError)):
        return None
    reason = f.change()
    return _Changed(reason) if reason else None


def _require_unchanged(f: _LocalFile) -> None:
    """Raise ``_Changed`` before a commit when the file is not what was opened."""
    reason = f.change()
    if reason:
        raise _Changed(reason)


def _change_error(
    path: Path, remote: str, route: str, last: _Changed, attempts: int
) -> LocalFileChangedError:
    if last.committed is not None:
        held = (
            f"Dropbox holds the complete version the last attempt read (rev {last.committed.get('rev')}, "
            f"{last.committed.get('size')} bytes), not the current file"
        )
    else:
        held = "nothing was committed, so Dropbox holds no mix of old and new bytes"
    return LocalFileChangedError(
        f"The local file '{path}' changed while it was being uploaded to '{remote}' ({last.reason}), in "
        f"{attempts} attempt(s) in a row; {held}. Upload it again once it is complete (writers should write "
        "to a temporary name and rename it when done)",
        route=route,
        path=str(path),
    )


def write_mode(mode: WriteMode) -> dict[str, str]:
    """``"add" | "overwrite" | {"update": rev}`` (or the stone form) -> the stone union JSON."""
    if isinstance(mode, str):
        if mode in ("add", "overwrite"):
            return {".tag": mode}
    elif isinstance(mode, Mapping):
        rev = mode.get("update")
        if isinstance(rev, str) and rev:
            return {".tag": "update", "update": rev}
    raise ValueError(f"mode must be 'add', 'overwrite' or {{'update': '<rev>'}}, not {mode!r}")


def check_chunk_size(chunk_size: int | None) -> int:
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk <= 0 or chunk % BLOCK_SIZE or chunk > MAX_CHUNK_SIZE:
        raise ValueError(
            f"chunk_size must be a multiple of 4 MiB (4194304 bytes) up to {MAX_CHUNK_SIZE // MiB} MiB, "
            f"got {chunk}"
        )
    return chunk


def _commit_info(f: _LocalFile, mode: WriteMode, autorename: bool) -> dict[str, Any]:
    return {
        "path": f.remote,
        "mode": write_mode(mode),
        "autorename": autorename,
        "client_modified": f.client_modified,
        "mute": False,
        "strict_conflict": False,
    }


def _strip_tag(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != ".tag"}


def _remote_if_identical(client: DropboxClient, remote: str, file_hash: str) -> dict[str, Any] | None:
    """The remote file's metadata when it already holds exactly these bytes, else None."""
    try:
        meta = client.get_metadata(remote)
    except PathNotFoundError:
        return None
    if meta.get(".tag", "file") == "file" and meta.get("content_hash") == file_hash:
        return _strip_tag(meta)
    return None


def _check_result(f: _LocalFile, meta: Mapping[str, Any], route: str) -> dict[str, Any]:
    expected = f.file_hash()
    if meta.get("content_hash") not in (None, expected) or int(meta.get("size", f.size)) != f.size:
        raise ContentHashMismatchError(
            f"Dropbox stored '{f.remote}' with content_hash {meta.get('content_hash')} but the local file "
            f"'{f.path}' hashes to {expected}; the local file probably changed during the upload, upload "
            f"again",
            route=route,
            path=f.remote,
        )
    return dict(meta)


class _Tally(Progress):
    """One attempt's share of a shared ``Progress``: counts what it adds so ``take_back`` can remove it
    when the attempt is thrown away and the file is sent again (else its bytes would count twice)."""

    def __init__(self, parent: Progress) -> None:
        super().__init__(parent.total, None)
        self.parent = parent
        self.sent = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.sent += n
        self.parent.add(n)

    def take_back(self) -> None:
        with self._lock:
            n, self.sent = self.sent, 0
        self.parent.add(-n)


class _Uploader:
    def __init__(
        self, client: DropboxClient, progress: Progress, chunk: int, cancel: threading.Event | None = None
    ) -> None:
        self.client = client
        self.progress = progress
        self.chunk = chunk
        self.cancel = cancel or threading.Event()

    # -------------------------------------------------------------- single request

    def single(self, f: _LocalFile, commit: dict[str, Any]) -> dict[str, Any]:
        arg = {**commit, "content_hash": f.request_hash(0, f.size)}
        bodies = _Bodies(f.fd, 0, f.size, self.progress)
        meta = self._commit_call(
            "files/upload",
            f,
            lambda: self.client.upload_call("files/upload", arg, bodies, path=f.remote, retry=False),
            bodies,
        )
        return _check_result(f, meta, "files/upload")

    def _commit_call(
        self, route: str, f: _LocalFile, send: Callable[[], Any], bodies: _Bodies | None = None
    ) -> dict[str, Any]:
        """Run a committing request under the retry policy; after a lost answer, accept an identical file.

        A connection error or 5xx leaves it unknown whether the commit happened. If the re-sent request then
        fails for good (session already finished, conflict), the remote file holding exactly our bytes means
        the earlier attempt did commit.
        """
        uncertain = False

        def attempt() -> Any:
            nonlocal uncertain
            try:
                return send()
            except BaseException as exc:
                if bodies is not None:
                    bodies.failed()
                if uncertain and isinstance(exc, DropboxApiError) and not is_retryable(exc):
                    found = _remote_if_identical(self.client, f.remote, f.file_hash())
                    if found is not None:
                        log.info("Dropbox %s for %s: the earlier attempt had committed", route, f.remote)
                        return found
                if is_retryable(exc) and not isinstance(exc, RateLimitError):
                    uncertain = True
                raise

        return dict(self.client.call(route, attempt))

    # -------------------------------------------------------------- session pieces

    def _send_chunk(
        self,
        route: str,
        arg: dict[str, Any],
        f: _LocalFile,
        offset: int,
        length: int,
        workers: int = HASH_WORKERS,
        content_hash: str | None = None,
    ) -> Any:
        if self.cancel.is_set():
            raise _Cancelled()
        arg = {**arg, "content_hash": content_hash or f.request_hash(offset, length, workers)}
        bodies = _Bodies(f.fd, offset, length, self.progress)

        def attempt() -> Any:
            try:
                return self.client.upload_call(route, arg, bodies, path=f.remote, retry=False)
            except BaseException:
                bodies.failed()
                raise

        return self.client.call(f"{route} {f.remote} @{offset}", attempt)

    def start(self, f: _LocalFile, *, length: int, close: bool, concurrent: bool) -> str:
        arg: dict[str, Any] = {"close": close}
        if concurrent:
            arg["session_type"] = {".tag": "concurrent"}
        result = self._send_chunk("files/upload_session/start", arg, f, 0, length)
        return str(result["session_id"])

    def append(
        self,
        f: _LocalFile,
        session_id: str,
        offset: int,
        length: int,
        close: bool,
        workers: int = HASH_WORKERS,
        content_hash: str | None = None,
    ) -> int:
        """Append [offset, offset+length); returns the offset Dropbox now has (incorrect_offset moves it).

        ``content_hash``: the range's hash when already computed (else it is hashed here)."""
        arg = {"cursor": {"session_id": session_id, "offset": offset}, "close": close}
        try:
            self._send_chunk("files/upload_session/append_v2", arg, f, offset, length, workers, content_hash)
        except UploadSessionError as exc:
            if close and "closed" in exc.tags and offset + length == f.size:
                return f.size  # our closing append landed; only its answer was lost
            if exc.correct_offset is None or "incorrect_offset" not in exc.tags:
                raise
            log.info(
                "Dropbox upload session for %s: offset %d rejected, server has %d",
                f.remote,
                offset,
                exc.correct_offset,
            )
            return exc.correct_offset
        return offset + length

    def sequential(
        self, f: _LocalFile, commit: dict[str, Any] | None
    ) -> tuple[str, int, dict[str, Any] | None]:
        """Sequential session. With ``commit``: finish with the last piece and return the metadata.

        Without (for ``finish_batch_v2``): close the session with the last append and return its id.
        With a commit the data still go up first and the commit follows with an empty body, once the file is
        known not to have changed while it was read (``_require_unchanged``)."""
        if commit is not None:
            session_id, _, _ = self.sequential(f, None)
            _require_unchanged(f)
            meta, correct = self._finish(f, session_id, f.size, 0, commit)
            if meta is None:
                raise UploadSessionError(
                    f"Dropbox has {correct} bytes of the closed upload session for '{f.remote}', not "
                    f"{f.size}; upload it again",
                    route="files/upload_session/finish",
                    path=f.remote,
                )
            return session_id, f.size, meta
        first = min(self.chunk, f.size)
        close_now = first == f.size
        session_id = self.start(f, length=first, close=close_now, concurrent=False)
        if close_now:
            return session_id, f.size, None
        offset = first
        rejects = 0
        while rejects <= MAX_CHUNK_ATTEMPTS:
            left = f.size - offset
            length = min(self.chunk, left)
            close = offset + length == f.size
            new_offset = self.append(f, session_id, offset, length, close)
            if new_offset == offset + length:
                if close:
                    return session_id, f.size, None
            else:
                rejects += 1
                if new_offset < offset:  # Dropbox holds less than was counted: those bytes go again
                    self.progress.add(new_offset - offset)
                if new_offset == offset:
                    self.client.retry.sleep(self.client.retry.backoff(rejects))
            offset = new_offset
            if offset >= f.size:  # Dropbox has every byte; make sure the session is closed
                self.append(f, session_id, f.size, 0, True)
                return session_id, f.size, None
        raise UploadSessionError(
            f"Dropbox kept rejecting the upload offsets for '{f.remote}'; upload it again",
            route="files/upload_session/append_v2",
            path=f.remote,
        )

    def _finish(
        self, f: _LocalFile, session_id: str, offset: int, length: int, commit: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, int]:
        """Finish carrying [offset, size); ``(None, correct_offset)`` when Dropbox has a different offset."""
        route = "files/upload_session/finish"
        arg: dict[str, Any] = {"cursor": {"session_id": session_id, "offset": offset}, "commit": commit}
        if length:
            arg["content_hash"] = f.request_hash(offset, length)
        bodies = _Bodies(f.fd, offset, length, self.progress)
        try:
            meta = self._commit_call(
                route,
                f,
                lambda: self.client.upload_call(route, arg, bodies, path=f.remote, retry=False),
                bodies,
            )
        except UploadSessionError as exc:
            if exc.correct_offset is None or "incorrect_offset" not in exc.tags:
                raise
            return None, exc.correct_offset
        return _check_result(f, meta, route), f.size

    def concurrent(self, f: _LocalFile, commit: dict[str, Any], parallelism: int) -> dict[str, Any]:
        """Concurrent session: start empty, append 4 MiB-multiple chunks in parallel, close with the last.

        Chunk hashes are computed one round ahead (``_HashAhead``), the first round while the session start
        is in flight, so a transfer thread goes from one request straight to the next."""
        # The closing append must wait for all others, so it is kept small (the last 1..4 MiB): a full-size
        # last chunk would be uploaded alone, over one connection, at the very end.
        last_off = ((f.size - 1) // BLOCK_SIZE) * BLOCK_SIZE
        last_len = f.size - last_off
        body = [(off, min(self.chunk, last_off - off)) for off in range(0, last_off, self.chunk)]
        last = (last_off, last_len)
        with _HashAhead(f, [*body, last], depth=parallelism) as hashes:
            session_id = self.start(f, length=0, close=False, concurrent=True)
            return self._concurrent_body(f, commit, parallelism, session_id, body, last, hashes)

    def _concurrent_body(
        self,
        f: _LocalFile,
        commit: dict[str, Any],
        parallelism: int,
        session_id: str,
        body: list[tuple[int, int]],
        last: tuple[int, int],
        hashes: _HashAhead,
    ) -> dict[str, Any]:
        last_off, last_len = last

        def put(off: int, length: int, close: bool) -> None:
            content_hash = hashes.take(off)
            for attempt in range(1, MAX_CHUNK_ATTEMPTS + 1):
                got = self.append(f, session_id, off, length, close, workers=1, content_hash=content_hash)
                if got == off + length:
                    return
                # Usually an earlier attempt of this chunk is still arriving at the server: give it time.
                wait = self.client.retry.backoff(attempt)
                log.info(
                    "Dropbox concurrent session for %s: re-sending chunk @%d in %.2f s", f.remote, off, wait
                )
                self.client.retry.sleep(wait)
            raise UploadSessionError(
                f"Dropbox did not confirm chunk @{off} of '{f.remote}' after {MAX_CHUNK_ATTEMPTS} tries",
                route="files/upload_session/append_v2",
                path=f.remote,
            )

        if body:
            with ThreadPoolExecutor(
                max_workers=min(parallelism, len(body)), thread_name_prefix="dropbox-upload"
            ) as pool:
                futures = [pool.submit(put, off, length, False) for off, length in body]
                _wait_all(futures, self.cancel)
        # The closing append goes last: Dropbox wants every earlier chunk in place before the session closes.
        put(last_off, last_len, True)
        _require_unchanged(f)  # every byte is read: commit only what was the file's content at one moment
        route = "files/upload_session/finish"
        arg = {"cursor": {"session_id": session_id, "offset": f.size}, "commit": commit}
        meta = self._commit_call(
            route, f, lambda: self.client.upload_call(route, arg, lambda: b"", path=f.remote, retry=False)
        )
        return _check_result(f, meta, route)


class _HashAhead:
    """The content_hash of each chunk, computed on helper threads in chunk order, at most ``depth`` chunks
    ahead of the ones taken for sending.

    Hashing a chunk before its request (the hash goes in the request's header) otherwise leaves that
    connection idle while its thread hashes: 30-150 ms per 32 MiB chunk here, against about 450 ms to send
    it over a 50 ms path at 80 MiB/s. ``depth`` = parallelism hashes the next round while this one is sent;
    only digests are kept (the bytes are read again with ``os.pread`` when sent), so memory stays flat and
    the CPU spent is the same, only earlier."""

    def __init__(self, f: _LocalFile, chunks: Sequence[tuple[int, int]], depth: int) -> None:
        self._f = f
        self._chunks = list(chunks)
        self._next = 0
        self._lock = threading.Lock()
        self._futures: dict[int, Future[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="dropbox-hash-ahead")
        for _ in range(max(1, depth)):
            self._submit_next()

    def _submit_next(self) -> None:
        with self._lock:
            if self._next >= len(self._chunks):
                return
            off, length = self._chunks[self._next]
            self._next += 1
            self._futures[off] = self._pool.submit(self._f.request_hash, off, length, 1)

    def take(self, off: int) -> str:
        """The hash of the chunk at ``off`` (waiting for it if needed); queues the next chunk's hashing."""
        with self._lock:
            fut = self._futures.pop(off, None)
        self._submit_next()
        if fut is None:  # not a planned chunk (cannot happen today): hash it here
            length = dict(self._chunks)[off]
            return self._f.request_hash(off, length, 1)
        return fut.result()

    def __enter__(self) -> _HashAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Cancelled(Exception):
    """A sibling chunk failed; stop."""


def _wait_all(futures: Sequence[Future[Any]], cancel: threading.Event) -> None:
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    if any(fut.exception() is not None for fut in done):
        cancel.set()
        for fut in futures:
            fut.cancel()
        wait(futures)
        errors = [fut.exception() for fut in futures if not fut.cancelled() and fut.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        raise (real or errors)[0]  # type: ignore[misc]


def upload_file(
    client: DropboxClient,
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    mode: WriteMode = "add",
    autorename: bool = False,
    single_request_limit: int = SINGLE_REQUEST_LIMIT,
    chunk_size: int | None = None,
    parallelism: int = 1,
    skip_if_identical: bool = True,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """See ``DropboxClient.upload_file``."""
    route = "files/upload"
    remote = check_allowed_name(check_remote_path(remote_path, route=route, allow_id=False), route=route)
    chunk = check_chunk_size(chunk_size)
    write_mode(mode)
    limit = min(int(single_request_limit), MAX_REQUEST)
    attempt_mode = mode
    for attempt in range(CHANGE_RETRIES + 1):
        f = _open_local(local_path, remote, route)
        try:
            return _upload_once(
                client, f, attempt_mode, autorename, limit, chunk, parallelism, skip_if_identical, progress
            )
        except _Changed as changed:
            if changed.committed is not None and changed.committed.get("rev"):
                # Replace the version this call committed, and only that one.
                attempt_mode = {"update": str(changed.committed["rev"])}
            if attempt == CHANGE_RETRIES:
                raise _change_error(f.path, remote, route, changed, attempt + 1) from None
            log.warning(
                "Local file %s changed during its upload to Dropbox %s (%s); starting again in %.1f s",
                f.path,
                remote,
                changed.reason,
                CHANGE_SETTLE,
            )
        finally:
            f.close()
        time.sleep(CHANGE_SETTLE)
    raise AssertionError("unreachable")


def _upload_once(
    client: DropboxClient,
    f: _LocalFile,
    mode: WriteMode,
    autorename: bool,
    limit: int,
    chunk: int,
    parallelism: int,
    skip_if_identical: bool,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """One attempt of ``upload_file`` on an opened file; ``_Changed`` when the file changed under it."""
    route = "files/upload"
    remote = f.remote
    counter = Progress(f.size, progress)
    if skip_if_identical and f.size > SKIP_CHECK_MIN_SIZE:
        try:
            existing = client.get_metadata(remote)
        except PathNotFoundError:
            existing = None
        if existing is not None and existing.get(".tag") == "folder":
            raise NotAFileError(
                f"Dropbox path '{remote}' is a folder, so a file cannot be written there ({route}); "
                f"pick a "
                "file path",
                route=route,
                path=remote,
            )
        if (
            existing is not None
            and existing.get("size") == f.size
            and existing.get("content_hash") == (f.file_hash())
        ):
            log.info("Dropbox %s already holds identical content; skipped the upload", remote)
            counter.set(f.size)
            return _strip_tag(existing)
    uploader = _Uploader(client, counter, chunk)
    commit = _commit_info(f, mode, autorename)
    try:
        if f.size <= limit:
            meta = uploader.single(f, commit)
            reason = f.change()  # data and commit travel together: check after
            if reason:
                raise _Changed(reason, committed=meta)
            return meta
        if parallelism > 1 and f.size > chunk:
            return uploader.concurrent(f, commit, parallelism)
        done = uploader.sequential(f, commit)[2]
        assert done is not None
        return done
    except DropboxApiError as exc:
        changed = _changed_during(f, exc)
        if changed is not None:
            raise changed from exc
        raise


# ------------------------------------------------------------------ many files


def upload_files(
    client: DropboxClient,
    pairs: Sequence[tuple[str | os.PathLike[str], str]],
    *,
    mode: WriteMode = "add",
    autorename: bool = False,
    chunk_size: int | None = None,
    parallelism: int = 1,
    progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """See ``DropboxClient.upload_files``.

    Data goes up in parallel (a small file is one request: a session started with all its bytes and closed);
    commits go through ``finish_batch_v2`` in the background while data still goes up (``batch_commit.py``:
    at most 1000 entries per call, an adaptive number of calls at a time that falls back on lock contention).
    Entries that fail with a transient error are re-committed after a backoff.
    A file is open only while its data is sent, so thousands of files never exhaust file descriptors. A file
    that fails on its own (changed while read, rejected) is reported in ``BatchUploadError`` while the others
    carry on; losing the connection or the credentials stops everything."""
    route = "files/upload_session/finish_batch_v2"
    chunk = check_chunk_size(chunk_size)
    write_mode(mode)
    # Check every input before the first request, so bad input leaves nothing behind.
    checked = [
        (check_local_source(local, route=route), check_remote_path(remote, route=route, allow_id=False))
        for local, remote in pairs
    ]
    counter = Progress(sum(path.stat().st_size for path, _ in checked), progress)
    uploader = _Uploader(client, counter, chunk)
    files: list[_LocalFile | None] = [None] * len(checked)
    results: list[dict[str, Any] | None] = [None] * len(checked)
    failures: dict[str, DropboxApiError] = {}
    batcher = _BatchCommitter(client, files, mode, autorename, results, failures)
    pipeline: CommitPipeline[tuple[int, dict[str, Any]]] = CommitPipeline(
        batcher.commit_batch, gate_for(client), BATCH_MAX
    )

    def send_data(index: int) -> tuple[str, int]:
        """Send one file's data into a closed session; its commit comes later, in a batch, and only
        after the file was seen unchanged once its last byte was read (else it is sent again, and the
        progress of the attempt that is thrown away is taken back first)."""
        local, remote = checked[index]
        for attempt in range(CHANGE_RETRIES + 1):
            f = _open_local(local, remote, route)
            files[index] = f
            tally = _Tally(counter)
            sender = _Uploader(client, tally, chunk, uploader.cancel)
            try:
                try:
                    session_id, size, _ = sender.sequential(f, None)
                    f.file_hash()  # while the file is open, in case the request hashes did not cover it
                    _require_unchanged(f)
                except DropboxApiError as exc:
                    changed = _changed_during(f, exc)
                    if changed is None:
                        raise
                    raise changed from exc
                return session_id, size
            except _Changed as changed:
                tally.take_back()
                if attempt == CHANGE_RETRIES:
                    raise _change_error(f.path, remote, route, changed, attempt + 1) from None
                log.warning(
                    "Local file %s changed while it was sent to Dropbox %s (%s); sending it again",
                    f.path,
                    remote,
                    changed.reason,
                )
            finally:
                f.close()
            time.sleep(CHANGE_SETTLE)
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="dropbox-upload") as pool:
        futures = {pool.submit(send_data, i): i for i in range(len(checked))}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for fut in done:
                    index = futures[fut]
                    exc = fut.exception()
                    if exc is None:
                        pipeline.add(batcher.entry(index, *fut.result()))
                    elif isinstance(exc, DropboxApiError) and not isinstance(
                        exc, (DropboxConnectionError, AuthError, _Cancelled)
                    ):
                        failures[checked[index][1]] = exc
                    else:
                        raise exc
                pipeline.check()
        except BaseException:
            uploader.cancel.set()
            for fut in pending:
                fut.cancel()
            pipeline.abort()
            raise
    pipeline.finish()
    if failures:
        names = ", ".join(sorted(failures)[:5])
        first = next(iter(failures.values()))
        raise BatchUploadError(
            f"{len(failures)} of {len(checked)} Dropbox uploads failed ({names}"
            f"{', ...' if len(failures) > 5 else ''}): {first}",
            failures=failures,
            succeeded=[r for r in results if r is not None],
        )
    return [r for r in results if r is not None]


class _BatchCommitter:
    """Commits closed sessions through finish_batch_v2 (called by a CommitPipeline), handing transient
    failures back for another round."""

    def __init__(
        self,
        client: DropboxClient,
        files: list[_LocalFile | None],
        mode: WriteMode,
        autorename: bool,
        results: list[dict[str, Any] | None],
        failures: dict[str, DropboxApiError],
    ) -> None:
        self.client = client
        self.files = files
        self.mode = mode
        self.autorename = autorename
        self.results = results
        self.failures = failures
        self.rounds: dict[int, int] = {}

    def entry(self, index: int, session_id: str, size: int) -> tuple[int, dict[str, Any]]:
        f = self._file(index)
        entry = {
            "cursor": {"session_id": session_id, "offset": size},
            "commit": _commit_info(f, self.mode, self.autorename),
        }
        return index, entry

    def _file(self, index: int) -> _LocalFile:
        f = self.files[index]
        assert f is not None, "a file is registered before its session is queued"
        return f

    def commit_batch(
        self, batch: list[tuple[int, dict[str, Any]]], slot: Slot
    ) -> list[tuple[int, dict[str, Any]]]:
        """One finish_batch_v2; returns the entries to commit again (after the backoff, already waited)."""
        route = "files/upload_session/finish_batch_v2"
        client = self.client
        body = json.dumps({"entries": [entry for _, entry in batch]}).encode("ascii")

        def attempt() -> Any:
            try:
                resp = client.send(
                    route, host=client.endpoints.api, data=body, headers={"Content-Type": "application/json"}
                )
            except RateLimitError:
                slot.contention()  # the call itself found the namespace lock busy: fewer commits at once
                raise
            return json.loads(resp.content) if resp.content else None

        # A lost answer is re-sent as is: the sessions it committed then answer ``closed``/``not_found`` and
        # are matched below by content hash.
        answer = client.call(route, attempt)
        entries = answer.get("entries", []) if isinstance(answer, Mapping) else []
        if len(entries) != len(batch):
            raise DropboxApiError(
                f"Dropbox answered {route} with {len(entries)} entries for {len(batch)} sessions", route=route
            )
        retry: list[tuple[int, dict[str, Any]]] = []
        for (index, entry), result in zip(batch, entries, strict=True):
            f = self._file(index)
            if result.get(".tag") == "success":
                try:
                    self.results[index] = _check_result(f, _strip_tag(result), route)
                except DropboxApiError as exc:
                    self.failures[f.remote] = exc
                continue
            failure = result.get("failure", result)
            transient = has_tag(failure, "too_many_write_operations") or has_tag(failure, "internal_error")
            if has_tag(failure, "too_many_write_operations"):
                slot.contention()
            if not transient and has_tag(failure, "lookup_failed"):
                found = _remote_if_identical(self.client, f.remote, f.file_hash())
                if found is not None:  # an earlier commit whose answer was lost already stored it
                    self.results[index] = found
                    continue
            error = api_error_from_response(
                route=route,
                status=409,
                body={"error_summary": "/".join(iter_tags(failure)) + "/", "error": failure},
                text="",
                request_id=None,
                path=f.remote,
                upload=True,
            )
            rounds = self.rounds.get(index, 0) + 1
            self.rounds[index] = rounds
            if transient and rounds < self.client.retry.max_attempts:
                retry.append((index, entry))
            else:
                self.failures[f.remote] = error
        if retry:
            wait_s = self.client.retry.wait_for(None, max(self.rounds[i] for i, _ in retry))
            log.warning(
                "Dropbox %s: %d entries hit lock contention; re-committing in %.1f s",
                route,
                len(retry),
                wait_s,
            )
            self.client.retry.sleep(wait_s)
        return retry
