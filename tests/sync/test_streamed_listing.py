"""Full listings stream (sync/streamed.py): each listing page is planned, applied and committed, so a run
never holds the whole listing and downloads start with the first page. A first run commits each page's
cursor (a run stopped midway continues from its last page); a ``full_rescan`` or a reconcile after a cursor
reset deletes what the listing did not name only at the end, after the delete guards.

The fake lists ``page_size`` entries a page. A streamed first run must leave exactly what a first run
over the whole listing at once leaves (files, index rows, counts), in random trees with case-fold
collisions and strangers already in the destination.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import MirrorFailedError, RemoteShrankError, mirror, streamed
from airflow_provider_dropbox.sync import report as report_mod
from airflow_provider_dropbox.sync.errors import TooManyDeletesError
from airflow_provider_dropbox.sync.index import MirrorIndex
from airflow_provider_dropbox.sync.remote import RemoteTree
from tests.sync.fakes import FakeClient, local_tree
from tests.sync.test_partial import FILES, ROOT, _edit_locally, _index_rows, _local, _Ops, _plan


class _WholeListing:
    """The same fake without ``list_folder_pages``: the engine lists everything at once."""

    def __init__(self, inner: FakeClient) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "list_folder_pages":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _rows(dest: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest, remote = _index_rows(dest)
    return {p: (m.is_dir, m.key, m.content_hash, m.size, m.rev) for p, m in manifest.items()}, remote


def _fetches(plan: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A plan with local copies counted as downloads (same file, other source; reasons say which)."""
    out = []
    for action in plan:
        a = {k: v for k, v in action if k not in ("source", "reason")}
        if a["op"] == "copy_local":
            a["op"] = "download"
        out.append(tuple(sorted(a.items())))
    return sorted(out)


def _fetched(counts: dict[str, int]) -> dict[str, int]:
    out = dict(counts)
    out["download"] = out.get("download", 0) + out.pop("copy_local", 0)
    return {k: v for k, v in out.items() if v}


def _random_remote(seed: int, steps: int) -> tuple[FakeClient, _Ops]:
    """A fake Dropbox after ``steps`` random operations, listing 1 to 7 entries a page."""
    fake = FakeClient()
    ops = _Ops(fake, seed)
    fake.mkdir(ROOT)
    for _ in range(steps):
        ops.step()
    fake.page_size = ops.rng.choice([1, 2, 3, 7])
    return fake, ops


def _strangers(rng: random.Random, dests: tuple[Path, ...]) -> None:
    """The same files already in every destination before its first run (some identical to Dropbox's)."""
    for _ in range(rng.randint(0, 4)):
        rel = rng.choice(FILES)
        data = rng.choice([b"same bytes", b"stranger"])
        for dest in dests:
            dest.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)


@pytest.mark.parametrize("conflict", ["copy", "skip"])
@pytest.mark.parametrize("seed", range(6))
def test_streamed_first_run_leaves_what_a_whole_listing_leaves(
    tmp_path: Path, seed: int, conflict: str
) -> None:
    fake, ops = _random_remote(seed, 40)
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    _strangers(ops.rng, (streamed, whole))
    for round_ in range(4):  # the first run, then incremental runs on what it committed
        a = mirror(fake, ROOT, streamed, allow_empty_remote=True, parallelism=2, conflict=conflict)
        b = mirror(
            _WholeListing(fake), ROOT, whole, allow_empty_remote=True, parallelism=2, conflict=conflict
        )
        assert a.ok and b.ok and a.mode == b.mode and a.cursor_advanced and b.cursor_advanced
        if round_ == 0:  # a later page copies what an earlier one downloaded; the whole listing downloads
            assert _fetches(_plan(a)) == _fetches(_plan(b)), (_plan(a), _plan(b))
            assert _fetched(a.planned) == _fetched(b.planned) and _fetched(a.done) == _fetched(b.done)
        else:
            assert _plan(a) == _plan(b), f"round {round_}: the streamed run planned differently"
            assert a.planned == b.planned and a.done == b.done
        assert a.remote_files == b.remote_files
        assert sorted(map(str, a.collisions)) == sorted(map(str, b.collisions)), (a.collisions, b.collisions)
        assert _local(streamed) == _local(whole)
        assert _rows(streamed) == _rows(whole)
        for _ in range(ops.rng.randint(1, 4)):
            ops.step()


def _bulk(n: int) -> FakeClient:
    fake = FakeClient()
    for i in range(n):
        fake.put(f"{ROOT}/d{i % 3}/f{i:03d}.txt", f"file {i}".encode())
    fake.page_size = 4
    return fake


def test_first_run_never_holds_the_whole_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _bulk(30)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the first run held the whole listing or index")

    monkeypatch.setattr(RemoteTree, "from_listing", classmethod(refuse))
    monkeypatch.setattr(MirrorIndex, "load", refuse)
    pages: list[int] = []
    real_pages = fake.list_folder_pages

    def counted(path: str, recursive: bool = True) -> Iterator[Any]:
        for page in real_pages(path, recursive):
            pages.append(len(page[0]))
            yield page

    monkeypatch.setattr(fake, "list_folder_pages", counted)
    report = mirror(fake, ROOT, tmp_path / "m")
    assert report.ok and report.mode == "full" and report.done["download"] == 30
    assert len(pages) == 9 and local_tree(tmp_path / "m") == fake.tree(ROOT)


def test_downloads_start_before_the_listing_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _bulk(40)
    events: list[str] = []
    real_pages, real_download = fake.list_folder_pages, fake.download_file

    def pages(path: str, recursive: bool = True) -> Iterator[Any]:
        for page in real_pages(path, recursive):
            events.append("page")
            yield page

    def download(remote: str, local: str, **kw: Any) -> dict[str, Any]:
        events.append("download")
        return real_download(remote, local, **kw)

    monkeypatch.setattr(fake, "list_folder_pages", pages)
    monkeypatch.setattr(fake, "download_file", download)
    assert mirror(fake, ROOT, tmp_path / "m", parallelism=1).ok
    assert events.index("download") < len(events) - 1 - events[::-1].index("page")
    # one page ahead at most: the listing never runs far past what has been applied
    assert events[: events.index("download")].count("page") <= 3


def test_a_run_stopped_midway_continues_from_the_last_page(tmp_path: Path) -> None:
    fake = _bulk(30)
    dest = tmp_path / "m"
    real = fake.download_file
    n = {"count": 0}

    def dying(remote: str, local: str, **kw: Any) -> dict[str, Any]:
        n["count"] += 1
        if n["count"] == 17:
            raise SystemExit("simulated kill")
        return real(remote, local, **kw)

    fake.download_file = dying  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        mirror(fake, ROOT, dest, parallelism=1)
    fake.download_file = real  # type: ignore[method-assign]
    before = fake.calls["download"]
    assert 8 <= before < 30  # some pages committed, not all
    report = mirror(fake, ROOT, dest)
    assert report.ok and report.mode == "incremental" and report.cursor_advanced
    assert fake.calls.get("list_folder", 0) == 1  # the rest came from the committed page's cursor
    assert fake.calls["download"] == 30  # nothing fetched twice
    assert local_tree(dest) == fake.tree(ROOT)


def test_a_failed_file_does_not_hold_back_the_pages_after_it(tmp_path: Path) -> None:
    fake = _bulk(30)
    dest = tmp_path / "m"
    bad = f"{ROOT}/d1/f001.txt".lower()
    fake.fail_downloads.add(bad)
    with pytest.raises(MirrorFailedError) as info:
        mirror(fake, ROOT, dest)
    report = info.value.report
    assert [e["path"] for e in report.errors] == ["d1/f001.txt"]
    assert report.done["download"] == 29 and report.cursor_advanced
    assert not (dest / "d1" / "f001.txt").exists()
    fake.fail_downloads.clear()
    again = mirror(fake, ROOT, dest)  # the failed key is looked at again from the index
    assert again.ok and again.mode == "incremental" and again.done == {"download": 1}
    assert local_tree(dest) == fake.tree(ROOT)
    third = mirror(fake, ROOT, dest)
    assert third.ok and third.done == {} and third.plan == []


def test_a_streamed_report_keeps_a_bounded_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_mod, "PLAN_KEPT", 10)
    report = mirror(_bulk(30), ROOT, tmp_path / "m")
    assert len(report.plan) == 10 and report.plan_left_out == 30 + 3 - 10  # 30 downloads, 3 folders
    assert report.planned["download"] == 30 and report.to_dict(plan_limit=4)["plan_truncated"] == 29


@pytest.mark.parametrize("how", ["full_rescan", "reset"])
@pytest.mark.parametrize("seed", range(6))
def test_streamed_reconcile_leaves_what_a_whole_listing_leaves(tmp_path: Path, seed: int, how: str) -> None:
    """A ``full_rescan`` or a reconcile after a cursor reset, streamed, after random remote histories and
    local edits: the same files and index rows as the whole listing, nothing more fetched; unlisted keys
    deleted."""
    fake, ops = _random_remote(seed, 30)
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    kw: dict[str, Any] = {"allow_empty_remote": True, "parallelism": 2}
    assert mirror(fake, ROOT, streamed, **kw).ok and mirror(_WholeListing(fake), ROOT, whole, **kw).ok
    for round_ in range(4):
        for _ in range(ops.rng.randint(1, 6)):
            ops.step()
        if ops.rng.random() < 0.5:
            _edit_locally(ops.rng, (streamed, whole))
        if how == "reset":
            fake.reset_cursors()
        extra = {"full_rescan": True} if how == "full_rescan" else {}
        a = mirror(fake, ROOT, streamed, **kw, **extra)
        b = mirror(_WholeListing(fake), ROOT, whole, **kw, **extra)
        assert a.ok and b.ok and a.mode == b.mode and a.cursor_advanced and b.cursor_advanced
        # no more downloads than the whole listing fetched (downloads plus local copies: a copy source
        # may be gone by a later page); a name freed by an unlisted key (deleted after the listing) may
        # move a collision-renamed item once more, by a local copy
        assert a.done.get("download", 0) <= _fetched(b.done).get("download", 0), (round_, a.done, b.done)
        assert _local(streamed) == _local(whole)
        assert _rows(streamed) == _rows(whole)
        again = mirror(fake, ROOT, streamed, **kw)  # and the streamed index carries on incrementally
        assert again.ok and again.mode == "incremental" and again.plan == []


@pytest.mark.parametrize("how", ["full_rescan", "reset"])
def test_a_streamed_reconcile_checks_its_deletes_before_making_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    fake = _bulk(30)
    dest = tmp_path / "m"
    assert mirror(fake, ROOT, dest).ok
    for i in range(20):  # two thirds of the files go while the cursor is being reset or ignored
        fake.delete(f"{ROOT}/d{i % 3}/f{i:03d}.txt")
    fake.put(f"{ROOT}/d0/new.txt", b"new")
    if how == "reset":
        fake.reset_cursors()
    extra = {"full_rescan": True} if how == "full_rescan" else {}
    monkeypatch.setattr(RemoteTree, "from_listing", classmethod(lambda *a, **k: pytest.fail("whole listing")))
    with pytest.raises(RemoteShrankError):
        mirror(fake, ROOT, dest, **extra)
    assert len([p for p, v in local_tree(dest).items() if v is not None]) == 30  # nothing written yet
    with pytest.raises(TooManyDeletesError):
        mirror(fake, ROOT, dest, max_deletes=19, **extra)
    report = mirror(fake, ROOT, dest, max_deletes=20, **extra)
    assert report.ok and report.cursor_advanced and report.done.get("delete_file") == 20
    assert local_tree(dest) == fake.tree(ROOT)
    assert mirror(fake, ROOT, dest).mode == "incremental"


def test_a_reconcile_with_an_error_deletes_nothing_and_keeps_the_cursor(tmp_path: Path) -> None:
    fake = _bulk(30)
    dest = tmp_path / "m"
    assert mirror(fake, ROOT, dest).ok
    before = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    cursor = before.meta()["cursor"]
    before.close()
    fake.delete(f"{ROOT}/d2/f002.txt")
    fake.put(f"{ROOT}/d1/f001.txt", b"edited")
    fake.fail_downloads.add(f"{ROOT}/d1/f001.txt".lower())
    with pytest.raises(MirrorFailedError) as info:
        mirror(fake, ROOT, dest, full_rescan=True)
    report = info.value.report
    assert not report.cursor_advanced and report.deletes_skipped == 1
    assert (dest / "d2" / "f002.txt").exists()  # no delete after an error
    after = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    assert after.meta()["cursor"] == cursor
    after.close()
    fake.fail_downloads.clear()
    assert mirror(fake, ROOT, dest, full_rescan=True).ok
    assert local_tree(dest) == fake.tree(ROOT)


def test_a_full_rescan_restores_a_folder_deleted_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders listed again unchanged are not loaded below (their subtrees did not change), yet a folder
    that went away locally, with its files, is made again and refilled."""
    fake = _bulk(30)
    dest = tmp_path / "m"
    assert mirror(fake, ROOT, dest).ok
    shutil.rmtree(dest / "d1")
    subtrees: list[str] = []
    real = MirrorIndex.remote_subtree

    def spy(self: MirrorIndex, key: str) -> Any:
        subtrees.append(key)
        return real(self, key)

    monkeypatch.setattr(MirrorIndex, "remote_subtree", spy)
    report = mirror(fake, ROOT, dest, full_rescan=True)
    assert report.ok and report.done == {"create_folder": 1, "download": 10}
    assert local_tree(dest) == fake.tree(ROOT)
    assert subtrees == []


@pytest.mark.parametrize("full_rescan", [False, True])
def test_a_run_stopped_mid_listing_leaves_no_listing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full_rescan: bool
) -> None:
    """The page reader's thread ends with the run that stopped early, not whenever the garbage collector
    gets to it: collected inside another thread's start, its shutdown deadlocked that start."""
    fake = FakeClient()
    for i in range(12):
        fake.put(f"{ROOT}/d{i % 3}/f{i}.txt", b"x%d" % i)
    dest = tmp_path / "m"
    if full_rescan:
        assert mirror(fake, ROOT, dest).ok

    def broken_step(self: Any, entries: Any, cursor: Any) -> bool:
        raise OSError(28, "No space left on device", str(dest))

    monkeypatch.setattr(streamed._Pages, "step", broken_step)
    with pytest.raises(Exception) as caught:  # the traceback keeps the run's frames alive meanwhile
        mirror(fake, ROOT, dest, full_rescan=full_rescan)
    assert caught.value is not None
    assert [t.name for t in threading.enumerate() if t.name.startswith("dropbox-listing")] == []
