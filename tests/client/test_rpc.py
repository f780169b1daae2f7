"""Metadata routes, listings, changes, longpoll, shared links; wire details via a recording adapter."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints, errors
from tests.client.conftest import MakeClient
from tests.emulator_process import EmulatorProcess


def _put(client: DropboxClient, tmp_path: Path, remote: str, data: bytes) -> dict[str, Any]:
    src = tmp_path / "put.bin"
    src.write_bytes(data)
    return client.upload_file(src, remote, mode="overwrite")


def test_account_and_space(client: DropboxClient) -> None:
    account = client.get_current_account()
    assert account["account_id"].startswith("dbid:") and account["name"]["display_name"]
    assert "used" in client.get_space_usage()


def test_metadata_exists_folders_move_copy_delete(
    client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    made = client.create_folder(f"{remote_dir}/A")
    assert made["name"] == "A"
    assert client.create_folder(f"{remote_dir}/a")["name"] == "A"  # exists (case-insensitive): fine
    with pytest.raises(errors.PathConflictError):
        client.create_folder(f"{remote_dir}/A", exist_ok=False)
    _put(client, tmp_path, f"{remote_dir}/A/f.txt", b"hello")
    assert client.exists(f"{remote_dir}/a/F.TXT") and not client.exists(f"{remote_dir}/A/none")
    assert client.exists("/") and client.exists("")
    meta = client.get_metadata(f"{remote_dir}/A/f.txt")
    assert meta[".tag"] == "file" and meta["size"] == 5
    copied = client.copy(f"{remote_dir}/A/f.txt", f"{remote_dir}/B/g.txt")
    assert copied[".tag"] == "file" and copied["content_hash"] == meta["content_hash"]
    with pytest.raises(errors.PathConflictError) as info:
        client.move(f"{remote_dir}/A/f.txt", f"{remote_dir}/B/g.txt")
    assert info.value.path == f"{remote_dir}/B/g.txt" and f"'{remote_dir}/B/g.txt'" in str(info.value)
    moved = client.move(f"{remote_dir}/A/f.txt", f"{remote_dir}/B/h.txt")
    assert moved["id"] == meta["id"]
    with pytest.raises(errors.PathNotFoundError) as info2:
        client.move(f"{remote_dir}/A/f.txt", f"{remote_dir}/B/i.txt")
    assert info2.value.path == f"{remote_dir}/A/f.txt"
    deleted = client.delete(f"{remote_dir}/B")
    assert deleted[".tag"] == "folder"
    assert client.get_metadata(f"{remote_dir}/B", include_deleted=True)[".tag"] == "deleted"
    with pytest.raises(errors.PathNotFoundError):
        client.get_metadata(f"{remote_dir}/B")


def test_list_folder_all_pages_and_changes(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    for i in range(7):
        _put(client, tmp_path, f"{remote_dir}/sub/{i}.txt", bytes([i]))
    emulator.reset_stats()
    names = sorted(e["name"] for e in client.list_folder(f"{remote_dir}/sub", limit=2))
    assert names == [f"{i}.txt" for i in range(7)]
    assert emulator.stats()["/2/files/list_folder/continue"] >= 3  # really paged
    entries, cursor = client.list_folder_snapshot(remote_dir)
    assert {e["path_lower"] for e in entries} >= {f"{remote_dir}/sub/3.txt".lower()}
    assert client.list_changes(cursor)[0] == []
    _put(client, tmp_path, f"{remote_dir}/sub/new.txt", b"n")
    client.delete(f"{remote_dir}/sub/0.txt")
    changes, cursor2 = client.list_changes(cursor)
    tags = {(e[".tag"], e["name"]) for e in changes}
    assert ("file", "new.txt") in tags and ("deleted", "0.txt") in tags
    assert cursor2 != cursor
    latest = client.get_latest_cursor(remote_dir)
    assert client.list_changes(latest) == ([], client.list_changes(latest)[1])


def test_cursor_reset_is_typed(fresh_emulator: EmulatorProcess, make_client: MakeClient) -> None:
    client = make_client(fresh_emulator)
    client.create_folder("/r")
    cursor = client.get_latest_cursor("/r")
    fresh_emulator.admin("reset_cursors", {})
    with pytest.raises(errors.CursorResetError, match="list the folder again"):
        client.list_changes(cursor)


def test_longpoll_wakes_on_change_without_authorization(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(fresh_emulator)
    client.create_folder("/lp")
    cursor = client.get_latest_cursor("/lp")
    fresh_emulator.set_faults(longpoll_max_s=1)
    assert client.longpoll(cursor, timeout=30) == {"changes": False, "backoff": None}
    fresh_emulator.set_faults(longpoll_max_s=None, longpoll_backoff_s=5)
    timer = threading.Timer(0.5, lambda: client.create_folder("/lp/new"))
    started = time.monotonic()
    timer.start()
    result = client.longpoll(cursor, timeout=30)
    timer.join()
    assert result == {"changes": True, "backoff": 5}
    assert time.monotonic() - started < 10


def test_shared_link_returns_existing(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    _put(client, tmp_path, f"{remote_dir}/s.txt", b"s")
    first = client.create_shared_link(f"{remote_dir}/s.txt")
    assert first.startswith("http")
    assert client.create_shared_link(f"{remote_dir}/s.txt") == first


# ---------------------------------------------------------------- wire details (no server needed)


class Recorder(BaseAdapter):
    """A transport that records each prepared request and answers from a script."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []
        self.answer = answer

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        resp = requests.Response()
        status, headers, body = self.answer(request)
        resp.status_code = status
        resp.headers.update(headers)
        resp._content = body
        resp.request = request
        resp.url = request.url or ""
        return resp

    def close(self) -> None:
        pass


def _recording_client(answer: Any, **kwargs: Any) -> tuple[DropboxClient, Recorder]:
    client = DropboxClient(
        Credentials(access_token="sl.test-token"),
        endpoints=Endpoints.single_host("http://dbx.test"),
        **kwargs,
    )
    rec = Recorder(answer)
    client.session.mount("http://", rec)
    return client, rec


def test_void_rpc_sends_null_json_and_team_headers() -> None:
    client, rec = _recording_client(
        lambda r: (200, {"Content-Type": "application/json"}, b'{"account_id": "dbid:x"}'),
        team_member_id="dbmid:member",
        root_namespace_id="12345",
    )
    client.get_current_account()
    req = rec.requests[0]
    assert req.url == "http://dbx.test/2/users/get_current_account"
    assert req.body == b"null" and req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == "Bearer sl.test-token"
    assert req.headers["Dropbox-API-Select-User"] == "dbmid:member"
    assert json.loads(req.headers["Dropbox-API-Path-Root"]) == {".tag": "root", "root": "12345"}


def test_upload_arg_header_is_ascii_json() -> None:
    meta = {"name": "ü.txt", "size": 1, "content_hash": None}
    client, rec = _recording_client(
        lambda r: (200, {"Content-Type": "application/json"}, json.dumps(meta).encode())
    )
    client.upload_call("files/upload", {"path": "/ü 😀.txt"}, lambda: b"x")
    header = rec.requests[0].headers["Dropbox-API-Arg"]
    assert header == '{"path": "/\\u00fc \\ud83d\\ude00.txt"}'
    assert rec.requests[0].headers["Content-Type"] == "application/octet-stream"


def test_longpoll_has_no_authorization_and_a_long_read_timeout() -> None:
    client, rec = _recording_client(
        lambda r: (200, {"Content-Type": "application/json"}, b'{"changes": false}')
    )
    client.longpoll("cursor-1", timeout=480)
    req = rec.requests[0]
    assert "Authorization" not in req.headers and "Dropbox-API-Select-User" not in req.headers
    assert json.loads(req.body or b"") == {"cursor": "cursor-1", "timeout": 480}
    assert rec.timeouts[0][1] > 480 + 90


def test_tls_verification_stays_on(tmp_path: Path) -> None:
    client = DropboxClient(Credentials(access_token="sl.x"))
    assert client.session.verify is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert DropboxClient(Credentials(access_token="sl.x"), ca_bundle=str(bundle)).session.verify == str(
        bundle
    )


def test_ca_bundle_wins_over_requests_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS against an HTTPS emulator with its own CA: ``ca_bundle`` must be used even when REQUESTS_CA_BUNDLE
    (set on many machines) points elsewhere, and an untrusted server must fail fast with a TLS message."""
    from tests.client.conftest import dev_credentials
    from tests.emulator_process import start_emulator
    from tests.sdk.certs import make_cert

    cert, key = make_cert(tmp_path / "tls")
    emu = start_emulator(tmp_path / "emu", "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert emu.base_url.startswith("https://")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "elsewhere.pem"))
        endpoints = Endpoints.single_host(emu.base_url)
        with DropboxClient(dev_credentials(), endpoints=endpoints, ca_bundle=str(cert)) as good:
            assert good.get_current_account()["account_id"].startswith("dbid:")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        started = time.monotonic()
        with DropboxClient(dev_credentials(), endpoints=endpoints) as untrusted:
            with pytest.raises(errors.DropboxConnectionError, match="TLS verification failed"):
                untrusted.get_current_account()
        assert time.monotonic() - started < 5  # a certificate problem is not retried
    finally:
        emu.stop()
