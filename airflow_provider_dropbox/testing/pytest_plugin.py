"""pytest fixtures for testing Dropbox DAGs offline; enable with
``pytest_plugins = ["airflow_provider_dropbox.testing.pytest_plugin"]`` in ``conftest.py``.

- ``dropbox_emulator``: a fresh emulator per test (own data dir, own port); ``dropbox_emulator_session``:
  one for the whole session (faults cleared after each test that used it through ``dropbox``).
- ``dropbox``: the per-test emulator with ``AIRFLOW_CONN_DROPBOX_DEFAULT`` pointing at it for the test.
- ``dropbox_session``: the same connection on the session emulator (faster; tests share its files).
- ``airflow_db``: ``airflow db migrate`` once per session for the ``AIRFLOW_HOME`` in force (``dag.test()``
  needs the metadata database)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_dropbox.testing import DropboxEmulator


@pytest.fixture
def dropbox_emulator(tmp_path: Path) -> Iterator[DropboxEmulator]:
    emu = DropboxEmulator(tmp_path / "dropbox-emulator")
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def dropbox_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DropboxEmulator]:
    emu = DropboxEmulator(tmp_path_factory.mktemp("dropbox-emulator"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def dropbox(dropbox_emulator: DropboxEmulator, monkeypatch: pytest.MonkeyPatch) -> DropboxEmulator:
    """A fresh emulator, and the ``dropbox_default`` connection pointing at it for this test."""
    for key, value in dropbox_emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return dropbox_emulator


@pytest.fixture
def dropbox_session(
    dropbox_emulator_session: DropboxEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DropboxEmulator]:
    """The session emulator with ``dropbox_default`` pointing at it; faults are cleared afterwards."""
    for key, value in dropbox_emulator_session.connection_env().items():
        monkeypatch.setenv(key, value)
    yield dropbox_emulator_session
    dropbox_emulator_session.clear_faults()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"], env=dict(os.environ), check=True, capture_output=True, timeout=300
    )
