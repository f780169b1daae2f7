"""Test your own Dropbox DAGs offline: a local Dropbox emulator, a ready connection, seeding and faults.

``DropboxEmulator`` runs ``python -m airflow_provider_dropbox.emulator`` on a free loopback port with its own
data directory. The pytest fixtures live in ``airflow_provider_dropbox.testing.pytest_plugin``; enable them
with ``pytest_plugins = ["airflow_provider_dropbox.testing.pytest_plugin"]`` in your ``conftest.py``
(docs/testing-your-dags.md). Nothing here imports pytest or Airflow."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, RetryPolicy
from airflow_provider_dropbox.client.errors import PathNotFoundError
from airflow_provider_dropbox.emulator.faults import FaultSettings

__all__ = ["DEV_APP_KEY", "DEV_APP_SECRET", "DEV_REFRESH_TOKEN", "DropboxEmulator", "running_emulator"]

DEV_APP_KEY = "dev-app-key"
DEV_APP_SECRET = "dev-app-secret"
DEV_REFRESH_TOKEN = "dev-refresh-token"

FAULT_DEFAULTS: dict[str, Any] = {k: v for k, v in asdict(FaultSettings()).items() if k != "seed"}
"""Every fault switch off: what ``clear_faults`` sets."""


class DropboxEmulator:
    """One emulator process (not Dropbox): start it, point a connection at it, seed and read files, inject
    faults (``set_faults(server_error=0.5)``; the switches are in docs/emulator.md), stop it."""

    def __init__(
        self, data_dir: str | os.PathLike[str], *extra_args: str, startup_timeout: float = 30.0
    ) -> None:
        data = Path(data_dir)
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "airflow_provider_dropbox.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(data),
            *extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen[str] | None = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env=env
        )
        cafile = Path(extra_args[extra_args.index("--certfile") + 1]) if "--certfile" in extra_args else None
        self._attach(self._wait_for_url(self.process, startup_timeout), data, self.process, cafile)

    @classmethod
    def attach(cls, base_url: str, *, cafile: str | os.PathLike[str] | None = None) -> DropboxEmulator:
        """An emulator that is already running (docker-compose, another process): ``stop`` leaves it be."""
        emu = cls.__new__(cls)
        emu._attach(base_url, None, None, Path(cafile) if cafile else None)
        return emu

    def _attach(
        self,
        base_url: str,
        data_dir: Path | None,
        process: subprocess.Popen[str] | None,
        cafile: Path | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.data_dir = data_dir
        self.process = process
        self.cafile = cafile  # the self-signed certificate of an https emulator (``--certfile``)
        self._client: DropboxClient | None = None

    @staticmethod
    def _wait_for_url(process: subprocess.Popen[str], timeout: float) -> str:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                if process.poll() is not None:
                    raise RuntimeError(f"the Dropbox emulator exited with {process.returncode} at start")
                continue
            if line.startswith(("http://", "https://")):
                return line.strip()
        process.kill()
        process.wait()
        raise RuntimeError(f"the Dropbox emulator printed no URL within {timeout:g} s")

    # ---------------------------------------------------------------- connection

    def connection(self, **extra: Any) -> dict[str, Any]:
        """The Airflow ``dropbox`` connection for this emulator (dev credentials); ``extra`` keys merge."""
        return {
            "conn_type": "dropbox",
            "login": DEV_APP_KEY,
            "password": DEV_APP_SECRET,
            "host": self.base_url,
            "extra": {"refresh_token": DEV_REFRESH_TOKEN, **extra},
        }

    def connection_env(self, conn_id: str = "dropbox_default", **extra: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}``: put it in ``os.environ`` and Airflow finds the connection."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection(**extra))}

    @property
    def client(self) -> DropboxClient:
        """A client on the emulator for seeding and checking (quick retries)."""
        if self._client is None:
            self._client = DropboxClient(
                Credentials(app_key=DEV_APP_KEY, app_secret=DEV_APP_SECRET, refresh_token=DEV_REFRESH_TOKEN),
                endpoints=Endpoints.single_host(self.base_url),
                timeout=30.0,
                retry_policy=RetryPolicy(initial_wait=0.05, max_wait=0.5, deadline=30.0),
            )
        return self._client

    # ---------------------------------------------------------------- files

    def seed(self, files: Mapping[str, bytes | str]) -> None:
        """Put files in the emulated Dropbox: ``{"/Inbox/a.csv": b"...", ...}`` (parents are created)."""
        for remote, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            self.client.upload_call(
                "files/upload",
                {"path": remote, "mode": "overwrite", "autorename": False, "mute": True},
                _body(data),
                path=remote,
            )

    def read(self, path: str) -> bytes:
        """The bytes of a file in the emulated Dropbox (``PathNotFoundError`` if there is none)."""
        resp = self.client.download_response("files/download", {"path": path}, path=path)
        try:
            return resp.content
        finally:
            resp.close()

    def exists(self, path: str) -> bool:
        return self.client.exists(path)

    def listdir(self, path: str = "", recursive: bool = False) -> list[str]:
        """Display paths of the entries under ``path`` (sorted); empty when the folder does not exist."""
        try:
            return sorted(e["path_display"] for e in self.client.list_folder(path, recursive=recursive))
        except PathNotFoundError:
            return []

    # ---------------------------------------------------------------- faults and stats

    def admin(self, route: str, body: Any = None, method: str = "POST") -> Any:
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

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Switch faults on, e.g. ``server_error=1.0`` (every request 5xx), ``rate_limit=0.3``,
        ``latency_ms=200``, ``drop_after_commit=1.0``; the answer is the settings now in force."""
        return dict(self.admin("faults", faults))

    def clear_faults(self) -> dict[str, Any]:
        return dict(self.admin("faults", FAULT_DEFAULTS))

    def request_counts(self) -> dict[str, int]:
        """Requests served per route since start (or ``reset_request_counts``)."""
        return dict(self.admin("stats", method="GET")["requests"])

    def reset_request_counts(self) -> None:
        self.admin("stats/reset", {})

    # ---------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _body(data: bytes) -> Callable[[], bytes]:
    return lambda: data


@contextmanager
def running_emulator(data_dir: str | os.PathLike[str], *extra_args: str) -> Iterator[DropboxEmulator]:
    """``with running_emulator(tmp) as emu:`` outside pytest."""
    emu = DropboxEmulator(data_dir, *extra_args)
    try:
        yield emu
    finally:
        emu.stop()
