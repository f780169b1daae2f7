"""Mirror hardening (issue 13, findings 1, 5b, 6, 7, 8): real files, the in-memory remote of tests/sync.

1. any destination holding files a run would delete is guarded (first run or not, adopted or managed);
5b. generated names (conflicted copies, case-collision names) fit NAME_MAX;
6. a subfolder of the destination on another mount is staged on its own device (never EXDEV);
7. the mirror's own folders are checked like user paths (a symlinked staging/state folder is refused);
8. any OSError (or SQLite full/IO error) while committing state is a DestinationError.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import (
    DestinationError,
    EmptyRemoteError,
    MirrorFailedError,
    RemoteShrankError,
    UnsafePathError,
    mirror,
)
from airflow_provider_dropbox.sync import apply as apply_mod
from airflow_provider_dropbox.sync.index import MirrorIndex
from airflow_provider_dropbox.sync.state import load_state
from tests.hardening.helpers import can_mount, tmpfs
from tests.sync.fakes import FakeDropbox, local_tree

MOUNT = can_mount()
needs_mount = pytest.mark.skipif(not MOUNT, reason="needs root and a working `mount -t tmpfs`")


def run(dbx: FakeDropbox, dest: Path, **kw: Any) -> Any:
    kw.setdefault("parallelism", 2)
    return mirror(dbx, "/Root", dest, **kw)


def populate(dest: Path, n: int = 21) -> dict[str, bytes | None]:
    """``n`` user files and a folder in ``dest``; returns the tree to compare against."""
    (dest / "keep").mkdir(parents=True)
    for i in range(n):
        (dest / ("keep" if i % 3 == 0 else "") / f"user{i}.dat").write_bytes(b"user data %d" % i)
    return local_tree(dest)


# -- 1. mass deletes: guarded for every destination ------------------------------------------------------
def test_adopt_local_first_run_over_an_empty_remote_deletes_nothing(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    dbx.mkdir("/Root")
    dest = tmp_path / "x"
    before = populate(dest)
    with pytest.raises(EmptyRemoteError, match="allow_empty_remote=True") as info:
        run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == before
    assert info.value.report is not None and info.value.report.aborted


def test_adopt_local_first_run_over_a_remote_of_only_folders(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    dbx.mkdir("/Root/a/b")
    dbx.mkdir("/Root/c")
    dest = tmp_path / "x"
    before = populate(dest, 5)
    with pytest.raises(EmptyRemoteError):
        run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == before


def test_adopt_local_over_a_populated_dir_with_a_tiny_remote(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    dbx.put("/Root/only.txt", b"the one remote file")
    dest = tmp_path / "x"
    before = populate(dest)
    with pytest.raises(RemoteShrankError, match="would delete 21 of the 21 file"):
        run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == before
    # dry run reports the same refusal
    report = run(dbx, dest, adopt_local=True, dry_run=True)
    assert report.aborted and "21 of the 21" in report.aborted
    # told explicitly: the destination is replaced
    run(dbx, dest, adopt_local=True, max_deletes=21)
    assert local_tree(dest) == {"only.txt": b"the one remote file"}


def test_adopted_mirror_of_only_folders_whose_remote_empties(tmp_path: Path) -> None:
    """The mirror manages no file (only folders), the user's files sit in it, the remote folder empties."""
    dbx = FakeDropbox()
    dbx.mkdir("/Root/sub")
    dest = tmp_path / "x"
    (dest / "sub").mkdir(parents=True)
    assert run(dbx, dest, adopt_local=True).ok
    before = populate(dest, 9)
    dbx.delete("/Root/sub")
    with pytest.raises(EmptyRemoteError, match="holds 9"):
        run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == before
    dbx.reset_cursors()
    with pytest.raises(EmptyRemoteError):
        run(dbx, dest, adopt_local=True)
    assert local_tree(dest) == before


@pytest.mark.parametrize("how", ["full_rescan", "cursor_reset"])
def test_full_listing_that_lost_most_files_is_refused(tmp_path: Path, how: str) -> None:
    dbx = FakeDropbox()
    for i in range(10):
        dbx.put(f"/Root/d{i % 2}/f{i}.txt", b"file %d" % i)
    dest = tmp_path / "m"
    run(dbx, dest)
    before = local_tree(dest)
    for i in range(1, 10):
        dbx.delete(f"/Root/d{i % 2}/f{i}.txt")
    kw: dict[str, Any] = {}
    if how == "full_rescan":
        kw["full_rescan"] = True
    else:
        dbx.reset_cursors()
    with pytest.raises(RemoteShrankError, match="9 of the 10 file"):
        run(dbx, dest, **kw)
    assert local_tree(dest) == before
    state = load_state(str(dest))
    assert state is not None and len([m for m in state.manifest.values() if not m.is_dir]) == 10
    run(dbx, dest, allow_empty_remote=True, **kw)
    assert local_tree(dest) == dbx.tree("/Root")


def test_a_small_full_listing_delete_still_goes_through(tmp_path: Path) -> None:
    dbx = FakeDropbox()
    for i in range(10):
        dbx.put(f"/Root/f{i}.txt", b"file %d" % i)
    dest = tmp_path / "m"
    run(dbx, dest)
    for i in range(4):
        dbx.delete(f"/Root/f{i}.txt")
    assert run(dbx, dest, full_rescan=True).done["delete_file"] == 4


# -- 5b. generated names fit 255 bytes -----------------------------------------------------------------
LONG_NAMES = [
    "r" * 240 + ".txt",  # the case
    "\u00e9" * 121 + ".csv",  # 246 bytes of two-byte characters
    "\u65e5" * 83 + ".bin",  # 253 bytes of three-byte characters
    "n" * 255,  # no extension at all
    "a." + "e" * 250,  # an "extension" too long to keep
]


@pytest.mark.parametrize("name", LONG_NAMES)
def test_long_name_edited_on_both_sides_converges(tmp_path: Path, name: str) -> None:
    dbx = FakeDropbox()
    dbx.put(f"/Root/d/{name}", b"v1")
    dest = tmp_path / "m"
    run(dbx, dest)
    (dest / "d" / name).write_bytes(b"local edit")
    dbx.put(f"/Root/d/{name}", b"v2 remote edit")
    report = run(dbx, dest)
    assert report.ok and report.cursor_advanced
    kept = report.conflicts[0]["kept_as"].rsplit("/", 1)[-1]
    assert len(os.fsencode(kept)) <= 255 and "conflicted copy" in kept
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) < 20:
        assert kept.endswith("." + ext)
    assert (dest / "d" / kept).read_bytes() == b"local edit"
    assert (dest / "d" / name).read_bytes() == b"v2 remote edit"
    # deletes and the cursor keep moving
    dbx.put("/Root/d/other.txt", b"o")
    assert run(dbx, dest).done["download"] == 1


def test_repeated_conflicts_on_a_long_name_get_distinct_copies(tmp_path: Path) -> None:
    name = "q" * 250 + ".log"
    dbx = FakeDropbox()
    dbx.put(f"/Root/{name}", b"v0")
    dest = tmp_path / "m"
    run(dbx, dest)
    kept: set[str] = set()
    for i in range(3):  # same second: the attempt number keeps shortened names apart
        (dest / name).write_bytes(b"local %d" % i)
        dbx.put(f"/Root/{name}", b"remote %d" % i)
        kept.add(run(dbx, dest).conflicts[0]["kept_as"])
    assert len(kept) == 3
    assert {(dest / k).read_bytes() for k in kept} == {b"local 0", b"local 1", b"local 2"}


def test_long_name_deleted_remotely_but_edited_locally_is_kept(tmp_path: Path) -> None:
    name = "\u00fc" * 125 + ".md"
    dbx = FakeDropbox()
    dbx.put(f"/Root/{name}", b"v1")
    dbx.put("/Root/other.txt", b"stay")
    dest = tmp_path / "m"
    run(dbx, dest)
    (dest / name).write_bytes(b"mine")
    dbx.delete(f"/Root/{name}")
    report = run(dbx, dest)
    assert report.ok and report.cursor_advanced
    kept = report.conflicts[0]["kept_as"]
    assert len(os.fsencode(kept)) <= 255 and kept.endswith(".md") and (dest / kept).read_bytes() == b"mine"


@pytest.mark.parametrize(
    ("one", "two"),
    [("\u00df" * 125, "ss" * 125), ("\u00df" * 60 + "x" * 120, "ss" * 60 + "x" * 120)],
)  # "ß" and "ss" are one name to a case-folding file system: the loser gets a generated name
def test_long_collision_names_fit(tmp_path: Path, one: str, two: str) -> None:
    dbx = FakeDropbox()
    dbx.put(f"/Root/{one}.txt", b"sharp s")
    dbx.put(f"/Root/{two}.txt", b"double s")
    dest = tmp_path / "m"
    report = run(dbx, dest)
    assert report.ok and len(report.collisions) == 1 and not report.skipped
    tree = local_tree(dest)
    assert sorted(tree.values()) == [b"double s", b"sharp s"]  # type: ignore[type-var]
    assert all(len(os.fsencode(p)) <= 255 and p.endswith(".txt") for p in tree)


# -- 6. destination spanning mounts --------------------------------------------------------------------
def _tree_dbx() -> FakeDropbox:
    dbx = FakeDropbox()
    dbx.put("/Root/top.txt", b"top")
    dbx.put("/Root/mnt/a.txt", b"on the other mount")
    dbx.put("/Root/mnt/deep/b.txt", b"deeper on the other mount")
    dbx.put("/Root/x/y/mnt2/c.txt", b"nested mount")
    return dbx


def _no_staging_left(dest: Path) -> None:
    left = [p for p in dest.rglob("*") if ".dropbox-mirror-staging-" in str(p) or p.name.endswith(".part")]
    assert left == []
    assert not (dest / ".dropbox-mirror" / "staging-elsewhere").exists()


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """A destination with ``mnt`` (tmpfs) and ``x/y/mnt2`` (tmpfs) on other devices."""
    dest = tmp_path / "m"
    with tmpfs(dest / "mnt", size="4m"), tmpfs(dest / "x" / "y" / "mnt2", size="4m"):
        yield dest


@needs_mount
def test_files_on_other_mounts_are_staged_there(mounted: Path) -> None:
    dbx = _tree_dbx()
    report = run(dbx, mounted)
    assert report.ok and report.done["download"] == 4, report.errors
    assert local_tree(mounted) == dbx.tree("/Root")
    _no_staging_left(mounted)
    # updates, conflicts and deletes on the mount keep working
    dbx.put("/Root/mnt/a.txt", b"changed remotely")
    (mounted / "mnt" / "deep" / "b.txt").write_bytes(b"edited locally")
    dbx.put("/Root/mnt/deep/b.txt", b"changed on both sides")
    dbx.delete("/Root/x/y/mnt2/c.txt")
    dbx.put("/Root/x/y/mnt2/new/d.txt", b"new")
    report = run(dbx, mounted)
    assert report.ok and report.cursor_advanced, report.errors
    assert (mounted / "mnt" / "a.txt").read_bytes() == b"changed remotely"
    assert (mounted / "x" / "y" / "mnt2" / "new" / "d.txt").read_bytes() == b"new"
    assert not (mounted / "x" / "y" / "mnt2" / "c.txt").exists()
    _no_staging_left(mounted)


@needs_mount
def test_bind_mount_on_the_same_device_falls_back_instead_of_exdev(tmp_path: Path) -> None:
    """Same st_dev, different mount: rename(2) still says EXDEV; the file is moved onto its mount."""
    src = tmp_path / "elsewhere"
    src.mkdir()
    dest = tmp_path / "m"
    (dest / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(dest / "mnt")], check=True)
    try:
        dbx = _tree_dbx()
        report = run(dbx, dest)
        assert report.ok, report.errors
        assert (dest / "mnt" / "deep" / "b.txt").read_bytes() == b"deeper on the other mount"
        dbx.put("/Root/mnt/a.txt", b"v2")
        assert run(dbx, dest).ok
        assert (src / "a.txt").read_bytes() == b"v2"
        _no_staging_left(dest)
    finally:
        subprocess.run(["umount", "-l", str(dest / "mnt")], check=False)


@needs_mount
def test_staging_left_on_another_mount_by_a_crash_is_removed(
    mounted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbx = _tree_dbx()
    dbx.fail_downloads.add("/root/mnt/deep/b.txt")

    real_drop = apply_mod.Applier.drop_foreign_staging

    def crash(self: apply_mod.Applier) -> None:  # kill -9 stand-in: the staging folders are not removed
        if list(mounted.rglob(".dropbox-mirror-staging-*")):  # (a streamed page that made one)
            raise SystemExit("crashed")
        real_drop(self)

    monkeypatch.setattr(apply_mod.Applier, "drop_foreign_staging", crash)
    with pytest.raises(SystemExit):
        run(dbx, mounted, parallelism=1)
    assert list(mounted.rglob(".dropbox-mirror-staging-*"))
    monkeypatch.undo()
    dbx.fail_downloads.clear()
    assert run(dbx, mounted).ok
    assert local_tree(mounted) == dbx.tree("/Root")
    _no_staging_left(mounted)


# -- 7. the mirror's own folders -------------------------------------------------------------------------
def _seeded(tmp_path: Path) -> tuple[FakeDropbox, Path, Path]:
    dbx = FakeDropbox()
    for i in range(4):
        dbx.put(f"/Root/f{i}.txt", b"content %d" % i)
    dest = tmp_path / "m"
    outside = tmp_path / "outside"
    outside.mkdir()
    return dbx, dest, outside


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_symlinked_staging_folder_is_refused(tmp_path: Path, target: str) -> None:
    dbx, dest, outside = _seeded(tmp_path)
    (dest / ".dropbox-mirror").mkdir(parents=True)
    aim = outside if target == "outside" else dest / "user"
    aim.mkdir(exist_ok=True)
    (aim / "precious.txt").write_bytes(b"keep")
    os.symlink(aim, dest / ".dropbox-mirror" / "staging")
    with pytest.raises(UnsafePathError, match="staging is a symlink"):
        run(dbx, dest)
    assert sorted(os.listdir(aim)) == ["precious.txt"]
    assert not (dest / "f0.txt").exists()


def test_staging_swapped_for_a_symlink_mid_run_writes_nothing_outside(tmp_path: Path) -> None:
    dbx, dest, outside = _seeded(tmp_path)
    original = dbx.download_file

    def download_then_swap(remote_path: str, local_path: str, **kw: Any) -> dict[str, Any]:
        meta = original(remote_path, local_path, **kw)
        staging = dest / ".dropbox-mirror" / "staging"
        if not staging.is_symlink():
            os.rename(staging, tmp_path / "old-staging")
            os.symlink(outside, staging)
        return meta

    dbx.download_file = download_then_swap  # type: ignore[method-assign]
    # refused by the download that finds it, or by the next listing page before it writes anything
    with pytest.raises((MirrorFailedError, UnsafePathError)) as info:
        run(dbx, dest, parallelism=1)
    assert os.listdir(outside) == []
    if isinstance(info.value, MirrorFailedError):
        assert any("UnsafePathError" in e["error"] for e in info.value.report.errors)


def test_state_folder_swapped_for_a_symlink_before_commit_is_refused(tmp_path: Path) -> None:
    dbx, dest, outside = _seeded(tmp_path)
    original = dbx.download_file
    count = 0

    def download_then_swap(remote_path: str, local_path: str, **kw: Any) -> dict[str, Any]:
        nonlocal count
        meta = original(remote_path, local_path, **kw)
        count += 1
        if count == 4:
            os.rename(dest / ".dropbox-mirror", tmp_path / "moved-state")
            os.symlink(outside, dest / ".dropbox-mirror")
        return meta

    dbx.download_file = download_then_swap  # type: ignore[method-assign]
    with pytest.raises(UnsafePathError, match=r"\.dropbox-mirror is a symlink"):
        run(dbx, dest, parallelism=1)
    assert os.listdir(outside) == []


def test_state_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    dbx, dest, _ = _seeded(tmp_path)
    dest.mkdir()
    (dest / ".dropbox-mirror").write_bytes(b"not a folder")
    with pytest.raises(UnsafePathError, match="not a folder"):
        run(dbx, dest)
    assert (dest / ".dropbox-mirror").read_bytes() == b"not a folder"


# -- 8. a failing state commit is a DestinationError ----------------------------------------------------
class _FailingCommit:
    """The index's connection, except that COMMIT number ``nth`` fails the way SQLite reports a full or
    failing disk (the WAL frames are written and synced at COMMIT)."""

    def __init__(self, conn: sqlite3.Connection, nth: int, message: str) -> None:
        self.conn, self.nth, self.message, self.commits = conn, nth, message, 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self.commits += 1
            if self.commits == self.nth:
                raise sqlite3.OperationalError(self.message)
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _fail_commit(monkeypatch: pytest.MonkeyPatch, nth: int, message: str) -> None:
    real_open = MirrorIndex.open.__func__  # type: ignore[attr-defined]

    def open_failing(cls: type[MirrorIndex], folder: str) -> MirrorIndex:
        index = real_open(cls, folder)
        index.conn = _FailingCommit(index.conn, nth, message)  # type: ignore[assignment]
        return index

    monkeypatch.setattr(MirrorIndex, "open", classmethod(open_failing))


@pytest.mark.parametrize(
    ("nth", "message"),
    [(1, "database or disk is full"), (1, "disk I/O error"), (2, "database or disk is full"),
     (3, "disk I/O error")],
    ids=["intents-full", "intents-eio", "checkpoint-full", "later-commit-eio"],
)  # fmt: skip
def test_failed_index_commit_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int, message: str
) -> None:
    dbx, dest, _ = _seeded(tmp_path)
    monkeypatch.setattr(apply_mod, "CHECKPOINT_EVERY", -1.0)  # a checkpoint after every transfer
    _fail_commit(monkeypatch, nth, message)
    with pytest.raises(DestinationError, match=r"index\.sqlite3.*" + message.split()[0]):
        run(dbx, dest, parallelism=1)
    monkeypatch.undo()
    assert run(dbx, dest).ok and local_tree(dest) == dbx.tree("/Root")


def test_failed_final_commit_keeps_the_last_committed_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbx, dest, _ = _seeded(tmp_path)
    run(dbx, dest)
    cursor = load_state(str(dest.resolve())).cursor  # type: ignore[union-attr]
    dbx.put("/Root/new.txt", b"new")
    _fail_commit(monkeypatch, 2, "database or disk is full")  # 1: intents, 2: the final commit
    with pytest.raises(DestinationError, match="disk is full"):
        run(dbx, dest)
    monkeypatch.undo()
    assert load_state(str(dest.resolve())).cursor == cursor  # type: ignore[union-attr]
    report = run(dbx, dest)
    assert report.ok and report.cursor_advanced and (dest / "new.txt").read_bytes() == b"new"


@needs_mount
@pytest.mark.parametrize("at", ["listing", "download"])
def test_real_full_disk_while_committing_state(tmp_path: Path, at: str) -> None:
    """A real tmpfs filled up after the lock is taken: the intents or the state cannot be written."""
    with tmpfs(tmp_path / "fs", size="256k") as fs:
        dbx, dest, _ = _seeded(fs)
        filled = False

        def fill() -> None:
            nonlocal filled
            if filled:
                return
            filled = True
            try:
                with open(fs / "filler", "wb", buffering=0) as fh:
                    while True:
                        fh.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

        if at == "listing":
            real_list = dbx.list_folder_snapshot

            def list_then_fill(path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]:
                out = real_list(path, recursive)
                fill()
                return out

            dbx.list_folder_snapshot = list_then_fill  # type: ignore[method-assign]
        else:
            real_download = dbx.download_file

            def download_then_fill(remote_path: str, local_path: str, **kw: Any) -> dict[str, Any]:
                meta = real_download(remote_path, local_path, **kw)
                fill()
                return meta

            dbx.download_file = download_then_fill  # type: ignore[method-assign]
        with pytest.raises(DestinationError):
            run(dbx, dest, parallelism=1)
        os.unlink(fs / "filler")
        assert run(dbx, dest).ok and local_tree(dest) == dbx.tree("/Root")
