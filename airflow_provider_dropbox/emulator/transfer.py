"""Streaming request bodies to disk and file ranges back out, never holding a whole file in memory.

Disk writes and hashing run in the thread pool in 4 MiB batches so one big upload doesn't
stall the event loop; an optional bandwidth cap throttles each direction per request.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .hashing import BLOCK, BlockHasher

MAX_REQUEST_BYTES = 150 * 1024 * 1024
READ_CHUNK = 1024 * 1024


class Throttle:
    """Sleeps so that bytes moved stay under ``bytes_per_s`` (None = no cap)."""

    def __init__(self, bytes_per_s: float | None) -> None:
        self.rate = bytes_per_s
        self.start = time.monotonic()
        self.moved = 0

    async def account(self, n: int) -> None:
        if not self.rate:
            return
        self.moved += n
        ahead = self.moved / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


class BodyResult:
    """What arrived: its size, its content hash, and whether it broke the per-request limit."""

    def __init__(self, size: int, hasher: BlockHasher, too_large: bool) -> None:
        self.size = size
        self.hasher = hasher
        self.too_large = too_large

    @property
    def content_hash(self) -> str:
        return self.hasher.hexdigest()


async def receive_body(
    request: Request,
    fd: int | None,
    offset: int,
    throttle: Throttle,
    on_block: Callable[[bytes], None] | None = None,
    limit: int = MAX_REQUEST_BYTES,
) -> BodyResult:
    """pwrite the body at ``offset`` of ``fd`` while hashing it; past ``limit`` it is drained and dropped.

    Reading (event loop) and hashing + writing (a worker thread, GIL released) overlap: each
    ~4 MiB batch is handed to the thread pool while the next one is read from the socket.
    """
    hasher = BlockHasher()
    pending: list[bytes] = []
    pending_len = 0
    total = 0
    written = 0
    too_large = False
    inflight: asyncio.Future[None] | None = None

    def flush(chunks: list[bytes], at: int) -> None:
        for chunk in chunks:
            hasher.update(chunk)
            if on_block is not None:
                on_block(chunk)
        if fd is not None:
            _pwrite_all(fd, chunks, at)

    async def hand_off() -> None:
        nonlocal inflight, pending, pending_len, written
        if inflight is not None:
            await inflight
        batch, at = pending, offset + written
        written += pending_len
        pending, pending_len = [], 0
        inflight = asyncio.ensure_future(run_in_threadpool(flush, batch, at))

    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            await throttle.account(len(chunk))
            total += len(chunk)
            if total > limit:
                too_large = True
                pending, pending_len = [], 0
                continue
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len >= BLOCK:
                await hand_off()
        if pending and not too_large:
            await hand_off()
    finally:
        if inflight is not None:
            await inflight
    return BodyResult(total, hasher, too_large)


def _pwrite_all(fd: int, chunks: list[bytes], at: int) -> None:
    """pwritev, continuing after short writes."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.pwritev(fd, views[:1024], at)
        at += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


class FdStream:
    """Async byte iterator over ``length`` bytes of ``fd`` from ``start``; owns (and always closes) the fd.

    A class rather than a bare generator so the fd is closed even if the response is never started.
    """

    def __init__(self, fd: int, start: int, length: int, throttle: Throttle) -> None:
        self.fd, self.start, self.length, self.throttle = fd, start, length, throttle
        self.cut_after: int | None = None  # fault: stop after this many bytes, then ``on_cut``
        self.on_cut: Callable[[], object] | None = None
        self.corrupt = False  # fault: flip the first byte sent

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            pos = self.start
            end = self.start + (self.length if self.cut_after is None else min(self.length, self.cut_after))
            while pos < end and self.fd >= 0:
                data = await run_in_threadpool(os.pread, self.fd, min(READ_CHUNK, end - pos), pos)
                if not data:
                    break
                if self.corrupt:
                    data, self.corrupt = bytes([data[0] ^ 0xFF]) + data[1:], False
                pos += len(data)
                await self.throttle.account(len(data))
                yield data
            if self.cut_after is not None and self.on_cut is not None:
                self.on_cut()
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __del__(self) -> None:
        self.close()
