"""Engine behaviour on the in-memory fake: incremental runs, moves, swaps, guards, conflicts, recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import (
    DestinationError,
    EmptyRemoteError,
    LockHeldError,
    MirrorConfigError,
    MirrorFailedError,
    RemoteRootError,
    TooManyDeletesError,
    UnsafePathError,
    mirror,
)
from airflow_provider_dropbox.sync.state import load_pending, load_state
from tests.sync.fakes import FakeDropbox, local_tree


@pytest.fixture
def dbx() -> FakeDropbox:
    d = FakeDropbox()
    d.put("/Root/a.txt", b"alpha")
    d.put("/Root/Docs/b.txt", b"bravo")
    d.put("/Root/Docs/Deep/c.txt", b"charlie")
    d.mkdir("/Root/Empty")
    return d


def run(dbx: FakeDropbox, dest: Path, **kw: Any) -> Any:
    dbx.calls.clear()
    return mirror(dbx, "/Root", dest, parallelism=4, **kw)


def test_first_run_then_incremental_is_cheap(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    r = run(dbx, dest)
    assert r.mode == "full" and r.ok and r.cursor_advanced
    assert local_tree(dest) == dbx.tree("/Root")
    assert r.done["download"] == 3 and r.done["create_folder"] == 3

    r = run(dbx, dest)
    assert (r.mode == "incremental" and r.planned == {"unchanged": 0}) or r.planned.get("download", 0) == 0
    assert dbx.calls == {"list_changes": 1}

    dbx.put("/Root/Docs/b.txt", b"bravo v2")
    r = run(dbx, dest)
    assert dbx.calls == {"list_changes": 1, "download": 1}
    assert r.done == {"download": 1}
    assert local_tree(dest) == dbx.tree("/Root")
    assert json.dumps(r.to_dict())  # XCom-safe
    assert r.to_dict()["downloaded"] == 1 and r.to_dict()["deleted"] == 0


def test_move_and_rename_do_not_download(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.move("/Root/Docs", "/Root/Moved")
    dbx.move("/Root/a.txt", "/Root/A2.txt")
    r = run(dbx, dest)
    assert local_tree(dest) == dbx.tree("/Root")
    assert "download" not in r.done and r.done["copy_local"] == 3
    assert dbx.calls.get("download", 0) == 0


def test_case_only_rename_via_temp_name(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.move("/Root/Docs", "/Root/tmp-x")
    dbx.move("/Root/tmp-x", "/Root/docs")
    dbx.move("/Root/a.txt", "/Root/t.txt")
    dbx.move("/Root/t.txt", "/Root/A.TXT")
    run(dbx, dest)
    assert local_tree(dest) == dbx.tree("/Root")
    assert sorted(os.listdir(dest)) == [".dropbox-mirror", "A.TXT", "Empty", "docs"]


def test_file_folder_swaps(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.delete("/Root/a.txt")
    dbx.put("/Root/a.txt/inner.txt", b"now a folder")
    dbx.delete("/Root/Docs")
    dbx.put("/Root/Docs", b"now a file")
    r = run(dbx, dest)
    assert r.ok, r.errors
    assert local_tree(dest) == dbx.tree("/Root")
    # and back again
    dbx.delete("/Root/a.txt")
    dbx.put("/Root/a.txt", b"file again")
    dbx.delete("/Root/Docs")
    dbx.mkdir("/Root/Docs/x")
    run(dbx, dest)
    assert local_tree(dest) == dbx.tree("/Root")


def test_dry_run_changes_nothing(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    r = run(dbx, dest, dry_run=True)
    assert r.planned["download"] == 3 and not dest.exists()
    run(dbx, dest)

    def state_files() -> dict[str, bytes]:
        folder = dest / ".dropbox-mirror"
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    before = state_files()
    assert "index.sqlite3" in before
    dbx.delete("/Root/Docs")
    r = run(dbx, dest, dry_run=True)
    assert r.planned["delete_file"] == 2
    assert (dest / "Docs" / "b.txt").exists()
    assert state_files() == before


def test_cursor_reset_relists_and_reconciles(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.put("/Root/new.txt", b"new")
    dbx.delete("/Root/Docs/Deep")
    dbx.reset_cursors()
    r = run(dbx, dest)
    assert r.mode == "reset" and r.cursor_advanced
    assert local_tree(dest) == dbx.tree("/Root")
    assert run(dbx, dest).mode == "incremental"


def test_remote_root_errors(dbx: FakeDropbox, tmp_path: Path) -> None:
    with pytest.raises(RemoteRootError, match="does not exist"):
        mirror(dbx, "/Nope", tmp_path / "m")
    with pytest.raises(RemoteRootError, match="not a folder"):
        mirror(dbx, "/Root/a.txt", tmp_path / "m")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_local_dir_is_refused_before_anything(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """#17: a blank template renders local_dir to '' (the worker's cwd); refused, nothing listed or made."""
    monkeypatch.chdir(tmp_path)
    dbx.calls.clear()
    with pytest.raises(MirrorConfigError, match=r"local_dir .* is empty or blank.*absolute folder path"):
        mirror(dbx, "/Root", blank)
    assert dbx.calls == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rel", ["mirror", "./mirror", "data/../mirror", "~/mirror", "~"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_relative_local_dir_is_refused_before_anything(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str, dry_run: bool
) -> None:
    """A worker's cwd is arbitrary (and '~' is not expanded): refused, nothing listed or created."""
    monkeypatch.chdir(tmp_path)
    dbx.calls.clear()
    with pytest.raises(MirrorConfigError, match=r"local_dir .*(relative path|starts with '~').*absolute"):
        mirror(dbx, "/Root", rel, dry_run=dry_run)
    assert dbx.calls == {}
    assert list(tmp_path.iterdir()) == []


def _dangerous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> tuple[str, str]:
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "to-root").symlink_to("/")
    (tmp_path / "to-home").symlink_to(home)
    return {
        "root": ("/", "root of the file system"),
        "root-via-dotdot": ("/tmp/../", "root of the file system"),
        "root-via-symlink": (str(tmp_path / "to-root"), "root of the file system.*resolves to '/'"),
        "system-folder": ("/etc", "top-level system folder"),
        "tmp-itself": ("/tmp", "top-level system folder"),
        "home": (str(home), "home folder itself"),
        "home-trailing-slash": (f"{home}/", "home folder itself"),
        "home-via-symlink": (str(tmp_path / "to-home"), "home folder itself"),
    }[case]


@pytest.mark.parametrize(
    "case",
    ["root", "root-via-dotdot", "root-via-symlink", "system-folder", "tmp-itself", "home",
     "home-trailing-slash", "home-via-symlink"],
)  # fmt: skip
def test_dangerous_local_dir_is_refused_before_anything(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """'/', a top-level system folder or the home folder itself: adopt_local would wipe it; refused."""
    local, why = _dangerous(tmp_path, monkeypatch, case)
    before = sorted(os.listdir(local))
    dbx.calls.clear()
    for kw in ({}, {"dry_run": True}, {"adopt_local": True}):
        with pytest.raises(MirrorConfigError, match=rf"{why}.*Pass a dedicated folder below it"):
            mirror(dbx, "/Root", local, **kw)
    assert dbx.calls == {}
    assert sorted(os.listdir(local)) == before


def test_a_folder_below_home_is_fine(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, _ = _dangerous(tmp_path, monkeypatch, "home")
    assert mirror(dbx, "/Root", f"{local}/dropbox-mirror").ok
    assert local_tree(f"{local}/dropbox-mirror") == dbx.tree("/Root")


def test_whole_dropbox_root(dbx: FakeDropbox, tmp_path: Path) -> None:
    mirror(dbx, "/", tmp_path / "m")
    assert local_tree(tmp_path / "m") == dbx.tree("")


# -- guards -------------------------------------------------------------------------------------------
def test_failure_in_run_blocks_deletes_and_keeps_cursor(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    cursor = load_state(str(dest.resolve())).cursor  # type: ignore[union-attr]
    dbx.delete("/Root/a.txt")
    dbx.put("/Root/Docs/new.txt", b"new")
    dbx.fail_downloads.add("/root/docs/new.txt")
    with pytest.raises(MirrorFailedError, match="Deletes were skipped") as info:
        run(dbx, dest)
    assert info.value.report.deletes_skipped == 1
    assert (dest / "a.txt").read_bytes() == b"alpha"  # not deleted
    assert load_state(str(dest.resolve())).cursor == cursor  # type: ignore[union-attr]
    dbx.fail_downloads.clear()
    r = run(dbx, dest)
    assert r.ok and local_tree(dest) == dbx.tree("/Root")


def test_max_deletes_count_and_percent(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.delete("/Root/Docs")  # 2 of 3 files
    with pytest.raises(TooManyDeletesError, match=r"deletes 2 of 3 files \(67%\), over max_deletes=1"):
        run(dbx, dest, max_deletes=1)
    with pytest.raises(TooManyDeletesError, match="over max_deletes=50%"):
        run(dbx, dest, max_deletes="50%")
    assert (dest / "Docs" / "Deep" / "c.txt").exists()
    r = run(dbx, dest, max_deletes="70%")
    assert r.done["delete_file"] == 2
    assert local_tree(dest) == dbx.tree("/Root")


def test_empty_remote_never_empties_the_mirror(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    for p in ("/Root/a.txt", "/Root/Docs", "/Root/Empty"):
        dbx.delete(p)
    with pytest.raises(EmptyRemoteError, match="allow_empty_remote=True") as info:
        run(dbx, dest)
    assert info.value.report is not None and info.value.report.aborted
    assert (dest / "a.txt").exists()
    dbx.reset_cursors()  # the full re-list path is guarded too
    with pytest.raises(EmptyRemoteError):
        run(dbx, dest)
    run(dbx, dest, allow_empty_remote=True)
    assert local_tree(dest) == {}


def test_unmanaged_local_files_are_left_alone(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"user data")
    (dest / "Docs").mkdir()
    (dest / "Docs" / "notes.txt").write_bytes(b"user notes")
    (dest / "a.txt").write_bytes(b"not alpha")  # in the way of a remote file
    r = run(dbx, dest)
    assert (dest / "mine.txt").read_bytes() == b"user data"
    assert (dest / "Docs" / "notes.txt").read_bytes() == b"user notes"
    assert (dest / "a.txt").read_bytes() == b"alpha"
    kept = r.conflicts[0]["kept_as"]
    assert kept.startswith("a (conflicted copy ") and (dest / kept).read_bytes() == b"not alpha"
    # the remote folder goes away: our files go, the user's file and its folder stay
    dbx.delete("/Root/Docs")
    r = run(dbx, dest)
    assert (dest / "Docs" / "notes.txt").read_bytes() == b"user notes"
    assert not (dest / "Docs" / "b.txt").exists()
    assert r.kept_folders == ["Docs"]


def test_identical_unmanaged_file_is_adopted_not_downloaded(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"alpha")
    r = run(dbx, dest)
    assert r.done["adopt"] >= 1 and dbx.calls["download"] == 2


def test_conflict_skip_policy(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"mine")
    r = run(dbx, dest, conflict="skip")
    assert (dest / "a.txt").read_bytes() == b"mine"
    assert r.conflicts and r.conflicts[0]["path"] == "a.txt" and r.ok


def test_adopt_local_takes_over_the_destination(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"mine")
    (dest / "stray").mkdir()
    (dest / "stray" / "x.bin").write_bytes(b"x")
    run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == dbx.tree("/Root")


def test_locally_modified_file_is_not_destroyed(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    (dest / "a.txt").write_bytes(b"edited locally")
    (dest / "Docs" / "b.txt").write_bytes(b"edited too!")
    dbx.put("/Root/a.txt", b"alpha v2")
    dbx.delete("/Root/Docs/b.txt")
    r = run(dbx, dest)
    assert (dest / "a.txt").read_bytes() == b"alpha v2"
    kept = {c["path"]: c.get("kept_as") for c in r.conflicts}
    assert (dest / kept["a.txt"]).read_bytes() == b"edited locally"
    assert (dest / kept["Docs/b.txt"]).read_bytes() == b"edited too!"
    assert not (dest / "Docs" / "b.txt").exists()


def test_symlink_escape_is_refused(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"precious")
    run(dbx, dest)
    # someone replaces a mirrored folder by a link pointing out of the destination
    for p in sorted((dest / "Docs").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (dest / "Docs").rmdir()
    (dest / "Docs").symlink_to(outside)
    dbx.put("/Root/Docs/victim.txt", b"overwrite!")
    dbx.put("/Root/Docs/new.txt", b"new")
    dbx.delete("/Root/Docs/b.txt")
    # incremental: the link is not re-checked, but every write and delete resolves its parent first
    with pytest.raises(MirrorFailedError) as info:
        run(dbx, dest)
    errors = info.value.report.errors
    assert len(errors) >= 2 and sum("UnsafePathError" in e["error"] for e in errors) >= 2, errors
    assert "outside the destination" in errors[0]["error"]
    assert (outside / "victim.txt").read_bytes() == b"precious"
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    # a full re-check sees the link, keeps it as a conflicted copy and mirrors the real folder
    r = run(dbx, dest, full_rescan=True)
    assert r.ok and r.conflicts[0]["path"] == "Docs"
    assert (dest / r.conflicts[0]["kept_as"]).is_symlink()
    assert (dest / "Docs" / "victim.txt").read_bytes() == b"overwrite!"
    assert (outside / "victim.txt").read_bytes() == b"precious"
    assert sorted(os.listdir(outside)) == ["victim.txt"]


def test_lock_held_then_stale_lock_taken_over(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    lock = dest / ".dropbox-mirror" / "lock"
    import socket
    import time

    lock.write_text(json.dumps({"host": "other-host", "pid": 1, "token": "t", "heartbeat": time.time()}))
    with pytest.raises(LockHeldError, match="other-host:1"):
        run(dbx, dest)
    # a dead process on this host: taken over at once
    lock.write_text(
        json.dumps({"host": socket.gethostname(), "pid": 2**22 + 7, "token": "t", "heartbeat": time.time()})
    )
    assert run(dbx, dest).ok
    # a heartbeat older than stale_lock_after: taken over
    lock.write_text(
        json.dumps({"host": "other-host", "pid": 1, "token": "t", "heartbeat": time.time() - 500})
    )
    assert run(dbx, dest).ok
    assert not lock.exists()


def test_crash_mid_apply_recovers(dbx: FakeDropbox, tmp_path: Path) -> None:
    dbx.page_size = 1000  # one listing page: this is about a run's own checkpoints and commit
    dest = tmp_path / "m"
    for i in range(20):
        dbx.put(f"/Root/bulk/f{i:02d}.txt", f"file {i}".encode())
    real = dbx.download_file
    n = {"count": 0}

    def dying(remote: str, local: str) -> dict[str, Any]:
        n["count"] += 1
        if n["count"] == 10:
            raise SystemExit("simulated kill")
        return real(remote, local)

    dbx.download_file = dying  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        run(dbx, dest)
    dbx.download_file = real  # type: ignore[method-assign]
    assert load_state(str(dest.resolve())) is None  # the first run never committed
    assert len(load_pending(str(dest.resolve()), None)) == 27  # its intents are on disk
    assert not list(dest.rglob("*.part")) or all(".dropbox-mirror" in str(p) for p in dest.rglob("*.part"))
    # remote deletes a file the crashed run had already downloaded: it must still go
    dbx.delete("/Root/bulk/f00.txt")
    r = run(dbx, dest)
    assert r.ok
    assert local_tree(dest) == dbx.tree("/Root")


def test_exclude_neither_downloads_nor_deletes(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.put("/Root/skip.tmp", b"t")
    r = run(dbx, dest, exclude=["*.tmp", "Deep"])
    assert not (dest / "skip.tmp").exists()
    assert (dest / "Docs" / "Deep" / "c.txt").read_bytes() == b"charlie"  # excluded now, but not deleted
    assert r.done.get("delete_file", 0) == 0


def test_name_collisions_are_resolved_and_reported(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    dbx.put("/R/ss.txt", b"double s")
    dbx.put("/R/\u00df.txt", b"sharp s")  # different on Dropbox, one name on case-insensitive disks
    r = mirror(dbx, "/R", tmp_path / "m")
    assert len(r.collisions) == 1 and r.collisions[0]["kept"] == "ss.txt"
    renamed = r.collisions[0]["renamed"]["\u00df.txt"]
    assert (tmp_path / "m" / "ss.txt").read_bytes() == b"double s"
    assert (tmp_path / "m" / renamed).read_bytes() == b"sharp s"
    r2 = mirror(dbx, "/R", tmp_path / "m", full_rescan=True)
    assert r2.collisions == r.collisions and r2.done.get("download", 0) == 0


def test_reserved_state_dir_name_collides(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    dbx.put("/R/.Dropbox-Mirror/x.txt", b"x")
    r = mirror(dbx, "/R", tmp_path / "m")
    assert r.collisions and r.collisions[0]["kept"] == ".dropbox-mirror"
    assert load_state(str((tmp_path / "m").resolve())) is not None


def test_file_deleted_after_listing_is_left_to_the_next_run(dbx: FakeDropbox, tmp_path: Path) -> None:
    dbx.page_size = 1000  # one listing page: this is about a run's own checkpoints and commit
    dest = tmp_path / "m"
    real = dbx.download_file

    def racing(remote: str, local: str) -> dict[str, Any]:
        if remote.lower().endswith("/a.txt") and "/root/a.txt" in dbx.nodes:
            dbx.delete("/Root/a.txt")  # deleted between the listing and the download
        return real(remote, local)

    dbx.download_file = racing  # type: ignore[method-assign]
    r = run(dbx, dest)
    assert r.ok and r.done["vanished"] == 1 and r.cursor_advanced
    r = run(dbx, dest)
    assert r.mode == "incremental" and local_tree(dest) == dbx.tree("/Root")


def test_two_runs_never_apply_at_once(dbx: FakeDropbox, tmp_path: Path) -> None:
    import threading

    dest = tmp_path / "m"
    started, release = threading.Event(), threading.Event()
    real = dbx.download_file

    def slow(remote: str, local: str) -> dict[str, Any]:
        started.set()
        release.wait(10)
        return real(remote, local)

    dbx.download_file = slow  # type: ignore[method-assign]
    results: list[Any] = []
    t = threading.Thread(target=lambda: results.append(mirror(dbx, "/Root", dest, parallelism=1)))
    t.start()
    assert started.wait(10)
    with pytest.raises(LockHeldError, match="Another mirror run holds"):
        mirror(dbx, "/Root", dest)
    release.set()
    t.join(10)
    assert results and results[0].ok
    assert local_tree(dest) == dbx.tree("/Root")


def test_destination_is_bound_to_its_remote_folder(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.put("/Other/z.txt", b"z")
    with pytest.raises(MirrorConfigError, match="is the mirror of Dropbox folder '/Root', not '/Other'"):
        mirror(dbx, "/Other", dest)
    assert local_tree(dest) == dbx.tree("/Root")
    assert run(dbx, dest).ok  # same folder, any case: fine
    assert mirror(dbx, "/ROOT", dest).ok


def test_hostile_remote_names_cannot_escape(tmp_path: Path) -> None:
    """A server (or proxy) sending traversal, absolute or slash-bearing names gets nothing written outside."""

    class Hostile(FakeDropbox):
        def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]:
            entries, cursor = super().list_folder_snapshot(path, recursive)
            evil = [
                {".tag": "file", "name": "..", "path_lower": "/r/..", "path_display": "/R/.."},
                {".tag": "file", "name": "x", "path_lower": "/r/../../x", "path_display": "/R/../../x"},
                {".tag": "file", "name": "/etc/passwd", "path_lower": "/r/abs", "path_display": "/R/abs"},
                {".tag": "file", "name": "../../up.txt", "path_lower": "/r/up", "path_display": "/R/up"},
                {".tag": "folder", "name": ".", "path_lower": "/r/dot", "path_display": "/R/dot"},
            ]
            for e in evil:
                e.update({"content_hash": "0" * 64, "size": 1, "rev": "1"} if e[".tag"] == "file" else {})
            return entries + evil, cursor

    dbx = Hostile()
    dbx.put("/R/ok.txt", b"fine")
    box = tmp_path / "box"
    box.mkdir()
    r = mirror(dbx, "/R", box / "m")
    assert r.ok and local_tree(box / "m") == {"ok.txt": b"fine"}
    assert sorted(os.listdir(box)) == ["m"] and sorted(os.listdir(tmp_path)) == ["box"]
    reasons = " | ".join(s["reason"] for s in r.skipped)
    assert len(r.skipped) >= 4 and "not a valid file name" in reasons and "contains '/'" in reasons


def test_swap_whose_new_child_has_the_old_files_content(dbx: FakeDropbox, tmp_path: Path) -> None:
    """The local copy's source is deleted by the swap before the deferred copy runs: it falls back."""
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.delete("/Root/a.txt")
    dbx.put("/Root/a.txt/inner.txt", b"alpha")  # same bytes as the file it replaces
    r = run(dbx, dest)
    assert r.ok and local_tree(dest) == dbx.tree("/Root")


def test_checkpoints_record_progress_of_a_long_run(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbx.page_size = 1000  # one listing page: this is about a run's own checkpoints and commit
    from airflow_provider_dropbox.sync import apply as apply_mod

    monkeypatch.setattr(apply_mod, "CHECKPOINT_EVERY", 0.0)
    for i in range(12):
        dbx.put(f"/Root/bulk/f{i:02d}.txt", f"file {i}".encode())
    real = dbx.download_file
    n = {"count": 0}

    def dying(remote: str, local: str) -> dict[str, Any]:
        n["count"] += 1
        if n["count"] > 8:
            raise SystemExit("simulated kill")
        return real(remote, local)

    dbx.download_file = dying  # type: ignore[method-assign]
    dest = tmp_path / "m"
    with pytest.raises(SystemExit):
        mirror(dbx, "/Root", dest, parallelism=1)  # one worker: completion order is deterministic
    state = load_state(str(dest.resolve()))
    assert state is not None and state.cursor is None  # progress saved, cursor not advanced
    assert sum(1 for m in state.manifest.values() if not m.is_dir) >= 7
    dbx.download_file = real  # type: ignore[method-assign]
    r = run(dbx, dest)
    assert r.ok and r.done["download"] <= 15 - 7 and local_tree(dest) == dbx.tree("/Root")


def test_state_folder_symlink_is_refused(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest, elsewhere = tmp_path / "m", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    (dest / ".dropbox-mirror").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="is a symlink"):
        run(dbx, dest)
    assert os.listdir(elsewhere) == [] and os.listdir(dest) == [".dropbox-mirror"]


def test_too_long_local_path_is_skipped_not_fatal(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    deep = "/".join(["d" * 200] * 22)  # > PATH_MAX (4096) locally, fine as names
    dbx.put(f"/Root/{deep}/x.txt", b"deep")
    dbx.delete("/Root/a.txt")
    r = run(dbx, dest)
    assert r.ok and any(s["reason"] == "path too long locally" for s in r.skipped)
    assert "download" not in dbx.calls  # decided at plan time: nothing fetched in vain
    assert not (dest / "a.txt").exists()  # deletes still happen


def test_folder_removed_locally_is_recreated_for_new_remote_files(dbx: FakeDropbox, tmp_path: Path) -> None:
    import shutil

    dest = tmp_path / "m"
    run(dbx, dest)
    shutil.rmtree(dest / "Docs")  # someone cleans up by hand
    dbx.put("/Root/Docs/Deep/new.txt", b"new")
    r = run(dbx, dest)
    assert r.ok and (dest / "Docs" / "Deep" / "new.txt").read_bytes() == b"new"
    r = run(dbx, dest, full_rescan=True)  # a full check restores what was removed
    assert r.ok and local_tree(dest) == dbx.tree("/Root")


def test_restricted_content_is_skipped_not_fatal(dbx: FakeDropbox, tmp_path: Path) -> None:
    from airflow_provider_dropbox.client import errors as client_errors

    dest = tmp_path / "m"
    real = dbx.download_file

    def refusing(remote: str, local: str) -> dict[str, Any]:
        if remote.lower().endswith("/a.txt"):
            raise client_errors.DropboxApiError(
                "restricted", route="files/download", status=409, error={".tag": "restricted_content"}
            )
        return real(remote, local)

    dbx.download_file = refusing  # type: ignore[method-assign]
    r = run(dbx, dest)
    assert r.ok and r.skipped and "restricted_content" in r.skipped[0]["reason"]
    assert not (dest / "a.txt").exists() and (dest / "Docs" / "b.txt").exists()


def test_bad_remote_root_creates_nothing_locally(dbx: FakeDropbox, tmp_path: Path) -> None:
    for remote in ("/Nope", "/Root/a.txt"):
        with pytest.raises(RemoteRootError):
            mirror(dbx, remote, tmp_path / "m")
        assert not (tmp_path / "m").exists()
    for blank in ("", "   "):
        with pytest.raises(MirrorConfigError, match="pass '/' to mirror the whole Dropbox"):
            mirror(dbx, blank, tmp_path / "m")


def test_unwritable_destination_is_a_typed_error(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def read_only(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "m"))

    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(DestinationError, match=r"Read-only file system.*pass a writable local_dir"):
        run(dbx, tmp_path / "m")


def test_dry_run_reports_what_a_guard_would_stop(dbx: FakeDropbox, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    run(dbx, dest)
    dbx.delete("/Root/Docs")
    r = run(dbx, dest, dry_run=True, max_deletes=1)
    assert r.aborted and "over max_deletes=1" in r.aborted and not r.ok
    assert r.to_dict()["planned"]["delete_file"] == 2
    assert (dest / "Docs" / "b.txt").exists()


def test_incremental_disk_work_grows_with_changes_not_tree_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_dropbox.sync import engine

    dbx = FakeDropbox()
    for i in range(500):
        dbx.put(f"/R/d{i % 10}/f{i}.txt", f"file {i}".encode())
    dest = tmp_path / "m"
    mirror(dbx, "/R", dest)
    probes: list[str] = []
    hashes: list[str] = []
    real_probe, real_hash = engine._probe, engine.hash_under
    monkeypatch.setattr(engine, "_probe", lambda root, rel: probes.append(rel) or real_probe(root, rel))
    monkeypatch.setattr(engine, "hash_under", lambda root, rel: hashes.append(rel) or real_hash(root, rel))
    dbx.put("/R/d3/f3.txt", b"changed")
    dbx.delete("/R/d4/f4.txt")
    r = mirror(dbx, "/R", dest)
    assert r.done == {"download": 1, "delete_file": 1}
    assert sorted(probes) == ["d3/f3.txt", "d4/f4.txt"] and hashes == []
