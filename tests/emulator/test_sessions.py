"""Upload sessions: sequential and concurrent, offsets, closing, hashes, finish and finish_batch."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.emulator.helpers import BLOCK, Api, content_hash, summary_ok


def start(api: Api, data: bytes = b"", **arg: Any) -> str:
    r = api.upload_raw("files/upload_session/start", arg, data)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"session_id"}
    sid: str = r.json()["session_id"]
    return sid


def append(
    api: Api, sid: str, offset: int, data: bytes, close: bool = False, **arg: Any
) -> requests.Response:
    return api.upload_raw(
        "files/upload_session/append_v2",
        {"cursor": {"session_id": sid, "offset": offset}, "close": close, **arg},
        data,
    )


def finish(api: Api, sid: str, offset: int, path: str, data: bytes = b"", **commit: Any) -> requests.Response:
    return api.upload_raw(
        "files/upload_session/finish",
        {"cursor": {"session_id": sid, "offset": offset}, "commit": {"path": path, **commit}},
        data,
    )


def test_sequential_session(api: Api, root: str) -> None:
    sid = start(api, b"abc", content_hash=content_hash(b"abc"))
    r = append(api, sid, 3, b"defg", content_hash=content_hash(b"defg"))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json" and r.content == b"null"
    r = finish(api, sid, 7, root + "/seq.txt", b"hij")
    assert r.status_code == 200, r.text
    md = r.json()
    assert ".tag" not in md and md["size"] == 10
    assert md["content_hash"] == content_hash(b"abcdefghij")
    assert api.download(root + "/seq.txt").content == b"abcdefghij"


def test_incorrect_offset_and_resend(api: Api, root: str) -> None:
    sid = start(api, b"12345")
    r = append(api, sid, 4, b"x")
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "incorrect_offset", "correct_offset": 5}
    assert summary_ok(r.json(), "incorrect_offset")
    assert append(api, sid, 5, b"678").status_code == 200
    # re-sending the chunk that already arrived: incorrect_offset pointing past it
    r = append(api, sid, 5, b"678")
    assert r.json()["error"] == {".tag": "incorrect_offset", "correct_offset": 8}
    r = finish(api, sid, 3, root + "/o.txt")
    assert r.status_code == 409
    assert r.json()["error"] == {
        ".tag": "lookup_failed",
        "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 8},
    }
    assert summary_ok(r.json(), "lookup_failed/incorrect_offset")
    assert finish(api, sid, 8, root + "/o.txt").status_code == 200


def test_closed_and_not_found(api: Api, root: str) -> None:
    sid = start(api, b"ab")
    assert append(api, sid, 2, b"cd", close=True).status_code == 200
    r = append(api, sid, 4, b"ef")
    assert r.json()["error"] == {".tag": "closed"}
    assert finish(api, sid, 4, root + "/c.txt").status_code == 200
    r = finish(api, sid, 4, root + "/c2.txt")
    assert r.json()["error"] == {".tag": "lookup_failed", "lookup_failed": {".tag": "closed"}}
    r = append(api, "pid_upload_session:nope", 0, b"x")
    assert r.json()["error"] == {".tag": "not_found"}
    r = finish(api, "pid_upload_session:nope", 0, root + "/x")
    assert r.json()["error"] == {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}


def test_append_hash_mismatch_leaves_offset(api: Api, root: str) -> None:
    sid = start(api, b"abc")
    r = append(api, sid, 3, b"def", content_hash=content_hash(b"xyz"))
    assert r.status_code == 409 and r.json()["error"] == {".tag": "content_hash_mismatch"}
    assert append(api, sid, 3, b"DEF").status_code == 200
    assert finish(api, sid, 6, root + "/h.txt").json()["content_hash"] == content_hash(b"abcDEF")


def test_finish_conflict_then_retry_elsewhere(api: Api, root: str) -> None:
    api.upload(root + "/taken", b"other")
    sid = start(api, b"mine", close=True)
    r = finish(api, sid, 4, root + "/taken")
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}
    assert finish(api, sid, 4, root + "/free").status_code == 200


def test_concurrent_session_any_order(api: Api, root: str) -> None:
    data = os.urandom(3 * BLOCK + 123)
    sid = start(api, session_type={".tag": "concurrent"})
    pieces = [
        (2 * BLOCK, data[2 * BLOCK :], True),
        (BLOCK, data[BLOCK : 2 * BLOCK], False),
        (0, data[:BLOCK], False),
    ]
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(
                lambda p: (
                    append(api, sid, p[0], p[1], close=p[2], content_hash=content_hash(p[1])).status_code
                ),
                pieces,
            )
        )
    assert results == [200, 200, 200]
    r = finish(api, sid, len(data), root + "/conc.bin")
    assert r.status_code == 200, r.text
    assert r.json()["content_hash"] == content_hash(data)
    assert api.download(root + "/conc.bin").content == data


def test_concurrent_rules(api: Api, root: str) -> None:
    r = api.upload_raw("files/upload_session/start", {"session_type": "concurrent"}, b"data")
    assert r.json()["error"] == {".tag": "concurrent_session_data_not_allowed"}
    r = api.upload_raw("files/upload_session/start", {"session_type": "concurrent", "close": True}, b"")
    assert r.json()["error"] == {".tag": "concurrent_session_close_not_allowed"}
    sid = start(api, session_type="concurrent")
    r = append(api, sid, 100, b"x" * BLOCK)
    assert r.json()["error"] == {".tag": "concurrent_session_invalid_offset"}
    r = append(api, sid, 0, b"x" * 100)
    assert r.json()["error"] == {".tag": "concurrent_session_invalid_data_size"}
    assert append(api, sid, BLOCK, b"tail", close=True).status_code == 200
    r = finish(api, sid, BLOCK + 4, root + "/gap")
    assert r.json()["error"] == {".tag": "concurrent_session_missing_data"}
    assert append(api, sid, 0, b"y" * BLOCK).status_code == 200
    r = append(api, sid, 0, b"y" * BLOCK)
    assert r.json()["error"] == {".tag": "incorrect_offset", "correct_offset": BLOCK}
    r = finish(api, sid, BLOCK + 4, root + "/gap", b"more")
    assert r.json()["error"] == {".tag": "concurrent_session_data_not_allowed"}
    r = finish(api, sid, BLOCK + 4, root + "/gap")
    assert r.status_code == 200
    assert r.json()["content_hash"] == content_hash(b"y" * BLOCK + b"tail")


def test_concurrent_not_closed(api: Api, root: str) -> None:
    sid = start(api, session_type="concurrent")
    assert append(api, sid, 0, b"z" * BLOCK).status_code == 200
    r = finish(api, sid, BLOCK, root + "/nc")
    assert r.json()["error"] == {".tag": "concurrent_session_not_closed"}


def _batch_entry(sid: str, offset: int, path: str) -> dict[str, Any]:
    return {"cursor": {"session_id": sid, "offset": offset}, "commit": {"path": path}}


def test_finish_batch_v2(api: Api, root: str) -> None:
    s1 = start(api, b"one", close=True)
    s2 = start(api, b"two")  # not closed
    s3 = start(api, b"three", close=True)
    api.upload(root + "/exists", b"x")
    res = api.ok(
        "files/upload_session/finish_batch_v2",
        {
            "entries": [
                _batch_entry(s1, 3, root + "/one"),
                _batch_entry(s2, 3, root + "/two"),
                _batch_entry(s3, 5, root + "/exists"),
                _batch_entry("pid_upload_session:nope", 0, root + "/x"),
            ]
        },
    )
    entries = res["entries"]
    assert entries[0][".tag"] == "success" and entries[0]["name"] == "one" and entries[0]["size"] == 3
    assert entries[1] == {
        ".tag": "failure",
        "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_closed"}},
    }
    assert entries[2] == {
        ".tag": "failure",
        "failure": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}},
    }
    assert entries[3] == {
        ".tag": "failure",
        "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}},
    }


def test_finish_batch_limit(api: Api) -> None:
    entries = [_batch_entry("pid_upload_session:x", 0, f"/x{i}") for i in range(1001)]
    r = api.rpc("files/upload_session/finish_batch_v2", {"entries": entries})
    assert r.status_code == 400


def test_finish_batch_async_and_check(api: Api, root: str) -> None:
    s1 = start(api, b"async", close=True)
    res = api.ok("files/upload_session/finish_batch", {"entries": [_batch_entry(s1, 5, root + "/async")]})
    assert res[".tag"] == "async_job_id"
    done = api.ok("files/upload_session/finish_batch/check", {"async_job_id": res["async_job_id"]})
    assert done[".tag"] == "complete" and done["entries"][0][".tag"] == "success"
    r = api.rpc("files/upload_session/finish_batch/check", {"async_job_id": "nope"})
    assert r.json()["error"] == {".tag": "invalid_async_job_id"}


def test_start_batch(api: Api, root: str) -> None:
    res = api.ok("files/upload_session/start_batch", {"num_sessions": 3, "session_type": "concurrent"})
    assert len(set(res["session_ids"])) == 3
    sid = res["session_ids"][0]
    assert append(api, sid, 0, b"last", close=True).status_code == 200
    assert finish(api, sid, 4, root + "/sb.bin").json()["size"] == 4
    assert api.rpc("files/upload_session/start_batch", {"num_sessions": 0}).status_code == 400
