"""The emulator at scale: the bulk creator (admin route, CLI) and list_folder order/cursors over big trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator.helpers import Api, content_hash, unique_dir
from tests.emulator_process import EmulatorProcess, start_emulator


def populate(emu: EmulatorProcess, **body: Any) -> requests.Response:
    return requests.post(f"{emu.base_url}/_emulator/populate", json=body, timeout=600)


def components(md: dict[str, Any]) -> list[str]:
    return list(md["path_lower"].split("/"))


def check_listing(entries: list[dict[str, Any]], root: str, files: int, folders: int) -> None:
    """Every item exactly once, parents before children, in one consistent depth-first order."""
    paths = [e["path_lower"] for e in entries]
    assert len(paths) == len(set(paths)), "an entry was listed twice"
    assert len([e for e in entries if e[".tag"] == "file"]) == files
    assert len([e for e in entries if e[".tag"] == "folder"]) == folders
    seen: set[str] = set()
    for p in paths:
        parent = p.rsplit("/", 1)[0]
        assert p == root.lower() or parent in seen, f"{p} listed before its folder"
        seen.add(p)
    assert [components(e) for e in entries] == sorted(components(e) for e in entries)


@pytest.mark.parametrize(("files", "per_folder", "limit"), [(1, 0, 1), (257, 0, 100), (2345, 300, 97)])
def test_populated_tree_lists_fully_in_order(
    api: Api, emulator: EmulatorProcess, files: int, per_folder: int, limit: int
) -> None:
    root = unique_dir()
    r = populate(emulator, path=root, files=files, size=7, per_folder=per_folder)
    assert r.status_code == 200, r.text
    groups = -(-files // per_folder) if per_folder else 0
    assert r.json()["files"] == files and r.json()["folders"] == groups
    entries, _ = api.list_all(root, limit=limit)
    check_listing(entries, root, files, groups + 1)


def test_listing_pages_stay_consistent_while_the_tree_changes(api: Api, emulator: EmulatorProcess) -> None:
    """Writes between pages (before and after the cursor's position) neither repeat nor drop old items."""
    root = unique_dir()
    assert populate(emulator, path=root, files=600, size=1).status_code == 200
    res = api.ok("files/list_folder", {"path": root, "recursive": True, "limit": 50})
    entries = list(res["entries"])
    page = 0
    while res["has_more"]:
        page += 1
        if page in (2, 5):
            api.upload(f"{root}/a-before-{page}.txt", b"x")  # sorts before the position reached
            api.upload(f"{root}/z-after-{page}.txt", b"x")  # sorts after it
        if page == 7:
            api.ok("files/delete_v2", {"path": f"{root}/f599.bin"})
        res = api.ok("files/list_folder/continue", {"cursor": res["cursor"]})
        entries += res["entries"]
    names = [e["name"] for e in entries]
    old = [f"f{i:03d}.bin" for i in range(599)]
    assert [n for n in names if n in set(old)] == old  # each item that existed throughout: once, in order
    # Items written behind the position come with the changes reported once the listing is done (the last
    # listing page says has_more while anything changed since it started), as on Dropbox.
    assert {"a-before-2.txt", "a-before-5.txt", "z-after-2.txt", "z-after-5.txt"} <= set(names)
    assert any(e[".tag"] == "deleted" and e["name"] == "f599.bin" for e in entries) or "f599.bin" in names


def test_populated_files_are_real_files(api: Api, emulator: EmulatorProcess) -> None:
    root = unique_dir()
    assert populate(emulator, path=root, files=3, size=5000).status_code == 200
    md = api.ok("files/get_metadata", {"path": f"{root}/f1.bin"})
    assert md["size"] == 5000 and md["content_hash"] == content_hash(b"\0" * 5000)
    r = api.download(f"{root}/f2.bin")
    assert r.status_code == 200 and r.content == b"\0" * 5000
    uroot = unique_dir()
    assert populate(emulator, path=uroot, files=3, size=100, unique=True, prefix="u").status_code == 200
    hashes = set()
    for i in range(3):
        r = api.download(f"{uroot}/u{i}.bin")
        assert len(r.content) == 100
        assert json.loads(r.headers["Dropbox-API-Result"])["content_hash"] == content_hash(r.content)
        hashes.add(content_hash(r.content))
    assert len(hashes) == 3
    # the journal saw them: a cursor taken before a populate reports the new files
    cursor = api.ok("files/list_folder/get_latest_cursor", {"path": uroot, "recursive": True})["cursor"]
    assert populate(emulator, path=uroot + "/more", files=4, size=1).status_code == 200
    changed, _ = api.changes(cursor)
    assert sorted(e["name"] for e in changed if e[".tag"] == "file") == [f"f{i}.bin" for i in range(4)]


@pytest.mark.parametrize(
    "body",
    [
        {"path": "x", "files": 1},
        {"path": "/x", "files": 0},
        {"path": "/x", "files": 1, "size": -1},
        {"path": "/x", "files": True},
        {"path": "/x", "files": 1, "prefix": "a/b"},
        {"path": "/x", "files": 1, "colour": "red"},
    ],
)
def test_populate_refuses_bad_requests(emulator: EmulatorProcess, body: dict[str, Any]) -> None:
    r = populate(emulator, **body)
    assert r.status_code == 400 and r.text.startswith("bad populate request:")


def test_populate_refuses_existing_names_and_writes_nothing(api: Api, emulator: EmulatorProcess) -> None:
    root = unique_dir()
    api.upload(f"{root}/f3.bin", b"mine")
    r = populate(emulator, path=root, files=5, size=1)
    assert r.status_code == 409 and r.json()["error"][".tag"] == "conflict"
    entries, _ = api.list_all(root)
    assert sorted(e["name"] for e in entries if e[".tag"] == "file") == ["f3.bin"]
    api.upload(f"{root}/file", b"x")
    assert populate(emulator, path=f"{root}/file", files=1).status_code == 409


def test_populate_cli_fills_a_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "airflow_provider_dropbox.emulator", "populate", "--data-dir", str(data)]
    out = subprocess.run(
        [*cmd, "--path", "/Bench", "--files", "1500", "--size", "3", "--per-folder", "500"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["files"] == 1500
    bad = subprocess.run([*cmd, "--path", "nope", "--files", "1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "path must be an absolute folder path" in bad.stderr
    emu = start_emulator(data)
    try:
        api = Api(emu)
        entries, _ = api.list_all("/bench", limit=400)
        check_listing(entries, "/bench", 1500, 4)
        assert entries[0]["path_display"] == "/Bench"
        assert api.download("/Bench/d1/f0500.bin").content == b"\0\0\0"
    finally:
        emu.stop()


@pytest.mark.slow
def test_hundred_thousand_entries_list_fully_in_order(
    fresh_api: Api, fresh_emulator: EmulatorProcess
) -> None:
    fresh_api.mkdir("/big")
    before = fresh_api.ok("files/list_folder/get_latest_cursor", {"path": "/big", "recursive": True})[
        "cursor"
    ]
    assert populate(fresh_emulator, path="/big", files=100_000, size=1, per_folder=1000).status_code == 200
    changed, _ = fresh_api.changes(before)  # pages of 500 over one 100k-change window
    assert [e["path_lower"] for e in changed] == sorted(
        {e["path_lower"] for e in changed}, key=lambda p: p.split("/")
    )
    assert len([e for e in changed if e[".tag"] == "file"]) == 100_000 and len(changed) == 100_100
    entries, cursor = fresh_api.list_all("/big", limit=2000)
    check_listing(entries, "/big", 100_000, 101)
    fresh_api.upload("/big/d50/new.txt", b"x")
    later, _ = fresh_api.changes(cursor)
    assert [e["path_lower"] for e in later] == ["/big/d50/new.txt"]
