"""Where Dropbox's rules differ from the obvious ones: its case folding, what list_folder/continue leaves
out, and the switches that produce each answer the spec allows (issue 14 items 1-3)."""

# ruff: noqa: RUF003  (the comments show the letters under test)

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_provider_dropbox.emulator.paths import norm
from tests.emulator.helpers import BLOCK, Api, content_hash
from tests.emulator.test_sessions import append, finish, start
from tests.emulator_process import EmulatorProcess

# (name as uploaded, Dropbox's path_lower of it): older Unicode rules, one code point at a time.
FOLDS = [
    ("\u03a3\u03a3\u03a3", "\u03c3\u03c3\u03c3"),  # ΣΣΣ -> σσσ: no final sigma (Python 3: σσς)
    ("\u039f\u0394\u039f\u03a3", "\u03bf\u03b4\u03bf\u03c3"),  # ΟΔΟΣ -> οδοσ
    ("\u0130stanbul", "istanbul"),  # Turkish dotted capital I -> one "i" (Python 3: i + U+0307)
    ("\ua64a.txt", "\ua64a.txt"),  # Cyrillic Ꙋ (Unicode 5.1) unchanged (Python 3: ꙋ)
    ("\u041f\u0420\u0418\u0412\u0415\u0422", "\u043f\u0440\u0438\u0432\u0435\u0442"),  # ПРИВЕТ -> привет
    ("STRA\u1e9eE", "stra\u1e9ee"),  # capital sharp s (5.1) unchanged (Python 3: ß)
    ("Stra\u00dfe", "stra\u00dfe"),  # ß stays ß (no full case folding to "ss")
    ("\ufb00 LIGATURE", "\ufb00 ligature"),  # the ff ligature is left alone
    ("\u13a0\u13a1", "\u13a0\u13a1"),  # Cherokee capitals (lower case only since 8.0) unchanged
]


@pytest.mark.parametrize(("name", "lower"), FOLDS)
def test_path_lower_folds_like_dropbox(api: Api, root: str, name: str, lower: str) -> None:
    md = api.upload(f"{root}/{name}", name.encode())
    assert md["path_display"] == f"{root}/{name}"
    assert md["path_lower"] == f"{root.lower()}/{lower}"
    assert api.ok("files/get_metadata", {"path": f"{root}/{lower}"})["id"] == md["id"]
    listed, _ = api.list_all(root)
    assert [e["path_lower"] for e in listed if e[".tag"] == "file"] == [md["path_lower"]]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("\u03c3\u03c3\u03c3", "\u03c3\u03c3\u03c2"),  # σσσ and σσς: different names on Dropbox
        ("\ua64a", "\ua64b"),  # Ꙋ and ꙋ
        ("stra\u1e9ee", "stra\u00dfe"),  # ẞ and ß
        ("\u13a0", "\uab70"),  # Cherokee capital and small A
    ],
)
def test_names_python3_would_merge_are_distinct_items(api: Api, root: str, first: str, second: str) -> None:
    a = api.upload(f"{root}/{first}", b"1")
    b = api.upload(f"{root}/{second}", b"2")
    assert a["id"] != b["id"]
    assert api.download(f"{root}/{first}").content == b"1"
    assert api.download(f"{root}/{second}").content == b"2"


@pytest.mark.parametrize(
    ("upper", "lower"), [("\u0130STANBUL", "istanbul"), ("\u03a3\u039f\u03a3", "\u03c3\u03bf\u03c3")]
)
def test_any_casing_finds_the_item(api: Api, root: str, upper: str, lower: str) -> None:
    md = api.upload(f"{root}/{lower}", b"x")
    assert api.ok("files/get_metadata", {"path": f"{root}/{upper}"})["id"] == md["id"]
    r = api.upload_raw("files/upload", {"path": f"{root}/{upper}"}, b"y")
    assert r.status_code == 409 and r.json()["error"]["reason"]["conflict"][".tag"] == "file"


# ------------------------------------------------------------------ case-only renames


def test_continue_does_not_report_case_only_renames(api: Api, root: str) -> None:
    """files.stone, Metadata.path_display: changes to only the casing are not returned by continue."""
    api.upload(f"{root}/a.txt", b"a")
    api.upload(f"{root}/Dir/x.txt", b"x")
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": root, "recursive": True})["cursor"]
    api.ok("files/move_v2", {"from_path": f"{root}/a.txt", "to_path": f"{root}/A.txt"})
    api.ok("files/move_v2", {"from_path": f"{root}/Dir", "to_path": f"{root}/DIR"})
    changed, cursor = api.changes(cursor)
    assert changed == []
    # the new case shows in a full listing, and in any later change of the item
    listed, _ = api.list_all(root)
    assert {e["path_display"] for e in listed} >= {f"{root}/A.txt", f"{root}/DIR", f"{root}/DIR/x.txt"}
    api.upload(f"{root}/dir/x.txt", b"changed", mode="overwrite")
    changed, cursor = api.changes(cursor)
    assert [e["path_display"] for e in changed] == [f"{root}/DIR/x.txt"]
    # a rename that changes more than the case is reported (deleted old name, new name)
    api.ok("files/move_v2", {"from_path": f"{root}/A.txt", "to_path": f"{root}/b.txt"})
    changed, _ = api.changes(cursor)
    assert [(e[".tag"], e["name"]) for e in changed] == [("deleted", "A.txt"), ("file", "b.txt")]


# ------------------------------------------------------------------ switches (answers the spec allows)


def _concurrent_upload(api: Api, path: str, data: bytes, resend_first: bool) -> tuple[int, Any]:
    sid = start(api, session_type="concurrent")
    assert append(api, sid, 0, data[:BLOCK]).status_code == 200
    r = append(api, sid, 0, data[:BLOCK]) if resend_first else None
    assert append(api, sid, BLOCK, data[BLOCK:], close=True).status_code == 200
    fin = finish(api, sid, len(data), path)
    assert fin.status_code == 200, fin.text
    assert api.download(path).content == data
    assert r is not None
    return r.status_code, r.json()


def test_resent_concurrent_piece_incorrect_offset_or_accepted(
    faulty_api: Api, faulty_emulator: EmulatorProcess
) -> None:
    data = os.urandom(BLOCK + 10)
    status, body = _concurrent_upload(faulty_api, "/sw/piece-default.bin", data, resend_first=True)
    assert status == 409 and body["error"] == {".tag": "incorrect_offset", "correct_offset": BLOCK}
    faulty_emulator.set_faults(resent_piece="accept")
    status, body = _concurrent_upload(faulty_api, "/sw/piece-accept.bin", data, resend_first=True)
    assert status == 200 and body is None
    md = faulty_api.ok("files/get_metadata", {"path": "/sw/piece-accept.bin"})
    assert md["content_hash"] == content_hash(data)


def test_cursor_of_a_deleted_folder_reset_or_not_found(
    faulty_api: Api, faulty_emulator: EmulatorProcess
) -> None:
    for setting, error in (
        ("reset", {".tag": "reset"}),
        ("not_found", {".tag": "path", "path": {".tag": "not_found"}}),
    ):
        faulty_emulator.set_faults(deleted_folder_cursor=setting)
        folder = f"/sw/gone-{setting}"
        faulty_api.upload(folder + "/f.txt", b"x")
        cursor = faulty_api.ok("files/list_folder/get_latest_cursor", {"path": folder})["cursor"]
        faulty_api.ok("files/delete_v2", {"path": folder})
        r = faulty_api.rpc("files/list_folder/continue", {"cursor": cursor})
        assert r.status_code == 409 and r.json()["error"] == error


def test_continue_page_with_several_entries_for_one_path(
    faulty_api: Api, faulty_emulator: EmulatorProcess
) -> None:
    for setting, expected in (
        (False, [("file", "f.txt"), ("deleted", "g.txt"), ("file", "g.txt")]),
        (True, [("file", "f.txt"), ("file", "f.txt"), ("deleted", "g.txt"), ("file", "g.txt")]),
    ):
        faulty_emulator.set_faults(repeat_paths=setting)
        folder = f"/sw/repeat-{setting}"
        faulty_api.upload(folder + "/g.txt", b"g")
        cursor = faulty_api.ok("files/list_folder/get_latest_cursor", {"path": folder})["cursor"]
        faulty_api.upload(folder + "/f.txt", b"1", mode="overwrite")
        faulty_api.upload(folder + "/f.txt", b"2", mode="overwrite")
        faulty_api.ok("files/delete_v2", {"path": folder + "/g.txt"})
        faulty_api.upload(folder + "/g.txt", b"g2")
        changed, _ = faulty_api.changes(cursor)
        got = [(e[".tag"], e["name"]) for e in changed]
        assert sorted(got) == sorted(expected), setting
        if setting:  # journal order: apply in order, the last entry of a path wins
            assert got == [("file", "f.txt"), ("file", "f.txt"), ("deleted", "g.txt"), ("file", "g.txt")]


def test_switches_refuse_unknown_values(faulty_emulator: EmulatorProcess) -> None:
    import urllib.error

    for body in ({"resent_piece": "maybe"}, {"deleted_folder_cursor": 1}, {"repeat_paths": "yes"}):
        with pytest.raises(urllib.error.HTTPError) as err:
            faulty_emulator.set_faults(**body)
        assert err.value.code == 400


@pytest.mark.parametrize(
    ("given", "folded"),
    [
        ("\u10a0", "\u2d00"),  # Georgian Asomtavruli -> Nuskhuri: a pair Unicode 4.1 added
        ("\u2c00", "\u2c30"),  # Glagolitic (4.1)
        ("\u2c80", "\u2c81"),  # Coptic (4.1)
        ("\u023b", "\u023c"),  # Latin C with stroke (4.1)
        ("\u03f9", "\u03f2"),  # Greek capital lunate sigma (4.0)
        ("\u023a", "\u023a"),  # Latin A with stroke: its small letter came in 5.0
        ("\u04c0", "\u04c0"),  # Cyrillic palochka: small form came in 5.0
        ("\u212a", "k"),  # Kelvin sign
        ("\u2160", "\u2170"),  # Roman numeral one
        ("AbC-\u00c9", "abc-\u00e9"),
        ("E\u0301", "\u00e9"),  # NFC first
    ],
)
def test_fold_case_table(given: str, folded: str) -> None:
    """The rule itself, code point by code point (docs/emulator.md, "Case folding")."""
    assert norm("/" + given) == "/" + folded
