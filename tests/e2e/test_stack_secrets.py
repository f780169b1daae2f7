"""No credential in any log the real Airflow stack wrote: task, triggerer, scheduler, dag-processor, API.

Runs after the other e2e suites (file order), so the logs cover the connection form, mirror runs, the
deferred sensor and the AssetWatcher. The access tokens to look for are the ones the emulator actually
issued (read from its state database), plus any ``sl.`` token at all, plus the dev refresh token and app
secret. The connection itself is passed in the environment (``AIRFLOW_CONN_DROPBOX_DEFAULT``), so any
occurrence in a log would be a leak by Airflow or the provider.
"""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import quote

import pytest

from tests.e2e.standalone import AirflowStandalone
from tests.emulator_process import DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

pytestmark = pytest.mark.slow

ACCESS_TOKEN = re.compile(rb"sl\.[A-Za-z0-9._\-~+/=]{8,}")


def issued_access_tokens(emulator: EmulatorProcess) -> list[str]:
    """Every access token the emulator has minted (its ``kv`` table, table ``access``)."""
    db = sqlite3.connect(f"file:{emulator.data_dir / 'emulator.sqlite3'}?mode=ro", uri=True)
    try:
        return [key for (key,) in db.execute("SELECT key FROM kv WHERE tbl = 'access'")]
    finally:
        db.close()


def ensure_a_dropbox_task_ran(stack: AirflowStandalone) -> None:
    """When this module runs alone, make the stack use the connection once so there is something to grep."""
    logs = stack.home / "logs"
    if any(logs.glob("dag_id=dropbox_*/**/attempt=*.log")):
        return
    stack.wait_for_dag("dropbox_mirror", timeout=180)
    stack.unpause("dropbox_mirror")
    run_id = stack.trigger("dropbox_mirror", {"dropbox_path": "/", "local_path": str(stack.home / "m")})
    assert stack.wait_for_run("dropbox_mirror", quote(run_id, safe=""), timeout=300) == "success"


def test_no_credentials_in_any_stack_log(
    airflow_stack: AirflowStandalone, e2e_emulator: EmulatorProcess
) -> None:
    ensure_a_dropbox_task_ran(airflow_stack)
    tokens = issued_access_tokens(e2e_emulator)
    assert tokens, "the emulator issued no access token: nothing used the connection"
    assert all(t.startswith("sl.") for t in tokens)

    files = sorted(set(airflow_stack.log_files()))
    names = "\n".join(str(p.relative_to(airflow_stack.home)) for p in files)
    assert any(p.name.startswith("attempt=") for p in files), f"no task logs:\n{names}"
    assert "triggerer" in airflow_stack.log_file.read_text(errors="replace"), "no triggerer output"

    needles = {
        "app secret": DEV_APP_SECRET.encode(),
        "refresh token": DEV_REFRESH_TOKEN.encode(),
        **{f"issued access token #{i}": t.encode() for i, t in enumerate(tokens)},
    }
    leaks: list[str] = []
    for path in files:
        data = path.read_bytes()
        for what, needle in needles.items():
            if needle in data:
                leaks.append(f"{path.relative_to(airflow_stack.home)}: {what}")
        match = ACCESS_TOKEN.search(data)
        if match:
            leaks.append(f"{path.relative_to(airflow_stack.home)}: sl. token {match.group()[:12]!r}...")
    assert not leaks, "credentials in the logs:\n" + "\n".join(leaks)
    # The grep looked at real content: the task logs mention Dropbox calls that used these credentials.
    assert any(b"Dropbox" in p.read_bytes() for p in files if p.name.startswith("attempt="))
