"""``airflow-dropbox-auth`` end to end: the console script as a subprocess against the emulator's OAuth."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_dropbox.auth_cli import parse_code
from airflow_provider_dropbox.hooks.dropbox import DropboxHook
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, EmulatorProcess

SCRIPT = str(Path(sys.executable).with_name("airflow-dropbox-auth"))


@dataclass
class AuthRun:
    returncode: int
    url: str
    stdout: str
    stderr: str

    def env_var(self) -> tuple[str, str]:
        line = next(line for line in self.stdout.splitlines() if line.startswith("export AIRFLOW_CONN_"))
        name, _, value = shlex.split(line)[1].partition("=")
        return name, value

    def command(self) -> list[str]:
        return shlex.split(next(line for line in self.stdout.splitlines() if line.startswith("airflow ")))


def run_auth(
    base_url: str,
    *args: str,
    conn_id: str = "dropbox_default",
    secret: str | None = None,
    code: str | None = None,
) -> AuthRun:
    """Start the script, answer the secret prompt, open the printed URL like a browser, paste the code."""
    proc = subprocess.Popen(
        [SCRIPT, "--app-key", DEV_APP_KEY, "--base-url", base_url, "--conn-id", conn_id, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # no controlling tty: getpass reads the hidden answer from stdin
    )
    assert proc.stdin is not None and proc.stdout is not None
    if secret is not None:
        proc.stdin.write(secret + "\n")
        proc.stdin.flush()
    url = proc.stdout.readline().strip()
    if code is None:
        page = requests.get(url, timeout=10)
        page.raise_for_status()
        found = re.search(r"<code id='code'>([^<]+)</code>", page.text)
        assert found, page.text
        code = html.unescape(found.group(1))
    out, err = proc.communicate(code + "\n", timeout=60)
    return AuthRun(proc.returncode, url, out, err)


def test_pkce_flow_gives_a_working_connection(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_auth(emulator.base_url, "--print-add-command", conn_id="dbx_auth_pkce")
    assert run.returncode == 0, run.stderr

    query = parse_qs(urlsplit(run.url).query)
    assert run.url.startswith(f"{emulator.base_url}/oauth2/authorize?")
    assert query["client_id"] == [DEV_APP_KEY]
    assert query["token_access_type"] == ["offline"]
    assert query["code_challenge_method"] == ["S256"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"][0])

    name, value = run.env_var()
    assert name == "AIRFLOW_CONN_DBX_AUTH_PKCE"
    conn = json.loads(value)
    assert (
        conn["conn_type"] == "dropbox" and conn["login"] == DEV_APP_KEY and conn["host"] == emulator.base_url
    )
    assert "password" not in conn
    assert conn["extra"]["refresh_token"]
    assert run.command()[:4] == ["airflow", "connections", "add", "dbx_auth_pkce"]
    assert "--conn-password" not in run.command()

    monkeypatch.setenv(name, value)
    ok, message = DropboxHook("dbx_auth_pkce").test_connection()
    assert ok, message


def test_secret_from_hidden_prompt_is_never_printed(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_auth(emulator.base_url, "--app-secret", "-", conn_id="dbx_auth_s", secret=DEV_APP_SECRET)
    assert run.returncode == 0, run.stderr
    assert DEV_APP_SECRET not in run.stdout + run.stderr
    name, value = run.env_var()
    assert "password" not in json.loads(value)
    monkeypatch.setenv(name, value)
    assert DropboxHook("dbx_auth_s").test_connection()[0]


def test_include_secret_puts_it_only_in_the_connection(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_auth(
        emulator.base_url,
        "--app-secret",
        "-",
        "--include-secret",
        "--print-add-command",
        conn_id="dbx_auth_inc",
        secret=DEV_APP_SECRET,
    )
    assert run.returncode == 0, run.stderr
    assert DEV_APP_SECRET not in run.stderr
    lines_with_secret = [line for line in run.stdout.splitlines() if DEV_APP_SECRET in line]
    assert len(lines_with_secret) == 2  # the connections add command and the export line, nothing else
    command = run.command()
    assert command[command.index("--conn-password") + 1] == DEV_APP_SECRET
    name, value = run.env_var()
    assert json.loads(value)["password"] == DEV_APP_SECRET
    monkeypatch.setenv(name, value)
    assert DropboxHook("dbx_auth_inc").test_connection()[0]


def test_wrong_secret_fails_at_the_exchange(emulator: EmulatorProcess) -> None:
    run = run_auth(emulator.base_url, "--app-secret", "-", secret="not-the-secret")
    assert run.returncode == 1
    assert "rejected the app key or app secret" in run.stderr
    assert "not-the-secret" not in run.stdout + run.stderr
    assert "AIRFLOW_CONN_" not in run.stdout


def test_bad_code_is_reported(emulator: EmulatorProcess) -> None:
    run = run_auth(emulator.base_url, code="made-up-code")
    assert run.returncode == 1
    assert "authorization code was rejected" in run.stderr


def test_parse_code_accepts_the_redirect_url() -> None:
    assert parse_code("  abc123 \n") == "abc123"
    assert parse_code("http://localhost:8080/cb?state=x&code=abc123") == "abc123"


@pytest.mark.slow
def test_printed_command_creates_the_connection(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """Run the printed ``airflow connections add`` for real, then ``airflow connections test`` it."""
    run = run_auth(emulator.base_url, "--print-add-command", conn_id="dbx_auth_db")
    assert run.returncode == 0, run.stderr
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    command = run.command()
    added = subprocess.run([airflow, *command[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stdout + added.stderr
    tested = subprocess.run(
        [airflow, "connections", "test", "dbx_auth_db"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Connection success!" in tested.stdout, tested.stdout + tested.stderr


# -- keeping the refresh token out of Airflow's audit log and shell history ---------------------------------


def test_default_output_prints_no_add_command(emulator: EmulatorProcess) -> None:
    run = run_auth(emulator.base_url, conn_id="dbx_auth_default")
    assert run.returncode == 0, run.stderr
    assert not any(line.startswith("airflow ") for line in run.stdout.splitlines())
    assert "--conn-extra" not in run.stdout
    assert "secrets backend" in run.stdout and "--conn-file" in run.stdout
    assert json.loads(run.env_var()[1])["extra"]["refresh_token"]


def test_add_command_only_on_request_and_with_a_warning(emulator: EmulatorProcess) -> None:
    run = run_auth(emulator.base_url, "--print-add-command", conn_id="dbx_auth_warn")
    assert run.returncode == 0, run.stderr
    token = json.loads(run.env_var()[1])["extra"]["refresh_token"]
    assert token in " ".join(run.command())
    assert "audit log" in run.stderr and "shell history" in run.stderr and token not in run.stderr


def test_conn_file_holds_the_token_and_stdout_none(emulator: EmulatorProcess, tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    run = run_auth(emulator.base_url, "--conn-file", str(path), conn_id="dbx_auth_file")
    assert run.returncode == 0, run.stderr
    body = json.loads(path.read_text())
    token = json.loads(body["dbx_auth_file"]["extra"])["refresh_token"]
    assert token and token not in run.stdout + run.stderr
    assert "AIRFLOW_CONN_" not in run.stdout
    assert (path.stat().st_mode & 0o777) == 0o600
    assert run.stdout.splitlines()[-1] == f"airflow connections import {path} && rm {path}"


def test_conn_file_never_overwrites(emulator: EmulatorProcess, tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    path.write_text("keep")
    proc = subprocess.run(
        [SCRIPT, "--app-key", DEV_APP_KEY, "--base-url", emulator.base_url, "--conn-file", str(path)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "exists" in proc.stderr
    assert path.read_text() == "keep"


def _log_rows(home: Path) -> str:
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT event, extra FROM log").fetchall()
    return "\n".join(f"{event} {extra}" for event, extra in rows)


@pytest.mark.slow
def test_conn_file_import_leaves_no_token_in_the_log_table(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """The suggested way (connections import) stores a working connection, and the log table holds no
    token; the add command, run the same way, does put it there (so the check can see a leak)."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    home = tmp_path / "home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)

    path = tmp_path / "conn.json"
    run = run_auth(emulator.base_url, "--conn-file", str(path), conn_id="dbx_auth_imp")
    assert run.returncode == 0, run.stderr
    token = json.loads(json.loads(path.read_text())["dbx_auth_imp"]["extra"])["refresh_token"]
    imported = subprocess.run(
        ["bash", "-c", run.stdout.splitlines()[-1].replace("airflow ", f"{shlex.quote(airflow)} ", 1)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert not path.exists()
    tested = subprocess.run(
        [airflow, "connections", "test", "dbx_auth_imp"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Connection success!" in tested.stdout, tested.stdout + tested.stderr
    log = _log_rows(home)
    assert "connections" in log  # the import was audited ...
    assert token not in log  # ... without the token

    leaky = run_auth(emulator.base_url, "--print-add-command", conn_id="dbx_auth_leak")
    leak_token = json.loads(leaky.env_var()[1])["extra"]["refresh_token"]
    added = subprocess.run(
        [airflow, *leaky.command()[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert leak_token in _log_rows(home)
