"""Run the official ``dropbox`` SDK, unchanged, against an HTTPS emulator.

The SDK reads its host names from the environment at import time, so the session fixture
starts the emulator first, sets the variables, and only then imports ``dropbox``. Nothing
else in the test suite imports the SDK; if something did, these tests skip rather than
talk to the wrong host.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.emulator_process import (
    DEV_APP_KEY,
    DEV_APP_SECRET,
    DEV_REFRESH_TOKEN,
    EmulatorProcess,
    start_emulator,
)
from tests.sdk.certs import make_cert, sdk_env


@dataclass
class SdkTarget:
    emu: EmulatorProcess
    cert: Path
    dropbox: ModuleType

    def client(self, **kw: Any) -> Any:
        """A ``dropbox.Dropbox`` built the way an app would: refresh token + app key/secret."""
        args: dict[str, Any] = {
            "oauth2_refresh_token": DEV_REFRESH_TOKEN,
            "app_key": DEV_APP_KEY,
            "app_secret": DEV_APP_SECRET,
            "ca_certs": str(self.cert),
        }
        args.update(kw)
        return self.dropbox.Dropbox(**args)


@pytest.fixture(scope="package")
def sdk_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkTarget]:
    base = tmp_path_factory.mktemp("sdk")
    cert, key = make_cert(base / "tls")
    emu = start_emulator(base / "data", "--certfile", str(cert), "--keyfile", str(key))
    host = urlparse(emu.base_url).netloc
    env = sdk_env(host, cert)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if "dropbox" in sys.modules:
            session = importlib.import_module("dropbox.session")
            if session.API_HOST != host:
                pytest.skip(
                    "dropbox was imported before its hosts were set; run tests/sdk in its own process"
                )
        dropbox = importlib.import_module("dropbox")
        importlib.import_module("dropbox.file_transfer")
        yield SdkTarget(emu=emu, cert=cert, dropbox=dropbox)
    finally:
        emu.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def dbx(sdk_target: SdkTarget) -> Iterator[Any]:
    client = sdk_target.client()
    yield client
    client.close()
