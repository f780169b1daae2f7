"""Fixtures for the raw-HTTP conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator.helpers import Api, unique_dir
from tests.emulator_process import EmulatorProcess


@pytest.fixture
def api(emulator: EmulatorProcess) -> Iterator[Api]:
    """A raw client on the shared session emulator (faults must stay off there)."""
    client = Api(emulator)
    yield client
    client.http.close()


@pytest.fixture
def root() -> str:
    return unique_dir()


@pytest.fixture
def fresh_api(fresh_emulator: EmulatorProcess) -> Iterator[Api]:
    """A raw client on a private emulator (for faults, resets and restarts)."""
    client = Api(fresh_emulator)
    yield client
    client.http.close()


@pytest.fixture
def faulty_api(faulty_emulator: EmulatorProcess) -> Iterator[Api]:
    """A raw client on the module's fault-test emulator (faults cleared after each test)."""
    client = Api(faulty_emulator)
    yield client
    client.http.close()
