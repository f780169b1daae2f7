"""The two-way tests' fixture: an empty Dropbox folder on a fresh emulator, and empty local folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import DropboxClient
from tests.emulator_process import EmulatorProcess
from tests.sync.two_way.helpers import ROOT


@pytest.fixture
def side(emu_client: tuple[EmulatorProcess, DropboxClient], tmp_path: Path) -> Any:
    _emu, client = emu_client
    client.create_folder(ROOT)
    dest = tmp_path / "local"
    dest.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return client, dest, work
