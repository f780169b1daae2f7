"""Fixtures for the hook tests: Airflow connections in ``AIRFLOW_CONN_*`` env vars, aimed at the emulator."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

MakeConn = Callable[..., str]


def free_port() -> int:
    """A loopback port nothing listens on (for a server to start on, or as an unreachable host)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conn_json(base_url: str | None, **overrides: Any) -> str:
    """A ``dropbox`` connection as Airflow's env-var JSON; ``extra`` keys merge, ``None`` drops a field."""
    conn: dict[str, Any] = {
        "conn_type": "dropbox",
        "login": DEV_APP_KEY,
        "password": DEV_APP_SECRET,
        "host": base_url,
        "extra": {"refresh_token": DEV_REFRESH_TOKEN},
    }
    extra = overrides.pop("extra", None)
    conn.update(overrides)
    if extra is not None:
        conn["extra"] = {**conn["extra"], **extra}
    conn["extra"] = {k: v for k, v in conn["extra"].items() if v is not None}
    return json.dumps({k: v for k, v in conn.items() if v is not None})


@pytest.fixture
def make_conn(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorProcess) -> MakeConn:
    """Define a connection (default: the emulator's dev credentials) and return its conn id."""

    def make(
        conn_id: str | None = None, *, base_url: str | None = emulator.base_url, **overrides: Any
    ) -> str:
        conn_id = conn_id or f"dbx_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(base_url, **overrides))
        return conn_id

    return make


@pytest.fixture
def remote_dir() -> str:
    """A fresh Dropbox folder name per test, so tests share the session emulator without clashing."""
    return f"/hook-tests/{uuid.uuid4().hex[:10]}"
