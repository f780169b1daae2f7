"""Two-way sync against the emulator over real HTTP, on real files: each behaviour the docs promise."""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_provider_dropbox.client import errors
from airflow_provider_dropbox.sync.errors import TooManyDeletesError
from airflow_provider_dropbox.sync.two_way import EmptySideError, conflicted_name, sync_two_way
from tests.sync.conftest import remote_tree
from tests.sync.two_way.helpers import ROOT, local_files, put, remote_bytes, same_trees


def test_first_run_merges_and_deletes_nothing(side: Any) -> None:
    client, dest, work = side
    put(client, work, "remote-only.txt", b"r")
    put(client, work, "same.txt", b"same")
    put(client, work, "differ.txt", b"remote version")
    (dest / "local-only.txt").write_bytes(b"l")
    (dest / "same.txt").write_bytes(b"same")
    (dest / "differ.txt").write_bytes(b"local version")
    (dest / "sub").mkdir()
    report = sync_two_way(client, ROOT, dest)
    assert report.first_run and report.ok
    assert report.done.get("delete_remote", 0) == report.done.get("delete_local", 0) == 0
    files = local_files(dest)
    assert (
        files["remote-only.txt"] == b"r" and files["local-only.txt"] == b"l" and files["same.txt"] == b"same"
    )
    assert files["differ.txt"] == b"remote version"
    copies = [p for p in files if p.startswith("differ (conflicted copy ")]
    assert len(copies) == 1 and files[copies[0]] == b"local version"
    assert report.done.get("upload", 0) == 1 and report.done.get("record", 0) == 1  # same.txt: no transfer
    same_trees(client, dest)


def test_no_echo_and_changes_both_ways(side: Any) -> None:
    client, dest, work = side
    put(client, work, "a.txt", b"a1")
    (dest / "b.txt").write_bytes(b"b1")
    sync_two_way(client, ROOT, dest)
    again = sync_two_way(client, ROOT, dest)
    assert again.planned == {} and again.done == {}, "what the sync wrote came back as a change"
    # local create, edit, delete; remote create, edit, delete
    (dest / "c.txt").write_bytes(b"c1")
    (dest / "b.txt").write_bytes(b"b2 local edit")
    put(client, work, "d/e.txt", b"e1")
    put(client, work, "a.txt", b"a2 remote edit")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done == {"download": 2, "upload": 2, "mkdir_local": 1}, report.done
    assert (
        remote_bytes(client, work, "b.txt") == b"b2 local edit"
        and local_files(dest)["a.txt"] == b"a2 remote edit"
    )
    (dest / "c.txt").unlink()
    client.delete(f"{ROOT}/a.txt")
    report = sync_two_way(client, ROOT, dest)
    assert report.done == {"delete_local": 1, "delete_remote": 1}, report.done
    same_trees(client, dest)
    assert sync_two_way(client, ROOT, dest).done == {}


def test_edited_on_both_sides_keeps_both_versions(side: Any) -> None:
    client, dest, work = side
    put(client, work, "doc.txt", b"v1")
    sync_two_way(client, ROOT, dest)
    (dest / "doc.txt").write_bytes(b"local v2")
    put(client, work, "doc.txt", b"remote v2")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and len(report.conflicts) == 1
    files = local_files(dest)
    assert files["doc.txt"] == b"remote v2"
    kept = report.conflicts[0]["kept_as"]
    assert kept.startswith("doc (conflicted copy ") and files[kept] == b"local v2"
    same_trees(client, dest)


@pytest.mark.parametrize("policy,expected", [("local", b"local v2"), ("remote", b"remote v2")])
def test_conflict_policy_picks_a_winner(side: Any, policy: str, expected: bytes) -> None:
    client, dest, work = side
    put(client, work, "doc.txt", b"v1")
    sync_two_way(client, ROOT, dest)
    (dest / "doc.txt").write_bytes(b"local v2")
    put(client, work, "doc.txt", b"remote v2")
    report = sync_two_way(client, ROOT, dest, conflict=policy)  # type: ignore[arg-type]
    assert report.ok and local_files(dest) == {"doc.txt": expected}
    assert remote_bytes(client, work, "doc.txt") == expected


def test_an_edit_wins_over_a_delete_on_either_side(side: Any) -> None:
    client, dest, work = side
    put(client, work, "kept-local.txt", b"1")
    put(client, work, "kept-remote.txt", b"1")
    sync_two_way(client, ROOT, dest)
    (dest / "kept-local.txt").write_bytes(b"edited locally")
    client.delete(f"{ROOT}/kept-local.txt")
    put(client, work, "kept-remote.txt", b"edited on dropbox")
    (dest / "kept-remote.txt").unlink()
    report = sync_two_way(client, ROOT, dest)
    assert report.ok
    assert remote_bytes(client, work, "kept-local.txt") == b"edited locally"
    assert local_files(dest)["kept-remote.txt"] == b"edited on dropbox"
    same_trees(client, dest)


def test_a_concurrent_remote_edit_is_never_overwritten(side: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload of a local edit carries the rev last seen: Dropbox's conflict answer keeps both."""
    client, dest, work = side
    put(client, work, "doc.txt", b"v1")
    sync_two_way(client, ROOT, dest)
    (dest / "doc.txt").write_bytes(b"local v2")
    put(client, work, "doc.txt", b"remote v2 (after the listing)")
    real = client.list_changes
    monkeypatch.setattr(client, "list_changes", lambda cursor: ([], real(cursor)[1]))  # the edit is not seen
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and len(report.conflicts) == 1
    monkeypatch.undo()
    assert remote_bytes(client, work, "doc.txt") == b"remote v2 (after the listing)"
    kept = report.conflicts[0]["kept_as"]
    assert remote_bytes(client, work, kept) == b"local v2"
    assert local_files(dest)["doc.txt"] == b"remote v2 (after the listing)"


def test_a_remote_edit_made_after_the_listing_is_never_deleted(
    side: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local delete goes to Dropbox with the rev last seen (``parent_rev``): a Dropbox edit made after
    the run listed its changes survives it and comes back locally."""
    client, dest, work = side
    for name in ("doc.txt", "other.txt", "kept.txt"):
        put(client, work, name, b"v1")
    sync_two_way(client, ROOT, dest)
    (dest / "doc.txt").unlink()
    (dest / "other.txt").unlink()
    real = client.list_changes

    def list_then_edit(cursor: str) -> Any:
        out = real(cursor)
        put(client, work, "doc.txt", b"edited after the listing")
        return out

    monkeypatch.setattr(client, "list_changes", list_then_edit)
    report = sync_two_way(client, ROOT, dest)
    monkeypatch.undo()
    assert report.ok and [c["path"] for c in report.conflicts] == ["doc.txt"]
    assert remote_bytes(client, work, "doc.txt") == b"edited after the listing"
    assert local_files(dest) == {"doc.txt": b"edited after the listing", "kept.txt": b"v1"}
    assert "other.txt" not in remote_tree(client, ROOT)  # unchanged there: deleted as asked
    again = sync_two_way(client, ROOT, dest)
    assert again.ok and again.done == {} and not again.conflicts  # the edit it already has: no echo
    same_trees(client, dest)


def test_a_local_case_only_rename_of_a_file_reaches_dropbox(side: Any) -> None:
    """Dropbox gets the new case (one move, no delete or upload); the row takes the move's rev, so a later
    edit uploads against it without a conflict; nothing comes back as a change."""
    client, dest, work = side
    put(client, work, "Report.txt", b"r1")
    put(client, work, "dir/Notes.md", b"n1")
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "Report.txt", dest / "REPORT.txt")
    os.rename(dest / "dir" / "Notes.md", dest / "dir" / "notes.md")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done == {"rename_remote": 2}, report.plan
    assert set(remote_tree(client, ROOT)) == {"REPORT.txt", "dir", "dir/notes.md"}  # no temporary name left
    assert sync_two_way(client, ROOT, dest).done == {}  # the renames' own changes do not come back
    (dest / "REPORT.txt").write_bytes(b"r2, edited after the rename")
    edited = sync_two_way(client, ROOT, dest)
    assert edited.ok and edited.done == {"upload": 1} and not edited.conflicts
    assert remote_bytes(client, work, "REPORT.txt") == b"r2, edited after the rename"
    again = sync_two_way(client, ROOT, dest)
    assert again.ok and again.done == {}
    same_trees(client, dest)


def test_a_local_case_only_rename_of_a_folder_reaches_dropbox_and_its_rows_follow(side: Any) -> None:
    """One move of the folder on Dropbox; the rows below take the new local name (recorded, nothing
    transferred), so a later change below it (here a Dropbox delete) reaches the file under its new name
    instead of a path that is gone."""
    client, dest, work = side
    put(client, work, "docs/a.txt", b"a")
    put(client, work, "docs/sub/b.txt", b"b")
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "docs", dest / "Docs")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done == {"rename_remote": 1, "record": 3}, report.plan  # sub, a, b
    same_trees(client, dest)  # the Dropbox names carry the new case, no temporary name left
    assert set(sync_two_way(client, ROOT, dest).done) <= {"record"}  # its own changes: recorded at most
    client.delete(f"{ROOT}/Docs/sub/b.txt")
    deleted = sync_two_way(client, ROOT, dest)
    assert deleted.done == {"delete_local": 1} and not (dest / "Docs" / "sub" / "b.txt").exists()
    assert sync_two_way(client, ROOT, dest).done == {}  # nothing comes back
    same_trees(client, dest)


def test_a_dropbox_file_under_another_case_of_a_local_folder_lands_in_it(side: Any) -> None:
    """Dropbox compares names without case, so a path it gives may carry a folder's case other than the
    local one (here: the local folder was renamed in case while a file was added to it on Dropbox). The
    file goes into the local folder that exists, never into a second folder differing only in case (on a
    case-sensitive disk both would then be left alone as a collision)."""
    client, dest, work = side
    put(client, work, "docs/a.txt", b"a")
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "docs", dest / "Docs")
    put(client, work, "docs/new.txt", b"n")
    put(client, work, "docs/deeper/x.txt", b"x")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and not report.skipped, report.skipped
    assert sorted(p.name for p in dest.iterdir() if p.name != ".dropbox-sync") == ["Docs"]
    assert local_files(dest)["Docs/new.txt"] == b"n" and local_files(dest)["Docs/deeper/x.txt"] == b"x"
    assert set(sync_two_way(client, ROOT, dest).done) <= {"record"}
    same_trees(client, dest)


@pytest.mark.parametrize("when", ["after the first move", "as the second move starts"])
def test_a_run_killed_between_the_case_rename_moves_is_finished_by_the_next(
    side: Any, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The process dies with the item under its temporary name on Dropbox: the next run gives it the new
    name before anything else; no temporary name stays, nothing is duplicated."""
    client, dest, work = side
    put(client, work, "docs/a.txt", b"a")
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "docs", dest / "Docs")
    real = client.move

    def die_after_first_move(from_path: str, to_path: str, autorename: bool = False) -> Any:
        if ".case-rename-" in from_path and when == "as the second move starts":
            raise SystemExit("killed between the two moves")
        out = real(from_path, to_path, autorename)
        if ".case-rename-" in to_path and when == "after the first move":
            raise SystemExit("killed between the two moves")
        return out

    monkeypatch.setattr(client, "move", die_after_first_move)
    with pytest.raises(SystemExit):
        sync_two_way(client, ROOT, dest)
    monkeypatch.undo()
    assert any(".case-rename-" in p for p in remote_tree(client, ROOT))
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and set(report.done) <= {"record"}, report.plan  # finished before the run planned
    assert set(remote_tree(client, ROOT)) == {"Docs", "Docs/a.txt"}
    same_trees(client, dest)


def test_a_case_rename_that_fails_half_way_leaves_the_old_name(
    side: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case-only rename goes through a temporary name; when the second move is refused, the file is
    moved back, the run fails naming it, and the next run renames it."""
    client, dest, work = side
    put(client, work, "a.txt", b"a")
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "a.txt", dest / "A.txt")
    real = client.move
    refused: list[str] = []

    def refuse_second_move(from_path: str, to_path: str, autorename: bool = False) -> Any:
        if ".case-rename-" in from_path and not refused:
            refused.append(to_path)
            raise errors.ServerError("refused once for the test", route="files/move_v2", status=500)
        return real(from_path, to_path, autorename)

    monkeypatch.setattr(client, "move", refuse_second_move)
    report = sync_two_way(client, ROOT, dest, raise_on_error=False)
    monkeypatch.undo()
    assert refused and [e["op"] for e in report.errors] == ["rename_remote"]
    assert set(remote_tree(client, ROOT)) == {"a.txt"}
    assert sync_two_way(client, ROOT, dest).done == {"rename_remote": 1}
    assert set(remote_tree(client, ROOT)) == {"A.txt"}
    same_trees(client, dest)


def test_a_local_rename_is_one_move_not_a_delete_and_upload(side: Any, emu_client: Any) -> None:
    client, dest, work = side
    emu = emu_client[0]
    put(client, work, "folder/one.txt", b"one")
    put(client, work, "big.bin", os.urandom(50_000))
    sync_two_way(client, ROOT, dest)
    os.rename(dest / "big.bin", dest / "renamed.bin")
    os.rename(dest / "folder", dest / "moved folder")
    emu.reset_request_counts()
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done == {"move_remote": 2}, report.done
    counts = emu.request_counts()
    assert not any("upload" in k for k in counts), counts
    same_trees(client, dest)
    # the moved folder's file has a new rev on Dropbox: the next run records it, transfers nothing
    assert set(sync_two_way(client, ROOT, dest).done) <= {"record"}
    assert sync_two_way(client, ROOT, dest).done == {}


def test_empty_local_side_never_empties_dropbox(side: Any) -> None:
    client, dest, work = side
    for i in range(3):
        put(client, work, f"f{i}.txt", b"x")
    sync_two_way(client, ROOT, dest)
    for i in range(3):
        (dest / f"f{i}.txt").unlink()
    with pytest.raises(EmptySideError, match="allow_empty=True"):
        sync_two_way(client, ROOT, dest)
    assert len(remote_tree(client, ROOT)) == 3
    report = sync_two_way(client, ROOT, dest, allow_empty=True)
    assert report.done == {"delete_remote": 3} and remote_tree(client, ROOT) == {}


def test_max_deletes_and_dry_run_change_nothing(side: Any) -> None:
    client, dest, work = side
    for i in range(4):
        put(client, work, f"f{i}.txt", b"x")
    sync_two_way(client, ROOT, dest)
    for i in range(2):
        client.delete(f"{ROOT}/f{i}.txt")
    with pytest.raises(TooManyDeletesError):
        sync_two_way(client, ROOT, dest, max_deletes=1)
    plan = sync_two_way(client, ROOT, dest, dry_run=True)
    assert plan.planned == {"delete_local": 2} and len(local_files(dest)) == 4
    assert sync_two_way(client, ROOT, dest, max_deletes="50%").done == {"delete_local": 2}


def test_names_dropbox_refuses_or_folds_are_reported_and_left_alone(side: Any) -> None:
    client, dest, _work = side
    (dest / "desktop.ini").write_bytes(b"x")
    (dest / "Report.txt").write_bytes(b"upper")
    (dest / "report.txt").write_bytes(b"lower")
    (dest / "ok.txt").write_bytes(b"ok")
    for _ in range(2):  # never loops: the second run reports the same and does nothing
        report = sync_two_way(client, ROOT, dest)
        assert report.ok
        assert {s["path"] for s in report.skipped} == {"desktop.ini", "Report.txt", "report.txt"}
    assert set(remote_tree(client, ROOT)) == {"ok.txt"}
    assert len(local_files(dest)) == 4


def test_conflicted_names_fit_and_count_up() -> None:
    taken = {"a/doc (conflicted copy 2026-12-05).txt"}
    assert (
        conflicted_name("a/doc.txt", "2026-12-05", taken.__contains__)
        == "a/doc (conflicted copy 2026-12-05 2).txt"
    )
    long = conflicted_name("x" * 250 + ".csv", "2026-12-05", lambda p: False)
    assert len(long.encode()) <= 255 and long.endswith("(conflicted copy 2026-12-05).csv")
    assert conflicted_name("README", "2026-12-05", lambda p: False) == "README (conflicted copy 2026-12-05)"


def test_a_dropbox_move_is_a_local_rename_not_a_download(side: Any, emu_client: Any) -> None:
    client, dest, work = side
    emu = emu_client[0]
    put(client, work, "in/a.bin", os.urandom(30_000))
    put(client, work, "in/b.bin", os.urandom(30_000))
    sync_two_way(client, ROOT, dest)
    inode = (dest / "in" / "a.bin").stat().st_ino
    client.move(f"{ROOT}/in", f"{ROOT}/out")
    emu.reset_request_counts()
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done.get("move_local") == 2 and "download" not in report.done, report.done
    assert not any("download" in k for k in emu.request_counts())
    assert (dest / "out" / "a.bin").stat().st_ino == inode and not (dest / "in").exists()
    same_trees(client, dest)


def test_a_folder_deleted_locally_keeps_what_changed_in_it_on_dropbox(side: Any) -> None:
    client, dest, work = side
    put(client, work, "d/edited.txt", b"v1")
    put(client, work, "d/untouched.txt", b"u")
    put(client, work, "keep.txt", b"k")  # the local side is not empty, so its deletes are propagated
    sync_two_way(client, ROOT, dest)
    import shutil

    shutil.rmtree(dest / "d")
    put(client, work, "d/edited.txt", b"v2 on dropbox")
    put(client, work, "d/new.txt", b"new on dropbox")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok
    assert remote_tree(client, ROOT).keys() == {"d", "d/edited.txt", "d/new.txt", "keep.txt"}
    assert local_files(dest) == {
        "d/edited.txt": b"v2 on dropbox",
        "d/new.txt": b"new on dropbox",
        "keep.txt": b"k",
    }
    assert sync_two_way(client, ROOT, dest).done == {}


def test_a_file_replaced_by_a_folder_or_back_on_either_side(side: Any) -> None:
    """bisync-style type flips: the old item goes first, then the new one comes, on the other side too."""
    client, dest, work = side
    put(client, work, "was-file", b"file")
    put(client, work, "was-folder/inside.txt", b"in")
    put(client, work, "keep.txt", b"k")
    sync_two_way(client, ROOT, dest)
    (dest / "was-file").unlink()
    (dest / "was-file").mkdir()
    (dest / "was-file" / "now-inside.txt").write_bytes(b"local folder content")
    client.delete(f"{ROOT}/was-folder")
    put(client, work, "was-folder", b"now a file on dropbox")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok, report.errors
    assert local_files(dest) == {
        "keep.txt": b"k",
        "was-file/now-inside.txt": b"local folder content",
        "was-folder": b"now a file on dropbox",
    }
    same_trees(client, dest)
    assert sync_two_way(client, ROOT, dest).planned == {}
