"""Connection inputs, secrets in messages and local names (issue 13 findings 4, 5a, 10, 11).

The Test button must always get ``(False, message)`` with the real reason, never a traceback; a token that
cannot travel in a header is a typed error that does not quote it, whether it came from the connection or
from the token endpoint, and every spelling of it is masked; names up to the file system's 255 bytes
download; a destination ending in '/' is a folder.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, content_hash_bytes
from airflow_provider_dropbox.client.errors import InvalidTokenError
from airflow_provider_dropbox.hooks.dropbox import DropboxHook, base_url_from_host
from tests.client.proxy import serve_http
from tests.emulator_process import EmulatorProcess, start_emulator
from tests.hardening.helpers import fast_client, temp_leftovers
from tests.hooks.conftest import conn_json


def _hook(monkeypatch: pytest.MonkeyPatch, base_url: str | None, **overrides: Any) -> DropboxHook:
    conn_id = f"ci_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(base_url, **overrides))
    return DropboxHook(conn_id, retry_deadline=2.0)


# ---------------------------------------------------------------------- test_connection never raises


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-inf", "NaN", "abc", "0", "-3", "1e12"])
@pytest.mark.parametrize("field", ["timeout", "retry_deadline"])
def test_test_connection_reports_bad_seconds_instead_of_raising(
    hemu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    ok, message = _hook(monkeypatch, hemu.base_url, extra={field: value}).test_connection()
    assert ok is False
    assert f"{field} must be" in message and "seconds" in message, message


@pytest.mark.parametrize("text", ["{not json", '{"refresh_token": "x"', "refresh_token=x", "[1, 2]", "42"])
def test_extra_that_is_not_a_json_object_is_reported_as_such(
    hemu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    conn = json.loads(conn_json(hemu.base_url))
    conn["extra"] = text
    conn_id = f"ci_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    ok, message = DropboxHook(conn_id).test_connection()
    assert ok is False
    assert "Extra field is" in message and "JSON" in message, message
    assert "airflow-dropbox-auth" not in message and "no refresh token" not in message
    assert text not in message  # the extra may hold secrets: positions only


def test_https_to_a_plain_http_server_says_so(hemu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    https = hemu.base_url.replace("http://", "https://")
    ok, message = _hook(monkeypatch, https).test_connection()
    assert ok is False
    assert "answered in plain HTTP, not TLS" in message, message
    assert "certificate" not in message


@pytest.mark.parametrize(
    "extra",
    [
        {"refresh_token": None, "access_token": "sl.SECRETPART1\r\nSECRETPART2"},
        {"refresh_token": None, "access_token": "sl.SECRETPART1\u2603SECRETPART2"},
        {"team_member_id": "dbmid:SECRETPART1\nSECRETPART2"},
    ],
)
def test_test_connection_with_an_unusable_token_or_id_answers_without_quoting_it(
    hemu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]
) -> None:
    ok, message = _hook(monkeypatch, hemu.base_url, extra=extra).test_connection()
    assert ok is False
    assert "SECRETPART" not in message, message
    assert "line break" in message or "non-ASCII" in message


# ---------------------------------------------------------------------- host and port


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("[::1]:8765", None, "http://[::1]:8765"),
        ("[::1]", 8765, "http://[::1]:8765"),
        ("::1", 8765, "http://[::1]:8765"),
        ("::1", None, "http://[::1]"),
        ("0:0:0:0:0:0:0:1", 8765, "http://[0:0:0:0:0:0:0:1]:8765"),
        ("127.0.0.2", 8765, "http://127.0.0.2:8765"),
        ("localhost/", 8765, "http://localhost:8765"),
        ("http://127.0.0.1/dropbox", 8765, "http://127.0.0.1:8765/dropbox"),
        ("127.0.0.1/dropbox/", 8765, "http://127.0.0.1:8765/dropbox"),
        ("https://proxy.example.com/dropbox/api", 8443, "https://proxy.example.com:8443/dropbox/api"),
        ("https://api.example.com", None, "https://api.example.com"),
        ("2001:db8::1", 443, "https://[2001:db8::1]:443"),
        ("http://127.0.0.1:8765", 8765, "http://127.0.0.1:8765"),
    ],
)
def test_base_url_from_host_and_port(host: str, port: int | None, url: str) -> None:
    assert base_url_from_host(host, port) == url


@pytest.fixture(scope="module")
def emu6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    try:
        emu = start_emulator(tmp_path_factory.mktemp("emu6"), "--host", "::1")
    except Exception as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        yield emu
    finally:
        emu.stop()


def test_ipv6_loopback_forms_reach_the_emulator(
    emu6: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(emu6.base_url.rsplit(":", 1)[1])
    for host, port_field in ((f"[::1]:{port}", None), ("::1", port), ("[::1]", port)):
        ok, message = _hook(monkeypatch, host, port=port_field).test_connection()
        assert ok, (host, port_field, message)


# ---------------------------------------------------------------------- token endpoint replies


def _token_server(token: str) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"access_token": token, "expires_in": 14400, "token_type": "bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return serve_http(Handler)


@pytest.mark.parametrize(
    "token",
    [
        "sl.SECRETPART1\r\nSECRETPART2",
        "sl.SECRETPART1\nX-Injected: 1",
        "sl.SECRETPART1\u00e9\u2603",
        "sl.S\x00CRET",
    ],
)
def test_a_token_endpoint_reply_that_cannot_be_a_header_is_a_typed_error(token: str) -> None:
    seen: list[str] = []
    with _token_server(token) as base:
        client = DropboxClient(
            Credentials(app_key="k", app_secret="s", refresh_token="r"),
            endpoints=Endpoints.single_host(base),
            on_new_token=seen.append,
            retry_deadline=2.0,
        )
        with client, pytest.raises(InvalidTokenError) as info:
            client.get_current_account()
    text = f"{info.value} {info.value.args!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert "SECRET" not in text and "CRET" not in text
    assert "token endpoint" in str(info.value)
    assert seen == [token]  # handed to the masker before anything could quote it


@pytest.mark.parametrize("token", ["sl.SECRETPART1\r\nSECRETPART2", "sl.SECRETPART1\u00e9\u2603tail"])
def test_every_spelling_of_a_masked_token_is_hidden(token: str) -> None:
    from airflow.sdk.log import redact

    from airflow_provider_dropbox.hooks.dropbox import _mask_token

    _mask_token(token)
    for shown in (
        token,
        repr(token),
        json.dumps(token),
        token.encode("unicode_escape").decode(),
        token.splitlines()[0],
    ):
        assert "SECRETPART1" not in str(redact(f"error: {shown} end")), shown


# ---------------------------------------------------------------------- long local names (finding 5a)


@pytest.mark.parametrize(
    "name",
    [
        "n" * 225 + ".csv",  # 229 bytes: the old temp name was 256
        "n" * 240 + ".csv",
        "n" * 251 + ".csv",  # 255 bytes: the limit itself
        "n" * 255,  # no extension
        "é" * 125 + ".txt",  # 254 bytes in UTF-8, 129 characters
        "日本" * 41 + "x.tar.gz",  # 3-byte characters and a double extension
    ],
)
def test_names_up_to_255_bytes_download(hemu: EmulatorProcess, tmp_path: Path, name: str) -> None:
    data = name.encode()[:64] * 3
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    with fast_client(hemu) as client:
        remote = f"/long/{name}"
        client.upload_file(src, remote, mode="overwrite")
        meta = client.download_file(remote, out / name)
    assert (out / name).read_bytes() == data
    assert meta["content_hash"] == content_hash_bytes(data)
    assert temp_leftovers(tmp_path) == []
    assert len(os.fsencode(name)) <= 255


# ---------------------------------------------------------------------- folder targets (finding 11)


@pytest.mark.parametrize("suffix", ["/", "/.", "//"])
def test_download_to_a_path_ending_in_slash_is_a_folder_target(
    hemu: EmulatorProcess, tmp_path: Path, suffix: str
) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"into a folder")
    with fast_client(hemu) as client:
        client.upload_file(src, "/dirtarget/report.csv", mode="overwrite")
        client.download_file("/dirtarget/report.csv", str(tmp_path / "newdir") + suffix)
    assert (tmp_path / "newdir").is_dir()
    assert (tmp_path / "newdir" / "report.csv").read_bytes() == b"into a folder"
