"""LocalFolderChangeTrigger on real files: settled files fire once, half-written ones wait, old ones not."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox import localwatch
from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger


async def next_event(events: AsyncIterator[Any], timeout: float = 5.0) -> dict[str, Any]:
    event = await asyncio.wait_for(events.__anext__(), timeout)
    return dict(event.payload)


def trigger(folder: Path, **kw: Any) -> LocalFolderChangeTrigger:
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("settle_seconds", 0.3)
    return LocalFolderChangeTrigger(path=str(folder), **kw)


@pytest.mark.parametrize("watch", ["scan", "inotify"])
def test_new_changed_and_deleted_files_fire_after_they_settle(tmp_path: Path, watch: str) -> None:
    (tmp_path / "old.txt").write_text("already here")

    async def scenario() -> None:
        events = trigger(tmp_path, watch=watch).run()
        task = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "new.csv").write_text("a")
        first = dict((await asyncio.wait_for(task, 5)).payload)
        assert first["changed"] == ["sub/new.csv"] and first["count"] == 1 and not first["truncated"]
        (tmp_path / "old.txt").write_text("edited")
        (tmp_path / "sub" / "new.csv").unlink()
        got = await next_event(events)
        if got["count"] == 1:  # the delete and the edit may settle in different scans
            got2 = await next_event(events)
            got = {"changed": got["changed"] + got2["changed"], "deleted": got["deleted"] + got2["deleted"]}
        assert got["changed"] == ["old.txt"] and got["deleted"] == ["sub/new.csv"]

    asyncio.run(scenario())


def test_scan_mode_a_file_still_being_written_waits_until_it_stops_changing(tmp_path: Path) -> None:
    async def scenario() -> None:
        events = trigger(tmp_path, settle_seconds=0.6, watch="scan").run()
        task = asyncio.ensure_future(events.__anext__())
        growing = tmp_path / "big.bin"
        start = asyncio.get_running_loop().time()
        for i in range(8):  # grows for about 1.2 s
            with growing.open("ab") as fh:
                fh.write(b"x" * 1000)
            await asyncio.sleep(0.15)
            assert not task.done(), f"fired while the file was still growing (step {i})"
        event = dict((await asyncio.wait_for(task, 5)).payload)
        assert event["changed"] == ["big.bin"]
        assert asyncio.get_running_loop().time() - start >= 1.2 + 0.6 - 0.2

    asyncio.run(scenario())


@pytest.mark.parametrize("watch", ["scan", "inotify"])
def test_pattern_recursion_hidden_files_and_existing_files(tmp_path: Path, watch: str) -> None:
    (tmp_path / "before.csv").write_text("x")

    async def scenario() -> None:
        events = trigger(tmp_path, pattern="*.csv", recursive=False, fire_on_existing=True, watch=watch).run()
        first = await next_event(events)
        assert first["changed"] == ["before.csv"]  # fire_on_existing: reported once
        (tmp_path / "skip.txt").write_text("no")
        (tmp_path / ".hidden.csv").write_text("no")
        (tmp_path / "deeper").mkdir()
        (tmp_path / "deeper" / "nested.csv").write_text("no: not recursive")
        (tmp_path / "yes.csv").write_text("yes")
        assert (await next_event(events))["changed"] == ["yes.csv"]

    asyncio.run(scenario())


def test_serialization_round_trip_and_bad_input(tmp_path: Path) -> None:
    t = LocalFolderChangeTrigger(path=str(tmp_path), pattern="*.csv", settle_seconds=2, watch="scan")
    classpath, kwargs = t.serialize()
    assert kwargs["watch"] == "scan"
    assert classpath == "airflow_provider_dropbox.triggers.local_folder.LocalFolderChangeTrigger"
    assert LocalFolderChangeTrigger(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="absolute"):
        LocalFolderChangeTrigger(path="relative/dir")
    with pytest.raises(ValueError, match="poll_interval"):
        LocalFolderChangeTrigger(path=str(tmp_path), poll_interval=0)
    with pytest.raises(ValueError, match=r"watch='fanotify'.*'auto', 'inotify', 'scan'"):
        LocalFolderChangeTrigger(path=str(tmp_path), watch="fanotify")


# inotify mode. settle_seconds=30 and poll_interval=30 throughout: an event within seconds can only come
# from inotify (close-write, move-in or delete), never from a scan or from the settle time.


def watcher(folder: Path, **kw: Any) -> LocalFolderChangeTrigger:
    kw.setdefault("settle_seconds", 30)
    kw.setdefault("poll_interval", 30)
    return LocalFolderChangeTrigger(path=str(folder), watch="inotify", **kw)


async def started(events: AsyncIterator[Any], t: LocalFolderChangeTrigger) -> asyncio.Future[Any]:
    """The first event as a task, once the trigger took its baseline (a file written before that would be
    part of it, not an event)."""
    task = asyncio.ensure_future(events.__anext__())
    deadline = time.monotonic() + 10
    while not t._started and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)
    return task


async def payload(task: asyncio.Future[Any], timeout: float = 10.0) -> dict[str, Any]:
    """Generous for a loaded CI box: any event before settle_seconds=30 already proves the inotify path."""
    return dict((await asyncio.wait_for(task, timeout)).payload)


def inotify_fds() -> int:
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if _link(f"/proc/self/fd/{fd}") == "anon_inode:inotify")


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_inotify_a_closed_file_is_reported_well_before_settle_seconds(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = watcher(tmp_path)
        events = t.run()
        task = await started(events, t)
        start = time.monotonic()
        (tmp_path / "report.csv").write_text("written and closed")
        got = await payload(task)
        assert got == {
            "path": str(tmp_path),
            "count": 1,
            "changed": ["report.csv"],
            "deleted": [],
            "truncated": False,
        }
        assert time.monotonic() - start < 10  # settle_seconds and poll_interval are 30
        (tmp_path / "report.csv").write_text("edited")
        assert (await payload(events.__anext__()))["changed"] == ["report.csv"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_a_file_held_open_and_appended_waits_for_close_or_settle(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = watcher(tmp_path)
        events = t.run()
        task = await started(events, t)
        with (tmp_path / "growing.log").open("ab") as fh:
            for i in range(8):  # appended for about 0.8 s: never closed, never quiet for settle_seconds
                fh.write(b"x" * 100)
                fh.flush()
                await asyncio.sleep(0.1)
                assert not task.done(), f"fired while the file was still open and growing (step {i})"
        assert (await payload(task))["changed"] == ["growing.log"]  # closed: reported after the debounce
        await events.aclose()  # type: ignore[attr-defined]

        t = watcher(tmp_path, settle_seconds=0.6)
        events = t.run()
        task = await started(events, t)
        with (tmp_path / "held.log").open("ab") as fh:
            fh.write(b"x")
            fh.flush()
            start = time.monotonic()
            await asyncio.sleep(0.4)
            assert not task.done(), "an open file with a recent write fired before settle_seconds"
            got = await payload(task)  # still open, but quiet for settle_seconds
            assert got["changed"] == ["held.log"] and time.monotonic() - start >= 0.55
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_renames_in_out_and_within_and_deletes(tmp_path: Path) -> None:
    watched, outside = tmp_path / "watched", tmp_path / "outside"
    watched.mkdir()
    outside.mkdir()
    (watched / "gone.txt").write_text("to delete")
    (watched / "a.txt").write_text("to rename")

    async def scenario() -> None:
        t = watcher(watched)
        events = t.run()
        task = await started(events, t)
        (outside / "in.txt").write_text("atomically placed")
        os.replace(outside / "in.txt", watched / "in.txt")
        assert (await payload(task))["changed"] == ["in.txt"]
        (watched / "gone.txt").unlink()
        assert (await payload(events.__anext__()))["deleted"] == ["gone.txt"]
        os.replace(watched / "a.txt", watched / "b.txt")
        got = await payload(events.__anext__())
        assert (got["changed"], got["deleted"]) == (["b.txt"], ["a.txt"])
        os.replace(watched / "b.txt", outside / "b.txt")
        assert (await payload(events.__anext__()))["deleted"] == ["b.txt"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_new_and_moved_in_folders_are_watched_and_reported(tmp_path: Path) -> None:
    watched, outside = tmp_path / "watched", tmp_path / "outside"
    watched.mkdir()
    (outside / "tree" / "deep").mkdir(parents=True)
    (outside / "tree" / "top.csv").write_text("1")
    (outside / "tree" / "deep" / "low.csv").write_text("2")

    async def scenario() -> None:
        t = watcher(watched)
        events = t.run()
        task = await started(events, t)
        (watched / "new" / "inner").mkdir(parents=True)  # the inner folder may exist before "new" is watched
        await asyncio.sleep(0.1)
        (watched / "new" / "inner" / "f.csv").write_text("in a folder created after the start")
        assert (await payload(task))["changed"] == ["new/inner/f.csv"]

        os.replace(outside / "tree", watched / "tree")  # files already in it: found by listing the folder
        got = await payload(events.__anext__())
        assert sorted(got["changed"]) == ["tree/deep/low.csv", "tree/top.csv"]
        (watched / "tree" / "deep" / "later.csv").write_text("the moved-in folder is watched too")
        assert (await payload(events.__anext__()))["changed"] == ["tree/deep/later.csv"]

        os.replace(watched / "tree", watched / "renamed")
        got = await payload(events.__anext__())
        assert sorted(got["changed"]) == ["renamed/deep/later.csv", "renamed/deep/low.csv", "renamed/top.csv"]
        assert sorted(got["deleted"]) == ["tree/deep/later.csv", "tree/deep/low.csv", "tree/top.csv"]
        os.replace(
            watched / "renamed", outside / "renamed"
        )  # moved out: its files are gone, its watches dropped
        got = await payload(events.__anext__())
        assert sorted(got["deleted"]) == ["renamed/deep/later.csv", "renamed/deep/low.csv", "renamed/top.csv"]
        (outside / "renamed" / "deep" / "after.csv").write_text("no longer under the watched folder")
        (watched / "marker.csv").write_text("m")
        assert (await payload(events.__anext__()))["changed"] == ["marker.csv"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_a_tree_created_in_a_burst_is_reported_completely_and_once(tmp_path: Path) -> None:
    """Files written right after their folder race the new watch: the ones the listing finds count after
    settle_seconds, the others on close; none is lost or reported twice."""
    want = {f"a{a}/b{b}/f{c}.csv" for a in range(4) for b in range(3) for c in range(10)}

    def make() -> None:
        for rel in sorted(want):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(rel)

    async def scenario() -> None:
        t = watcher(tmp_path, settle_seconds=0.5)
        events = t.run()
        task = await started(events, t)
        await asyncio.to_thread(make)
        got: list[str] = []
        counted = 0  # an event lists at most 100 paths (then "truncated"); its count has them all
        while counted < len(want):
            event = await payload(task)
            counted += event["count"]
            got += event["changed"]
            assert event["truncated"] == (event["count"] > len(event["changed"]))
            task = asyncio.ensure_future(events.__anext__())
        assert counted == len(want) and len(set(got)) == len(got) and set(got) <= want
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.8)  # nothing reported twice
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_hidden_names_and_pattern(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = watcher(tmp_path, pattern="*.csv")
        events = t.run()
        task = await started(events, t)
        (tmp_path / ".hidden.csv").write_text("no")
        (tmp_path / ".cache").mkdir()
        await asyncio.sleep(0.05)
        (tmp_path / ".cache" / "inside.csv").write_text("no: hidden folder")
        (tmp_path / "notes.txt").write_text("no: pattern")
        (tmp_path / "sub").mkdir()
        await asyncio.sleep(0.05)
        (tmp_path / "sub" / ".partial.csv").write_text("no")
        (tmp_path / "sub" / "yes.csv").write_text("yes")
        got = await payload(task)
        assert got["changed"] == ["sub/yes.csv"] and got["count"] == 1
        os.replace(tmp_path / "sub" / ".partial.csv", tmp_path / "sub" / "done.csv")  # hidden temp renamed
        assert (await payload(events.__anext__()))["changed"] == ["sub/done.csv"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_queue_overflow_falls_back_to_a_full_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kept.txt").write_text("unchanged")
    real_read = localwatch.Inotify.read
    drop = {"on": False}

    def overflowing_read(self: localwatch.Inotify) -> tuple[list[localwatch.InotifyEvent], bool]:
        events, more = real_read(self)
        if drop["on"] and events:  # the kernel dropped these events and said so
            return [localwatch.InotifyEvent(-1, localwatch.IN_Q_OVERFLOW, 0, "")], more
        return events, more

    monkeypatch.setattr(localwatch.Inotify, "read", overflowing_read)

    async def scenario() -> None:
        t = watcher(tmp_path, settle_seconds=0.3)
        events = t.run()
        task = await started(events, t)
        drop["on"] = True
        (tmp_path / "lost-event.txt").write_text("only a full compare finds me")
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "nested.txt").write_text("and me")
        got = await payload(task)
        assert sorted(got["changed"]) == ["dir/nested.txt", "lost-event.txt"] and got["deleted"] == []
        drop["on"] = False
        (tmp_path / "dir" / "after.txt").write_text("the folder found by the compare is watched")
        assert (await payload(events.__anext__()))["changed"] == ["dir/after.txt"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_watch_limit_switches_to_scanning_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_add = localwatch.Inotify.add_watch

    def limited_add(self: localwatch.Inotify, path: str, mask: int = localwatch.FOLDER_MASK) -> int:
        if os.path.basename(path) == "many":
            raise localwatch.WatchLimitError(28, "inotify watch limit reached", path)
        return real_add(self, path, mask)

    monkeypatch.setattr(localwatch.Inotify, "add_watch", limited_add)

    async def scenario() -> None:
        t = watcher(tmp_path, settle_seconds=0.3, poll_interval=0.05)
        t._log = logging.getLogger("tests.local_folder")  # a stdlib logger caplog sees
        events = t.run()
        task = await started(events, t)
        before = inotify_fds()
        (tmp_path / "many").mkdir()
        (tmp_path / "many" / "x.txt").write_text("found by the scan")
        assert (await payload(task))["changed"] == ["many/x.txt"]
        assert inotify_fds() == before - 1  # the inotify instance is closed: scanning from now on
        (tmp_path / "y.txt").write_text("scan")
        assert (await payload(events.__anext__()))["changed"] == ["y.txt"]
        await events.aclose()  # type: ignore[attr-defined]

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert sum("max_user_watches" in r.getMessage() for r in caplog.records) == 1
    assert not any("gone" in r.getMessage() for r in caplog.records)  # not mistaken for a lost folder


def test_inotify_the_folder_deleted_and_recreated_keeps_the_trigger_alive(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "a.txt").write_text("a")

    async def scenario() -> None:
        t = watcher(folder, settle_seconds=0.3, poll_interval=0.05)
        events = t.run()
        task = await started(events, t)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
        assert (await payload(task))["deleted"] == ["a.txt"]
        folder.mkdir()
        (folder / "b.txt").write_text("b")
        assert (await payload(events.__anext__()))["changed"] == ["b.txt"]
        for _ in range(40):  # re-armed: inotify again once the folder is back
            if t._inotify is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        t.poll_interval = 30.0  # from now on only inotify can report within the timeout
        (folder / "c.txt").write_text("c")
        assert (await payload(events.__anext__()))["changed"] == ["c.txt"]
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_inotify_descriptor_closed_when_the_trigger_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        before = inotify_fds()
        t = watcher(tmp_path)
        events = t.run()
        task = await started(events, t)
        assert inotify_fds() == before + 1
        task.cancel()  # the triggerer cancels a trigger it no longer needs
        await asyncio.gather(task, return_exceptions=True)
        assert inotify_fds() == before

        t = watcher(tmp_path)
        events = t.run()
        task = await started(events, t)
        (tmp_path / "f").write_text("x")
        await payload(task)
        assert inotify_fds() == before + 1
        await events.aclose()  # type: ignore[attr-defined]  # closed while suspended at its yield
        assert inotify_fds() == before

        t = watcher(tmp_path)
        task = await started(t.run(), t)
        await t.cleanup()
        assert inotify_fds() == before
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_watch_inotify_without_inotify_fails_clearly_and_auto_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localwatch, "_init1", None)

    async def scenario() -> None:
        with pytest.raises(localwatch.InotifyUnavailableError, match=r"watch='inotify'.*'auto' or 'scan'"):
            await watcher(tmp_path).run().__anext__()
        t = trigger(tmp_path, watch="auto")
        events = t.run()
        task = await started(events, t)
        (tmp_path / "f.txt").write_text("found by scanning")
        assert (await payload(task))["changed"] == ["f.txt"]

    asyncio.run(scenario())


def test_inotify_wrapper_parses_records_and_reports_errors(tmp_path: Path) -> None:
    import fcntl
    import struct

    def record(wd: int, mask: int, name: bytes, pad: int) -> bytes:
        raw = name + b"\0" * pad if name or pad else b""
        return struct.pack("iIII", wd, mask, 7, len(raw)) + raw

    buf = record(1, localwatch.IN_CLOSE_WRITE, b"caf\xc3\xa9.csv", 5) + record(
        -1, localwatch.IN_Q_OVERFLOW, b"", 0
    )
    assert localwatch.parse_events(buf) == [
        localwatch.InotifyEvent(1, localwatch.IN_CLOSE_WRITE, 7, "café.csv"),
        localwatch.InotifyEvent(-1, localwatch.IN_Q_OVERFLOW, 7, ""),
    ]
    (tmp_path / "file").write_text("x")
    with localwatch.Inotify() as ino:
        assert fcntl.fcntl(ino.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert fcntl.fcntl(ino.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        assert ino.read() == ([], False)  # nothing queued: returns at once
        with pytest.raises(FileNotFoundError):
            ino.add_watch(str(tmp_path / "missing"))
        with pytest.raises(NotADirectoryError):
            ino.add_watch(str(tmp_path / "file"))
        wd = ino.add_watch(str(tmp_path))
        assert ino.add_watch(str(tmp_path)) == wd  # the same folder, the same watch
        (tmp_path / "file").write_text("y")
        events, _ = ino.read()
        assert localwatch.InotifyEvent(wd, localwatch.IN_CLOSE_WRITE, 0, "file") in events
        ino.rm_watch(wd)
        ino.rm_watch(wd)  # already gone: not an error
    assert ino.closed and ino.read() == ([], False)
    ino.close()
