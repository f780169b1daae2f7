"""State survives a restart on the same --data-dir; concurrent clients don't corrupt it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.emulator.helpers import Api, content_hash
from tests.emulator_process import start_emulator


def test_restart_keeps_tree_cursors_tokens_and_sessions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emu = start_emulator(data_dir)
    try:
        api = Api(emu)
        up = api.upload("/Keep/\u00e9t\u00e9.txt", b"summer")
        api.mkdir("/Empty")
        _, cursor = api.list_all("")
        sid = api.upload_raw("files/upload_session/start", {}, b"half").json()["session_id"]
        conc = api.upload_raw("files/upload_session/start", {"session_type": "concurrent"}, b"").json()[
            "session_id"
        ]
        api.upload_raw(
            "files/upload_session/append_v2",
            {"cursor": {"session_id": conc, "offset": 0}, "close": True},
            b"cc",
        )
        token = api.token
    finally:
        emu.stop()
    emu = start_emulator(data_dir)
    try:
        api = Api(emu, token=token)
        md = api.ok("files/get_metadata", {"path": "/keep/\u00c9T\u00c9.TXT"})
        assert md["id"] == up["id"] and md["rev"] == up["rev"]
        assert api.download("/keep/\u00e9t\u00e9.txt").content == b"summer"
        assert api.ok("files/get_metadata", {"path": "/empty"})[".tag"] == "folder"
        assert api.changes(cursor)[0] == []
        api.upload("/after.txt", b"x")
        entries, _ = api.changes(cursor)
        assert [e["name"] for e in entries] == ["after.txt"]
        r = api.upload_raw(
            "files/upload_session/finish",
            {"cursor": {"session_id": sid, "offset": 4}, "commit": {"path": "/session.txt"}},
            b"done",
        )
        assert r.status_code == 200, r.text
        assert r.json()["content_hash"] == content_hash(b"halfdone")
        r = api.upload_raw(
            "files/upload_session/finish",
            {"cursor": {"session_id": conc, "offset": 2}, "commit": {"path": "/conc.txt"}},
        )
        assert r.status_code == 200, r.text
        new_rev = api.upload("/after.txt", b"y", mode="overwrite")["rev"]
        assert new_rev != up["rev"]
    finally:
        emu.stop()


def test_parallel_clients(faulty_api: Api) -> None:
    api = faulty_api
    payloads = {f"/par/f{i:03}.bin": os.urandom(1000 + i) for i in range(60)}

    def put(item: tuple[str, bytes]) -> str:
        client = Api(api.emu, token=api.token)
        md = client.upload(item[0], item[1])
        return str(md["content_hash"])

    with ThreadPoolExecutor(8) as pool:
        hashes = list(pool.map(put, payloads.items()))
    assert hashes == [content_hash(d) for d in payloads.values()]
    entries, _ = api.list_all("/par")
    assert len(entries) == 61
    revs = [e["rev"] for e in entries if e[".tag"] == "file"]
    assert len(set(revs)) == 60


def test_emulator_does_not_import_airflow() -> None:
    code = "import sys, airflow_provider_dropbox.emulator.app; assert 'airflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_blobs_are_freed(fresh_api: Api) -> None:
    api = fresh_api
    blobs = api.emu.data_dir / "blobs"
    api.upload("/a.bin", b"1" * 1000)
    api.ok("files/copy_v2", {"from_path": "/a.bin", "to_path": "/b.bin"})
    assert len(list(blobs.iterdir())) == 1  # a copy shares the bytes
    api.upload("/a.bin", b"2" * 1000, mode="overwrite")
    api.ok("files/delete_v2", {"path": "/b.bin"})
    deadline = time.monotonic() + 5
    while len(list(blobs.iterdir())) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(blobs.iterdir())) == 1
    assert api.download("/a.bin").content == b"2" * 1000
