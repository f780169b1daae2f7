"""Dropbox content hash: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.

Streaming (``ContentHasher.update`` takes any slicing of the data) and block-addressable: because every block
is hashed on its own, parallel transfers hash their own 4 MiB-aligned parts and ``combine`` joins the block
digests, so no second pass over the file is needed."""

from __future__ import annotations

import hashlib
import os
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


def block_digests_of_range(fd: int, offset: int, length: int) -> list[bytes]:
    """Block digests of ``length`` bytes at ``offset`` (which must be block-aligned unless it is one block).

    Reads with ``os.pread`` 1 MiB at a time, so memory stays at 1 MiB whatever the range size."""
    digests: list[bytes] = []
    end = offset + length
    pos = offset
    while pos < end:
        want = min(BLOCK_SIZE, end - pos)
        block = hashlib.sha256()
        got = 0
        while got < want:
            data = os.pread(fd, min(READ_SIZE, want - got), pos + got)
            if not data:
                raise EOFError(f"file ended at byte {pos + got} while hashing (expected {end})")
            block.update(data)
            got += len(data)
        digests.append(block.digest())
        pos += want
    return digests


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

    A file that shrinks while it is read is the caller's input error (``LocalPathError``), not EOFError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return combine(parallel_block_digests(fd, 0, os.fstat(fd).st_size))
    except EOFError as exc:
        raise LocalPathError(
            f"The local file '{os.fspath(path)}' shrank while it was being hashed; try again when it is "
            "stable",
            path=os.fspath(path),
        ) from exc
    finally:
        os.close(fd)
