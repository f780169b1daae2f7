"""Shared fixtures. Airflow settings are pinned here, before anything imports airflow."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).parent / "dags"))
os.environ.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
# One Fernet key for this process and every Airflow process the tests start: an `airflow` subprocess would
# otherwise write a fresh key into airflow.cfg and encrypt trigger kwargs that this process cannot read.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "dGVzdHMtb25seS1mZXJuZXQta2V5LTMyLWJ5dGVzISE=")

from tests.emulator_process import EmulatorProcess, start_emulator  # noqa: E402


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for the session; tests that change faults must clear them (use ``faulty_emulator``)."""
    emu = start_emulator(tmp_path_factory.mktemp("emulator-data"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """A private emulator with its own empty data dir, for tests that inject faults or need a clean tree."""
    emu = start_emulator(tmp_path / "emulator-data")
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def _module_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    emu = start_emulator(tmp_path_factory.mktemp("emulator-module"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def faulty_emulator(_module_emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """One emulator per test module for fault tests; faults cleared and stats zeroed around each test."""
    _module_emulator.clear_faults()
    _module_emulator.reset_stats()
    yield _module_emulator
    _module_emulator.clear_faults()
