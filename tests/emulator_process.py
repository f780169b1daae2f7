"""The suite's emulator: the product's ``DropboxEmulator`` (a real subprocess on a free loopback port), under
the names the tests and benchmarks use."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_provider_dropbox.testing import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, DropboxEmulator

__all__ = [
    "DEV_APP_KEY",
    "DEV_APP_SECRET",
    "DEV_REFRESH_TOKEN",
    "EmulatorProcess",
    "running_emulator",
    "start_emulator",
]


class EmulatorProcess(DropboxEmulator):
    """``EmulatorProcess(base_url=...)`` attaches to an emulator already running (a test's child process)."""

    def __init__(
        self,
        base_url: str,
        data_dir: Path | None = None,
        process: subprocess.Popen[str] | None = None,
        cafile: Path | None = None,
    ) -> None:
        self._attach(base_url, data_dir, process, cafile)

    def stats(self) -> dict[str, int]:
        return self.request_counts()

    def reset_stats(self) -> None:
        self.reset_request_counts()


def start_emulator(
    data_dir: str | os.PathLike[str], *extra_args: str, startup_timeout: float = 30.0
) -> EmulatorProcess:
    """Run ``python -m airflow_provider_dropbox.emulator --port 0`` and wait for its base-URL line."""
    emu = DropboxEmulator(data_dir, *extra_args, startup_timeout=startup_timeout)
    return EmulatorProcess(emu.base_url, emu.data_dir, emu.process, emu.cafile)


@contextmanager
def running_emulator(data_dir: Path, *extra_args: str) -> Iterator[EmulatorProcess]:
    emu = start_emulator(data_dir, *extra_args)
    try:
        yield emu
    finally:
        emu.stop()
