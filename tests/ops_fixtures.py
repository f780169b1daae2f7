"""Fixtures for the operator/sensor/trigger/fs tests: an Airflow DB, the emulator as ``dropbox_default``,
and a helper that runs a DAG from ``tests/dags`` through ``dag.test()`` (real Task SDK, in-process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

DAGS = Path(__file__).parent / "dags"


def conn_env(base_url: str) -> str:
    return json.dumps(
        {
            "conn_type": "dropbox",
            "host": base_url,
            "login": DEV_APP_KEY,
            "password": DEV_APP_SECRET,
            "extra": {"refresh_token": DEV_REFRESH_TOKEN},
        }
    )


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session, in the temp AIRFLOW_HOME tests/conftest.py set up."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"], env=dict(os.environ), check=True, capture_output=True, timeout=300
    )


@pytest.fixture(scope="session")
def dropbox_default(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """``dropbox_default`` (and ``dropbox_ops``) point at the session emulator for the whole session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_DROPBOX_DEFAULT", conn_env(emulator.base_url))
    mp.setenv("AIRFLOW_CONN_DROPBOX_OPS", conn_env(emulator.base_url))
    try:
        yield emulator
    finally:
        mp.undo()


@pytest.fixture
def root() -> str:
    """A fresh Dropbox folder per test so tests can share the session emulator."""
    return f"/ops-tests/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def hook(dropbox_default: EmulatorProcess) -> Any:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    h = DropboxHook()
    yield h
    h.close()


def load_dag_module(path: Path) -> Any:
    """Import a test DAG file once, under a name of its own (its fileloc stays inside its dags folder, as
    dag.test needs)."""
    name = f"_test_dags_{path.parent.parent.name}_{path.stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def load_dag(file_name: str, dag_id: str) -> Any:
    """A DAG from a file in tests/dags."""
    module = load_dag_module(DAGS / file_name)
    for value in vars(module).values():
        if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
            return value
    raise LookupError(f"{dag_id} not in {file_name}")


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


RunDag = Callable[..., Any]


@pytest.fixture
def run_dag(airflow_db: None, dropbox_default: EmulatorProcess) -> RunDag:
    def run(file_name: str, dag_id: str, conf: dict[str, Any] | None = None) -> Any:
        dag = load_dag(file_name, dag_id)
        return dag.test(run_conf=conf or {})

    return run
