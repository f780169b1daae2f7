"""Client fixtures: a DropboxClient pointed at the emulator, with retry waits shrunk for test speed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, RetryPolicy
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

FAST_RETRY = RetryPolicy(initial_wait=0.01, max_wait=0.2, deadline=120.0, max_attempts=12)

MakeClient = Callable[..., DropboxClient]


def dev_credentials(**overrides: Any) -> Credentials:
    values: dict[str, Any] = {
        "app_key": DEV_APP_KEY,
        "app_secret": DEV_APP_SECRET,
        "refresh_token": DEV_REFRESH_TOKEN,
    }
    values.update(overrides)
    return Credentials(**values)


def client_for(emu: EmulatorProcess, **kwargs: Any) -> DropboxClient:
    kwargs.setdefault("retry_policy", FAST_RETRY)
    kwargs.setdefault("timeout", 30.0)
    credentials = kwargs.pop("credentials", None) or dev_credentials()
    endpoints = kwargs.pop("endpoints", None) or Endpoints.single_host(emu.base_url)
    return DropboxClient(credentials, endpoints=endpoints, **kwargs)


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    made: list[DropboxClient] = []

    def make(emu: EmulatorProcess, **kwargs: Any) -> DropboxClient:
        c = client_for(emu, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(emulator: EmulatorProcess, make_client: MakeClient) -> DropboxClient:
    return make_client(emulator)


@pytest.fixture
def remote_dir() -> str:
    """A unique folder per test on the shared emulator."""
    return f"/t-{uuid.uuid4().hex[:10]}"


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def leftovers(folder: Path) -> list[str]:
    """Temp files a transfer may have left behind in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".dropbox-part-" in p.name)
