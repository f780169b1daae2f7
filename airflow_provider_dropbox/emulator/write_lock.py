"""The namespace write lock: how Dropbox serialises commits into one namespace.

Dropbox commits every change to a namespace (a user's home, a shared folder, a team space) under that
namespace's lock. Two commits into the same namespace at the same time contend for it; the loser is answered
``429`` with ``too_many_write_operations`` (a ``RateLimitError`` with a ``Retry-After``). Dropbox's own remedy
is the batch routes: ``upload_session/finish_batch_v2`` and the ``*_batch_v2`` routes take the lock once for
all their entries.

The model, when on: each state-changing commit holds its namespace's lock for a service time of
``write_lock_commit_ms + entries * write_lock_entry_ms`` (the real work of the commit counts towards it, so a
slow machine does not add to it). A commit that finds the lock held waits up to ``write_lock_wait_ms`` for it,
then gets the 429. A batch takes the lock once. The random ``lock_contention`` fault is independent of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .store import ROOT_NAMESPACE_ID
from .wire import ApiFail, rate_limit_response

if TYPE_CHECKING:
    from .core import Call

SETTINGS = ("write_lock_commit_ms", "write_lock_entry_ms", "write_lock_wait_ms")
"""Numeric settings (milliseconds, >= 0) next to the on/off switch ``write_lock``."""


def validate(merged: dict[str, Any]) -> None:
    """Check the write-lock fields of a fault-settings update (ValueError names the bad one)."""
    if not isinstance(merged.get("write_lock"), bool):
        raise ValueError("write_lock must be a boolean")
    for name in SETTINGS:
        v = merged.get(name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative number of milliseconds")


class Busy(ApiFail):
    """The lock stayed busy past the wait bound: the 429 answer (a subclass so a route can clean up)."""


class WriteLocks:
    """One asyncio lock per namespace, created on first use in the server's event loop."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = {}
        self.contended = 0  # commits answered 429 by the model (for tests and benchmarks)
        self.granted = 0

    def lock_for(self, namespace: str) -> asyncio.Lock:
        lock = self.locks.get(namespace)
        if lock is None:
            lock = self.locks[namespace] = asyncio.Lock()
        return lock


def locks_of(c: Call) -> WriteLocks:
    """The emulator's lock table (an attribute set on first use, so core.py needs no new field)."""
    emu: Any = c.emu
    table: WriteLocks | None = getattr(emu, "write_locks", None)
    if table is None:
        table = WriteLocks()
        emu.write_locks = table
    return table


def namespace_of(c: Call) -> str:
    """Every path of this emulator lives in the account's root namespace."""
    return ROOT_NAMESPACE_ID


@asynccontextmanager
async def hold(c: Call, entries: int = 1) -> AsyncIterator[None]:
    """Hold the namespace lock for one commit of ``entries`` entries; 429 when it stays busy too long."""
    s = c.emu.faults.settings
    if not s.write_lock:
        yield
        return
    table = locks_of(c)
    lock = table.lock_for(namespace_of(c))
    try:
        await asyncio.wait_for(lock.acquire(), timeout=s.write_lock_wait_ms / 1000)
    except asyncio.TimeoutError:  # not the builtin before Python 3.11
        table.contended += 1
        raise Busy(rate_limit_response("too_many_write_operations", s.retry_after_s)) from None
    table.granted += 1
    started = time.monotonic()
    try:
        yield
    finally:
        service = (s.write_lock_commit_ms + entries * s.write_lock_entry_ms) / 1000
        left = service - (time.monotonic() - started)
        try:
            if left > 0:
                await asyncio.sleep(left)
        finally:
            lock.release()
