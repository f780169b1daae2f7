"""Dropbox content hash: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.

Streaming (``ContentHasher.update`` takes any slicing of the data) and block-addressable: because every block
is hashed on its own, parallel transfers hash their own 4 MiB-aligned parts and ``combine`` joins the block
digests, so no second pass over the file is needed."""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_dropbox.client.errors import LocalPathError

BLOCK_SIZE = 4 * 1024 * 1024
READ_SIZE = 1024 * 1024
"""File reads while hashing: 1 MiB keeps each hashing thread's buffer small."""


class ContentHasher:
    """Incremental content hash of a byte stream that starts on a block boundary."""

    def __init__(self) -> None:
        self._block = hashlib.sha256()
        self._block_len = 0
        self.block_digests: list[bytes] = []
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.length += len(view)
        while len(view):
            take = min(BLOCK_SIZE - self._block_len, len(view))
            self._block.update(view[:take])
            self._block_len += take
            view = view[take:]
            if self._block_len == BLOCK_SIZE:
                self.block_digests.append(self._block.digest())
                self._block = hashlib.sha256()
                self._block_len = 0

    def finish_blocks(self) -> list[bytes]:
        """All block digests including the trailing partial block (the hasher is spent afterwards)."""
        if self._block_len:
            self.block_digests.append(self._block.digest())
            self._block = hashlib.sha256()
            self._block_len = 0
        return self.block_digests

    def hexdigest(self) -> str:
        return combine(self.finish_blocks())


def combine(block_digests: Iterable[bytes]) -> str:
    """The content hash from block digests in file order (an empty file has none: sha256 of b"")."""
    outer = hashlib.sha256()
    for digest in block_digests:
        outer.update(digest)
    return outer.hexdigest()


def content_hash_bytes(data: bytes | bytearray | memoryview) -> str:
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def block_digest(fd: int, offset: int, length: int, buf: memoryview) -> bytes:
    """SHA-256 of ``length`` bytes at ``offset`` of ``fd``, read with ``preadv`` into the caller's ``buf``
    (no bytes object per read, so memory stays at ``len(buf)`` and the allocator is never asked for more)."""
    block = hashlib.sha256()
    got = 0
    while got < length:
        n = os.preadv(fd, [buf[: min(len(buf), length - got)]], offset + got)
        if not n:
            raise EOFError(f"file ended at byte {offset + got} while hashing (expected {offset + length})")
        block.update(buf[:n])
        got += n
    return block.digest()


def block_digests_of_range(fd: int, offset: int, length: int) -> list[bytes]:
    """Block digests of ``length`` bytes at ``offset`` (which must be block-aligned unless it is one block).

    Reads 1 MiB at a time into one buffer, so memory stays at 1 MiB whatever the range size."""
    buf = memoryview(bytearray(READ_SIZE))
    end = offset + length
    return [block_digest(fd, pos, min(BLOCK_SIZE, end - pos), buf) for pos in range(offset, end, BLOCK_SIZE)]


BEHIND_READ_SIZE = 256 * 1024
"""Read-back size of ``BlockHashBehind``: each piece is hashed while it is still in the CPU cache, and the
buffer adds a quarter of a MiB to a download's memory."""


HASH_BEHIND_THREADS = 2 if (os.cpu_count() or 1) >= 4 else 1
"""Threads per ``BlockHashBehind``. SHA-256 runs at about 1.7 GB/s per core, slower than loopback or a
fast LAN delivers; with 4 cores or more a second thread keeps it off the critical path. On fewer cores the
receiving thread and the server (or other work) need the rest, so one. Only the 1-thread case is measured
(BENCHMARKS.md: this box has 2 cores)."""


class BlockHashBehind:
    """Hashes the 4 MiB blocks of a file being written, on helper threads, as writers report them done.

    Why: inline hashing costs the receiving thread about 0.6 s of CPU per GiB, more than receiving and writing
    the bytes; behind the writer it overlaps the network, and because it reads back what landed in the file
    (still in the page cache) the check covers the writes too. Writers call ``done(index)`` once per block
    (a hand-off per 4 MiB, not per buffer); ``digests()`` waits and returns them in file order."""

    def __init__(self, fd: int, size: int, threads: int | None = None) -> None:
        self.fd = fd
        self.size = size
        self._digests: list[bytes | None] = [None] * -(-size // BLOCK_SIZE)
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._stop = False
        count = max(1, min(threads or HASH_BEHIND_THREADS, len(self._digests)))
        self._threads = [
            threading.Thread(target=self._run, name="dropbox-hash-behind", daemon=True) for _ in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def done(self, index: int) -> None:
        self._queue.put(index)

    def _run(self) -> None:
        buf = memoryview(bytearray(BEHIND_READ_SIZE))
        while (index := self._queue.get()) is not None:
            if self._stop or self._error is not None:
                continue
            offset = index * BLOCK_SIZE
            try:
                self._digests[index] = block_digest(self.fd, offset, min(BLOCK_SIZE, self.size - offset), buf)
            except BaseException as exc:  # reported by digests(); the writer keeps going until then
                self._error = exc

    def digests(self) -> list[bytes]:
        """Every block's digest in file order, once all are hashed; raises what hashing raised."""
        self.close()
        if self._error is not None:
            raise self._error
        missing = [i for i, d in enumerate(self._digests) if d is None]
        if missing:
            raise RuntimeError(f"blocks {missing[:5]} of {len(self._digests)} were never hashed")
        return [d for d in self._digests if d is not None]

    def close(self, abandon: bool = False) -> None:
        """Stop the threads (after the queued blocks, or at once with ``abandon``); the fd must stay open
        until this returns."""
        if any(thread.is_alive() for thread in self._threads):
            self._stop = abandon
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join()


HASH_WORKERS = min(4, os.cpu_count() or 1)
"""Threads for hashing large ranges: blocks are independent and hashlib/pread release the GIL."""
_GROUP = 4
"""Blocks per hashing task (16 MiB): big enough that thread hand-off costs nothing, small enough to spread."""


def parallel_block_digests(fd: int, offset: int, length: int, workers: int = HASH_WORKERS) -> list[bytes]:
    """``block_digests_of_range`` spread over ``workers`` threads (memory: one block per worker)."""
    step = _GROUP * BLOCK_SIZE
    if workers <= 1 or length <= step:
        return block_digests_of_range(fd, offset, length)
    ranges = [(start, min(step, offset + length - start)) for start in range(offset, offset + length, step)]
    with ThreadPoolExecutor(max_workers=min(workers, len(ranges)), thread_name_prefix="dropbox-hash") as pool:
        groups = pool.map(lambda r: block_digests_of_range(fd, r[0], r[1]), ranges)
        return [digest for group in groups for digest in group]


def content_hash_file(path: str | os.PathLike[str]) -> str:
    """Content hash of a whole local file (hashed by a few threads when it is large).

    A file that shrinks while it is read is the caller's input error (``LocalPathError``), not EOFError.
    Only a regular file is read: a named pipe, socket or device is refused (``LocalPathError``) without
    waiting on it (opened non-blocking, then checked on the descriptor)."""
    from airflow_provider_dropbox.client.paths import special_kind

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LocalPathError(
                f"Local path '{os.fspath(path)}' is {special_kind(st.st_mode)}, not a regular file; it is "
                "not read or hashed",
                path=os.fspath(path),
            )
        os.set_blocking(fd, True)
        return combine(parallel_block_digests(fd, 0, st.st_size))
    except EOFError as exc:
        raise LocalPathError(
            f"The local file '{os.fspath(path)}' shrank while it was being hashed; try again when it is "
            "stable",
            path=os.fspath(path),
        ) from exc
    finally:
        os.close(fd)
