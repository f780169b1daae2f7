"""The one retry policy of the client: what is retried, how long to wait, when to give up.

Retried: connection errors and timeouts (not TLS verification failures), HTTP 5xx, 429 and 409 lock contention
(``too_many_write_operations`` anywhere in the error tree). Never retried: every other 4xx, which would only
fail again (and 429s count against the rate limit, so hammering makes it worse).

Wait: exponential backoff with jitter, capped at ``max_wait``; for rate limits at least the server's wait,
``max(Retry-After header, body retry_after)``. Gives up after ``max_attempts`` or when the next sleep would
pass ``deadline`` seconds since the first attempt, re-raising the last (typed) error.

One budget per operation: a ``call`` made while another ``call`` runs on the same thread (a token refresh
inside a request) makes a single attempt and lets the outer call retry, so retries never nest. A host that
refuses connections or does not resolve gets only ``connect_deadline`` seconds (default 30) of retries: such
failures are near-permanent, and waiting the full deadline only hides the cause."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

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


_active = threading.local()
"""Per thread: the monotonic deadline of the operation whose retries are running, if any."""


def remaining_budget() -> float | None:
    """Seconds left of the operation running on this thread (None outside any retried call)."""
    deadline: float | None = getattr(_active, "deadline", None)
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def host_port(exc: BaseException) -> str | None:
    """``host:port`` of the request that failed, when requests recorded it."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.hostname}:{port}"


def is_unreachable(exc: BaseException) -> bool:
    """True when no connection could be made at all: refused, unknown host, or no answer to connect."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, (ConnectionRefusedError, OSError)) and not isinstance(exc, requests.RequestException):
        return isinstance(exc, ConnectionRefusedError)
    if not isinstance(exc, requests.ConnectionError):
        return False
    text = repr(exc)
    return any(
        marker in text
        for marker in (
            "NewConnectionError",
            "NameResolutionError",
            "Connection refused",
            "Name or service not known",
            "nodename nor servname",
            "Temporary failure in name resolution",
        )
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
    where = host_port(exc)
    at = f" {where}" if where else ""
    if is_unreachable(exc):
        return f"cannot connect to{at} ({_unreachable_reason(exc)})"
    if isinstance(exc, requests.Timeout):
        return f"timeout talking to{at}" if at else "timeout"
    return (
        f"connection problem with{at} ({type(exc).__name__})"
        if at
        else f"connection problem ({type(exc).__name__})"
    )


def _unreachable_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no answer to connect"
    text = repr(exc)
    if (
        "NameResolutionError" in text
        or "name resolution" in text
        or "not known" in text
        or "servname" in text
    ):
        return "unknown host"
    return "connection refused"


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings; tests shrink ``initial_wait``/``max_wait`` and may swap ``sleep`` to record waits."""

    initial_wait: float = 0.5
    max_wait: float = 30.0
    multiplier: float = 2.0
    deadline: float = 600.0
    max_attempts: int = 12
    connect_deadline: float = 30.0
    """Budget for retrying a host that refuses connections or does not resolve (capped by ``deadline``)."""
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

    def retrying(self, what: str, started: float | None = None) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for one logical request called ``what`` (route name, chunk, part)."""
        start = time.monotonic() if started is None else started

        def _wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(exc, state.attempt_number)

        def _stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            exc = state.outcome.exception() if state.outcome else None
            limit = self.deadline
            if exc is not None and is_unreachable(exc):
                limit = min(limit, self.connect_deadline)
            sleep = state.upcoming_sleep if state.upcoming_sleep else 0.0
            return time.monotonic() - start + sleep >= limit

        def _log(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            limit = self.deadline
            if exc is not None and is_unreachable(exc):
                limit = min(limit, self.connect_deadline)
            log.warning(
                "Dropbox %s: %s; retrying the request, attempt %d/%d in %.2f s (gives up after %.0f s)",
                what,
                describe(exc) if exc else "failed",
                state.attempt_number + 1,
                self.max_attempts,
                wait,
                limit,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=_wait,
            stop=_stop,
            before_sleep=_log,
            sleep=self.sleep,
            reraise=True,
        )

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under this policy; inside another ``call`` on this thread, one attempt only."""
        if getattr(_active, "deadline", None) is not None:
            return fn()  # the outer operation's budget decides whether to try again
        started = time.monotonic()
        _active.deadline = started + self.deadline
        try:
            return self.retrying(what, started)(fn)
        finally:
            _active.deadline = None
