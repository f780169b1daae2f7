"""Start the Dropbox emulator as a real subprocess on a free loopback port (used by tests and benchmarks)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_dropbox.testing import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, FAULT_DEFAULTS

__all__ = [
    "DEV_APP_KEY",
    "DEV_APP_SECRET",
    "DEV_REFRESH_TOKEN",
    "EmulatorProcess",
    "running_emulator",
    "start_emulator",
]


@dataclass
class EmulatorProcess:
    base_url: str
    data_dir: Path
    process: subprocess.Popen[str]
    cafile: Path | None = None  # for https emulators (self-signed --certfile)

    def admin(self, route: str, body: Any = None, method: str = "POST") -> Any:
        """Call an ``/_emulator/...`` admin route (faults, stats, reset_cursors)."""
        data = None if method == "GET" else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}/_emulator/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=str(self.cafile)) if self.cafile else None
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def set_faults(self, **faults: Any) -> Any:
        return self.admin("faults", faults)

    def clear_faults(self) -> Any:
        return self.admin("faults", FAULT_DEFAULTS)

    def stats(self) -> dict[str, int]:
        return dict(self.admin("stats", method="GET")["requests"])

    def reset_stats(self) -> None:
        self.admin("stats/reset", {})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_emulator(data_dir: Path, *extra_args: str, startup_timeout: float = 30.0) -> EmulatorProcess:
    """Run ``python -m airflow_provider_dropbox.emulator --port 0`` and wait for its base-URL line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_dropbox.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    deadline = time.monotonic() + startup_timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {proc.returncode} before listening")
            continue
        line = line.strip()
        if line.startswith(("http://", "https://")):
            cafile = None
            if "--certfile" in extra_args:
                cafile = Path(extra_args[extra_args.index("--certfile") + 1])
            return EmulatorProcess(base_url=line.rstrip("/"), data_dir=data_dir, process=proc, cafile=cafile)
    proc.kill()
    raise RuntimeError("emulator did not print its base URL in time")


@contextmanager
def running_emulator(data_dir: Path, *extra_args: str) -> Iterator[EmulatorProcess]:
    emu = start_emulator(data_dir, *extra_args)
    try:
        yield emu
    finally:
        emu.stop()
