"""rclone bisync's documented edge cases (its docs and ``cmd/bisync/testdata`` test names), each against the
two-way sync on the emulator. Cases covered elsewhere: changed on both sides and changed vs deleted
(test_engine.py), max-delete on the local side, dry run, first-run merge (``--resync``)."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from airflow_provider_dropbox.sync.errors import LockHeldError, TooManyDeletesError
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.two_way import sync_two_way
from tests.sync.conftest import remote_tree
from tests.sync.two_way.helpers import ROOT, local_files, put, remote_bytes, same_trees


def test_equal_changes_on_both_sides_are_no_conflict(side: Any) -> None:  # bisync: test_equal
    client, dest, work = side
    put(client, work, "same.txt", b"v1")
    sync_two_way(client, ROOT, dest)
    (dest / "same.txt").write_bytes(b"the same v2")
    put(client, work, "same.txt", b"the same v2")
    report = sync_two_way(client, ROOT, dest)
    assert report.conflicts == [] and report.done == {"record": 1}
    assert local_files(dest) == {"same.txt": b"the same v2"}


def test_deleted_on_both_sides_is_forgotten_quietly(side: Any) -> None:  # bisync: deleted on both paths
    client, dest, work = side
    put(client, work, "gone.txt", b"x")
    put(client, work, "stay.txt", b"y")
    sync_two_way(client, ROOT, dest)
    (dest / "gone.txt").unlink()
    client.delete(f"{ROOT}/gone.txt")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done == {} and report.planned == {"forget": 1}
    assert sync_two_way(client, ROOT, dest).planned == {}


def test_max_delete_on_the_dropbox_side(side: Any) -> None:  # bisync: test_max_delete_path2_force
    client, dest, work = side
    for i in range(4):
        put(client, work, f"f{i}.txt", b"x")
    sync_two_way(client, ROOT, dest)
    for i in range(3):
        (dest / f"f{i}.txt").unlink()
    with pytest.raises(TooManyDeletesError, match="Dropbox side"):
        sync_two_way(client, ROOT, dest, max_deletes="50%")
    assert len(remote_tree(client, ROOT)) == 4
    assert sync_two_way(client, ROOT, dest, max_deletes=3).done == {"delete_remote": 3}


def test_removed_folders_go_on_both_sides(side: Any) -> None:  # bisync: test_rmdirs
    client, dest, work = side
    put(client, work, "keep.txt", b"k")
    client.create_folder(f"{ROOT}/empty-remote")
    (dest / "empty-local").mkdir()
    sync_two_way(client, ROOT, dest)
    assert set(remote_tree(client, ROOT)) == {"keep.txt", "empty-remote", "empty-local"}
    assert (dest / "empty-remote").is_dir()
    (dest / "empty-local").rmdir()
    client.delete(f"{ROOT}/empty-remote")
    report = sync_two_way(client, ROOT, dest)
    assert report.done == {"delete_local": 1, "delete_remote": 1}
    same_trees(client, dest)


def test_extended_file_names(side: Any) -> None:  # bisync: test_extended_filenames
    client, dest, work = side
    nfd = unicodedata.normalize("NFD", "Résumé (final) \U0001f600.txt")
    (dest / nfd).write_bytes(b"local")
    (dest / "空白 と スペース.md").write_bytes(b"cjk")
    put(client, work, "from dropbox/na\u00efve & co #1.csv", b"remote")
    report = sync_two_way(client, ROOT, dest)
    assert report.ok and report.done.get("upload") == 2 and report.done.get("download") == 1
    assert sync_two_way(client, ROOT, dest).planned == {}
    assert local_files(dest)["from dropbox/na\u00efve & co #1.csv"] == b"remote"


def test_filters_leave_excluded_files_alone_both_ways(side: Any) -> None:  # bisync: test_filters
    client, dest, work = side
    (dest / "keep.csv").write_bytes(b"k")
    (dest / "scratch.tmp").write_bytes(b"local tmp")
    put(client, work, "cache/blob.tmp", b"remote tmp")
    report = sync_two_way(client, ROOT, dest, exclude=["*.tmp"])
    assert report.ok and set(remote_tree(client, ROOT)) == {"keep.csv", "cache", "cache/blob.tmp"}
    assert "cache/blob.tmp" not in local_files(dest) and (dest / "scratch.tmp").exists()


def test_a_file_changing_while_it_uploads_is_sent_again(side: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """bisync: test_volatile. The upload records the file only if it did not change meanwhile."""
    client, dest, _work = side
    target = dest / "volatile.log"
    target.write_bytes(b"line 1\n")
    real = client.upload_file

    def upload_then_append(local: Any, remote: str, **kw: Any) -> Any:
        out = real(local, remote, **kw)
        with open(local, "ab") as fh:
            fh.write(b"line 2, written during the upload\n")
        return out

    monkeypatch.setattr(client, "upload_file", upload_then_append)
    sync_two_way(client, ROOT, dest)
    monkeypatch.undo()
    report = sync_two_way(client, ROOT, dest)
    assert report.done == {"upload": 1}
    assert remote_bytes(client, _work, "volatile.log") == b"line 1\nline 2, written during the upload\n"


def test_a_second_run_at_the_same_time_is_refused(side: Any) -> None:  # bisync: the lock file
    client, dest, _work = side
    sync_two_way(client, ROOT, dest)
    with MirrorLock(str(dest / ".dropbox-sync")):
        with pytest.raises(LockHeldError):
            sync_two_way(client, ROOT, dest)
