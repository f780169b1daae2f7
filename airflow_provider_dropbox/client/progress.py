"""Transfer progress: a ``(done, total)`` callback, a thread-safe counter, and a periodic log line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]

log = logging.getLogger(__name__)


class Progress:
    """Bytes-done counter shared by transfer threads; reports each change to the user's callback.

    Retried bytes are taken back with a negative ``add`` so ``done`` never exceeds ``total``."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if not n:
            return
        with self._lock:
            self.done = max(0, min(self.total, self.done + n))
            done = self.done
        if self._callback is not None:
            self._callback(done, self.total)

    def reset(self) -> None:
        """Start over (a restarted transfer) without reporting: the total may not be known yet."""
        with self._lock:
            self.done = 0

    def set(self, done: int) -> None:
        with self._lock:
            self.done = max(0, min(self.total, done))
            done = self.done
        if self._callback is not None:
            self._callback(done, self.total)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class ProgressLogger:
    """A progress callback that logs every ``interval`` seconds: bytes done, percent, MB/s and ETA."""

    def __init__(
        self,
        label: str,
        *,
        interval: float = 5.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval = interval
        self._log = logger or log
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._finished = False
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        with self._lock:
            finished = (total > 0 and done >= total) or total == 0
            if finished and self._finished:
                return
            if not finished and now - self._last < self.interval:
                return
            self._last = now
            self._finished = finished
        elapsed = max(now - self._start, 1e-6)
        rate = done / elapsed
        percent = 100.0 * done / total if total else 100.0
        eta = (total - done) / rate if rate > 0 else float("inf")
        eta_text = "done" if finished else ("?" if eta == float("inf") else f"{eta:.0f} s")
        self._log.info(
            "%s: %s of %s (%.1f%%), %.1f MB/s, ETA %s",
            self.label,
            _human(done),
            _human(total),
            percent,
            rate / 1e6,
            eta_text,
        )
