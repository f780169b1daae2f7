"""The AssetWatcher DAG (``tests/dags/ops_watch_dag.py``) registers our trigger and runs on a change only.

Default suite: the DAG parses, its asset carries our ``BaseEventTrigger``, serialization keeps it, and
``airflow dags reserialize`` registers it in the ``trigger`` table (the step the DAG processor does).
Slow suite: a real ``airflow triggerer`` and ``airflow scheduler`` on their own AIRFLOW_HOME; a quiet
folder creates no DAG run, a Dropbox change creates exactly one asset-triggered run whose asset event
carries the changed path. (Task execution needs an api-server too; that the task reads the payload is
covered by ``changed_files`` being plain code over ``triggering_asset_events``.)
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger
from tests.emulator_process import DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess
from tests.ops_fixtures import DAGS, conn_env, load_dag, load_dag_module

AIRFLOW = str(Path(sys.executable).parent / "airflow")
CLASSPATH = "airflow_provider_dropbox.triggers.dropbox.DropboxChangeEventTrigger"


def test_watcher_dag_parses_and_serializes() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = load_dag("ops_watch_dag.py", "ops_on_dropbox_change")
    module = load_dag_module(DAGS / "ops_watch_dag.py")
    inbox = module.inbox
    assert inbox.uri == "dropbox://dropbox_watch/ops-watch/inbox"  # normalised by our asset-uris handler
    (watcher,) = inbox.watchers
    assert isinstance(watcher.trigger, DropboxChangeEventTrigger)
    serialized = json.dumps(DagSerialization.to_dict(dag))
    assert CLASSPATH in serialized and "ops_inbox_watcher" in serialized


def test_reserialize_registers_the_watcher_trigger(
    airflow_db: None, dropbox_default: EmulatorProcess
) -> None:
    env = {**os.environ, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"}
    env["AIRFLOW_CONN_DROPBOX_WATCH"] = conn_env(dropbox_default.base_url)
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(
        [AIRFLOW, "dags", "unpause", "ops_on_dropbox_change"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        classpaths = session.scalars(select(Trigger.classpath)).all()
    assert CLASSPATH in classpaths


# -- slow: real triggerer + scheduler --------------------------------------------------------------------


@pytest.fixture
def airflow_home(tmp_path: Path, fresh_emulator: EmulatorProcess) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    home.mkdir()
    fresh_emulator.set_faults(longpoll_max_s=2)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW_CONN_DROPBOX_WATCH": conn_env(fresh_emulator.base_url),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    yield env


def _rows(env: dict[str, str], sql: str) -> list[Any]:
    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def _runs(env: dict[str, str]) -> list[Any]:
    return _rows(env, "select run_id, run_type from dag_run where dag_id = 'ops_on_dropbox_change'")


@pytest.mark.slow
def test_real_triggerer_runs_dag_on_change_not_on_quiet_folder(
    airflow_home: dict[str, str], fresh_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    os.environ["AIRFLOW_CONN_DROPBOX_WATCH"] = airflow_home["AIRFLOW_CONN_DROPBOX_WATCH"]
    hook = DropboxHook(dropbox_conn_id="dropbox_watch")
    hook.create_folder("/ops-watch/Inbox")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [
        subprocess.Popen(
            [AIRFLOW, name],
            env=airflow_home,
            stdout=open(logs / f"{name}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for name in ("triggerer", "scheduler")
    ]
    try:
        # Wait until the watcher is running (its first longpoll reaches the emulator).
        deadline = time.monotonic() + 120
        while fresh_emulator.stats().get("/2/files/list_folder/longpoll", 0) == 0:
            assert time.monotonic() < deadline, (logs / "triggerer.log").read_text()[-3000:]
            time.sleep(0.5)
        # Quiet folder: several longpoll timeouts (2 s each), a non-matching file, and no DAG run.
        local = tmp_path / "notes.txt"
        local.write_text("not a csv")
        hook.upload_file(local, "/ops-watch/Inbox/notes.txt")
        time.sleep(10)
        assert _runs(airflow_home) == []
        assert fresh_emulator.stats().get("/2/files/list_folder/longpoll", 0) >= 3
        # A real change: exactly one asset-triggered run, with the change in the asset event.
        local = tmp_path / "data.csv"
        local.write_text("a,b\n")
        hook.upload_file(local, "/ops-watch/Inbox/data.csv")
        deadline = time.monotonic() + 90
        while not _runs(airflow_home):
            assert time.monotonic() < deadline, (logs / "scheduler.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(5)
        runs = _runs(airflow_home)
        assert [r[1] for r in runs] == ["asset_triggered"]
        (extra,) = [json.loads(r[0]) for r in _rows(airflow_home, "select extra from asset_event")]
        assert extra["from_trigger"] is True
        assert [c["path"] for c in extra["payload"]["changes"]] == ["/ops-watch/Inbox/data.csv"]
        triggerer_log = (logs / "triggerer.log").read_text()
        assert "DropboxChangeEventTrigger" in triggerer_log
        for secret in (DEV_APP_SECRET, DEV_REFRESH_TOKEN, "Bearer "):
            assert secret not in triggerer_log, f"{secret!r} leaked into the triggerer log"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
