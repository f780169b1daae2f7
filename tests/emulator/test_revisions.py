"""Revision history: ``files/list_revisions`` shapes, bounds and errors; history across delete, re-add, move
and copy; ``rev:`` downloads of old revisions; the exact ``Date`` header a client can time a cursor by."""

from __future__ import annotations

import re
import sqlite3
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.helpers import Api, summary_ok
from tests.emulator.test_files import FILE_KEYS, TS
from tests.emulator_process import start_emulator

ROUTE = "files/list_revisions"


def revs(api: Api, path: str, **arg: Any) -> dict[str, Any]:
    result: dict[str, Any] = api.ok(ROUTE, {"path": path, **arg})
    return result


def error(api: Api, arg: dict[str, Any]) -> dict[str, Any]:
    r = api.rpc(ROUTE, arg)
    assert r.status_code == 409, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = r.json()
    return body


def test_shape_newest_first(api: Api, root: str) -> None:
    first = api.upload(root + "/a.txt", b"1")
    second = api.upload(root + "/a.txt", b"2", mode="overwrite")
    third = api.upload(root + "/A.txt", b"3", mode="overwrite")
    api.upload(root + "/a.txt", b"3", mode="overwrite")  # identical content: no new revision
    res = revs(api, root + "/a.txt")
    assert list(res) == ["is_deleted", "entries", "has_more"]  # no server_deleted while the file exists
    assert res["is_deleted"] is False and res["has_more"] is False
    assert [e["rev"] for e in res["entries"]] == [third["rev"], second["rev"], first["rev"]]
    assert res["entries"][0] == third
    for entry in res["entries"]:
        assert list(entry) == FILE_KEYS  # FileMetadata: no ".tag"
        assert entry["id"] == first["id"]


def test_limit_paging_and_bounds(api: Api, root: str) -> None:
    path = root + "/p.txt"
    made = [api.upload(path, bytes([i]), mode="overwrite")["rev"] for i in range(12)][::-1]
    assert [e["rev"] for e in revs(api, path)["entries"]] == made[:10]  # default limit 10
    page = revs(api, path, limit=5)
    assert [e["rev"] for e in page["entries"]] == made[:5] and page["has_more"] is True
    rest = revs(api, path, limit=100, before_rev=made[4])
    assert [e["rev"] for e in rest["entries"]] == made[5:] and rest["has_more"] is False
    for bad, message in [
        (0, "request body: limit: 0 is not within range [1, 100]"),
        (101, "request body: limit: 101 is not within range [1, 100]"),
        ("5", "request body: limit: '5' expected to be an integer, got string"),
    ]:
        r = api.rpc(ROUTE, {"path": path, "limit": bad})
        assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/plain")
        assert r.text == f'Error in call to API function "{ROUTE}": {message}'
    r = api.rpc(ROUTE, {"path": path, "before_rev": "abc"})
    assert r.status_code == 400 and "must be at least 9 characters" in r.text
    body = error(api, {"path": path, "before_rev": "0123456789abcdef0"})
    assert body["error"] == {".tag": "invalid_before_rev"} and summary_ok(body, "invalid_before_rev")
    body = error(api, {"path": path, "mode": "id", "before_rev": made[1]})
    assert body["error"] == {".tag": "before_rev_not_supported"}


def test_lookup_errors(api: Api, root: str) -> None:
    api.mkdir(root + "/dir")
    body = error(api, {"path": root + "/nothing.txt"})
    assert body["error"] == {".tag": "path", "path": {".tag": "not_found"}}
    assert summary_ok(body, "path/not_found")
    assert error(api, {"path": root + "/dir"})["error"]["path"] == {".tag": "not_file"}
    assert error(api, {"path": "id:doesnotexist0000000000"})["error"]["path"] == {".tag": "not_found"}
    for bad in ("", "rev:0123456789", "relative.txt"):
        r = api.rpc(ROUTE, {"path": bad})
        assert r.status_code == 400 and "did not match pattern" in r.text, bad
    r = api.rpc(ROUTE, {"path": root + "/x", "mode": "newest"})
    assert r.status_code == 400 and "unknown tag 'newest'" in r.text


def test_history_survives_delete_and_re_add(api: Api, root: str) -> None:
    path = root + "/d.txt"
    old = [api.upload(path, b"one"), api.upload(path, b"two", mode="overwrite")]
    api.ok("files/delete_v2", {"path": path})
    gone = revs(api, path)
    assert gone["is_deleted"] is True and TS.fullmatch(gone["server_deleted"])
    assert [e["rev"] for e in gone["entries"]] == [old[1]["rev"], old[0]["rev"]]
    new = api.upload(path, b"three")
    assert new["id"] != old[0]["id"]
    back = revs(api, path)
    assert back["is_deleted"] is False and "server_deleted" not in back
    assert [e["rev"] for e in back["entries"]] == [new["rev"], old[1]["rev"], old[0]["rev"]]
    assert [e["id"] for e in back["entries"]] == [new["id"], old[0]["id"], old[0]["id"]]
    # mode=id follows the current file's id: the earlier file at this path is another file
    assert [e["rev"] for e in revs(api, path, mode="id")["entries"]] == [new["rev"]]


def test_move_and_copy_are_new_revisions_at_the_new_path(api: Api, root: str) -> None:
    up = api.upload(root + "/m/a.txt", b"a")
    arg = {"from_path": root + "/m/a.txt", "to_path": root + "/n/b.txt"}
    moved = api.ok("files/move_v2", arg)["metadata"]
    assert moved["id"] == up["id"] and moved["rev"] != up["rev"]
    at_new = revs(api, root + "/n/b.txt")
    assert [e["rev"] for e in at_new["entries"]] == [moved["rev"]]
    by_id = revs(api, root + "/n/b.txt", mode="id")
    assert [(e["rev"], e["path_lower"]) for e in by_id["entries"]] == [
        (moved["rev"], root + "/n/b.txt"),
        (up["rev"], root + "/m/a.txt"),
    ]
    assert by_id["is_deleted"] is False
    at_old = revs(api, root + "/m/a.txt")
    assert at_old["is_deleted"] is True and "server_deleted" in at_old
    assert [e["rev"] for e in at_old["entries"]] == [up["rev"]]
    copy = api.ok("files/copy_v2", {"from_path": root + "/n/b.txt", "to_path": root + "/c.txt"})["metadata"]
    copied = revs(api, root + "/c.txt", mode="id")["entries"]
    assert [(e["rev"], e["id"]) for e in copied] == [(copy["rev"], copy["id"])]
    # moving a folder gives every file in it a new revision at its new path
    api.upload(root + "/f/x/in.txt", b"in")
    api.ok("files/move_v2", {"from_path": root + "/f", "to_path": root + "/g"})
    assert len(revs(api, root + "/g/x/in.txt")["entries"]) == 1
    assert revs(api, root + "/f/x/in.txt")["is_deleted"] is True


def test_old_revisions_download_when_small_and_recent(api: Api, root: str) -> None:
    path = root + "/r.txt"
    made = [api.upload(path, f"v{i}".encode(), mode="overwrite")["rev"] for i in range(12)]
    assert api.download("rev:" + made[-1]).content == b"v11"
    r = api.download("rev:" + made[5])
    assert r.status_code == 200 and r.content == b"v5"
    md = r.headers["Dropbox-API-Result"]
    assert made[5] in md and path.lower() in md
    assert api.download("rev:" + made[1]).status_code == 409  # older than the newest 10: bytes not kept
    flags = [e["is_restorable"] for e in revs(api, path, limit=12, include_restorable_info=True)["entries"]]
    assert flags == [True] * 10 + [False] * 2
    assert "is_restorable" not in revs(api, path)["entries"][0]
    big = root + "/big.bin"
    first = api.upload(big, b"\0" * (1 << 20 | 1))["rev"]
    api.upload(big, b"\1" * (1 << 20 | 1), mode="overwrite")
    r = api.download("rev:" + first)
    assert r.status_code == 409 and r.json()["error"]["path"] == {".tag": "not_found"}
    api.ok("files/delete_v2", {"path": path})
    assert api.download("rev:" + made[-1]).content == b"v11"  # a deleted file's recent bytes stay readable


def test_history_is_bounded_per_path(fresh_api: Api) -> None:
    api = fresh_api
    made = [api.upload("/many.txt", str(i).encode(), mode="overwrite")["rev"] for i in range(103)]
    res = revs(api, "/many.txt", limit=100)
    assert [e["rev"] for e in res["entries"]] == made[::-1][:100] and res["has_more"] is False
    revblobs = api.emu.data_dir / "revblobs"
    deadline = time.monotonic() + 5  # pruned bytes are unlinked off the tree lock, just after the commit
    while len(list(revblobs.iterdir())) != 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(revblobs.iterdir())) == 10


def test_history_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emu = start_emulator(data_dir)
    try:
        api = Api(emu)
        first = api.upload("/h.txt", b"1")
        second = api.upload("/h.txt", b"2", mode="overwrite")
        api.ok("files/delete_v2", {"path": "/h.txt"})
        token = api.token
    finally:
        emu.stop()
    (data_dir / "revblobs" / "999999").write_bytes(b"orphan")  # a crash between link and commit
    emu = start_emulator(data_dir)
    try:
        api = Api(emu, token=token)
        res = revs(api, "/h.txt")
        assert res["is_deleted"] is True
        assert [e["rev"] for e in res["entries"]] == [second["rev"], first["rev"]]
        assert api.download("rev:" + first["rev"]).content == b"1"
        assert not (data_dir / "revblobs" / "999999").exists()
    finally:
        emu.stop()


def test_date_header_is_exact_and_single(api: Api, root: str) -> None:
    r = api.upload_raw("files/upload", {"path": root + "/t.txt"}, b"t")
    assert len(r.raw.headers.getlist("Date")) == 1
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", r.headers["Date"])
    date = parsedate_to_datetime(r.headers["Date"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The Date is stamped after the commit, from the same clock: never earlier than server_modified.
    assert date >= r.json()["server_modified"]


@pytest.mark.parametrize("arg", [{"path": "/x", "include_restorable_info": "yes"}, None])
def test_bad_arguments_are_400(api: Api, arg: Any) -> None:
    r = api.rpc(ROUTE, arg)
    assert r.status_code == 400


def test_data_dir_from_before_histories_still_answers(tmp_path: Path) -> None:
    """A data dir written by an emulator without revision history (no rows): the current file is listed."""
    data_dir = tmp_path / "data"
    emu = start_emulator(data_dir)
    try:
        api = Api(emu)
        up = api.upload("/old.txt", b"old")
        token = api.token
    finally:
        emu.stop()
    with sqlite3.connect(data_dir / "emulator.sqlite3") as db:
        db.execute("DROP TABLE revisions")
    emu = start_emulator(data_dir)
    try:
        api = Api(emu, token=token)
        res = revs(api, "/old.txt", include_restorable_info=True)
        assert res["is_deleted"] is False
        assert res["entries"] == [{**up, "is_restorable": True}]
    finally:
        emu.stop()
