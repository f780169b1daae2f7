"""The SQLite index: migration from state.json, typed errors for a bad index, row-level commits."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import StateError, mirror
from airflow_provider_dropbox.sync.index import SCHEMA_VERSION, IndexVersionError, MirrorIndex
from tests.sync.fakes import FakeDropbox, local_tree

FIXTURE = Path(__file__).parent / "fixtures" / "state_v1.json"


def seed_v1() -> FakeDropbox:
    """The tree (and journal) behind fixtures/state_v1.json: same calls, same ids, revs and cursor."""
    d = FakeDropbox()
    d.put("/Root/a.txt", b"alpha")
    d.put("/Root/Docs/b.txt", b"bravo")
    d.put("/Root/Docs/Deep/c.txt", b"charlie")
    d.mkdir("/Root/Empty")
    d.put("/Root/Caf\u00e9/\u00df.txt", b"sharp")
    d.put("/Root/Caf\u00e9/ss.txt", b"double")
    return d


def restore_v1(dest: Path) -> FakeDropbox:
    """A destination as the JSON engine left it: files with the recorded mtimes, and its state.json."""
    dbx = seed_v1()
    state = json.loads(FIXTURE.read_text(encoding="utf-8"))
    contents = {"a.txt": b"alpha", "Docs/b.txt": b"bravo", "Docs/Deep/c.txt": b"charlie"}
    contents["Caf\u00e9/ss.txt"] = b"double"
    for path, (is_dir, *_rest) in state["manifest"].items():
        target = dest / path
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
    for path, (is_dir, _key, _h, size, mtime_ns, _rev) in state["manifest"].items():
        if is_dir:
            continue
        data = contents.get(path, b"sharp")
        (dest / path).write_bytes(data)
        assert len(data) == size
        os.utime(dest / path, ns=(mtime_ns, mtime_ns))
    (dest / ".dropbox-mirror").mkdir()
    shutil.copy(FIXTURE, dest / ".dropbox-mirror" / "state.json")
    return dbx


def test_state_json_from_the_json_engine_is_migrated_without_downloads(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dbx = restore_v1(dest)
    before = local_tree(dest)
    report = mirror(dbx, "/Root", dest)
    assert report.ok and report.mode == "incremental" and dbx.calls.get("download", 0) == 0
    assert report.plan == [] and report.planned["unchanged"] == 9
    assert local_tree(dest) == before
    assert sorted(os.listdir(dest / ".dropbox-mirror")) == ["index.sqlite3", "staging"]
    # the migrated index carries on: one change, one download
    dbx.put("/Root/Docs/new.txt", b"new")
    report = mirror(dbx, "/Root", dest)
    assert report.mode == "incremental" and report.done == {"download": 1}
    assert local_tree(dest) == {**before, "Docs/new.txt": b"new"}


def test_a_corrupt_state_json_is_not_migrated(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dbx = restore_v1(dest)
    (dest / ".dropbox-mirror" / "state.json").write_text("{truncated", encoding="utf-8")
    with pytest.raises(StateError, match=r"state\.json"):
        mirror(dbx, "/Root", dest)
    assert not (dest / ".dropbox-mirror" / "index.sqlite3").exists()


def _mirrored(tmp_path: Path) -> tuple[FakeDropbox, Path]:
    dbx = seed_v1()
    dest = tmp_path / "m"
    mirror(dbx, "/Root", dest)
    return dbx, dest


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-db"])
def test_an_unreadable_index_is_a_typed_error_and_full_rescan_rebuilds_it(
    tmp_path: Path, damage: str
) -> None:
    dbx, dest = _mirrored(tmp_path)
    path = dest / ".dropbox-mirror" / "index.sqlite3"
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1500])
    else:
        path.unlink()
        sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
    before = local_tree(dest)
    dbx.put("/Root/a.txt", b"alpha v2")
    with pytest.raises(StateError, match=r"index\.sqlite3.*full_rescan=True"):
        mirror(dbx, "/Root", dest)
    assert local_tree(dest) == before
    report = mirror(dbx, "/Root", dest, full_rescan=True)
    assert report.ok and report.done.get("download", 0) == 1  # only the changed file; the rest adopted
    assert (dest / "a.txt").read_bytes() == b"alpha v2"
    assert [p for p in os.listdir(dest / ".dropbox-mirror") if "unreadable" in p]  # moved aside, not lost


def test_a_locked_index_is_a_typed_error(tmp_path: Path) -> None:
    dbx, dest = _mirrored(tmp_path)
    other = sqlite3.connect(dest / ".dropbox-mirror" / "index.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        dbx.put("/Root/new.txt", b"n")
        with pytest.raises(StateError, match=r"index\.sqlite3.*locked"):
            mirror(dbx, "/Root", dest)
        assert not (dest / "new.txt").exists()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert mirror(dbx, "/Root", dest).ok


def test_an_index_from_a_newer_schema_is_refused_never_rewritten(tmp_path: Path) -> None:
    dbx, dest = _mirrored(tmp_path)
    path = dest / ".dropbox-mirror" / "index.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE meta SET v=? WHERE k='schema'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    before = path.read_bytes()
    for kw in ({}, {"full_rescan": True}):
        with pytest.raises(IndexVersionError, match="newer version"):
            mirror(dbx, "/Root", dest, **kw)
    assert path.read_bytes() == before


def _watch_writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    writes: list[dict[str, Any]] = []
    real = MirrorIndex.write

    def write(self: MirrorIndex, **kw: Any) -> None:
        writes.append(kw)
        real(self, **kw)

    monkeypatch.setattr(MirrorIndex, "write", write)
    return writes


def test_an_incremental_run_writes_only_the_changed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbx = FakeDropbox()
    for i in range(300):
        dbx.put(f"/Root/d{i % 10}/f{i:03d}.txt", b"file %d" % i)
    dest = tmp_path / "m"
    mirror(dbx, "/Root", dest)
    writes = _watch_writes(monkeypatch)
    dbx.put("/Root/d3/f003.txt", b"changed")
    dbx.delete("/Root/d4/f004.txt")
    report = mirror(dbx, "/Root", dest)
    assert report.done == {"download": 1, "delete_file": 1}
    final = writes[-1]
    assert set(final["manifest_rows"]) == {"d3/f003.txt", "d4/f004.txt"}
    assert set(final["remote_keys"]) == {"d3/f003.txt", "d4/f004.txt"}
    assert final.get("replace_manifest") is None


def test_a_run_with_no_change_writes_nothing(tmp_path: Path) -> None:
    dbx, dest = _mirrored(tmp_path)
    folder = dest / ".dropbox-mirror"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}
    for _ in range(3):
        report = mirror(dbx, "/Root", dest)
        assert report.ok and report.plan == []
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}
    assert after == before


def test_intents_of_a_crashed_json_engine_run_are_migrated_and_recovered(tmp_path: Path) -> None:
    """pending.json of a run that placed a file but never committed: the file is claimed, not fetched."""
    dest = tmp_path / "m"
    dbx = restore_v1(dest)
    dbx.put("/Root/Docs/new.txt", b"new")
    meta = dbx.get_metadata("/Root/Docs/new.txt")
    (dest / "Docs" / "new.txt").write_bytes(b"new")  # placed by the crashed run
    intents = {"Docs/new.txt": ["create", 0, "docs/new.txt", meta["content_hash"], meta["rev"]]}
    (dest / ".dropbox-mirror" / "pending.json").write_text(
        json.dumps({"run": "crashed-run", "pending": intents}), encoding="utf-8"
    )
    report = mirror(dbx, "/Root", dest)
    assert report.ok and report.mode == "incremental" and dbx.calls.get("download", 0) == 0
    assert report.done == {}  # claimed from the intent, not adopted as an unknown identical file
    assert not (dest / ".dropbox-mirror" / "pending.json").exists()
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        state = index.load()
    finally:
        index.close()
    assert state is not None and not state.pending and "Docs/new.txt" in state.manifest


def _by_key_tree(tmp_path: Path) -> tuple[FakeDropbox, Path]:
    """Folders whose keys sort around the '/' boundary ('a', 'a b', 'a-x', 'a/...', 'a0', 'ab')."""
    dbx = FakeDropbox()
    dbx.put("/Root/a/one.txt", b"same")
    dbx.put("/Root/a/sub/two.txt", b"two")
    dbx.put("/Root/a b/three.txt", b"three")
    dbx.put("/Root/a-x/four.txt", b"same")
    dbx.put("/Root/a0/five.txt", b"five")
    dbx.put("/Root/ab/six.txt", b"six")
    dbx.put("/Root/Caf\u00e9/\u00df.txt", b"sharp")
    dbx.put("/Root/top.txt", b"same")
    dest = tmp_path / "m"
    mirror(dbx, "/Root", dest)
    return dbx, dest


@pytest.mark.parametrize("folder", ["a", "a b", "a-x", "a0", "ab", "a/sub", "caf\u00e9", ""])
def test_subtree_range_queries_return_exactly_the_subtree(tmp_path: Path, folder: str) -> None:
    _dbx, dest = _by_key_tree(tmp_path)
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        state = index.load()
        want_remote = {k for k in state.remote.entries if folder == "" or k.startswith(folder + "/")}
        want_manifest = {p for p in state.manifest if folder == "" or p.lower().startswith(folder + "/")}
        assert set(index.remote_subtree(folder)) == want_remote
        assert set(index.manifest_subtree(_local(state, folder))) == want_manifest
        assert index.remote_subtree(folder) == {k: state.remote.entries[k] for k in want_remote}
    finally:
        index.close()


def _local(state: Any, key: str) -> str:
    return next((p for p, m in state.manifest.items() if m.key == key), key)


def test_rows_by_key_parent_and_hash_match_the_loaded_state(tmp_path: Path) -> None:
    _dbx, dest = _by_key_tree(tmp_path)
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        state = index.load()
        entries = state.remote.entries
        for parent in ["", "a", "a/sub", "caf\u00e9", "missing"]:
            want = {k for k in entries if k.rpartition("/")[0] == parent}
            assert set(index.remote_children(parent)) == want
        assert index.remote_rows(["a/one.txt", "nope", "ab"]) == {
            "a/one.txt": entries["a/one.txt"], "ab": entries["ab"]
        }  # fmt: skip
        same = entries["a/one.txt"].content_hash
        assert same is not None
        assert set(index.remote_by_hash(same)) == {"a/one.txt", "a-x/four.txt", "top.txt"}
        assert set(index.manifest_by_hash(same)) == {"a/one.txt", "a-x/four.txt", "top.txt"}
        assert index.manifest_by_hash("0" * 64) == {}
        for key in ["a/one.txt", "a", "caf\u00e9/\u00df.txt"]:
            want_paths = {p for p, m in state.manifest.items() if m.key == key}
            assert want_paths and set(index.manifest_by_key(key)) == want_paths
        some = [*list(state.manifest)[:3], "not/there"]
        assert index.manifest_rows(some) == {p: state.manifest[p] for p in some if p in state.manifest}
    finally:
        index.close()


def test_counters_follow_every_run_without_a_load(tmp_path: Path) -> None:
    dbx, dest = _by_key_tree(tmp_path)

    def check() -> None:
        index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
        try:
            state = index.load()
            assert index.counts() == {
                "remote_files": sum(
                    1 for e in state.remote.entries.values() if not e.is_dir and e.downloadable
                ),
                "managed_files": sum(1 for m in state.manifest.values() if not m.is_dir),
                "managed_paths": len(state.manifest),
            }
        finally:
            index.close()

    check()
    dbx.delete("/Root/a")
    dbx.put("/Root/new/seven.txt", b"seven")
    mirror(dbx, "/Root", dest)
    check()
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        assert index.counts() == {
            "remote_files": 7,
            "managed_files": 7,
            "managed_paths": len(index.load().manifest),
        }
        assert index.remote_subtree("a") == {} and index.manifest_subtree("a") == {}
    finally:
        index.close()


def test_an_index_from_before_the_key_index_gains_it_once(tmp_path: Path) -> None:
    _dbx, dest = _by_key_tree(tmp_path)
    path = dest / ".dropbox-mirror" / "index.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX manifest_key")
    MirrorIndex.open(str(path.parent)).close()
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "manifest_key" in names


def test_touched_paths_from_the_key_index_match_a_whole_manifest_pass(tmp_path: Path) -> None:
    from airflow_provider_dropbox.sync.engine import _touched_paths
    from airflow_provider_dropbox.sync.layout import build_layout, make_exclude
    from airflow_provider_dropbox.sync.state import Managed

    _dbx, dest = _by_key_tree(tmp_path)
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        state = index.load()
        layout = build_layout(state.remote, make_exclude(()), max_path_bytes=4000)
        del layout.by_key["a-x/four.txt"]  # deleted remotely: only the manifest knows where it was
        state.manifest["recovered.txt"] = Managed(False, "ab/six.txt", "h", 3, 1, "r")  # in memory only
        state.manifest["a/one.txt"] = Managed(False, "elsewhere", "h", 3, 1, "r")  # key changed in memory
        touched = {"a/one.txt", "ab/six.txt", "caf\u00e9/\u00df.txt", "gone/key", "a", "a-x/four.txt"}
        fast = _touched_paths(touched, layout, state.manifest, index)
        assert fast == _touched_paths(touched, layout, state.manifest, None)
        assert {"recovered.txt", "ab/six.txt", "a", "a-x/four.txt"} <= fast
    finally:
        index.close()
