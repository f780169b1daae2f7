"""A distributed Airflow on this machine, started by the suite: PostgreSQL and Redis server processes on free
ports in temp dirs (Debian's binaries, scripts/ensure_services.sh), then scheduler, dag-processor, triggerer,
api-server and two Celery workers as separate processes, and the Dropbox emulator. Everything is a child of
the test session and is stopped at its end."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator_process import EmulatorProcess, start_emulator
from tests.hooks.conftest import conn_json, free_port

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).parent / "dags"
# The example DAGs the suite runs unchanged (copied next to the suite's own DAGs, configured by env).
EXAMPLE_DAGS = ("dropbox_upload_on_local_file.py", "dropbox_event_driven.py")
WORKERS = ("worker-a", "worker-b")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: run scripts/ensure_services.sh (installs Debian's postgresql)")
    return path


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb/postgres refuse to run as root: as root (CI) they run as Debian's postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait(what: str, check: Any, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready in {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Cluster:
    url: str
    env: dict[str, str]
    tmp: Path
    emulator: EmulatorProcess
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    token: str = ""

    def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        resp = requests.request(
            method,
            f"{self.url}/api/v2/{path}",
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
            timeout=60,
            **kwargs,
        )
        assert resp.status_code < 300, (resp.status_code, resp.text[:2000])
        return resp.json() if resp.content else None

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = self.tmp / f"{name}.log"
        out = log.open("wb")
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(
            args,
            env={**self.env, **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        """Each worker takes the default queue and one named after itself (to pin a task to a worker)."""
        self.start(
            name,
            [
                AIRFLOW,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                "4",
                "--queues",
                f"default,{name}",
            ],
            {"DIST_WORKER_NAME": name},
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the group of the process we started (its own children included)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def unpause(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the dag-processor must have parsed it first
            resp = requests.get(
                f"{self.url}/api/v2/dags/{dag_id}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            if resp.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id} never parsed:\n{self.logs['dag-processor'].read_text()[-3000:]}"
                )
            time.sleep(1)
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def unpause_and_trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 120
    ) -> str:
        self.unpause(dag_id, timeout)
        return self.trigger(dag_id, conf)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        value = self.api("GET", f"{path}?map_index={map_index}")["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as the api-server serves it (read from the worker's log file)."""
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.api("GET", f"{path}?full_content=true", headers={"Accept": "application/json"})
        return json.dumps(content)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(1)
        states = [(t["task_id"], t["map_index"], t["state"]) for t in self.task_instances(dag_id, run_id)]
        raise AssertionError(
            f"{dag_id} {run_id} still running after {timeout:g} s: {states}\n{self.log_tails()}"
        )

    def log_tails(self, chars: int = 1500) -> str:
        return "\n".join(
            f"== {name}\n{path.read_text(errors='replace')[-chars:]}" for name, path in self.logs.items()
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    keep = os.environ.get("DIST_KEEP_DIR")  # for debugging: logs in a known place
    tmp = Path(keep) if keep else tmp_path_factory.mktemp("distributed")
    tmp.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    # PostgreSQL: own data dir, own port, trust auth on loopback only. Outside pytest's 0700 temp tree, so
    # the postgres user (when the suite runs as root) can reach it.
    pg_root = Path(tempfile.mkdtemp(prefix="dist-pg-"))
    os.chmod(pg_root, 0o755)
    pg_dir, pg_port = pg_root / "data", free_port()
    pg_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(pg_dir, "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(pg_dir), "-U", "airflow", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    pg_log = tmp / "postgres.log"
    pg = subprocess.Popen(
        _as_postgres(
            [_pg_bin("postgres"), "-D", str(pg_dir), "-p", str(pg_port), "-k", str(pg_dir), "-h", "127.0.0.1"]
        ),
        stdout=pg_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(pg)
    redis_port = free_port()
    redis_log = tmp / "redis.log"
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=redis_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(redis)
    emulator = start_emulator(tmp / "emulator")
    cluster: Cluster | None = None
    try:
        import psycopg2
        import redis as redis_client

        _wait(
            "postgres",
            lambda: (
                psycopg2.connect(host="127.0.0.1", port=pg_port, user="airflow", dbname="postgres").close()
                or True
            ),
            pg,
            pg_log,
            60,
        )
        conn = psycopg2.connect(host="127.0.0.1", port=pg_port, user="airflow", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE airflow")
        conn.close()
        _wait("redis", lambda: redis_client.Redis(port=redis_port).ping(), redis, redis_log, 30)

        api_port = free_port()
        source = tmp / "source"
        dags = tmp / "dags"
        dags.mkdir(exist_ok=True)
        for dag_file in [*DAGS.glob("*.py"), *(ROOT / "dags" / name for name in EXAMPLE_DAGS)]:
            shutil.copy(dag_file, dags / dag_file.name)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(tmp / "home"),
            "PYTHONPATH": str(ROOT),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.distributed.worker_name.worker_name",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "distributed-suite-jwt-secret-0123456789abcdef",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # A task whose worker was killed fails (and is retried) after this many seconds without heartbeat.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW_CONN_DROPBOX_DEFAULT": conn_json(emulator.base_url),
            "DIST_SOURCE_DIR": str(source),
            # One destination both workers see at the same path (shared storage), raced by two mirror DAGs.
            "DIST_MIRROR_DIR": str(tmp / "shared" / "mirror"),
            # dags/dropbox_upload_on_local_file.py: watched inbox and archive under this root.
            "DROPBOX_UPLOAD_ROOT": str(tmp / "shared" / "upload"),
            # dags/dropbox_event_driven.py: the watched Dropbox folder, its mirror under <root>/_events.
            "DROPBOX_WATCH_PATH": "/dist/events",
            "DROPBOX_MIRROR_LOCAL_PATH": str(tmp / "shared" / "events-mirror"),
        }
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        cluster = Cluster(url=f"http://127.0.0.1:{api_port}", env=env, tmp=tmp, emulator=emulator)
        cluster.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port)])
        _wait(
            "api-server",
            lambda: requests.get(f"{cluster.url}/api/v2/monitor/health", timeout=5).status_code == 200,
            cluster.procs["api-server"],
            cluster.logs["api-server"],
            180,
        )
        resp = requests.get(f"{cluster.url}/auth/token", timeout=30)
        cluster.token = resp.json()["access_token"]
        cluster.start("scheduler", [AIRFLOW, "scheduler"])
        cluster.start("dag-processor", [AIRFLOW, "dag-processor"])
        cluster.start("triggerer", [AIRFLOW, "triggerer"])
        for name in WORKERS:
            cluster.start_worker(name)
        yield cluster
    finally:
        if cluster is not None:
            for name in list(cluster.procs)[::-1]:
                cluster.stop(name)
        emulator.stop()
        for proc in procs[::-1]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        shutil.rmtree(pg_root, ignore_errors=True)
