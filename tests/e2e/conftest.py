"""One real Airflow (standalone) + one emulator shared by the end-to-end suites."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.standalone import AirflowStandalone
from tests.emulator_process import (
    DEV_APP_KEY,
    DEV_APP_SECRET,
    DEV_REFRESH_TOKEN,
    EmulatorProcess,
    start_emulator,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def e2e_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    emu = start_emulator(tmp_path_factory.mktemp("e2e-emulator"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-mirror")


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_emulator: EmulatorProcess, mirror_root: Path
) -> Iterator[AirflowStandalone]:
    """Example DAGs from dags/ plus the e2e-only DAGs, served by a real airflow standalone."""
    dags = tmp_path_factory.mktemp("e2e-dags")
    for source in [*(ROOT / "dags").glob("*.py"), *(Path(__file__).parent / "dags").glob("*.py")]:
        shutil.copy(source, dags / source.name)
    conn = {
        "conn_type": "dropbox",
        "host": e2e_emulator.base_url,
        "login": DEV_APP_KEY,
        "password": DEV_APP_SECRET,
        "extra": {"refresh_token": DEV_REFRESH_TOKEN},
    }
    stack = AirflowStandalone(
        home=tmp_path_factory.mktemp("e2e-airflow-home"),
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_DROPBOX_DEFAULT": json.dumps(conn),
            "DROPBOX_MIRROR_LOCAL_PATH": str(mirror_root),
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
