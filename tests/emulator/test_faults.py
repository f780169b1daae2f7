"""Fault injection, admin routes and request stats."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.emulator.helpers import Api, content_hash, summary_ok


def test_admin_faults_roundtrip(faulty_api: Api) -> None:
    emu = faulty_api.emu
    settings = emu.admin("faults", method="GET")
    assert settings["rate_limit"] == 0 and settings["bandwidth_mbps"] is None
    updated = emu.set_faults(latency_ms=5, retry_after_s=7)
    assert updated["latency_ms"] == 5 and updated["retry_after_s"] == 7
    assert emu.admin("faults", method="GET")["retry_after_s"] == 7
    r = requests.post(f"{emu.base_url}/_emulator/faults", json={"nonsense": 1}, timeout=10)
    assert r.status_code == 400
    r = requests.post(f"{emu.base_url}/_emulator/faults", json={"rate_limit": 2}, timeout=10)
    assert r.status_code == 400


def test_stats_count_every_request(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.reset_stats()
    api.mkdir("/s")
    api.ok("files/list_folder", {"path": "/s"})
    api.rpc("files/list_folder", {"path": "/missing"})
    stats = api.emu.stats()
    assert stats == {"/2/files/create_folder_v2": 1, "/2/files/list_folder": 2}
    api.emu.reset_stats()
    assert api.emu.stats() == {}


def test_rate_limit(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(rate_limit=1, retry_after_s=3)
    r = api.rpc("users/get_current_account")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == {"reason": {".tag": "too_many_requests"}, "retry_after": 3}
    assert summary_ok(body, "too_many_requests")
    api.emu.set_faults(rate_limit_text=True)
    r = api.rpc("users/get_current_account")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.headers["Content-Type"].startswith("text/plain")
    # admin routes are never faulted and faulted requests are still counted
    api.emu.clear_faults()
    assert api.emu.stats()["/2/users/get_current_account"] == 2


def test_server_error(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(server_error=1)
    api.emu.set_faults(server_error=1, retry_after_s=4, seed=5)
    seen = set()
    for _ in range(12):
        r = api.rpc("users/get_current_account")
        seen.add(r.status_code)
        assert r.status_code in (500, 503)
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "4"
    assert seen == {500, 503}
    api.emu.clear_faults()
    assert api.rpc("users/get_current_account").status_code == 200


def test_oauth_token_gets_rate_limit_but_not_latency(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(rate_limit=1)
    r = api.http.post(
        f"{api.base}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "dev-refresh-token",
            "client_id": "dev-app-key",
        },
        timeout=10,
    )
    assert r.status_code == 429
    api.emu.set_faults(rate_limit=0, latency_ms=1500)
    t0 = time.monotonic()
    api.refresh()
    assert time.monotonic() - t0 < 1.0


def _is_lock_error(r: requests.Response, nested: Any) -> bool:
    if r.status_code == 429:
        return bool(r.json()["error"] == {"reason": {".tag": "too_many_write_operations"}, "retry_after": 1})
    return r.status_code == 409 and r.json()["error"] == nested


def test_lock_contention_shapes(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(lock_contention=1, seed=1)
    statuses = set()
    for i in range(12):
        r = api.rpc("files/create_folder_v2", {"path": f"/lc{i}"})
        statuses.add(r.status_code)
        assert _is_lock_error(r, {".tag": "path", "path": {".tag": "too_many_write_operations"}}), r.text
        if r.status_code == 409:
            assert summary_ok(r.json(), "path/too_many_write_operations")
    assert statuses == {409, 429}
    r = api.upload_raw("files/upload", {"path": "/u.txt"}, b"x")
    assert r.status_code in (409, 429)
    if r.status_code == 409:
        err = r.json()["error"]
        assert err["reason"] == {".tag": "too_many_write_operations"} and err["upload_session_id"]
    r = api.rpc("files/delete_v2", {"path": "/nothing"})
    assert _is_lock_error(r, {".tag": "too_many_write_operations"})
    # reads are never lock-contended
    assert api.rpc("files/list_folder", {"path": ""}).status_code == 200
    api.emu.clear_faults()
    assert api.rpc("files/get_metadata", {"path": "/lc0"}).status_code == 409


def test_lock_contention_per_batch_entry(faulty_api: Api) -> None:
    api = faulty_api
    sids = []
    for i in range(6):
        r = api.upload_raw("files/upload_session/start", {"close": True}, f"data{i}".encode())
        sids.append(r.json()["session_id"])
    api.emu.set_faults(lock_contention=0.5, seed=3)
    entries = [
        {"cursor": {"session_id": s, "offset": 5}, "commit": {"path": f"/b{i}"}} for i, s in enumerate(sids)
    ]
    res = api.ok("files/upload_session/finish_batch_v2", {"entries": entries})
    tags = [e[".tag"] for e in res["entries"]]
    assert "failure" in tags and "success" in tags
    for e in res["entries"]:
        if e[".tag"] == "failure":
            assert e["failure"] == {".tag": "too_many_write_operations"}
    # failed entries can be re-committed
    api.emu.clear_faults()
    retry = [entries[i] for i, t in enumerate(tags) if t == "failure"]
    res = api.ok("files/upload_session/finish_batch_v2", {"entries": retry})
    assert all(e[".tag"] == "success" for e in res["entries"])


def test_drop_after_commit(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(drop_after_commit=1)
    with pytest.raises(requests.ConnectionError):
        api.upload("/dropped.txt", b"committed anyway")
    # reads are not writes: never dropped
    api.emu.clear_faults()
    assert api.download("/dropped.txt").content == b"committed anyway"


def test_drop_after_commit_append_gives_incorrect_offset(faulty_api: Api) -> None:
    api = faulty_api
    sid = api.upload_raw("files/upload_session/start", {}, b"abc").json()["session_id"]
    api.emu.set_faults(drop_after_commit=1)
    arg = {"cursor": {"session_id": sid, "offset": 3}}
    with pytest.raises(requests.ConnectionError):
        api.upload_raw("files/upload_session/append_v2", arg, b"def")
    api.emu.clear_faults()
    r = api.upload_raw("files/upload_session/append_v2", arg, b"def")
    assert r.json()["error"] == {".tag": "incorrect_offset", "correct_offset": 6}


def test_seed_is_reproducible(faulty_api: Api) -> None:
    api = faulty_api

    def run() -> list[int]:
        api.emu.set_faults(server_error=0.5, seed=42)
        out = [api.rpc("users/get_current_account").status_code for _ in range(20)]
        api.emu.clear_faults()
        return out

    first = run()
    assert first == run()
    assert 200 in first and (500 in first or 503 in first)


def test_latency(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(latency_ms=300)
    t0 = time.monotonic()
    api.rpc("users/get_current_account")
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    api.emu.stats()
    assert time.monotonic() - t0 < 0.3


def test_bandwidth_cap(faulty_api: Api) -> None:
    api = faulty_api
    data = b"b" * 500_000
    api.upload("/bw.bin", data)
    api.emu.set_faults(bandwidth_mbps=8)  # 1 MB/s
    t0 = time.monotonic()
    assert api.download("/bw.bin").content == data
    assert time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    api.upload("/bw2.bin", data)
    assert time.monotonic() - t0 >= 0.4


def test_token_lifetime_fault(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(token_lifetime=1)
    r = api.http.post(
        f"{api.base}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "dev-refresh-token",
            "client_id": "dev-app-key",
        },
        timeout=10,
    )
    assert r.json()["expires_in"] == 1
    token = r.json()["access_token"]
    time.sleep(1.2)
    r = api.http.post(
        f"{api.base}/2/users/get_current_account", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 401 and r.json()["error"] == {".tag": "expired_access_token"}


def test_quota(faulty_api: Api) -> None:
    api = faulty_api
    used = api.ok("users/get_space_usage")["used"]
    api.emu.set_faults(quota_bytes=used + 100)
    usage = api.ok("users/get_space_usage")
    assert usage["allocation"] == {".tag": "individual", "allocated": used + 100}
    api.upload("/q/fits.bin", b"x" * 60)
    r = api.upload_raw("files/upload", {"path": "/q/too-big.bin"}, b"x" * 60)
    assert r.status_code == 409
    err = r.json()["error"]
    assert (
        err[".tag"] == "path" and err["reason"] == {".tag": "insufficient_space"} and err["upload_session_id"]
    )
    assert summary_ok(r.json(), "path/insufficient_space")
    sid = api.upload_raw("files/upload_session/start", {"close": True}, b"y" * 60).json()["session_id"]
    r = api.upload_raw(
        "files/upload_session/finish",
        {"cursor": {"session_id": sid, "offset": 60}, "commit": {"path": "/q/s.bin"}},
    )
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "insufficient_space"}}
    r = api.rpc("files/copy_v2", {"from_path": "/q/fits.bin", "to_path": "/q/copy.bin"})
    assert r.json()["error"] == {".tag": "insufficient_quota"}
    # overwriting with a smaller file frees room
    api.upload("/q/fits.bin", b"x" * 10, mode="overwrite")
    api.upload("/q/now-fits.bin", b"z" * 60)


def test_truncated_and_corrupt_downloads(faulty_api: Api) -> None:
    api = faulty_api
    data = bytes(range(256)) * 8192  # 2 MiB
    md = api.upload("/dl-fault.bin", data)
    api.emu.set_faults(truncate_download=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.download("/dl-fault.bin")
    api.emu.set_faults(truncate_download=0, corrupt_download=1)
    r = api.download("/dl-fault.bin")
    assert r.status_code == 200 and len(r.content) == len(data)
    assert r.content != data and content_hash(r.content) != md["content_hash"]
    api.emu.clear_faults()
    assert api.download("/dl-fault.bin").content == data
