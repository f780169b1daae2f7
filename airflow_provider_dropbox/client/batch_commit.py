"""Commits for many files: a background pipeline of ``finish_batch_v2`` calls under an adaptive limit.

Dropbox serialises every commit into a namespace under that namespace's write lock; a commit that finds it
busy is answered ``too_many_write_operations``. A batch takes the lock once for up to 1000 entries, so the way
to commit thousands of files fast is few batches, one at a time per namespace, started while the data of the
next files is still going up.

``CommitPipeline`` commits what is queued once a commit slot is free and the oldest entry has waited
``LINGER_S`` (or 1000 entries are ready, or no more will come), up to 1000 entries: the batch size follows
from measurement rather than a constant (while one commit runs, the next batch fills at the rate data
arrives, so slow commits get big batches and fast ones small; the tail after the last byte is one short
commit). ``CommitGate`` limits commits in flight per client: it starts at one, allows one more after a run of
uncontended commits, halves on lock contention and then waits twice as long before trying more again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

GATE_MOST = 4
"""At most this many ``finish_batch_v2`` calls in flight per client (more only helps across namespaces)."""
GATE_FIRST_STREAK = 4
"""Uncontended commits before the first step up; doubled after each contention (up to GATE_MAX_STREAK)."""
GATE_MAX_STREAK = 256
LINGER_S = 0.25
"""How long the first queued entry waits for others before a commit starts: fewer lock acquisitions for a
burst of files (a handful of small files is one commit), at most this much added to the tail."""

_GATES_LOCK = threading.Lock()


class CommitGate:
    """Additive-increase, multiplicative-decrease limit on concurrent batch commits."""

    def __init__(self, most: int = GATE_MOST) -> None:
        self.cond = threading.Condition()
        self.most = most
        self.limit = 1
        self.inflight = 0
        self.streak = 0
        self.need = GATE_FIRST_STREAK
        self.contentions = 0

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Hold one commit slot; the commit marks it ``used`` and, on lock contention, ``contended``."""
        with self.cond:
            while self.inflight >= self.limit:
                self.cond.wait()
            self.inflight += 1
        slot = Slot()
        ok = False
        try:
            yield slot
            ok = True
        finally:
            with self.cond:
                self.inflight -= 1
                if slot.contended:
                    self.contentions += 1
                    self.limit = max(1, self.limit // 2)
                    self.streak = 0
                    self.need = min(self.need * 2, GATE_MAX_STREAK)
                elif ok and slot.used:
                    self.streak += 1
                    if self.streak >= self.need and self.limit < self.most:
                        self.limit += 1
                        self.streak = 0
                self.cond.notify_all()


class Slot:
    """One commit's report to the gate."""

    def __init__(self) -> None:
        self.used = False
        self.contended = False

    def contention(self) -> None:
        self.contended = True


def gate_for(client: Any) -> CommitGate:
    """The client's gate (one per client, shared by concurrent ``upload_files`` calls)."""
    with _GATES_LOCK:
        gate: CommitGate | None = getattr(client, "_commit_gate", None)
        if gate is None:
            gate = CommitGate()
            client._commit_gate = gate
        return gate


class CommitPipeline(Generic[T]):
    """Runs ``commit(batch, slot)`` on queued items in background threads while more items arrive.

    ``commit`` returns the items to try again (it has already waited its backoff); they go to the front."""

    def __init__(
        self,
        commit: Callable[[list[T], Slot], list[T]],
        gate: CommitGate,
        batch_max: int,
    ) -> None:
        self.commit = commit
        self.gate = gate
        self.batch_max = batch_max
        self.cond = threading.Condition()
        self.queue: list[T] = []
        self.first_at = 0.0  # when the oldest queued item arrived
        self.active = 0
        self.closed = False
        self.error: BaseException | None = None
        self.batches: list[int] = []  # sizes committed, for tests and benchmarks
        self.threads = [
            threading.Thread(target=self._work, name=f"dropbox-commit-{i}", daemon=True)
            for i in range(gate.most)
        ]
        for t in self.threads:
            t.start()

    def add(self, item: T) -> None:
        with self.cond:
            first = not self.queue
            if first:
                self.first_at = time.monotonic()
            self.queue.append(item)
            if first or len(self.queue) >= self.batch_max:
                self.cond.notify_all()

    def check(self) -> None:
        """Raise a commit thread's failure in the caller (connection lost, credentials gone)."""
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """No more items: wait until everything queued is committed, then raise a commit failure if any."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()
        self.check()

    def abort(self) -> None:
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.cond.notify_all()
        for t in self.threads:
            t.join()

    def _done(self) -> bool:
        return self.error is not None or (self.closed and not self.queue and self.active == 0)

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self._done():
                    if self.queue:
                        if self.closed or len(self.queue) >= self.batch_max:
                            break
                        left = self.first_at + LINGER_S - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    else:
                        self.cond.wait()
                if self._done():
                    self.cond.notify_all()
                    return
            with self.gate.slot() as slot:
                with self.cond:
                    batch, self.queue = self.queue[: self.batch_max], self.queue[self.batch_max :]
                    if not batch:
                        continue
                    if self.queue:
                        self.first_at = time.monotonic()  # what is left is as old as this commit
                    self.active += 1
                slot.used = True
                try:
                    self.batches.append(len(batch))
                    retry = self.commit(batch, slot)
                except BaseException as exc:
                    with self.cond:
                        self.error = self.error or exc
                        self.active -= 1
                        self.cond.notify_all()
                    return
            with self.cond:
                if retry and not self.queue:
                    self.first_at = time.monotonic()
                self.queue[:0] = retry
                self.active -= 1
                self.cond.notify_all()
