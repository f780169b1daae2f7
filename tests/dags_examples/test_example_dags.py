"""The example DAGs in ``dags/``: they import cleanly, are configured as documented, and run end to end.

The runs are real ``airflow dags test`` subprocesses (own ``AIRFLOW_HOME`` migrated once, ``DAGS_FOLDER`` =
``dags/``, the connection in ``AIRFLOW_CONN_DROPBOX_DEFAULT``) against a private emulator. ``dags test``
runs each task in-process and does not run AssetWatchers, so the event-driven DAG is checked here with a
synthetic (manual) run; the real watcher is exercised by ``tests/e2e/test_stack_dags.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, content_hash_file
from tests.emulator_process import (
    DEV_APP_KEY,
    DEV_APP_SECRET,
    DEV_REFRESH_TOKEN,
    EmulatorProcess,
    start_emulator,
)
from tests.trees import local_tree, put

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
EVENT_WATCH_PATH = "/DagsEvents"
SYNC_PATH = "/DagsTwoWay"
EXPECTED_DAGS = {
    "dropbox_mirror",
    "dropbox_upload_on_local_file",
    "dropbox_event_driven",
    "dropbox_two_way_sync",
}


def conn_json(base_url: str, secret: str = DEV_APP_SECRET) -> str:
    return json.dumps(
        {
            "conn_type": "dropbox",
            "host": base_url,
            "login": DEV_APP_KEY,
            "password": secret,
            "extra": {"refresh_token": DEV_REFRESH_TOKEN},
        }
    )


def remote_tree(client: DropboxClient, folder: str) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder`` on the emulator."""
    out: dict[str, bytes] = {}
    prefix = folder.rstrip("/") + "/"
    for entry in client.list_folder(folder, recursive=True):
        if entry[".tag"] != "file":
            continue
        resp = client.download_response("files/download", {"path": entry["path_lower"]})
        try:
            out[entry["path_display"][len(prefix) :]] = resp.content
        finally:
            resp.close()
    return out


@dataclass
class DagsTest:
    returncode: int
    output: str
    seconds: float

    def tail(self) -> str:
        return self.output[-6000:]


class AirflowCli:
    """``airflow`` commands against one migrated SQLite ``AIRFLOW_HOME`` whose DAGs folder is ``dags/``."""

    def __init__(self, home: Path, emulator: EmulatorProcess) -> None:
        self.home = home
        self.emulator = emulator
        self.runs: list[tuple[str, float]] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_DROPBOX_DEFAULT": conn_json(self.emulator.base_url),
            "DROPBOX_MIRROR_LOCAL_PATH": str(self.home / "dropbox-mirror"),
            # The same for every run: it sets the event-driven DAG's asset URI, and one asset name moving
            # to another URI within one metadata DB leaves the new one inactive (its tasks then fail).
            "DROPBOX_WATCH_PATH": EVENT_WATCH_PATH,
            "DROPBOX_SYNC_PATH": SYNC_PATH,
            "DROPBOX_SYNC_LOCAL_PATH": str(self.home / "dropbox-sync"),
            **(extra or {}),
        }

    def migrate(self) -> None:
        run = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env(), capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    def dags_test(
        self, dag_id: str, conf: dict[str, Any] | None = None, extra_env: dict[str, str] | None = None
    ) -> DagsTest:
        cmd = [AIRFLOW, "dags", "test", dag_id]
        if conf is not None:
            cmd += ["-c", json.dumps(conf)]
        started = time.monotonic()
        run = subprocess.run(
            cmd,
            env=self.env(extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=420,
        )
        seconds = time.monotonic() - started
        self.runs.append((dag_id, seconds))
        (self.home / f"dags-test-{len(self.runs)}-{dag_id}.log").write_text(run.stdout)
        return DagsTest(run.returncode, run.stdout, seconds)


@pytest.fixture(scope="module")
def dag_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator: these tests add folders at the root and may set faults."""
    emu = start_emulator(tmp_path_factory.mktemp("dags-emulator"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def client(dag_emulator: EmulatorProcess) -> Iterator[DropboxClient]:
    dbx = DropboxClient(
        Credentials(DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN),
        endpoints=Endpoints.single_host(dag_emulator.base_url),
    )
    try:
        yield dbx
    finally:
        dbx.close()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, dag_emulator: EmulatorProcess) -> AirflowCli:
    runner = AirflowCli(tmp_path_factory.mktemp("dags-airflow-home"), dag_emulator)
    runner.migrate()
    return runner


# -- import and configuration (in-process DagBag) -------------------------------------------------------


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")


def test_dagbag_imports_cleanly_with_exactly_the_example_dags(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        assert "dropbox" in dag.tags and "example" in dag.tags, dag_id
        assert dag.doc_md, f"{dag_id} has no doc_md for the UI"


def test_no_two_assets_share_a_uri_under_different_names(dagbag: Any) -> None:
    """Airflow keeps one active asset per URI (and per name): a second name for the same URI is inactive,
    and a task with it in its inlets/outlets fails before it runs (docs/known-limitations.md)."""
    from airflow.sdk import Asset

    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        found: list[Any] = []
        condition = getattr(dag.timetable, "asset_condition", None)
        if condition is not None:
            found.extend(getattr(condition, "objects", (condition,)))
        for task in dag.tasks:
            found.extend([*task.inlets, *task.outlets])
        names: dict[str, set[str]] = {}
        for asset in found:
            if isinstance(asset, Asset):
                names.setdefault(asset.uri, set()).add(asset.name)
        clashes = {uri: sorted(n) for uri, n in names.items() if len(n) > 1}
        assert not clashes, f"{dag_id}: one URI, several asset names: {clashes}"


def _scheduling_assets(condition: Any) -> list[Any]:
    objects = getattr(condition, "objects", None)
    if condition is None:
        return []
    return [condition] if objects is None else [a for o in objects for a in _scheduling_assets(o)]


def test_no_dag_schedules_itself_through_its_own_outlets(dagbag: Any) -> None:
    """A task outlet that is also in its DAG's schedule makes every successful run queue the next one:
    the DAG runs back to back forever."""
    from airflow.sdk import Asset

    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        condition = getattr(dag.timetable, "asset_condition", None)
        scheduling = {a.uri for a in _scheduling_assets(condition) if isinstance(a, Asset)}
        produced = {a.uri for task in dag.tasks for a in task.outlets if isinstance(a, Asset)}
        assert not scheduling & produced, f"{dag_id} schedules itself through {sorted(scheduling & produced)}"


def test_mirror_dag_schedule_and_params(dagbag: Any) -> None:
    dag = dagbag.dags["dropbox_mirror"]
    assert dag.schedule == timedelta(minutes=5)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.params.keys()) == {"dropbox_path", "local_path", "dropbox_conn_id", "max_deletes"}
    assert dag.params["dropbox_path"] == "/"
    assert dag.params["dropbox_conn_id"] == "dropbox_default"
    assert dag.params["max_deletes"] == "50%"
    assert set(dag.task_ids) == {"mirror", "report"}
    mirror = dag.get_task("mirror")
    assert type(mirror).__name__ == "DropboxMirrorOperator"
    assert mirror.dropbox_path == "{{ params.dropbox_path }}"
    assert mirror.local_path == "{{ params.local_path }}"
    assert mirror.retries == 2


def test_upload_dag_schedule_and_params(dagbag: Any) -> None:
    """Scheduled by the local inbox watcher (reporting what is there at start, not the archive step's
    moves), hourly as a safety net."""
    from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

    dag = dagbag.dags["dropbox_upload_on_local_file"]
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assets = [dag.timetable.asset_condition]  # one asset: the condition is the asset itself
    assert len(assets) == 1 and len(assets[0].watchers) == 1
    trigger = assets[0].watchers[0].trigger
    assert isinstance(trigger, LocalFolderChangeTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["path"] == dag.params["inbox"] and kwargs["fire_on_existing"] is True
    assert kwargs["include_deletes"] is False and kwargs["settle_seconds"] == 5
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.params.keys()) == {
        "inbox",
        "archive",
        "dropbox_folder",
        "settle_seconds",
        "dropbox_conn_id",
    }
    assert dag.params["dropbox_folder"] == "/Uploads"
    assert dag.params["settle_seconds"] == 5
    assert set(dag.task_ids) == {"stable_files", "upload_and_archive"}
    upload = dag.get_task("upload_and_archive")
    assert upload.retries == 2
    assert upload.upstream_task_ids == {"stable_files"}


def test_event_driven_dag_is_scheduled_by_the_dropbox_asset_watcher(dagbag: Any) -> None:
    from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger

    dag = dagbag.dags["dropbox_event_driven"]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assets = list(dag.timetable.asset_condition.objects)
    assert len(assets) == 1
    asset = assets[0]
    assert asset.name == "dropbox_inbox"
    assert asset.uri.lower() == "dropbox://dropbox_default/inbox"  # the provider's URI hook lower-cases paths
    assert len(asset.watchers) == 1
    trigger = asset.watchers[0].trigger
    assert isinstance(trigger, DropboxChangeEventTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("DropboxChangeEventTrigger")
    assert kwargs["path"] == "/Inbox" and kwargs["dropbox_conn_id"] == "dropbox_default"
    assert set(dag.task_ids) == {"log_changes", "mirror_inbox"}
    assert dag.get_task("mirror_inbox").upstream_task_ids == {"log_changes"}


# -- end to end with `airflow dags test` --------------------------------------------------------------------


def test_mirror_dag_runs_end_to_end(cli: AirflowCli, client: DropboxClient, tmp_path: Path) -> None:
    files = {
        "/DagsMirror/a.txt": b"alpha\n",
        "/DagsMirror/sub/b.csv": b"x,y\n1,2\n",
        "/DagsMirror/sub/deeper/\u00fcnic\u00f8de \U0001f4c4.bin": bytes(range(256)) * 300,
        "/DagsMirror/empty.txt": b"",
    }
    for path, data in files.items():
        put(client, path, data)
    dest = tmp_path / "mirror"
    run = cli.dags_test("dropbox_mirror", {"dropbox_path": "/DagsMirror", "local_path": str(dest)})
    assert run.returncode == 0, run.tail()
    assert "state=success" in run.output, run.tail()
    assert local_tree(dest) == remote_tree(client, "/DagsMirror")
    assert local_tree(dest) == {k.removeprefix("/DagsMirror/"): v for k, v in files.items()}
    assert "(full): planned" in run.output


class _Grower(threading.Thread):
    """Keeps appending to a file, like a slow copy into the inbox, until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.halt = threading.Event()

    def run(self) -> None:
        with self.path.open("ab") as fh:
            while not self.halt.is_set():
                fh.write(b"still writing...\n")
                fh.flush()
                self.halt.wait(0.3)


@dataclass
class UploadRun:
    run: DagsTest
    inbox: Path
    archive: Path
    stable: dict[str, bytes]
    growing: str
    conflicting: str


@pytest.fixture(scope="module")
def upload_run(
    cli: AirflowCli, client: DropboxClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UploadRun]:
    """One ``dags test`` of the upload DAG with three kinds of file in the inbox at once.

    * complete files (top level and in a subfolder): must be uploaded, verified and archived;
    * a file still being written during the whole run: must never be uploaded;
    * a complete file whose upload fails for good (Dropbox has a *file* where its parent folder should
      be, so the upload gets a path conflict): must stay in the inbox. Its task fails (after the DAG's two
      retries, 20 s apart), so the run as a whole fails.
    """
    base = tmp_path_factory.mktemp("upload")
    inbox, archive = base / "inbox", base / "archive"
    (inbox / "reports").mkdir(parents=True)
    (inbox / "blocked").mkdir()
    stable = {
        "hello.txt": b"hello from the local inbox\n",
        "reports/q1.csv": b"region,amount\nnorth,1200\n" * 500,
        "blob.bin": os.urandom(300_000),
    }
    for rel, data in stable.items():
        (inbox / rel).write_bytes(data)
    conflicting = "blocked/never.txt"
    (inbox / conflicting).write_bytes(b"this upload hits a path conflict\n")
    put(client, "/DagsUploads/blocked", b"a file where the folder should be\n")
    (inbox / "partial.csv.part").write_bytes(b"a temp file is never a candidate\n")
    growing = "growing.log"
    grower = _Grower(inbox / growing)
    grower.start()
    try:
        time.sleep(1)
        run = cli.dags_test(
            "dropbox_upload_on_local_file",
            {
                "inbox": str(inbox),
                "archive": str(archive),
                "dropbox_folder": "/DagsUploads",
                "settle_seconds": 3,
            },
        )
    finally:
        grower.halt.set()
        grower.join(timeout=10)
    yield UploadRun(run, inbox, archive, stable, growing, conflicting)


@pytest.mark.slow
def test_upload_dag_uploads_verifies_and_archives_complete_files(
    upload_run: UploadRun, client: DropboxClient
) -> None:
    run = upload_run.run
    assert "[DAG TEST] end task task_id=upload_and_archive" in run.output, run.tail()
    for rel, data in upload_run.stable.items():
        meta = client.get_metadata(f"/DagsUploads/{rel}")
        assert meta["size"] == len(data), rel
        assert meta["content_hash"] == content_hash_file(upload_run.archive / rel), rel
        assert (upload_run.archive / rel).read_bytes() == data, rel
        assert not (upload_run.inbox / rel).exists(), f"{rel} was uploaded but left in the inbox"


@pytest.mark.slow
def test_upload_dag_never_uploads_a_file_still_being_written(
    upload_run: UploadRun, client: DropboxClient
) -> None:
    assert not client.exists(f"/DagsUploads/{upload_run.growing}")
    assert (upload_run.inbox / upload_run.growing).exists()
    assert not (upload_run.archive / upload_run.growing).exists()
    assert not client.exists("/DagsUploads/partial.csv.part")
    assert (upload_run.inbox / "partial.csv.part").exists()


@pytest.mark.slow
def test_upload_dag_failed_upload_leaves_the_file_in_the_inbox(
    upload_run: UploadRun, client: DropboxClient
) -> None:
    run = upload_run.run
    assert run.returncode != 0 and "DagRun failed" in run.output, run.tail()
    assert (upload_run.inbox / upload_run.conflicting).exists()
    assert not (upload_run.archive / upload_run.conflicting).exists()
    assert client.get_metadata("/DagsUploads/blocked")[".tag"] == "file"
    # Dropbox's answer failed the first try and both of the DAG's retries; the file stayed put each time.
    assert run.output.count("PathConflictError: Dropbox path '/DagsUploads/blocked/never.txt'") == 3
    assert run.output.count("new_state=up_for_retry") == 2, run.tail()


@pytest.mark.slow  # ~30-60 s here; the real watcher path is covered by tests/e2e/test_stack_dags.py
def test_event_driven_dag_mirrors_the_watched_folder_in_a_synthetic_run(
    cli: AirflowCli, client: DropboxClient, tmp_path: Path
) -> None:
    files = {f"{EVENT_WATCH_PATH}/new.txt": b"arrived\n", f"{EVENT_WATCH_PATH}/nested/x.json": b'{"k": 1}\n'}
    for path, data in files.items():
        put(client, path, data)
    run = cli.dags_test(
        "dropbox_event_driven",
        extra_env={"DROPBOX_MIRROR_LOCAL_PATH": str(tmp_path)},
    )
    assert run.returncode == 0, run.tail()
    assert "[DAG TEST] end task task_id=log_changes" in run.output
    assert "[DAG TEST] end task task_id=mirror_inbox" in run.output
    assert local_tree(tmp_path / "_events") == {"new.txt": b"arrived\n", "nested/x.json": b'{"k": 1}\n'}


@pytest.mark.slow  # one `dags test` (~30-60 s)
def test_two_way_sync_dag_syncs_both_ways_in_a_synthetic_run(cli: AirflowCli, client: DropboxClient) -> None:
    local = cli.home / "dropbox-sync"
    local.mkdir(parents=True, exist_ok=True)
    (local / "from-local.txt").write_bytes(b"written on the worker\n")
    put(client, f"{SYNC_PATH}/from-dropbox/report.csv", b"a,b\n")
    run = cli.dags_test("dropbox_two_way_sync")
    assert run.returncode == 0, run.tail()
    assert "[DAG TEST] end task task_id=sync" in run.output
    tree = local_tree(local)
    assert (
        tree["from-dropbox/report.csv"] == b"a,b\n" and tree["from-local.txt"] == b"written on the worker\n"
    )
    assert client.get_metadata(f"{SYNC_PATH}/from-local.txt")["size"] == len(b"written on the worker\n")
