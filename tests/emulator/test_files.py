"""Files: shapes, content hash vectors, write modes, unicode and case rules, move/copy, ranges."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from tests.emulator.helpers import BLOCK, Api, content_hash, summary_ok

FILE_KEYS = [
    "name",
    "path_lower",
    "path_display",
    "id",
    "client_modified",
    "server_modified",
    "rev",
    "size",
    "is_downloadable",
    "content_hash",
]
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# Reference section 4: data = b"A" * n.
VECTORS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42",
    2: "01e0655fb754d10418a73760f57515f4903b298e6d67dda6bf0987fa79c22c88",
    4096: "8620913d33852befe09f16fff8fd75f77a83160d29f76f07e0276e9690903035",
    4194303: "647c8627d70f7a7d13ce96b1e7710a771a55d41a62c3da490d92e56044d311fa",
    4194304: "d4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3",
    4194305: "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92",
    8388607: "83b30cf4fb5195b04a937727ae379cf3d06673bf8f77947f6a92858536e8369c",
    8388608: "e08b3ba1f538804075c5f939accdeaa9efc7b5c01865c94a41e78ca6550a88e7",
    8388609: "02c8a4aefc2bfc9036f89a7098001865885938ca580e5c9e5db672385edd303c",
}


def test_helper_matches_published_vectors() -> None:
    for n, expected in VECTORS.items():
        assert content_hash(b"A" * n) == expected


@pytest.mark.parametrize("n", sorted(VECTORS))
def test_server_content_hash_vectors(api: Api, root: str, n: int) -> None:
    data = b"A" * n
    md = api.upload(f"{root}/v{n}", data, content_hash=content_hash(data))
    assert md["content_hash"] == VECTORS[n]
    assert md["size"] == n


def test_upload_shape_has_no_tag(api: Api, root: str) -> None:
    md = api.upload(root + "/Hello.TXT", b"hello")
    assert list(md) == FILE_KEYS
    assert ".tag" not in md
    assert md["name"] == "Hello.TXT"
    assert md["path_lower"] == root + "/hello.txt"
    assert md["path_display"] == root + "/Hello.TXT"
    assert re.fullmatch(r"id:[A-Za-z0-9_-]{22}", md["id"])
    assert re.fullmatch(r"[0-9a-f]{9,}", md["rev"])
    assert TS.fullmatch(md["server_modified"]) and TS.fullmatch(md["client_modified"])
    assert md["is_downloadable"] is True


def test_get_metadata_has_tag(api: Api, root: str) -> None:
    up = api.upload(root + "/f.txt", b"x")
    md = api.ok("files/get_metadata", {"path": root + "/F.txt"})
    assert md == {".tag": "file", **up}
    folder = api.ok("files/get_metadata", {"path": root})
    assert folder[".tag"] == "folder"
    assert set(folder) == {".tag", "name", "path_lower", "path_display", "id"}


def test_get_metadata_root_is_400(api: Api) -> None:
    r = api.rpc("files/get_metadata", {"path": ""})
    assert r.status_code == 400
    assert "The root folder is unsupported." in r.text


def test_content_hash_mismatch(api: Api, root: str) -> None:
    r = api.upload_raw("files/upload", {"path": root + "/m", "content_hash": content_hash(b"other")}, b"data")
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "content_hash_mismatch"}
    assert summary_ok(r.json(), "content_hash_mismatch")
    assert api.rpc("files/get_metadata", {"path": root + "/m"}).status_code == 409


def test_client_modified_kept(api: Api, root: str) -> None:
    md = api.upload(root + "/cm", b"x", client_modified="2015-05-15T15:50:38Z")
    assert md["client_modified"] == "2015-05-15T15:50:38Z"
    r = api.upload_raw("files/upload", {"path": root + "/cm2", "client_modified": "yesterday"}, b"x")
    assert r.status_code == 400


@pytest.mark.parametrize(
    "name",
    [
        "caf\u00e9.txt",
        "\U0001f600 emoji \U0001f680.bin",
        "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb",
    ],
)
def test_unicode_paths_round_trip(api: Api, root: str, name: str) -> None:
    path = f"{root}/{name}"
    md = api.upload(path, name.encode())
    assert md["path_display"] == path
    assert md["path_lower"] == unicodedata.normalize("NFC", path).lower()
    r = api.download(path)
    assert r.status_code == 200 and r.content == name.encode()
    assert api.ok("files/get_metadata", {"path": path.upper()})["id"] == md["id"]


def test_nfc_and_nfd_are_the_same_item(api: Api, root: str) -> None:
    nfc = root + "/" + unicodedata.normalize("NFC", "Caf\u00e9")
    nfd = root + "/" + unicodedata.normalize("NFD", "Caf\u00e9")
    md = api.upload(nfc, b"1")
    assert api.ok("files/get_metadata", {"path": nfd})["id"] == md["id"]


def test_case_insensitive_and_case_preserving(api: Api, root: str) -> None:
    api.mkdir(root + "/Docs")
    md = api.upload(root + "/docs/Report.PDF", b"pdf")
    assert md["path_display"] == root + "/Docs/Report.PDF"
    assert api.download(root + "/DOCS/report.pdf").content == b"pdf"
    r = api.upload_raw("files/upload", {"path": root + "/DOCS/REPORT.pdf"}, b"other")
    assert r.status_code == 409
    assert r.json()["error"]["reason"] == {".tag": "conflict", "conflict": {".tag": "file"}}


def test_upload_creates_parents(api: Api, root: str) -> None:
    api.upload(root + "/a/b/c/d.txt", b"deep")
    for p in ("/a", "/a/b", "/a/b/c"):
        assert api.ok("files/get_metadata", {"path": root + p})[".tag"] == "folder"


def test_add_conflict_shape_and_autorename(api: Api, root: str) -> None:
    api.upload(root + "/doc.txt", b"one")
    r = api.upload_raw("files/upload", {"path": root + "/doc.txt"}, b"two")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err[".tag"] == "path"
    assert err["reason"] == {".tag": "conflict", "conflict": {".tag": "file"}}
    assert err["upload_session_id"]
    assert summary_ok(r.json(), "path/conflict/file")
    md = api.upload(root + "/doc.txt", b"two", autorename=True)
    assert md["name"] == "doc (1).txt"
    md = api.upload(root + "/doc.txt", b"three", autorename=True)
    assert md["name"] == "doc (2).txt"


def test_failed_upload_session_id_can_be_finished(api: Api, root: str) -> None:
    api.upload(root + "/x.txt", b"one")
    r = api.upload_raw("files/upload", {"path": root + "/x.txt"}, b"second")
    sid = r.json()["error"]["upload_session_id"]
    r = api.upload_raw(
        "files/upload_session/finish",
        {"cursor": {"session_id": sid, "offset": 6}, "commit": {"path": root + "/y.txt"}},
    )
    assert r.status_code == 200, r.text
    assert api.download(root + "/y.txt").content == b"second"


def test_identical_content_is_a_noop(api: Api, root: str) -> None:
    first = api.upload(root + "/same.txt", b"same")
    again = api.upload(root + "/same.txt", b"same")
    assert again["rev"] == first["rev"]
    renamed = api.upload(root + "/same.txt", b"same", autorename=True)
    assert renamed["name"] == "same.txt" and renamed["rev"] == first["rev"]


def test_overwrite_keeps_id_and_changes_rev(api: Api, root: str) -> None:
    first = api.upload(root + "/o.txt", b"v1")
    second = api.upload(root + "/o.txt", b"v2", mode="overwrite")
    assert second["id"] == first["id"] and second["rev"] != first["rev"]
    assert api.download(root + "/o.txt").content == b"v2"


def test_update_mode(api: Api, root: str) -> None:
    first = api.upload(root + "/u.txt", b"v1")
    ok = api.upload(root + "/u.txt", b"v2", mode={".tag": "update", "update": first["rev"]})
    r = api.upload_raw(
        "files/upload", {"path": root + "/u.txt", "mode": {".tag": "update", "update": first["rev"]}}, b"v3"
    )
    assert r.status_code == 409
    assert r.json()["error"]["reason"]["conflict"] == {".tag": "file"}
    copy = api.upload(
        root + "/u.txt", b"v3", mode={".tag": "update", "update": first["rev"]}, autorename=True
    )
    assert copy["name"] == "u (conflicted copy).txt"
    assert api.ok("files/get_metadata", {"path": root + "/u.txt"})["rev"] == ok["rev"]


def test_strict_conflict(api: Api, root: str) -> None:
    first = api.upload(root + "/s.txt", b"v1")
    api.upload(root + "/s.txt", b"v2", mode="overwrite")
    # identical content with a stale rev: a no-op normally, a conflict when strict
    api.upload(root + "/s.txt", b"v2", mode={".tag": "update", "update": first["rev"]})
    r = api.upload_raw(
        "files/upload",
        {
            "path": root + "/s.txt",
            "mode": {".tag": "update", "update": first["rev"]},
            "strict_conflict": True,
        },
        b"v2",
    )
    assert r.status_code == 409


def test_upload_onto_folder_and_under_file(api: Api, root: str) -> None:
    api.mkdir(root + "/dir")
    r = api.upload_raw("files/upload", {"path": root + "/dir"}, b"x")
    assert r.json()["error"]["reason"] == {".tag": "conflict", "conflict": {".tag": "folder"}}
    api.upload(root + "/file", b"x")
    r = api.upload_raw("files/upload", {"path": root + "/file/child"}, b"x")
    assert r.json()["error"]["reason"] == {".tag": "conflict", "conflict": {".tag": "file_ancestor"}}
    assert summary_ok(r.json(), "path/conflict/file_ancestor")


@pytest.mark.parametrize("bad", ["/a/", "/a//b", "/a/ ", "/a/./b", "/a\x00b", "/a\x7fb", "/\x7f/c"])
def test_malformed_paths(api: Api, root: str, bad: str) -> None:
    """Refused with the bare tag (``malformed_path`` is ``String?`` in files.stone; Dropbox sends no text)."""
    r = api.upload_raw("files/upload", {"path": root + bad}, b"x")
    assert r.status_code == 409
    assert r.json()["error"]["reason"] == {".tag": "malformed_path"}
    r = api.rpc("files/get_metadata", {"path": root + bad})
    assert r.status_code == 409
    assert r.json()["error"]["path"] == {".tag": "malformed_path"}
    assert summary_ok(r.json(), "path/malformed_path")
    r = api.rpc("files/create_folder_v2", {"path": root + bad})
    assert r.status_code == 409 and r.json()["error"]["path"] == {".tag": "malformed_path"}


def test_disallowed_name(api: Api, root: str) -> None:
    r = api.upload_raw("files/upload", {"path": root + "/Thumbs.db"}, b"x")
    assert r.json()["error"]["reason"] == {".tag": "disallowed_name"}


def test_get_metadata_include_deleted(api: Api, root: str) -> None:
    api.upload(root + "/gone.txt", b"x")
    api.ok("files/delete_v2", {"path": root + "/gone.txt"})
    r = api.rpc("files/get_metadata", {"path": root + "/gone.txt"})
    assert r.status_code == 409
    md = api.ok("files/get_metadata", {"path": root + "/gone.txt", "include_deleted": True})
    assert md == {
        ".tag": "deleted",
        "name": "gone.txt",
        "path_lower": root + "/gone.txt",
        "path_display": root + "/gone.txt",
    }


def test_id_and_rev_paths(api: Api, root: str) -> None:
    md = api.upload(root + "/sub/idfile.txt", b"by id")
    folder = api.ok("files/get_metadata", {"path": root + "/sub"})
    assert api.ok("files/get_metadata", {"path": md["id"]})["path_display"] == md["path_display"]
    assert api.ok("files/get_metadata", {"path": folder["id"] + "/idfile.txt"})["id"] == md["id"]
    assert api.download("rev:" + md["rev"]).content == b"by id"
    assert api.download(md["id"]).content == b"by id"
    r = api.rpc("files/get_metadata", {"path": "id:doesnotexist0000000000"})
    assert r.json()["error"]["path"] == {".tag": "not_found"}


def test_create_folder(api: Api, root: str) -> None:
    r = api.rpc("files/create_folder_v2", {"path": root + "/New"})
    assert r.status_code == 200
    md = r.json()["metadata"]
    assert ".tag" not in md and md["name"] == "New"
    r = api.rpc("files/create_folder_v2", {"path": root + "/new"})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}}
    assert summary_ok(r.json(), "path/conflict/folder")
    md = api.ok("files/create_folder_v2", {"path": root + "/new", "autorename": True})["metadata"]
    assert md["name"] == "new (1)"


def test_delete_returns_tagged_metadata(api: Api, root: str) -> None:
    up = api.upload(root + "/d/x.txt", b"x")
    res = api.ok("files/delete_v2", {"path": root + "/d/x.txt"})
    assert res["metadata"] == {".tag": "file", **up}
    res = api.ok("files/delete_v2", {"path": root + "/d"})
    assert res["metadata"][".tag"] == "folder"
    r = api.rpc("files/delete_v2", {"path": root + "/d"})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "path_lookup", "path_lookup": {".tag": "not_found"}}
    assert summary_ok(r.json(), "path_lookup/not_found")


def test_delete_folder_removes_subtree(api: Api, root: str) -> None:
    api.upload(root + "/tree/a/b.txt", b"b")
    api.ok("files/delete_v2", {"path": root + "/tree"})
    assert api.rpc("files/get_metadata", {"path": root + "/tree/a/b.txt"}).status_code == 409


def test_move_keeps_id(api: Api, root: str) -> None:
    up = api.upload(root + "/m/a.txt", b"a")
    res = api.ok("files/move_v2", {"from_path": root + "/m/a.txt", "to_path": root + "/n/B.txt"})
    md = res["metadata"]
    assert md[".tag"] == "file" and md["id"] == up["id"] and md["name"] == "B.txt"
    assert api.download(root + "/n/b.txt").content == b"a"
    assert api.rpc("files/get_metadata", {"path": root + "/m/a.txt"}).status_code == 409


def test_move_folder_and_errors(api: Api, root: str) -> None:
    f = api.mkdir(root + "/src")
    child = api.upload(root + "/src/c.txt", b"c")
    api.mkdir(root + "/dst")
    r = api.rpc("files/move_v2", {"from_path": root + "/src", "to_path": root + "/dst"})
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "to", "to": {".tag": "conflict", "conflict": {".tag": "folder"}}}
    r = api.rpc("files/move_v2", {"from_path": root + "/src", "to_path": root + "/src/inner"})
    assert r.json()["error"] == {".tag": "cant_move_folder_into_itself"}
    r = api.rpc("files/move_v2", {"from_path": root + "/nope", "to_path": root + "/x"})
    assert r.json()["error"] == {".tag": "from_lookup", "from_lookup": {".tag": "not_found"}}
    md = api.ok("files/move_v2", {"from_path": root + "/src", "to_path": root + "/dst", "autorename": True})
    assert md["metadata"]["name"] == "dst (1)" and md["metadata"]["id"] == f["id"]
    moved = api.ok("files/get_metadata", {"path": root + "/dst (1)/c.txt"})
    assert moved["id"] == child["id"]


def test_copy_gets_new_ids(api: Api, root: str) -> None:
    up = api.upload(root + "/c/a.txt", b"copy me")
    res = api.ok("files/copy_v2", {"from_path": root + "/c", "to_path": root + "/c2"})
    assert res["metadata"][".tag"] == "folder"
    copied = api.ok("files/get_metadata", {"path": root + "/c2/a.txt"})
    assert copied["id"] != up["id"] and copied["content_hash"] == up["content_hash"]
    assert api.download(root + "/c2/a.txt").content == b"copy me"
    api.ok("files/delete_v2", {"path": root + "/c"})
    assert api.download(root + "/c2/a.txt").content == b"copy me"


def test_download_shape_etag_and_304(api: Api, root: str) -> None:
    up = api.upload(root + "/e.bin", b"0123456789")
    r = api.download(root + "/e.bin")
    assert r.status_code == 200
    assert r.headers["ETag"] == f'W/"{up["rev"]}"'

    assert json.loads(r.headers["Dropbox-API-Result"]) == up
    r = api.download(root + "/e.bin", **{"If-None-Match": f'W/"{up["rev"]}"'})
    assert r.status_code == 304 and r.content == b""
    r = api.download(root + "/e.bin", **{"If-None-Match": 'W/"000000000"'})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=2-5", b"2345", "bytes 2-5/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
    ],
)
def test_download_ranges(api: Api, root: str, header: str, body: bytes, content_range: str) -> None:
    api.upload(root + "/r.bin", b"0123456789")
    r = api.download(root + "/r.bin", Range=header)
    assert r.status_code == 206
    assert r.content == body
    assert r.headers["Content-Range"] == content_range


def test_download_unsatisfiable_range_and_empty_file(api: Api, root: str) -> None:
    api.upload(root + "/r.bin", b"0123456789")
    r = api.download(root + "/r.bin", Range="bytes=10-")
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */10"
    api.upload(root + "/empty", b"")
    r = api.download(root + "/empty", Range="bytes=0-")
    assert r.status_code == 200 and r.content == b""


def test_download_errors(api: Api, root: str) -> None:
    r = api.download(root + "/missing")
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "not_found"}}
    api.mkdir(root + "/folder")
    r = api.download(root + "/folder")
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "not_file"}}


def test_multi_block_download_streams(api: Api, root: str) -> None:
    data = bytes(range(256)) * (BLOCK // 256 * 2 + 7)
    md = api.upload(root + "/big.bin", data, content_hash=content_hash(data))
    assert md["content_hash"] == content_hash(data)
    r = api.download(root + "/big.bin")
    assert r.content == data
    assert r.headers["Content-Length"] == str(len(data))


def test_shared_links(api: Api, root: str) -> None:
    up = api.upload(root + "/share.txt", b"s")
    link = api.ok("sharing/create_shared_link_with_settings", {"path": root + "/share.txt"})
    assert link[".tag"] == "file" and link["url"].startswith("http")
    assert link["id"] == up["id"] and link["rev"] == up["rev"]
    r = api.rpc("sharing/create_shared_link_with_settings", {"path": root + "/share.txt"})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err[".tag"] == "shared_link_already_exists"
    assert err["shared_link_already_exists"]["metadata"]["url"] == link["url"]
    links = api.ok("sharing/list_shared_links", {"path": root + "/share.txt"})
    assert [x["url"] for x in links["links"]] == [link["url"]] and links["has_more"] is False
    r = api.rpc("sharing/create_shared_link_with_settings", {"path": root + "/none"})
    assert r.json()["error"] == {".tag": "path", "path": {".tag": "not_found"}}


@pytest.mark.slow
def test_upload_over_150_mib_is_payload_too_large(api: Api, root: str) -> None:
    data = b"\0" * (150 * 1024 * 1024 + 1)
    r = api.upload_raw("files/upload", {"path": root + "/huge"}, data)
    assert r.status_code == 409
    assert r.json()["error"] == {".tag": "payload_too_large"}


def test_case_only_rename(api: Api, root: str) -> None:
    up = api.upload(root + "/name.txt", b"x")
    md = api.ok("files/move_v2", {"from_path": root + "/name.txt", "to_path": root + "/NAME.txt"})["metadata"]
    assert md["name"] == "NAME.txt" and md["id"] == up["id"]
    assert api.ok("files/get_metadata", {"path": root + "/name.txt"})["path_display"] == root + "/NAME.txt"


def test_space_usage_counts_bytes(fresh_api: Api) -> None:
    fresh_api.upload("/u.bin", b"x" * 1234)
    assert fresh_api.ok("users/get_space_usage")["used"] == 1234
