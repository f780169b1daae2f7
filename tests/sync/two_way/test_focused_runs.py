"""Focused two-way runs (``local_changes``): they look only at the named local paths and at what changed on
Dropbox, with the same guards as a run walking the whole folder, and remember what they did not finish."""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_provider_dropbox.sync.errors import MirrorConfigError
from airflow_provider_dropbox.sync.two_way import EmptySideError, sync_two_way
from airflow_provider_dropbox.sync.two_way.focus import PENDING
from airflow_provider_dropbox.sync.two_way.index import SyncIndex
from tests.sync.two_way.helpers import ROOT, local_files, put, remote_bytes, same_trees


def _synced(side: Any, files: dict[str, bytes]) -> None:
    client, dest, work = side
    for rel, data in files.items():
        put(client, work, rel, data)
    assert sync_two_way(client, ROOT, dest).ok


def test_a_focused_run_looks_only_at_the_named_paths_and_at_dropbox_changes(side: Any) -> None:
    client, dest, work = side
    _synced(side, {"a/one.txt": b"1", "a/two.txt": b"2", "b/three.txt": b"3"})
    (dest / "a" / "one.txt").write_bytes(b"1 edited")  # named
    (dest / "b" / "three.txt").write_bytes(b"3 edited")  # not named: left for a full run
    put(client, work, "a/two.txt", b"2 edited on Dropbox")
    report = sync_two_way(client, ROOT, dest, local_changes=["a/one.txt"])
    assert report.focused and report.done == {"upload": 1, "download": 1}, report.done
    assert remote_bytes(client, work, "a/one.txt") == b"1 edited"
    assert local_files(dest)["a/two.txt"] == b"2 edited on Dropbox"
    assert remote_bytes(client, work, "b/three.txt") == b"3"
    full = sync_two_way(client, ROOT, dest)
    assert not full.focused and full.done == {"upload": 1}, full.done
    same_trees(client, dest)


def test_a_named_file_in_a_new_or_moved_folder_brings_the_whole_folder(side: Any) -> None:
    client, dest, _work = side
    _synced(side, {"old/x.txt": b"x", "old/y.txt": b"y", "keep/z.txt": b"z"})
    os.rename(dest / "old", dest / "new")  # a folder move: the watcher names the files at both places
    report = sync_two_way(client, ROOT, dest, local_changes=["old/x.txt", "new/x.txt"])
    assert report.focused and report.done == {"move_remote": 1}, report.plan
    same_trees(client, dest)
    (dest / "fresh" / "deep").mkdir(parents=True)
    (dest / "fresh" / "deep" / "f.txt").write_bytes(b"f")
    (dest / "fresh" / "g.txt").write_bytes(b"g")  # not named, but its folder is new: seen with it
    report = sync_two_way(client, ROOT, dest, local_changes=["fresh/deep/f.txt"])
    assert report.done.get("mkdir_remote") == 2 and report.done.get("upload") == 2, report.done
    same_trees(client, dest)


def test_what_a_failed_focused_run_was_told_is_looked_at_again(
    side: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, dest, work = side
    _synced(side, {"doc.txt": b"v1"})
    (dest / "doc.txt").write_bytes(b"v2")
    real = client.upload_file
    monkeypatch.setattr(client, "upload_file", lambda *a, **k: (_ for _ in ()).throw(OSError("link down")))
    report = sync_two_way(client, ROOT, dest, local_changes=["doc.txt"], raise_on_error=False)
    assert report.errors and not report.cursor_advanced
    monkeypatch.setattr(client, "upload_file", real)
    again = sync_two_way(client, ROOT, dest, local_changes=[])  # told nothing new this time
    assert again.focused and again.done == {"upload": 1}, again.done
    assert remote_bytes(client, work, "doc.txt") == b"v2"
    index = SyncIndex.open(str(dest / ".dropbox-sync"))
    try:
        assert index.meta()[PENDING] == ""  # a clean run forgets them
    finally:
        index.close()


def test_after_a_failed_walk_the_next_run_walks_even_when_told_paths(
    side: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk that failed did not finish something nobody named: the next run walks instead of focusing."""
    client, dest, work = side
    _synced(side, {"doc.txt": b"v1", "other.txt": b"o"})
    (dest / "doc.txt").write_bytes(b"v2")
    real = client.upload_file
    monkeypatch.setattr(client, "upload_file", lambda *a, **k: (_ for _ in ()).throw(OSError("link down")))
    assert sync_two_way(client, ROOT, dest, raise_on_error=False).errors  # a walk
    monkeypatch.setattr(client, "upload_file", real)
    again = sync_two_way(client, ROOT, dest, local_changes=["other.txt"])
    assert not again.focused and again.done == {"upload": 1}, again.done
    assert remote_bytes(client, work, "doc.txt") == b"v2"
    assert sync_two_way(client, ROOT, dest, local_changes=[]).focused  # clean again: focused


def test_a_focused_run_keeps_the_emptied_folder_guard(side: Any) -> None:
    """Deletes with no local file in view: the run looks at the whole folder before deciding, so an
    emptied (or unmounted) local folder still refuses to delete on Dropbox."""
    client, dest, work = side
    _synced(side, {"a.txt": b"a", "b.txt": b"b", "c/d.txt": b"d"})
    for rel in ("a.txt", "b.txt", "c/d.txt"):
        (dest / rel).unlink()
    with pytest.raises(EmptySideError):
        sync_two_way(client, ROOT, dest, local_changes=["a.txt"])
    assert set(local_files(dest)) == set() and remote_bytes(client, work, "b.txt") == b"b"


def test_a_named_path_under_names_that_collide_is_left_alone(side: Any) -> None:
    client, dest, work = side
    _synced(side, {"Docs/r.txt": b"r"})
    (dest / "docs").mkdir()  # another local folder folding to the same Dropbox name
    (dest / "docs" / "s.txt").write_bytes(b"s")
    (dest / "Docs" / "r.txt").write_bytes(b"r edited")
    report = sync_two_way(client, ROOT, dest, local_changes=["Docs/r.txt", "docs/s.txt"])
    assert report.done == {} and {s["path"] for s in report.skipped} >= {"Docs", "docs"}, report.skipped
    assert remote_bytes(client, work, "Docs/r.txt") == b"r"


def test_a_named_delete_reaches_dropbox_when_other_files_are_still_there(side: Any) -> None:
    client, dest, _work = side
    _synced(side, {"gone.txt": b"g", "stays/here.txt": b"h"})
    (dest / "gone.txt").unlink()
    report = sync_two_way(client, ROOT, dest, local_changes=["gone.txt"])
    assert report.done == {"delete_remote": 1}, report.done
    same_trees(client, dest)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.txt", "a/../../b", "a//b", "."])
def test_local_changes_outside_the_folder_are_refused(side: Any, bad: str) -> None:
    client, dest, _work = side
    with pytest.raises(MirrorConfigError, match="relative to the local folder"):
        sync_two_way(client, ROOT, dest, local_changes=[bad])
