"""DropboxHook with real Airflow connections (env vars) against the emulator over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from airflow_provider_dropbox.client import Endpoints, errors
from airflow_provider_dropbox.hooks.dropbox import DropboxConnectionConfigError, DropboxHook
from airflow_provider_dropbox.version_compat import AIRFLOW_V_3_3_PLUS
from tests.client.proxy import read_request, serve_http, write_response
from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess
from tests.hooks.conftest import MakeConn, conn_json, free_port

EXTRA_FIELDS = {
    "refresh_token",
    "access_token",
    "root_namespace_id",
    "team_member_id",
    "ca_bundle",
    "timeout",
    "retry_deadline",
    "connect_retry_deadline",
}


def _access_token(base_url: str, refresh_token: str = DEV_REFRESH_TOKEN) -> str:
    resp = requests.post(
        f"{base_url}/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": DEV_APP_KEY},
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


# --------------------------------------------------------------------------------------- connection form / UI


class TestConnectionType:
    def test_form_metadata_as_the_ui_sees_it(self) -> None:
        from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

        meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}["dropbox"]
        assert meta.hook_class_name == "airflow_provider_dropbox.hooks.dropbox.DropboxHook"
        assert meta.hook_name == "Dropbox"
        std = meta.standard_fields
        assert std is not None
        assert std.login is not None and std.login.title == "App key" and not std.login.hidden
        assert std.password is not None and std.password.title == "App secret"
        assert std.host is not None and std.host.title == "API base URL"
        assert std.port is not None and not std.port.hidden  # see get_provider_info: apache/airflow#73298
        assert std.url_schema is not None and std.url_schema.hidden
        extra = meta.extra_fields
        assert extra is not None and set(extra) == EXTRA_FIELDS
        assert extra["refresh_token"]["schema"]["format"] == "password"
        assert extra["access_token"]["schema"]["format"] == "password"
        assert extra["refresh_token"]["schema"]["title"] == "Refresh token"
        assert "format" not in extra["team_member_id"]["schema"]
        assert extra["timeout"]["schema"]["type"] == ["integer", "null"]
        assert extra["timeout"]["value"] == 100
        assert extra["retry_deadline"]["value"] == 600
        assert extra["ca_bundle"]["schema"]["title"] == "CA bundle"

    def test_providers_manager_knows_the_hook_without_deprecation_warnings(self) -> None:
        from airflow.providers_manager import ProvidersManager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = ProvidersManagerTaskRuntime().hooks["dropbox"]
        assert not [w for w in caught if "dropbox" in str(w.message).lower()]
        assert info is not None
        assert info.hook_class_name == "airflow_provider_dropbox.hooks.dropbox.DropboxHook"
        assert info.connection_id_attribute_name == "dropbox_conn_id"
        assert info.connection_testable
        widgets = ProvidersManager().connection_form_widgets
        assert widgets["extra__dropbox__refresh_token"].is_sensitive
        assert widgets["extra__dropbox__access_token"].is_sensitive
        assert not widgets["extra__dropbox__team_member_id"].is_sensitive

    def test_hook_class_attributes(self) -> None:
        assert DropboxHook.conn_type == "dropbox"
        assert DropboxHook.conn_name_attr == "dropbox_conn_id"
        assert DropboxHook.default_conn_name == "dropbox_default"
        assert DropboxHook.hook_name == "Dropbox"


# ------------------------------------------------------------------------------------ connection -> client


class TestConnectionToClient:
    def test_init_does_no_io(self) -> None:
        hook = DropboxHook("this_connection_does_not_exist")  # would raise if it looked the connection up
        assert hook.dropbox_conn_id == "this_connection_does_not_exist"

    def test_get_conn_reads_every_field_and_is_cached(
        self, make_conn: MakeConn, emulator: EmulatorProcess
    ) -> None:
        conn_id = make_conn(extra={"timeout": 42, "team_member_id": "dbmid:abc", "root_namespace_id": "123"})
        hook = DropboxHook(conn_id, parallelism=3)
        client = hook.get_conn()
        assert hook.get_conn() is client
        assert client.endpoints == Endpoints.single_host(emulator.base_url)
        assert client.timeout == 42
        assert client.parallelism == 3
        hook.close()
        assert hook.get_conn() is not client

    def test_retry_deadline_from_the_connection(self, make_conn: MakeConn) -> None:
        """Finding #16: the retry budget is a connection field; an explicit hook argument wins."""
        assert DropboxHook(make_conn()).get_conn().retry.deadline == 600
        conn_id = make_conn(extra={"retry_deadline": 20})
        assert DropboxHook(conn_id).get_conn().retry.deadline == 20
        assert DropboxHook(conn_id, retry_deadline=2).get_conn().retry.deadline == 2
        with pytest.raises(DropboxConnectionConfigError, match="retry_deadline must be a number of seconds"):
            DropboxHook(make_conn(extra={"retry_deadline": "soon"})).get_conn()

    def test_connect_retry_deadline_from_the_connection(self, make_conn: MakeConn) -> None:
        """Issue 16: an unreachable host gets 30 s of retries by default; the extra lengthens it."""
        assert DropboxHook(make_conn()).get_conn().retry.connect_deadline == 30
        assert (
            DropboxHook(make_conn(extra={"connect_retry_deadline": 90})).get_conn().retry.connect_deadline
            == 90
        )
        with pytest.raises(DropboxConnectionConfigError, match="connect_retry_deadline must be a number"):
            DropboxHook(make_conn(extra={"connect_retry_deadline": "soon"})).get_conn()

    def test_empty_host_means_real_dropbox(self, make_conn: MakeConn) -> None:
        hook = DropboxHook(make_conn(base_url=None))
        assert hook.get_conn().endpoints == Endpoints()

    def test_legacy_prefixed_extra_keys(self, make_conn: MakeConn) -> None:
        conn_id = make_conn(
            extra={
                "refresh_token": None,
                "extra__dropbox__refresh_token": DEV_REFRESH_TOKEN,
                "extra__dropbox__timeout": "7",
            }
        )
        hook = DropboxHook(conn_id)
        assert hook.get_conn().timeout == 7
        ok, message = hook.test_connection()
        assert ok, message

    def test_uri_form_with_host_and_port(
        self, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorProcess
    ) -> None:
        hostport = emulator.base_url.removeprefix("http://")
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBX_URI",
            f"dropbox://{DEV_APP_KEY}:{DEV_APP_SECRET}@{hostport}?refresh_token={DEV_REFRESH_TOKEN}",
        )
        hook = DropboxHook("dbx_uri")
        assert hook.get_conn().endpoints.api == emulator.base_url  # loopback without a scheme -> http
        ok, message = hook.test_connection()
        assert ok, message

    def test_access_token_only(self, make_conn: MakeConn, emulator: EmulatorProcess) -> None:
        token = _access_token(emulator.base_url)
        conn_id = make_conn(login=None, password=None, extra={"refresh_token": None, "access_token": token})
        ok, message = DropboxHook(conn_id).test_connection()
        assert ok, message

    def test_pkce_connection_without_secret(self, make_conn: MakeConn) -> None:
        ok, message = DropboxHook(make_conn(password=None)).test_connection()
        assert ok, message

    def test_no_credentials_is_a_typed_error(self, make_conn: MakeConn) -> None:
        hook = DropboxHook(make_conn(extra={"refresh_token": None}))
        with pytest.raises(DropboxConnectionConfigError, match="no refresh token or access token"):
            hook.get_conn()

    @pytest.mark.parametrize("host", ["http://dropbox-proxy.example.com", "http://10.1.2.3:8765"])
    def test_cleartext_http_to_a_remote_host_needs_an_explicit_opt_in(
        self, make_conn: MakeConn, host: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Finding #12: refused before any request, with the fix; allowed only with allow_insecure_http."""
        with pytest.raises(DropboxConnectionConfigError, match=r"use https://.*allow_insecure_http"):
            DropboxHook(make_conn(base_url=host)).get_conn()
        hook = DropboxHook(make_conn(base_url=host, extra={"allow_insecure_http": "true"}))
        with caplog.at_level("WARNING"):
            assert hook.get_conn().endpoints.api == host
        assert "unencrypted" in caplog.text

    def test_connection_of_another_type_is_refused(self, make_conn: MakeConn) -> None:
        """Finding #18: named as the wrong type before any credential check or request."""
        hook = DropboxHook(make_conn(conn_type="http", extra={"refresh_token": None}))
        with pytest.raises(DropboxConnectionConfigError, match=r"is of type 'http', not 'dropbox'"):
            hook.get_conn()
        ok, message = hook.test_connection()
        assert not ok and "check dropbox_conn_id" in message


# ----------------------------------------------------------------------------------------- test_connection


class TestTestConnection:
    def test_success_names_the_account(self, make_conn: MakeConn, emulator: EmulatorProcess) -> None:
        account = requests.post(
            f"{emulator.base_url}/2/users/get_current_account",
            headers={"Authorization": f"Bearer {_access_token(emulator.base_url)}"},
            timeout=10,
        ).json()
        ok, message = DropboxHook(make_conn()).test_connection()
        assert ok
        assert message == f"Connected as {account['name']['display_name']} ({account['email']})"

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            pytest.param(
                {"extra": {"refresh_token": None}}, "no refresh token or access token", id="no-token"
            ),
            pytest.param({"login": None}, "no App key", id="no-app-key"),
            pytest.param({"extra": {"timeout": "soon"}}, "timeout must be a number", id="bad-timeout"),
            pytest.param(
                {"password": "wrong-secret"}, "rejected the app key or app secret", id="wrong-secret"
            ),
            pytest.param({"login": "other-app"}, "rejected the app key or app secret", id="wrong-app-key"),
            pytest.param(
                {"extra": {"refresh_token": "not-a-real-refresh-token"}},
                "refresh token is invalid or revoked",
                id="unknown-refresh-token",
            ),
            pytest.param(
                {
                    "login": None,
                    "password": None,
                    "extra": {"refresh_token": None, "access_token": "sl.bogus12345"},
                },
                "refused the credentials",
                id="bad-access-token",
            ),
        ],
    )
    def test_failure_reasons(self, make_conn: MakeConn, overrides: dict[str, object], reason: str) -> None:
        ok, message = DropboxHook(make_conn(**overrides)).test_connection()
        assert not ok
        assert reason in message
        assert DEV_APP_SECRET not in message and "wrong-secret" not in message

    def test_revoked_refresh_token(self, make_conn: MakeConn, fresh_emulator: EmulatorProcess) -> None:
        conn_id = make_conn(base_url=fresh_emulator.base_url)
        assert DropboxHook(conn_id).test_connection()[0]
        token = _access_token(fresh_emulator.base_url)
        revoked = requests.post(
            f"{fresh_emulator.base_url}/2/auth/token/revoke",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert revoked.status_code == 200, revoked.text
        fresh_emulator.reset_stats()
        started = time.monotonic()
        ok, message = DropboxHook(conn_id).test_connection()
        assert not ok
        assert "refresh token is invalid or revoked" in message and "airflow-dropbox-auth" in message
        assert time.monotonic() - started < 5
        assert fresh_emulator.stats().get("/oauth2/token") == 1  # fails fast: no retry storm

    def test_unreachable_host(self, make_conn: MakeConn) -> None:
        base = f"http://127.0.0.1:{free_port()}"
        started = time.monotonic()
        ok, message = DropboxHook(make_conn(base_url=base)).test_connection()
        assert not ok
        assert f"Cannot reach Dropbox at {base}" in message and "Connection refused" in message
        assert time.monotonic() - started < 15


# ------------------------------------------------------------------------------------ the real Airflow CLI


def _airflow_connections_test(conn_id: str, env: dict[str, str]) -> subprocess.Popen[str]:
    exe = str(Path(sys.executable).with_name("airflow"))
    return subprocess.Popen(
        [exe, "connections", "test", conn_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_airflow_connections_test_cli(emulator: EmulatorProcess) -> None:
    """``airflow connections test`` in a subprocess: the path of the UI's Test button (test_connection)."""
    env = {
        **os.environ,
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_DBX_CLI_OK": conn_json(emulator.base_url),
        "AIRFLOW_CONN_DBX_CLI_BAD": conn_json(emulator.base_url, password="wrong-secret"),
    }
    good_proc = _airflow_connections_test("dbx_cli_ok", env)  # both at once: each CLI start costs seconds
    bad_proc = _airflow_connections_test("dbx_cli_bad", env)
    good_out, good_err = good_proc.communicate(timeout=180)
    bad_out, bad_err = bad_proc.communicate(timeout=180)
    assert good_proc.returncode == 0, good_out + good_err
    assert "Connection success!" in good_out
    # Airflow 3.2's CLI prints the failure but exits 0; 3.3 exits 1.
    assert bad_proc.returncode == (1 if AIRFLOW_V_3_3_PLUS else 0)
    assert "Connection failed!" in bad_out
    assert "rejected the app key or app secret" in bad_out
    assert "wrong-secret" not in bad_out + bad_err


# ----------------------------------------------------------------------------------------- secret masking


def test_new_access_tokens_are_masked(make_conn: MakeConn) -> None:
    from airflow.sdk.log import redact

    hook = DropboxHook(make_conn())
    client = hook.get_conn()
    client.get_current_account()
    token = client.auth.token()
    assert token.startswith("sl.")
    assert redact(f"token={token}") == "token=***"
    assert redact(f"rt={DEV_REFRESH_TOKEN} secret={DEV_APP_SECRET}") == "rt=*** secret=***"


# ----------------------------------------------------------------------------------- hook method round trip


def test_hook_methods_round_trip(make_conn: MakeConn, remote_dir: str, tmp_path: Path) -> None:
    hook = DropboxHook(make_conn(), parallelism=4)
    payload = "Grüße 👋\n".encode() * 1000
    src = tmp_path / "src.txt"
    src.write_bytes(payload)

    folder = hook.create_folder(remote_dir)
    assert folder["path_lower"] == remote_dir.lower()
    assert hook.create_folder(remote_dir)["path_lower"] == remote_dir.lower()  # exist_ok
    cursor = hook.get_latest_cursor(remote_dir)

    meta = hook.upload_file(src, f"{remote_dir}/Daten 🚀.txt")
    assert meta["size"] == len(payload)
    assert hook.exists(f"{remote_dir}/daten 🚀.txt")  # case-insensitive like Dropbox
    assert not hook.exists(f"{remote_dir}/missing.txt")
    assert hook.get_metadata(f"{remote_dir}/Daten 🚀.txt")["content_hash"] == meta["content_hash"]

    assert hook.longpoll(cursor, timeout=30)["changes"] is True
    changes, new_cursor = hook.list_changes(cursor)
    assert [e["name"] for e in changes] == ["Daten 🚀.txt"]
    assert new_cursor and new_cursor != cursor

    dest = tmp_path / "out" / "copy.txt"
    down = hook.download_file(f"{remote_dir}/Daten 🚀.txt", dest)
    assert dest.read_bytes() == payload and down["content_hash"] == meta["content_hash"]

    copied = hook.copy(f"{remote_dir}/Daten 🚀.txt", f"{remote_dir}/sub/copy.txt")
    moved = hook.move(f"{remote_dir}/sub/copy.txt", f"{remote_dir}/sub/moved.txt")
    assert moved["id"] == copied["id"] and moved["name"] == "moved.txt"
    names = sorted(e["path_display"] for e in hook.list_folder(remote_dir, recursive=True))
    assert names == sorted(  # a recursive listing includes the folder itself, as on Dropbox
        [remote_dir, f"{remote_dir}/Daten 🚀.txt", f"{remote_dir}/sub", f"{remote_dir}/sub/moved.txt"]
    )
    assert sorted(e["name"] for e in hook.list_folder(remote_dir)) == ["Daten 🚀.txt", "sub"]

    link = hook.create_shared_link(f"{remote_dir}/sub/moved.txt")
    assert link.startswith("http") and hook.create_shared_link(f"{remote_dir}/sub/moved.txt") == link

    usage = hook.get_space_usage()
    assert usage["used"] >= len(payload)

    deleted = hook.delete(f"{remote_dir}/sub")
    assert deleted["name"] == "sub"
    assert not hook.exists(f"{remote_dir}/sub/moved.txt")

    for value in (meta, down, changes, new_cursor, copied, moved, link, usage, deleted, folder):
        json.dumps(value)  # everything is XCom-friendly

    with pytest.raises(errors.PathNotFoundError):
        hook.get_metadata(f"{remote_dir}/nope.txt")
    with pytest.raises(errors.MalformedPathError):
        hook.upload_file(src, "no-leading-slash.txt")
    with pytest.raises(errors.LocalPathError):
        hook.upload_file(tmp_path / "missing.bin", f"{remote_dir}/x.bin")


def test_folder_transfers_through_the_hook(make_conn: MakeConn, remote_dir: str, tmp_path: Path) -> None:
    hook = DropboxHook(make_conn(), parallelism=4)
    local = tmp_path / "up"
    (local / "a" / "b").mkdir(parents=True)
    files = {"one.csv": b"1", "a/two.csv": b"22", "a/b/three.txt": b"333", "a/b/four.csv": b""}
    for rel, data in files.items():
        (local / rel).write_bytes(data)

    uploaded = hook.upload_folder(local, remote_dir, pattern="*.csv")
    assert sorted(m["path_display"] for m in uploaded) == sorted(
        f"{remote_dir}/{rel}" for rel in files if rel.endswith(".csv")
    )
    json.dumps(uploaded)

    out = tmp_path / "down"
    written = hook.download_folder(remote_dir, out)
    assert sorted(Path(p).relative_to(out).as_posix() for p in written) == [
        "a/b/four.csv",
        "a/two.csv",
        "one.csv",
    ]
    for rel in ("one.csv", "a/two.csv", "a/b/four.csv"):
        assert (out / rel).read_bytes() == files[rel]
    assert hook.download_folder(remote_dir, out) == []  # identical content: nothing downloaded again


# ----------------------------------------------------------------------------------- team headers on the wire


class _RecordingProxy(BaseHTTPRequestHandler):
    """Forwards every request to the emulator and records its headers (the emulator has no header echo)."""

    upstream = ""
    seen: list[tuple[str, dict[str, str]]] = []

    def do_POST(self) -> None:
        body, headers = read_request(self)
        self.seen.append((self.path, headers))
        resp = requests.post(self.upstream + self.path, data=body, headers=headers, timeout=30)
        write_response(self, resp)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_proxy(emulator: EmulatorProcess) -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Proxy", (_RecordingProxy,), {"upstream": emulator.base_url, "seen": seen})
    with serve_http(handler) as url:
        yield url, seen


def test_team_headers_are_sent(
    make_conn: MakeConn, recording_proxy: tuple[str, list[tuple[str, dict[str, str]]]]
) -> None:
    base, seen = recording_proxy
    team = make_conn(base_url=base, extra={"team_member_id": "dbmid:AAAteam", "root_namespace_id": "3235641"})
    assert DropboxHook(team).test_connection()[0]
    api = [h for path, h in seen if path.startswith("/2/")]
    assert api and all(h.get("Dropbox-API-Select-User") == "dbmid:AAAteam" for h in api)
    assert all(json.loads(h["Dropbox-API-Path-Root"]) == {".tag": "root", "root": "3235641"} for h in api)

    seen.clear()
    assert DropboxHook(make_conn(base_url=base)).test_connection()[0]
    assert seen and not any("Dropbox-API-Select-User" in h or "Dropbox-API-Path-Root" in h for _, h in seen)


# -------------------------------------------------------------------------- bad input and faults via the hook


def test_bad_inputs_are_typed_errors_naming_the_problem(
    make_conn: MakeConn, remote_dir: str, tmp_path: Path
) -> None:
    hook = DropboxHook(make_conn())
    src = tmp_path / "f.txt"
    src.write_bytes(b"data")
    hook.create_folder(f"{remote_dir}/folder")
    cases: list[tuple[Callable[[], object], type[Exception], str]] = [
        (
            lambda: hook.upload_file(tmp_path / "nope.txt", f"{remote_dir}/a"),
            errors.LocalPathError,
            "nope.txt",
        ),
        (lambda: hook.upload_file(tmp_path, f"{remote_dir}/a"), errors.LocalPathError, "is a directory"),
        (lambda: hook.upload_file(src, "a.txt"), errors.MalformedPathError, "must start with '/'"),
        (
            lambda: hook.upload_file(src, f"{remote_dir}/a/"),
            errors.MalformedPathError,
            "must not end with '/'",
        ),
        (lambda: hook.download_file(f"{remote_dir}/folder", tmp_path / "x"), errors.NotAFileError, "folder"),
        (
            lambda: hook.download_file(f"{remote_dir}/none.txt", tmp_path / "y"),
            errors.PathNotFoundError,
            "not found",
        ),
        (
            lambda: hook.download_file(f"{remote_dir}/folder", tmp_path),
            errors.LocalPathError,
            "is a directory",
        ),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=re.escape(words)):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # nothing partial left behind
    assert [e["name"] for e in hook.list_folder(remote_dir)] == ["folder"]


def test_transfers_survive_faults(
    make_conn: MakeConn, fresh_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    hook = DropboxHook(make_conn(base_url=fresh_emulator.base_url), parallelism=4)
    assert hook.test_connection()[0]
    local = tmp_path / "up"
    local.mkdir()
    files = {f"f{i}.bin": os.urandom(1000 * i) for i in range(1, 6)}
    for name, data in files.items():
        (local / name).write_bytes(data)
    fresh_emulator.set_faults(rate_limit=0.1, server_error=0.1, lock_contention=0.1, retry_after_s=1, seed=3)
    try:
        uploaded = hook.upload_folder(local, "/faulty")
        written = hook.download_folder("/faulty", tmp_path / "down")
    finally:
        fresh_emulator.clear_faults()
    assert len(uploaded) == len(files) and len(written) == len(files)
    for name, data in files.items():
        assert (tmp_path / "down" / name).read_bytes() == data


def test_full_quota_through_the_hook(
    make_conn: MakeConn, fresh_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    try:
        fresh_emulator.set_faults(quota_bytes=1024 * 1024)
    except urllib.error.HTTPError:
        pytest.skip("the emulator has no quota knob yet (same skip as tests/client/test_bad_input.py)")
    hook = DropboxHook(make_conn(base_url=fresh_emulator.base_url))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024))
    with pytest.raises(errors.InsufficientSpaceError, match="Not enough space"):
        hook.upload_file(src, "/big.bin")
    assert not hook.exists("/big.bin")


def test_hook_upload_download_round_trip_skips_identical_and_refuses_conflicts(
    make_conn: MakeConn, remote_dir: str, tmp_path: Path
) -> None:
    """The hook methods behind the transfer operators: plan, upload with skip-identical, download with
    overwrite='error' checked before anything is written."""
    from airflow_provider_dropbox.client.errors import LocalConflictError

    hook = DropboxHook(make_conn())
    remote = remote_dir
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.txt").write_bytes(b"b")
    pairs = hook.plan_upload(src, remote)
    assert [r for _, r in pairs] == [f"{remote}/a.txt", f"{remote}/sub/b.txt"]
    first = hook.upload_pairs(pairs)
    assert (first["uploaded"], first["skipped_identical"]) == (2, 0)
    again = hook.upload_folder(src, remote, skip_identical=True)
    assert sorted(m["name"] for m in again) == ["a.txt", "b.txt"]
    assert hook.upload_pairs(pairs)["skipped_identical"] == 2
    dest = tmp_path / "dest"
    assert len(hook.download(remote, dest)) == 2
    (dest / "sub" / "b.txt").write_bytes(b"local edit")
    (src / "a.txt").write_bytes(b"changed")
    hook.upload_pairs(pairs, mode="overwrite")
    with pytest.raises(LocalConflictError, match=r"2 local file\(s\) exist with different content"):
        hook.download(remote, dest, overwrite="error")
    assert (dest / "sub" / "b.txt").read_bytes() == b"local edit"
