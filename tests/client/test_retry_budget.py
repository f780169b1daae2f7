"""One retry budget per operation: a token refresh inside a request spends the request's attempts (no nested
retries), an unreachable host gets a short bounded retry and a typed error naming host and port, and no
operation runs past its deadline. Fast: loopback servers counting requests, tiny waits."""

from __future__ import annotations

import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, RetryPolicy, errors
from tests.client.proxy import serve_http


def _closed_port() -> int:
    """A loopback port nothing listens on (bound then released; nothing else binds it this quickly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Counting(BaseHTTPRequestHandler):
    """Token endpoint always 503; API routes answer 401 expired_access_token; counts both."""

    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = "token" if self.path.startswith("/oauth2/token") else "api"
        self.hits[key] = self.hits.get(key, 0) + 1
        if key == "token":
            body = b"busy"
            self.send_response(503)
            self.send_header("Content-Type", "text/plain")
        else:
            body = json.dumps(
                {"error_summary": "expired_access_token/", "error": {".tag": "expired_access_token"}}
            ).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _client(base: str, policy: RetryPolicy, **creds: str) -> DropboxClient:
    credentials = Credentials(app_key="k", app_secret="s", refresh_token="r", **creds)
    return DropboxClient(credentials, endpoints=Endpoints.single_host(base), retry_policy=policy, timeout=5)


@pytest.mark.parametrize("access_token", [None, "stale"], ids=["refresh-first", "refresh-after-401"])
def test_token_refresh_inside_a_call_spends_the_calls_attempts(access_token: str | None) -> None:
    """Before: each of the call's attempts ran its own full set of refresh retries (4 x 4 = 16 here)."""
    _Counting.hits = {}
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, max_attempts=4, sleep=lambda s: None)
    extra = {"access_token": access_token} if access_token else {}
    with serve_http(_Counting) as base, _client(base, policy, **extra) as client:
        with pytest.raises(errors.ServerError):
            client.get_metadata("/a.txt")
    assert _Counting.hits.get("token", 0) == 4  # one budget: 4 attempts in all, each a refresh
    assert _Counting.hits.get("api", 0) == (4 if access_token else 0)


def test_refresh_on_its_own_keeps_its_own_budget() -> None:
    """Outside any request (nothing to share with) the refresh still retries by itself."""
    _Counting.hits = {}
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, max_attempts=3, sleep=lambda s: None)
    with serve_http(_Counting) as base, _client(base, policy) as client:
        with pytest.raises(errors.ServerError):
            client.auth.token()
    assert _Counting.hits["token"] == 3


@pytest.mark.parametrize("with_token", [True, False], ids=["access-token", "needs-refresh"])
def test_refused_connection_fails_fast_with_host_and_port(
    with_token: bool, caplog: pytest.LogCaptureFixture
) -> None:
    port = _closed_port()
    policy = RetryPolicy(initial_wait=0.05, max_wait=0.2, connect_deadline=1.5, deadline=600.0)
    creds = {"access_token": "t"} if with_token else {}
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    with _client(f"http://127.0.0.1:{port}", policy, **creds) as client:
        with pytest.raises(errors.DropboxUnreachableError) as info:
            client.get_metadata("/a.txt")
    elapsed = time.monotonic() - started
    assert elapsed < 4.0  # the connect budget (1.5 s), not the 600 s deadline
    assert info.value.host == "127.0.0.1" and info.value.port == port
    assert f"127.0.0.1:{port}" in str(info.value) and "connection refused" in str(info.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "each retry is announced"
    assert all(f"127.0.0.1:{port}" in w and "retrying" in w for w in warnings)
    assert len(warnings) < 15  # no nested per-refresh retries multiplying the lines


def test_unknown_host_is_named() -> None:
    policy = RetryPolicy(initial_wait=0.05, max_wait=0.1, connect_deadline=0.5)
    with _client("http://no-such-host.invalid:8123", policy, access_token="t") as client:
        with pytest.raises(errors.DropboxUnreachableError) as info:
            client.get_metadata("/a.txt")
    assert "no-such-host.invalid:8123" in str(info.value) and "unknown host" in str(info.value)
    assert info.value.port == 8123


def test_connect_budget_never_passes_the_overall_deadline() -> None:
    port = _closed_port()
    policy = RetryPolicy(initial_wait=0.05, max_wait=0.1, connect_deadline=60.0, deadline=0.8)
    started = time.monotonic()
    with _client(f"http://127.0.0.1:{port}", policy, access_token="t") as client:
        with pytest.raises(errors.DropboxUnreachableError):
            client.get_metadata("/a.txt")
    assert time.monotonic() - started < 2.5


def test_a_longer_connect_budget_keeps_retrying() -> None:
    """The connect budget is a setting (connection extra ``connect_retry_deadline``), not a fixed count."""
    port = _closed_port()
    attempts: list[float] = []
    policy = RetryPolicy(initial_wait=0.1, max_wait=0.1, connect_deadline=1.2, max_attempts=100)
    policy_short = RetryPolicy(initial_wait=0.1, max_wait=0.1, connect_deadline=0.3, max_attempts=100)
    for p in (policy_short, policy):
        started = time.monotonic()
        with _client(f"http://127.0.0.1:{port}", p, access_token="t") as client:
            with pytest.raises(errors.DropboxUnreachableError):
                client.get_metadata("/a.txt")
        attempts.append(time.monotonic() - started)
    assert attempts[0] < 0.8 <= attempts[1] < 3.0
