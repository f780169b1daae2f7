"""Verified, atomic, resumable downloads; ranged parallel parts only when one stream is slow.

The bytes go to ``.<name>.dropbox-part-<random>`` in the destination folder (same filesystem, so the final
``os.replace`` is atomic), are checked against the size and ``content_hash`` from ``Dropbox-API-Result``,
fsynced, then renamed over the target. Any failure removes the temp file and leaves the old target untouched.

Every download starts as one stream of the whole file. With ``parallelism > 1`` the client measures that
stream over its first bytes; if it is slow (a per-connection limit, a long round trip), the rest of the file
is split into ``Range`` parts fetched by parallel connections while the first stream finishes its own part.
A fast stream is left alone: there, extra connections only add CPU work (rclone's multi-thread cutoff idea,
decided by measured speed instead of size alone).

The body is read with ``readinto`` into a few reused buffers (no allocation per piece, so memory stays flat)
and written; each finished 4 MiB block of a big file is hashed by a helper thread reading it back from the
page cache, so hashing overlaps the network and checks what was written (parts start on 4 MiB boundaries; the
block digests are joined at the end). Small files are hashed inline as they arrive. When the file will be
fsynced, written ranges are handed to the kernel's writeback as they go, so the final fsync has little left.
A connection that drops mid-body resumes with ``Range`` from the last byte written, as long as every answer
still reports the same ``rev``; if the file changed on Dropbox the download starts over."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import http.client
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from airflow_provider_dropbox.client.content_hash import BLOCK_SIZE, BlockHashBehind, ContentHasher, combine
from airflow_provider_dropbox.client.errors import (
    ContentHashMismatchError,
    DropboxApiError,
    LocalPathError,
)
from airflow_provider_dropbox.client.libc import libc_function
from airflow_provider_dropbox.client.paths import check_local_destination, check_remote_path
from airflow_provider_dropbox.client.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from airflow_provider_dropbox.client.api import DropboxClient

log = logging.getLogger(__name__)

UTC = timezone.utc  # datetime.UTC is Python 3.11+; the package supports 3.10

ROUTE = "files/download"
MiB = 1024 * 1024
MIN_PART = 8 * MiB
MAX_PART = 32 * MiB
"""Parallel part size is remaining / (2 x parallelism), rounded up to 4 MiB and clamped to these bounds: two
parts per thread balance the tail; 32 MiB was the best cap in the part-size sweep (BENCHMARKS.md)."""
READ_CHUNK = 256 * 1024
"""Size of each ``readinto``: big enough that per-piece Python work is noise, small enough that the buffers of
eight streams stay around 2 MiB."""
PROBE_BYTES = 16 * MiB
PROBE_SECONDS = 0.25
"""The first stream is measured until it has PROBE_BYTES or has run PROBE_SECONDS, whichever comes first:
more than one TCP window (4 MiB by default on Linux), whose first burst would make any path look fast."""
FAST_STREAM = 256 * MiB
"""Bytes/s at or above which one stream is left alone: splitting would only add CPU and round trips. A 50 ms
path with a 4 MiB window moves at most 80 MiB/s per connection (the ``parallel`` benchmark), loopback
500-900 MiB/s."""
MIN_SPLIT = 2 * MIN_PART
"""Never split when less than this is left: the extra requests cannot pay for themselves."""
WRITE_BEHIND = 32 * MiB
"""When the file will be fsynced, start the kernel's writeback every WRITE_BEHIND bytes a stream writes."""
HASH_BEHIND_MIN = 16 * MiB
"""Files at least this big are hashed by a helper thread reading back each finished 4 MiB block
(``BlockHashBehind``), so hashing overlaps receiving; smaller ones inline, where a thread per file would cost
more than it saves (the mirror's many small files)."""
MAX_RESTARTS = 2
TEMP_MARKER = ".dropbox-part-"


class _RestartDownload(Exception):
    """The file changed on Dropbox mid-download (rev differs), or the bytes failed verification."""


class _Cancelled(Exception):
    """Another part failed; stop this one quickly."""


class _ShortBody(ConnectionError):
    """The server closed the body early; retryable like any dropped connection (resumes from what we have)."""


_sync_range = libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
"""libc's ``sync_file_range(fd, offset, n, flags)``; None where it does not exist (not Linux)."""


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue the range for writing without waiting (SYNC_FILE_RANGE_WRITE), so the disk works while the
    network does; a failure only means the final fsync does it all."""
    assert _sync_range is not None
    _sync_range(fd, offset, length, 2)


start_writeback = _start_writeback if _sync_range is not None else None


class _Body:
    """Reads a response body into caller buffers.

    The fast path reads from the ``http.client`` response under requests/urllib3 with ``readinto``: no bytes
    object per piece and no copy between buffers (the per-piece allocation is what made memory grow with
    the number of streams). Any content encoding, or an unexpected urllib3 layout, uses ``iter_content``."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp = resp
        fp = getattr(resp.raw, "_fp", None)
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        self.fp = fp if isinstance(fp, http.client.HTTPResponse) and encoding in ("", "identity") else None
        self.pieces = None if self.fp is not None else resp.iter_content(READ_CHUNK)
        self.left = memoryview(b"")

    def readinto(self, buf: memoryview) -> int:
        """Bytes read into ``buf`` (0 at the end of the body); a broken connection raises retryable errors."""
        if self.fp is not None:
            try:
                return self.fp.readinto(buf)
            except TimeoutError as exc:
                raise requests.exceptions.ReadTimeout(f"reading the body: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _ShortBody(f"reading the body: {type(exc).__name__}: {exc}") from exc
        if not self.left:
            assert self.pieces is not None
            self.left = memoryview(next(self.pieces, b""))
        n = min(len(buf), len(self.left))
        buf[:n] = self.left[:n]
        self.left = self.left[n:]
        return n

    def done(self) -> None:
        """The body was read to its end: give the connection back to the pool for the next request."""
        if self.fp is not None and not self.fp.isclosed() and self.fp.length == 0:
            self.fp.read()  # an empty body is never read, so http.client has not marked it finished yet
        if self.fp is not None and self.fp.isclosed():
            release = getattr(self.resp.raw, "release_conn", None)
            if callable(release):
                release()


@dataclass
class _Part:
    start: int
    end: int  # exclusive; the first stream's end shrinks when the rest is split off
    pos: int = 0
    hasher: ContentHasher = field(default_factory=ContentHasher)
    flushed: int = 0  # bytes from start already handed to writeback
    hashed: int = 0  # start of the first block not yet handed to the hash-behind thread

    def __post_init__(self) -> None:
        self.pos = self.start
        self.flushed = self.start
        self.hashed = self.start

    def digests(self) -> list[bytes]:
        return self.hasher.finish_blocks()


def part_size_for(size: int, parallelism: int) -> int:
    want = -(-size // (2 * max(1, parallelism)))
    want = -(-want // BLOCK_SIZE) * BLOCK_SIZE
    return max(MIN_PART, min(MAX_PART, want))


NAME_MAX = 255
"""Bytes in one file name on Linux/macOS file systems; a temp name must fit, whatever the target's length."""


def fit_name(stem: str, suffix: str, limit: int = NAME_MAX) -> str:
    """``stem + suffix`` cut to at most ``limit`` bytes (file-system encoding) by shortening the stem only,
    on a character boundary, so the extension and any marker in ``suffix`` survive."""
    room = limit - len(os.fsencode(suffix))
    encoded = os.fsencode(stem)
    if len(encoded) <= room:
        return stem + suffix
    cut = os.fsdecode(encoded[: max(room, 0)]) if room > 0 else ""
    while cut and len(os.fsencode(cut)) > room:
        cut = cut[:-1]
    # surrogateescape: a cut inside a multi-byte character leaves a lone escape; drop it
    while cut and 0xDC80 <= ord(cut[-1]) <= 0xDCFF:
        cut = cut[:-1]
    return cut + suffix


def temp_path_for(dest: Path) -> Path:
    """A fresh temp name beside ``dest``, at most ``NAME_MAX`` bytes: a long name's stem is shortened (its
    extension kept), so a 229-255 byte target name still downloads. O_EXCL guards uniqueness, so ``random``
    (no getrandom(2) call per file, unlike ``secrets``) is enough."""
    tail = f"{dest.suffix}{TEMP_MARKER}{random.getrandbits(48):012x}"
    stem = dest.name[: len(dest.name) - len(dest.suffix)] if dest.suffix else dest.name
    return dest.parent / fit_name(f".{stem}", tail)


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
        self.size = 0
        self.parts: list[_Part] = []
        self.blocks: BlockHashBehind | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.futures: list[Future[None]] = []
        self.todo: list[_Part] = []
        self.todo_lock = threading.Lock()
        self.probe_at: float | None = None  # monotonic time the first body started; None once decided

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

    def _open_retrying(self) -> tuple[requests.Response, dict[str, Any]]:
        opened: tuple[requests.Response, dict[str, Any]] = self.client.call(ROUTE, lambda: self.open(None))
        return opened

    def fill(self, part: _Part, resp: requests.Response) -> None:
        """Write the body into ``part`` from its current position; raise _ShortBody if it ends early."""
        offset = _body_start(resp)
        if offset > part.pos:
            raise DropboxApiError(
                f"Dropbox sent bytes from {offset}, but {part.pos} was requested", route=ROUTE, status=206
            )
        body = _Body(resp)
        # Big files are hashed behind the writer, one hand-off per finished 4 MiB block (a thread fed each
        # 256 KiB buffer cost more CPU than it saved over TLS: download_probe-5-tls50.json).
        view = memoryview(bytearray(READ_CHUNK))
        while part.pos < part.end:
            if self.cancel.is_set():
                raise _Cancelled()
            if offset < part.pos:  # bytes before what we need (the server ignored Range): skip them
                n = body.readinto(view[: min(len(view), part.pos - offset)])
                if not n:
                    break
                offset += n
                continue
            n = body.readinto(view[: min(len(view), part.end - part.pos)])
            if not n:
                break
            offset += n
            written = 0
            try:
                while written < n:
                    written += os.pwrite(self.fd, view[written:n], part.pos + written)
            except OSError as exc:
                raise self.write_error(exc) from exc
            part.pos += n
            if self.blocks is None:
                part.hasher.update(view[:n])
            else:  # parts start on block boundaries, so a part's blocks are its own
                while part.pos - part.hashed >= BLOCK_SIZE or part.hashed < part.pos == self.size:
                    self.blocks.done(part.hashed // BLOCK_SIZE)
                    part.hashed = min(part.hashed + BLOCK_SIZE, self.size)
            self.progress.add(n)
            if self.fsync and start_writeback is not None and part.pos - part.flushed >= WRITE_BEHIND:
                start_writeback(self.fd, part.flushed, part.pos - part.flushed)
                part.flushed = part.pos
            if self.probe_at is not None:
                self._maybe_split(part)
        if part.pos < part.end:
            raise _ShortBody(f"body ended at byte {part.pos} of part ending at {part.end}")
        body.done()

    def _maybe_split(self, first: _Part) -> None:
        """Called as the first stream makes progress: once measured, leave it alone or split off the rest."""
        assert self.probe_at is not None
        elapsed = time.monotonic() - self.probe_at
        if first.pos < PROBE_BYTES and elapsed < PROBE_SECONDS:
            return
        self.probe_at = None
        rate = first.pos / max(elapsed, 1e-6)
        left = self.size - first.pos
        if rate >= FAST_STREAM or left < MIN_SPLIT:
            log.debug(
                "Dropbox download of %s: one stream at %.0f MiB/s, not splitting", self.remote, rate / MiB
            )
            return
        step = part_size_for(left, self.parallelism)
        boundary = min(self.size, -(-first.pos // BLOCK_SIZE) * BLOCK_SIZE + step)
        if self.size - boundary < MIN_PART:
            return
        first.end = boundary
        self.todo = [_Part(s, min(s + step, self.size)) for s in range(boundary, self.size, step)]
        self.parts += self.todo
        self.todo.reverse()  # popped from the end: in file order
        log.debug(
            "Dropbox download of %s: one stream at %.0f MiB/s, fetching the rest in %d parts",
            self.remote,
            rate / MiB,
            len(self.todo),
        )
        workers = min(self.parallelism - 1, len(self.todo))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dropbox-download")
        self.futures = [self.pool.submit(self._work_guarded) for _ in range(workers)]

    def _next(self) -> _Part | None:
        with self.todo_lock:
            return self.todo.pop() if self.todo and not self.cancel.is_set() else None

    def _work(self) -> None:
        """A part thread: fetch parts in file order until none is left."""
        while (part := self._next()) is not None:
            self.fetch(part)

    def fetch(self, part: _Part, first: requests.Response | None = None) -> None:
        """Complete ``part``, retrying and resuming with Range from what is already written."""
        pending = [first] if first is not None else []

        def attempt() -> None:
            if part.pos >= part.end and not pending:  # (an empty file still reads its empty body)
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
        resp, meta = self._open_retrying()
        try:
            self.rev = meta.get("rev")
            self.size = size = int(meta["size"])
            self.progress.total = size
            tmp = temp_path_for(self.dest)
        except BaseException:
            resp.close()
            raise
        created = False
        try:
            try:
                self.fd = self._create_temp(tmp)
                created = True
            except LocalPathError:
                resp.close()
                raise
            except OSError as exc:
                resp.close()
                raise LocalPathError(
                    f"Cannot write in the local folder '{self.dest.parent}' for {self.remote}: "
                    f"{exc.strerror}",
                    route=ROUTE,
                    path=str(self.dest),
                ) from exc
            if size >= HASH_BEHIND_MIN:
                self.blocks = BlockHashBehind(self.fd, size)
            parts = self._transfer(resp, size)
            self._verify(parts, size, meta)
            try:
                if self.fsync:
                    os.fsync(self.fd)
                fd, self.fd = self.fd, -1
                os.close(fd)
                set_client_modified(tmp, meta)
                # The folder itself is not fsynced (that costs ~6 ms per file, doubling a mirror of small
                # files): the rename survives a process crash, and after a power cut the worst case is the
                # old file back, never a torn one.
                os.replace(tmp, self.dest)
                created = False  # renamed into place: nothing left to unlink
            except OSError as exc:
                raise self.write_error(exc) from exc
            return meta
        finally:
            if self.blocks is not None:  # it reads self.fd: stop it before the fd is closed
                self.blocks.close(abandon=True)
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            # Only the temp file this call created: on a read-only mount, unlinking a name that was never
            # created fails with EROFS (not FileNotFoundError) and would hide the LocalPathError above.
            if created:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _create_temp(self, tmp: Path) -> int:
        """Open the temp file, creating the folder only when the open says it is missing: at 8 threads each
        syscall is a GIL hand-off, and a mkdir + stat per file in an existing folder cost wall time."""
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL  # read too: BlockHashBehind reads back what was written
        try:
            return os.open(tmp, flags, 0o666)
        except FileNotFoundError:
            pass
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalPathError(
                f"Cannot create the local folder '{self.dest.parent}' for {self.remote}: {exc.strerror}",
                route=ROUTE,
                path=str(self.dest),
            ) from exc
        return os.open(tmp, flags, 0o666)

    def _transfer(self, first: requests.Response, size: int) -> list[_Part]:
        """One stream for the whole file; ``_maybe_split`` may hand the rest to part threads on the way."""
        whole = _Part(0, size)
        self.parts = [whole]
        if self.parallelism > 1 and size >= MIN_SPLIT + PROBE_BYTES:
            self.probe_at = time.monotonic()
        error: BaseException | None = None
        try:
            self.fetch(whole, first)
            if self.pool is not None:
                self._work()  # this thread helps with the parts once its own is done
        except BaseException as exc:
            error = exc
            self.cancel.set()
        finally:
            if self.pool is not None:
                wait(self.futures)
                self.pool.shutdown()
        failures = [e for e in [error, *(f.exception() for f in self.futures)] if e is not None]
        if failures:  # the first real failure, not the _Cancelled it caused in the other threads
            raise next((e for e in failures if not isinstance(e, _Cancelled)), failures[0])
        return self.parts

    def _work_guarded(self) -> None:
        try:
            self._work()
        except BaseException:
            self.cancel.set()
            raise

    def _verify(self, parts: list[_Part], size: int, meta: dict[str, Any]) -> None:
        got = sum(p.pos - p.start for p in parts)
        if got != size or os.fstat(self.fd).st_size != size:
            log.warning("Dropbox download of %s: got %d bytes, expected %d", self.remote, got, size)
            raise _RestartDownload()
        expected = meta.get("content_hash")
        if expected:
            if self.blocks is not None:
                try:
                    digests = self.blocks.digests()
                except EOFError:  # the temp file shrank under us after the size check: start over
                    raise _RestartDownload() from None
                except OSError as exc:
                    raise self.write_error(exc) from exc
            else:
                digests = [d for p in parts for d in p.digests()]
            actual = combine(digests)
            if actual != expected:
                log.warning(
                    "Dropbox download of %s failed verification: content_hash %s, expected %s",
                    self.remote,
                    actual,
                    expected,
                )
                raise _RestartDownload("content_hash")


def set_client_modified(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """Give the local file Dropbox's client_modified time, like rclone, so tools comparing mtimes agree."""
    stamp = meta.get("client_modified")
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        return
    try:  # fromisoformat: a quarter of strptime's cost (ad-hoc timeit), paid per file by a mirror
        mtime = datetime.fromisoformat(stamp[:-1]).replace(tzinfo=UTC).timestamp()
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
    raw = os.fspath(local_path)
    if raw.endswith(("/", os.sep)) or os.path.basename(raw) in (".", ".."):
        # A folder target, as with cp: the file keeps its Dropbox name inside it.
        if not remote.startswith("/"):
            raise LocalPathError(
                f"Local path '{raw}' names a folder (it ends with '/'), and the Dropbox file is given as "
                f"'{remote}', which has no name to use; give the full local file path",
                route=ROUTE,
                path=raw,
            )
        local_path = os.path.join(raw, remote.rsplit("/", 1)[1])
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
