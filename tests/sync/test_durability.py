"""The mirror's data is on disk before the state that records it (one sync per checkpoint, not per file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import DestinationError, durable, engine, mirror
from airflow_provider_dropbox.sync import apply as apply_mod
from airflow_provider_dropbox.sync.durable import fsync_path, make_durable
from airflow_provider_dropbox.sync.index import MirrorIndex
from airflow_provider_dropbox.sync.state import load_state
from tests.sync.fakes import FakeDropbox, local_tree


@pytest.fixture
def dbx() -> FakeDropbox:
    d = FakeDropbox()
    for i in range(40):
        d.put(f"/Root/d{i % 4}/f{i:02d}.txt", f"file {i}".encode())
    return d


def _watch_order(monkeypatch: pytest.MonkeyPatch) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """Record what was made durable, and at every state write which recorded files were not yet."""
    synced: set[str] = set()
    writes: list[tuple[str, list[str]]] = []
    real_sync, real_write = engine.make_durable, MirrorIndex.write

    def sync(files: Sequence[str], folders: Sequence[str], width: int) -> None:
        real_sync(files, folders, width)
        synced.update(files)
        synced.update(folders)

    def write(self: MirrorIndex, **kw: Any) -> None:
        rows = {**(kw.get("replace_manifest") or {}), **(kw.get("manifest_rows") or {})}
        root = os.path.dirname(os.path.dirname(self.path))
        files = [os.path.join(root, *p.split("/")) for p, m in rows.items() if m is not None and not m.is_dir]
        folders = {os.path.dirname(f) for f in files}
        cursor = (kw.get("meta") or {}).get("cursor") or ""
        writes.append((cursor, sorted(p for p in [*files, *folders] if p not in synced)))
        real_write(self, **kw)

    monkeypatch.setattr(engine, "make_durable", sync)
    monkeypatch.setattr(MirrorIndex, "write", write)
    return synced, writes


@pytest.mark.parametrize("every", [0.0, 3600.0], ids=["checkpoint-after-each-file", "final-commit-only"])
def test_state_is_written_only_after_the_files_it_records_are_durable(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: float
) -> None:
    monkeypatch.setattr(apply_mod, "CHECKPOINT_EVERY", every)
    synced, writes = _watch_order(monkeypatch)
    dest = tmp_path / "m"
    r = mirror(dbx, "/Root", dest, parallelism=4)
    assert r.ok and local_tree(dest) == dbx.tree("/Root")
    assert dbx.fsync_args == [False] * 40  # no per-file fsync in the client
    assert len(writes) >= (3 if every == 0 else 1), writes  # checkpoints and the final commit
    assert [w for w in writes if w[1]] == []  # no state write named a file (or folder) not yet synced
    root = str(dest.resolve())
    assert {os.path.join(root, f"d{i % 4}", f"f{i:02d}.txt") for i in range(40)} <= synced

    n = len(writes)
    dbx.put("/Root/d1/new.txt", b"new")  # incremental: the one new file is synced before the commit
    r = mirror(dbx, "/Root", dest, parallelism=4)
    assert r.done == {"download": 1} and os.path.join(root, "d1", "new.txt") in synced
    assert writes[n:] and [w for w in writes[n:] if w[1]] == []


def test_a_failed_sync_writes_no_state_and_the_next_run_converges(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "m"

    def refusing(files: Sequence[str], folders: Sequence[str], width: int) -> None:
        raise DestinationError("Cannot make the downloaded files durable on disk: fsync failed (EIO)")

    monkeypatch.setattr(engine, "make_durable", refusing)
    with pytest.raises(DestinationError, match="durable"):
        mirror(dbx, "/Root", dest, parallelism=4)
    assert load_state(str(dest.resolve())) is None  # nothing recorded the unsynced files
    monkeypatch.undo()
    r = mirror(dbx, "/Root", dest, parallelism=4)
    assert r.ok and r.cursor_advanced and local_tree(dest) == dbx.tree("/Root")
    # the files the failed run left there were recovered, not fetched again (a streamed first run stops
    # at the page that failed, so the rest are fetched now, once)
    files = sum(1 for v in dbx.tree("/Root").values() if v is not None)
    assert dbx.calls["download"] == files


def test_a_failed_checkpoint_sync_stops_the_queued_downloads(
    dbx: FakeDropbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbx.page_size = 1000  # one listing page: this is about a run's own checkpoints
    monkeypatch.setattr(apply_mod, "CHECKPOINT_EVERY", 0.0)
    calls = {"n": 0}

    def refusing(files: Sequence[str], folders: Sequence[str], width: int) -> None:
        calls["n"] += 1
        raise DestinationError("fsync failed (EIO)")

    monkeypatch.setattr(engine, "make_durable", refusing)
    with pytest.raises(DestinationError):
        mirror(dbx, "/Root", tmp_path / "m", parallelism=1)
    assert calls["n"] == 1  # the first checkpoint failed and stopped the run
    assert dbx.calls["download"] < 40  # the queued downloads were cancelled
    assert load_state(str((tmp_path / "m").resolve())) is None


def test_fsync_path_skips_what_is_no_longer_a_plain_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    fsync_path(str(f))
    fsync_path(str(tmp_path), is_dir=True)
    fsync_path(str(tmp_path / "gone"))  # removed since it was placed
    (tmp_path / "link").symlink_to(f)
    fsync_path(str(tmp_path / "link"))  # replaced by a link: not followed
    os.mkfifo(tmp_path / "fifo")
    fsync_path(str(tmp_path / "fifo"))  # replaced by a FIFO: does not block


def _files(tmp_path: Path, n: int = 6) -> list[str]:
    files = [str(tmp_path / f"f{i}") for i in range(n)]
    for f in files:
        Path(f).write_bytes(b"x")
    return files


def test_fsync_fallback_names_the_path_it_could_not_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "_syncfs", lambda: None)  # not Linux: fsync each file, then the folders
    synced: list[str] = []
    real = durable.fsync_path

    def counting(path: str, *, is_dir: bool = False) -> None:
        real(path, is_dir=is_dir)
        synced.append(path)

    monkeypatch.setattr(durable, "fsync_path", counting)
    files = _files(tmp_path)
    make_durable(files, [str(tmp_path)], 4)
    assert sorted(synced) == sorted([*files, str(tmp_path)])
    bad = str(tmp_path / ("x" * 300))  # ENAMETOOLONG: a real error that is not "gone"
    with pytest.raises(DestinationError, match=r"sync of .*xxxx.* failed.*state was not written"):
        make_durable([*files, bad], [], 4)


@pytest.mark.skipif(durable._syncfs() is None, reason="syncfs is Linux-only")
def test_syncfs_once_per_file_system_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import errno

    real = durable._syncfs()
    assert real is not None
    calls: list[int] = []

    def counting(fd: int) -> int:
        calls.append(os.fstat(fd).st_dev)
        return real(fd)

    monkeypatch.setattr(durable, "_syncfs", lambda: counting)
    (tmp_path / "sub").mkdir()
    files = _files(tmp_path) + _files(tmp_path / "sub")
    make_durable(files, [str(tmp_path), str(tmp_path / "sub")], 4)
    assert calls == [os.stat(tmp_path).st_dev]  # one file system: one call for the whole batch

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durable, "_syncfs", lambda: failing)
    with pytest.raises(DestinationError, match=r"sync of .* failed \(Input/output error\).*not written"):
        make_durable(files, [], 4)

    fsynced: list[str] = []

    def no_syncfs(fd: int) -> int:
        ctypes.set_errno(errno.ENOSYS)
        return -1

    monkeypatch.setattr(durable, "_syncfs", lambda: no_syncfs)
    monkeypatch.setattr(durable, "fsync_path", lambda p, is_dir=False: fsynced.append(p))
    make_durable(files, [str(tmp_path)], 4)
    assert sorted(fsynced) == sorted([*files, str(tmp_path)])  # old kernel: falls back to fsync


def test_a_client_without_the_fsync_argument_still_works(tmp_path: Path) -> None:
    """A minimal MirrorClient (the documented four methods) keeps working; it just syncs per file."""

    class Minimal(FakeDropbox):
        def download_file(self, remote_path: str, local_path: str) -> dict[str, Any]:  # type: ignore[override]
            return super().download_file(remote_path, local_path)

    d = Minimal()
    d.put("/Root/a.txt", b"alpha")
    assert mirror(d, "/Root", tmp_path / "m").ok
    assert d.fsync_args == [True]


def test_transfers_keep_only_a_few_futures_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One future per file cost ~20 MiB at 10,000 files; the pool is fed as it drains instead."""
    import concurrent.futures
    import threading

    outstanding = {"now": 0, "max": 0}
    mu = threading.Lock()

    def finished(_: Any) -> None:
        with mu:
            outstanding["now"] -= 1

    class Counting(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            with mu:
                outstanding["now"] += 1
                outstanding["max"] = max(outstanding["max"], outstanding["now"])
            fut = super().submit(fn, *args, **kwargs)
            fut.add_done_callback(finished)
            return fut

    monkeypatch.setattr(apply_mod, "ThreadPoolExecutor", Counting)
    d = FakeDropbox()
    for i in range(400):
        d.put(f"/Root/f{i:03d}.txt", f"{i}".encode())
    assert mirror(d, "/Root", tmp_path / "m", parallelism=2).done["download"] == 400
    assert 2 <= outstanding["max"] <= 2 * apply_mod.QUEUED_PER_WORKER
