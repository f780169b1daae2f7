"""The one retry policy of the client: what is retried, how long to wait, when to give up.

Retried: connection errors and timeouts (not TLS verification failures), HTTP 5xx, 429 and 409 lock contention
(``too_many_write_operations`` anywhere in the error tree). Never retried: every other 4xx, which would only
fail again (and 429s count against the rate limit, so hammering makes it worse).

Wait: exponential backoff with jitter, capped at ``max_wait``; for rate limits at least the server's wait,
``max(Retry-After header, body retry_after)``. Gives up after ``max_attempts`` or when the next sleep would
pass ``deadline`` seconds since the first attempt, re-raising the last (typed) error."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests
import tenacity

from airflow_provider_dropbox.client.errors import RateLimitError, ServerError

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_IO = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
)


def is_retryable(exc: BaseException) -> bool:
    """True for failures a later identical request can fix."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not heal by itself; fail fast and say so
    return isinstance(exc, (RateLimitError, ServerError, *_TRANSIENT_IO))


def describe(exc: BaseException) -> str:
    """Short reason for the retry log line (no URLs with secrets: the client never puts secrets in URLs)."""
    if isinstance(exc, RateLimitError):
        reason = "lock contention" if "too_many_write_operations" in exc.tags else "rate limited"
        server = f", server asks {exc.retry_after:g} s" if exc.retry_after is not None else ""
        return f"HTTP {exc.status} {reason}{server}"
    if isinstance(exc, ServerError):
        return f"HTTP {exc.status} server error"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    return f"connection problem ({type(exc).__name__})"


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings; tests shrink ``initial_wait``/``max_wait`` and may swap ``sleep`` to record waits."""

    initial_wait: float = 0.5
    max_wait: float = 30.0
    multiplier: float = 2.0
    deadline: float = 600.0
    max_attempts: int = 12
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def backoff(self, attempt: int) -> float:
        """Capped exponential with half jitter: keeps a floor so retries never stampede at ~0 s."""
        base = min(self.max_wait, self.initial_wait * self.multiplier ** max(0, attempt - 1))
        return base * random.uniform(0.5, 1.0)

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        wait = self.backoff(attempt)
        if isinstance(exc, RateLimitError):
            # A 429 always says how long to wait (Retry-After; 1 s if a proxy ate it); a 409 lock
            # contention does not, and exponential backoff is the right answer there.
            server_wait = exc.retry_after
            if server_wait is None and exc.status == 429:
                server_wait = 1.0
            wait = max(wait, server_wait or 0.0)
        elif isinstance(exc, ServerError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def retrying(self, what: str) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for one logical request called ``what`` (route name, chunk, part)."""

        def _wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(exc, state.attempt_number)

        def _log(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Dropbox %s: %s; retry %d/%d in %.2f s",
                what,
                describe(exc) if exc else "failed",
                state.attempt_number,
                self.max_attempts - 1,
                wait,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=_wait,
            stop=tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_before_delay(self.deadline),
            before_sleep=_log,
            sleep=self.sleep,
            reraise=True,
        )

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under this policy."""
        return self.retrying(what)(fn)
