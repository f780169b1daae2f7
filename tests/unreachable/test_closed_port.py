"""Issue 16: a task against a closed port fails within 60 s with a message naming host and port.

Run the way a user would try it: ``airflow dags test`` on a real SQLite AIRFLOW_HOME, the connection from
``AIRFLOW_CONN_DROPBOX_DEFAULT`` with the default retry settings (600 s deadline, 30 s connect budget)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hooks.conftest import conn_json, free_port

pytestmark = pytest.mark.slow

DAG_FILE = Path(__file__).parent / "dags" / "closed_port_dag.py"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_task_against_closed_port_fails_within_60_s(tmp_path: Path) -> None:
    port = free_port()  # released at once: nothing listens there
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_DROPBOX_DEFAULT": conn_json(f"http://127.0.0.1:{port}"),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    started = time.monotonic()
    run = subprocess.run(
        [AIRFLOW, "dags", "test", "closed_port_dag", "-f", str(DAG_FILE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    out = run.stdout + run.stderr
    assert "DropboxUnreachableError" in out, out[-4000:]
    assert f"127.0.0.1:{port}" in out and "connection refused" in out, out[-4000:]
    print(f"closed-port task: airflow dags test ended after {elapsed:.1f} s")
    assert elapsed <= 60, f"took {elapsed:.1f} s"
    # Every retry warning names the host and what is retried; none comes from a nested token refresh.
    warnings = [line for line in out.splitlines() if "retrying the request" in line]
    assert warnings and all(f"127.0.0.1:{port}" in line for line in warnings), warnings
    assert len(warnings) <= 12
