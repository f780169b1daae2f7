"""The user-facing helpers of ``airflow_provider_dropbox.testing``: seed/read, faults, connection env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_dropbox.client.errors import PathNotFoundError, ServerError
from airflow_provider_dropbox.testing import running_emulator


def test_seed_read_faults_and_connection(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu") as emu:
        emu.seed({"/in/a.csv": "1,2\n", "/in/deep/b.bin": b"\x00\xff"})
        assert emu.read("/in/a.csv") == b"1,2\n" and emu.read("/in/deep/b.bin") == b"\x00\xff"
        assert emu.listdir("/in") == ["/in/a.csv", "/in/deep"]
        assert emu.listdir("/nothing") == [] and not emu.exists("/in/c.csv")
        with pytest.raises(PathNotFoundError):
            emu.read("/in/c.csv")
        emu.set_faults(server_error=1.0)
        assert emu.admin("faults", method="GET")["server_error"] == 1.0
        with pytest.raises(ServerError):
            emu.client.retry = type(emu.client.retry)(max_attempts=1)
            emu.read("/in/a.csv")
        emu.clear_faults()
        assert emu.read("/in/a.csv") == b"1,2\n"
        ((key, value),) = emu.connection_env("my_dbx", retry_deadline=5).items()
        assert key == "AIRFLOW_CONN_MY_DBX"
        conn = json.loads(value)
        assert conn["host"] == emu.base_url and conn["extra"]["retry_deadline"] == 5
        assert emu.request_counts().get("/2/files/download", 0) >= 3
    assert emu.process.poll() is not None  # stopped on exit
