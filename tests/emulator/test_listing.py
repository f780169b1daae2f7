"""list_folder, paging, the change journal behind continue, reset, and longpoll."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from tests.emulator.helpers import Api, summary_ok


def names(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e[".tag"], e["path_display"]) for e in entries]


def test_list_folder_shapes(api: Api, root: str) -> None:
    api.upload(root + "/b.txt", b"b")
    api.mkdir(root + "/A")
    api.upload(root + "/A/inner.txt", b"i")
    res = api.ok("files/list_folder", {"path": root})
    assert set(res) == {"entries", "cursor", "has_more"}
    assert res["has_more"] is False
    assert sorted(names(res["entries"])) == [("file", root + "/b.txt"), ("folder", root + "/A")]
    assert all(".tag" in e for e in res["entries"])


def test_recursive_lists_parents_before_children(api: Api, root: str) -> None:
    for p in ("/z/y/x.txt", "/a.txt", "/z/b.txt", "/m/n/o/p.txt"):
        api.upload(root + p, b"x")
    entries, _ = api.list_all(root, recursive=True)
    seen: set[str] = {root}
    for e in entries[1:]:
        parent = e["path_lower"].rsplit("/", 1)[0]
        assert parent == root or parent in seen, (e["path_lower"], seen)
        seen.add(e["path_lower"])
    # the listed folder itself comes first in a recursive listing, as on Dropbox
    assert entries[0]["path_lower"] == root and entries[0][".tag"] == "folder"


def test_list_folder_errors(api: Api, root: str) -> None:
    r = api.rpc("files/list_folder", {"path": root + "/missing"})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "not_found"}}
    api.upload(root + "/file", b"x")
    r = api.rpc("files/list_folder", {"path": root + "/file"})
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "not_folder"}}
    r = api.rpc("files/list_folder", {"path": root, "limit": 0})
    assert r.status_code == 400
    r = api.rpc("files/list_folder", {"path": root, "limit": 2001})
    assert r.status_code == 400


def test_root_listing_and_id_path(api: Api, root: str) -> None:
    folder = api.mkdir(root)
    res = api.ok("files/list_folder", {"path": ""})
    assert root.lower() in [e["path_lower"] for e in res["entries"]]
    api.upload(root + "/x", b"x")
    res = api.ok("files/list_folder", {"path": folder["id"]})
    assert [e["name"] for e in res["entries"]] == ["x"]


def test_paging_with_limit(api: Api, root: str) -> None:
    for i in range(25):
        api.upload(f"{root}/d{i % 3}/f{i:02}.txt", b"x")
    res = api.ok("files/list_folder", {"path": root, "recursive": True, "limit": 7})
    assert len(res["entries"]) == 7 and res["has_more"] is True
    entries, _ = api.list_all(root, recursive=True, limit=7)
    paths = [e["path_lower"] for e in entries]
    assert len(paths) == len(set(paths)) == 1 + 3 + 25


def test_continue_returns_only_changes(api: Api, root: str) -> None:
    api.upload(root + "/keep.txt", b"k")
    _, cursor = api.list_all(root)
    entries, cursor = api.changes(cursor)
    assert entries == []
    created = api.upload(root + "/new.txt", b"n")
    edited = api.upload(root + "/keep.txt", b"k2", mode="overwrite")
    entries, cursor = api.changes(cursor)
    assert sorted(names(entries)) == [("file", root + "/keep.txt"), ("file", root + "/new.txt")]
    by_name = {e["name"]: e for e in entries}
    assert by_name["keep.txt"]["rev"] == edited["rev"]
    assert by_name["new.txt"]["id"] == created["id"]
    entries, _ = api.changes(cursor)
    assert entries == []


def test_folder_delete_is_one_deleted_entry(api: Api, root: str) -> None:
    for p in ("/dir/a.txt", "/dir/sub/b.txt", "/dir/sub/c.txt"):
        api.upload(root + p, b"x")
    _, cursor = api.list_all(root)
    api.ok("files/delete_v2", {"path": root + "/dir"})
    entries, _ = api.changes(cursor)
    assert entries == [
        {".tag": "deleted", "name": "dir", "path_lower": root + "/dir", "path_display": root + "/dir"}
    ]


def test_move_is_delete_plus_adds_with_same_ids(api: Api, root: str) -> None:
    folder = api.mkdir(root + "/old")
    a = api.upload(root + "/old/a.txt", b"a")
    b = api.upload(root + "/old/s/b.txt", b"b")
    _, cursor = api.list_all(root)
    api.ok("files/move_v2", {"from_path": root + "/old", "to_path": root + "/New"})
    entries, _ = api.changes(cursor)
    assert entries[0] == {
        ".tag": "deleted",
        "name": "old",
        "path_lower": root + "/old",
        "path_display": root + "/old",
    }
    added = {e["path_lower"]: e for e in entries[1:]}
    assert set(added) == {root + "/new", root + "/new/a.txt", root + "/new/s", root + "/new/s/b.txt"}
    assert added[root + "/new"]["id"] == folder["id"]
    assert added[root + "/new/a.txt"]["id"] == a["id"]
    assert added[root + "/new/s/b.txt"]["id"] == b["id"]
    order = [e["path_lower"] for e in entries[1:]]
    assert order.index(root + "/new/s") < order.index(root + "/new/s/b.txt")


def test_non_recursive_cursor_sees_only_direct_children(api: Api, root: str) -> None:
    api.mkdir(root + "/sub")
    _, cursor = api.list_all(root, recursive=False)
    api.upload(root + "/sub/deep.txt", b"x")
    api.upload(root + "/top.txt", b"x")
    entries, _ = api.changes(cursor)
    assert names(entries) == [("file", root + "/top.txt")]


def test_delete_and_recreate_reports_both(api: Api, root: str) -> None:
    api.upload(root + "/x/old.txt", b"x")
    _, cursor = api.list_all(root)
    api.ok("files/delete_v2", {"path": root + "/x"})
    api.mkdir(root + "/x")
    entries, _ = api.changes(cursor)
    assert names(entries) == [("deleted", root + "/x"), ("folder", root + "/x")]


def test_changes_paging(api: Api, root: str) -> None:
    api.mkdir(root)
    res = api.ok("files/list_folder", {"path": root, "limit": 3})
    for i in range(10):
        api.upload(f"{root}/f{i}", b"x")
    first = api.ok("files/list_folder/continue", {"cursor": res["cursor"]})
    assert len(first["entries"]) == 3 and first["has_more"] is True
    rest, _ = api.changes(first["cursor"])
    assert len(first["entries"]) + len(rest) == 10


def test_get_latest_cursor(api: Api, root: str) -> None:
    api.upload(root + "/before", b"x")
    res = api.ok("files/list_folder/get_latest_cursor", {"path": root, "recursive": True})
    assert set(res) == {"cursor"}
    api.upload(root + "/after", b"x")
    entries, _ = api.changes(res["cursor"])
    assert names(entries) == [("file", root + "/after")]


def test_bad_cursor_is_400(api: Api) -> None:
    r = api.rpc("files/list_folder/continue", {"cursor": "garbage"})
    assert r.status_code == 400
    assert r.text.startswith('Error in call to API function "files/list_folder/continue"')


def test_tampered_cursor_is_reset(api: Api, root: str) -> None:
    api.mkdir(root)
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": root})["cursor"]
    body, sig = cursor.split(".")
    r = api.rpc("files/list_folder/continue", {"cursor": body + "." + sig[::-1]})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "reset"}


def test_reset_cursors(faulty_api: Api) -> None:
    api = faulty_api
    api.upload("/r/a.txt", b"x")
    _, cursor = api.list_all("")
    api.emu.admin("reset_cursors", {})
    r = api.rpc("files/list_folder/continue", {"cursor": cursor})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "reset"}
    assert summary_ok(r.json(), "reset")
    r = requests.post(
        f"{api.base}/2/files/list_folder/longpoll", json={"cursor": cursor, "timeout": 30}, timeout=10
    )
    assert r.status_code == 409 and r.json()["error"] == {".tag": "reset"}
    _, fresh_cursor = api.list_all("")
    assert api.changes(fresh_cursor)[0] == []


def _longpoll(base: str, cursor: str, timeout: int = 30) -> requests.Response:
    return requests.post(
        f"{base}/2/files/list_folder/longpoll",
        json={"cursor": cursor, "timeout": timeout},
        timeout=timeout + 90,
    )


def test_longpoll_wakes_on_change(api: Api, root: str) -> None:
    api.mkdir(root)
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": root, "recursive": True})["cursor"]
    result: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        r = _longpoll(api.base, cursor)
        result.update(
            status=r.status_code, body=r.json(), ctype=r.headers["Content-Type"], took=time.monotonic() - t0
        )

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert t.is_alive()
    api.upload(root + "/wake.txt", b"x")
    t.join(10)
    assert not t.is_alive()
    assert result["status"] == 200 and result["ctype"] == "application/json"
    assert result["body"] == {"changes": True}
    assert result["took"] < 5


def test_longpoll_ignores_changes_out_of_scope(api: Api, root: str) -> None:
    api.mkdir(root + "/watched")
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": root + "/watched"})["cursor"]
    api.upload(root + "/elsewhere.txt", b"x")
    done = threading.Event()

    def poll() -> None:
        _longpoll(api.base, cursor)
        done.set()

    threading.Thread(target=poll, daemon=True).start()
    assert not done.wait(1.0)
    api.upload(root + "/watched/now.txt", b"x")
    assert done.wait(10)


def test_longpoll_returns_immediately_when_changes_pending(api: Api, root: str) -> None:
    api.mkdir(root)
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": root})["cursor"]
    api.upload(root + "/x", b"x")
    t0 = time.monotonic()
    assert _longpoll(api.base, cursor).json() == {"changes": True}
    assert time.monotonic() - t0 < 3


def test_longpoll_timeout_bounds(api: Api) -> None:
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": ""})["cursor"]
    for bad in (29, 481):
        r = requests.post(
            f"{api.base}/2/files/list_folder/longpoll", json={"cursor": cursor, "timeout": bad}, timeout=10
        )
        assert r.status_code == 400


def test_longpoll_no_change_and_backoff(faulty_api: Api) -> None:
    api = faulty_api
    api.emu.set_faults(longpoll_max_s=1, longpoll_backoff_s=5)
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": ""})["cursor"]
    t0 = time.monotonic()
    r = _longpoll(api.base, cursor)
    assert r.json() == {"changes": False, "backoff": 5}
    assert 0.8 < time.monotonic() - t0 < 5


def test_include_deleted_listing(api: Api, root: str) -> None:
    api.upload(root + "/alive.txt", b"x")
    api.upload(root + "/dead.txt", b"x")
    api.ok("files/delete_v2", {"path": root + "/dead.txt"})
    plain, _ = api.list_all(root, recursive=False)
    assert names(plain) == [("file", root + "/alive.txt")]
    full, _ = api.list_all(root, recursive=False, include_deleted=True)
    assert sorted(names(full)) == [("deleted", root + "/dead.txt"), ("file", root + "/alive.txt")]


def test_waiting_longpoll_gets_reset(faulty_api: Api) -> None:
    api = faulty_api
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": ""})["cursor"]
    result: dict[str, Any] = {}

    def poll() -> None:
        r = _longpoll(api.base, cursor)
        result.update(status=r.status_code, body=r.json())

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    api.emu.admin("reset_cursors", {})
    t.join(10)
    assert result == {
        "status": 409,
        "body": {"error_summary": result["body"]["error_summary"], "error": {".tag": "reset"}},
    }


def test_cursor_of_deleted_folder_is_reset(api: Api, root: str) -> None:
    api.mkdir(root + "/watched")
    _, cursor = api.list_all(root + "/watched")
    api.ok("files/delete_v2", {"path": root})
    r = api.rpc("files/list_folder/continue", {"cursor": cursor})
    assert r.status_code == 409 and r.json()["error"] == {".tag": "reset"}
