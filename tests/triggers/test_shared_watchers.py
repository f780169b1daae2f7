# ruff: noqa: RUF001
"""Watcher cursors when state-store storage is shared, through real DAG processing and a real triggerer.

``tests/triggers/dags/shared_watch_dag.py`` gives two assets one trigger (one trigger row, an accessor
over two assets) and one asset two watchers on different folders. The triggerer saves every watcher's
cursor, is stopped, files change while it is down, and the restarted triggerer must report each change
to each asset exactly once: nothing lost (the cursor was readable and not overwritten) and nothing
replayed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import conn_env

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAGS = Path(__file__).parent / "dags"
LONGPOLL = "/2/files/list_folder/longpoll"


class AccessorsLike:
    """The shape of 3.3's ``AssetStateStoreAccessors``: per-asset accessors, refusing plain get/set."""

    def __init__(self, names: list[str]) -> None:
        self._by_name = {name: OneAsset() for name in names}
        self._by_uri: dict[str, OneAsset] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError(f"Task has {len(self._by_name)} concrete inlets and outlets")

    async def aset(self, key: str, value: Any) -> None:
        raise ValueError(f"Task has {len(self._by_name)} concrete inlets and outlets")


class OneAsset:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_state_key_names_the_watcher() -> None:
    """Different folders, recursion, filters or connections: different keys; case of the path: same."""
    base = DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.csv")
    same = [
        DropboxChangeEventTrigger(path="/inbox/", file_pattern="*.csv"),
        DropboxChangeEventTrigger(path="/INBOX", file_pattern="*.csv", max_changes_in_event=5),
    ]
    other = [
        DropboxChangeEventTrigger(path="/Outbox", file_pattern="*.csv"),
        DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.csv", recursive=False),
        DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.txt"),
        DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.csv", kinds=["added"]),
        DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.csv", include_folders=True),
        DropboxChangeEventTrigger(path="/Inbox", file_pattern="*.csv", dropbox_conn_id="other"),
    ]
    assert all(t.state_key() == base.state_key() for t in same)
    keys = {t.state_key() for t in other}
    assert len(keys) == len(other) and base.state_key() not in keys

    # Folded as Dropbox folds names (casefold.path_key), not with str.lower().
    def key(path: str) -> str:
        return DropboxChangeEventTrigger(path=path).state_key()

    assert key("/ΣΑΣ") == key("/σασ") != key("/σας")
    assert key("/İzmir") == key("/izmir")
    assert key("/STRAẞE") != key("/straße")


def test_cursor_goes_to_every_asset_and_the_oldest_is_resumed() -> None:
    """Saved through each asset's own accessor; on disagreement the least recently saved one wins."""
    import asyncio

    store = AccessorsLike(["one", "two"])
    trigger = DropboxChangeEventTrigger(path="/w/shared")
    trigger.asset_state_store = store

    async def scenario() -> tuple[str | None, str | None]:
        await trigger.save_cursor("c1")
        saved = {name: dict(acc.data) for name, acc in store._by_name.items()}
        await trigger.save_cursor("c2")
        # Asset "two" lost the later save (e.g. a DB error): resume from c1 and replay, never skip.
        store._by_name["two"].data = saved["two"]
        resumed = DropboxChangeEventTrigger(path="/w/shared")
        resumed.asset_state_store = store
        first = await resumed.load_cursor()
        fresh = DropboxChangeEventTrigger(path="/w/elsewhere")
        fresh.asset_state_store = store
        return first, await fresh.load_cursor()

    first, fresh = asyncio.run(scenario())
    assert first == "c1"
    assert fresh is None  # another watcher's cursor is never taken


# -- slow: real DAG processing + real triggerer restart ------------------------------------------------


@pytest.fixture
def watch_home(tmp_path: Path, fresh_emulator: EmulatorProcess) -> Iterator[dict[str, str]]:
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
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW_CONN_DROPBOX_WATCH": conn_env(fresh_emulator.base_url),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    yield env


def _rows(env: dict[str, str], sql: str) -> list[Any]:
    import sqlite3

    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def _events(env: dict[str, str]) -> list[tuple[str, str]]:
    rows = _rows(env, "select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id")
    return sorted(
        (name, change["path"]) for name, extra in rows for change in json.loads(extra)["payload"]["changes"]
    )


class Triggerer:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [AIRFLOW, "triggerer"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _wait(what: str, ok: Any, log: Path, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not ok():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()[-4000:]}"
        time.sleep(0.5)


@pytest.mark.slow
def test_triggerer_restart_with_shared_storage_neither_loses_nor_replays(
    watch_home: dict[str, str], fresh_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    os.environ["AIRFLOW_CONN_DROPBOX_WATCH"] = watch_home["AIRFLOW_CONN_DROPBOX_WATCH"]
    hook = DropboxHook(dropbox_conn_id="dropbox_watch")
    for folder in ("/w/shared", "/w/A", "/w/B"):
        hook.create_folder(folder)
    # DAG processing made one trigger row for the two assets sharing a watcher, two for the other.
    assert len(_rows(watch_home, "select id from trigger")) == 3
    assert len(_rows(watch_home, "select * from asset_watcher")) == 4

    def upload(remote: str) -> None:
        local = tmp_path / remote.strip("/").replace("/", "_")
        local.write_text(remote)
        hook.upload_file(local, remote)

    first = Triggerer(watch_home, tmp_path / "triggerer-1.log")
    try:
        _wait("watchers never longpolled", lambda: fresh_emulator.stats().get(LONGPOLL, 0) >= 3, first.log)
        time.sleep(6)  # every watcher has taken (and saved) its cursor and waits in a longpoll
    finally:
        first.stop()
    log_one = first.log.read_text()
    assert "Cannot read the saved Dropbox cursor" not in log_one
    # While the triggerer is down: one change in each watched folder.
    for remote in ("/w/shared/s.csv", "/w/A/a.csv", "/w/B/b.csv"):
        upload(remote)
    expected = [
        ("shared_one", "/w/shared/s.csv"),
        ("shared_two", "/w/shared/s.csv"),
        ("two_folders", "/w/A/a.csv"),
        ("two_folders", "/w/B/b.csv"),
    ]
    second = Triggerer(watch_home, tmp_path / "triggerer-2.log")
    try:
        _wait(
            "changes made while down were not reported", lambda: len(_events(watch_home)) >= 4, second.log, 90
        )
        time.sleep(8)  # several more longpolls: nothing is reported twice
    finally:
        second.stop()
    assert _events(watch_home) == expected
    keys = _rows(
        watch_home, "select a.name, s.key from asset_state_store s join asset a on a.id = s.asset_id"
    )
    names = sorted(name for name, key in keys if key.startswith("dropbox_cursor."))
    assert names == ["shared_one", "shared_two", "two_folders", "two_folders"]


def test_cursor_saved_under_the_old_single_key_is_resumed_once() -> None:
    """Upgrade: a cursor an earlier release saved as ``dropbox_cursor`` is resumed if it names this folder."""
    import asyncio

    store = OneAsset()
    store.data["dropbox_cursor"] = {"path": "/w/inbox", "recursive": True, "cursor": "old"}
    same = DropboxChangeEventTrigger(path="/W/Inbox")
    same.asset_state_store = store
    other = DropboxChangeEventTrigger(path="/w/inbox", recursive=False)
    other.asset_state_store = store
    assert asyncio.run(same.load_cursor()) == "old"
    assert asyncio.run(other.load_cursor()) is None
