"""A real task run writes no access token, refresh token or app secret to its log files.

``airflow dags test`` alone runs tasks in-process and writes no task log file (and its console is not masked),
so the cheapest real path is ``airflow dags test --use-executor``: the LocalExecutor starts the Task SDK
supervisor, which writes ``$AIRFLOW_HOME/logs/dag_id=.../attempt=1.log`` through the secrets masker, as in
production. Its workers talk to the Execution API, so an ``airflow api-server`` runs alongside.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.emulator_process import DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess
from tests.hooks.conftest import conn_json

DAGS = Path(__file__).parents[1] / "dags"
ACCESS_TOKEN = re.compile(r"sl\.[A-Za-z0-9._\-]{8,}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api-server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("api-server did not become healthy in time")


@pytest.mark.slow
def test_task_log_files_hold_no_secrets(emulator: EmulatorProcess, tmp_path: Path) -> None:
    home = tmp_path / "airflow-home"
    port = _free_port()
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "hook-log-test-jwt-secret-0123456789abcdef",
        "AIRFLOW_CONN_DROPBOX_DEFAULT": conn_json(emulator.base_url),
    }
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    api_log = tmp_path / "api-server.log"
    with api_log.open("wb") as api_out:
        api = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=api_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/api/v2/monitor/health", api)
            run = subprocess.run(
                [
                    airflow,
                    "dags",
                    "test",
                    "hook_secrets_dag",
                    "--use-executor",
                    "-f",
                    str(DAGS / "hook_secrets_dag.py"),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            os.killpg(api.pid, signal.SIGTERM)  # the group of the api-server we started (uvicorn workers)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(api.pid, signal.SIGKILL)
                api.wait()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    task_logs = list((home / "logs").glob("dag_id=hook_secrets_dag/**/attempt=*.log"))
    assert task_logs, f"no task log file under {home / 'logs'}"
    task_text = "\n".join(p.read_text(errors="replace") for p in task_logs)
    # The task ran, hit the hook, and its deliberate leaks were written masked.
    assert "test_connection: True Connected as" in task_text
    assert "LEAKCHECK secret=*** refresh=*** access=***" in task_text
    assert "LEAKCHECK print access=*** secret=***" in task_text

    every_log = [*(home / "logs").rglob("*.log"), api_log]
    for path in every_log:
        text = path.read_text(errors="replace")
        assert DEV_APP_SECRET not in text, path
        assert DEV_REFRESH_TOKEN not in text, path
        assert not ACCESS_TOKEN.search(text), (path, ACCESS_TOKEN.search(text))
