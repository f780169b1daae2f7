"""LocalFolderChangeTrigger on real files: settled files fire once, half-written ones wait, old ones not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger


async def next_event(events: AsyncIterator[Any], timeout: float = 5.0) -> dict[str, Any]:
    event = await asyncio.wait_for(events.__anext__(), timeout)
    return dict(event.payload)


def trigger(folder: Path, **kw: Any) -> LocalFolderChangeTrigger:
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("settle_seconds", 0.3)
    return LocalFolderChangeTrigger(path=str(folder), **kw)


def test_new_changed_and_deleted_files_fire_after_they_settle(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("already here")

    async def scenario() -> None:
        events = trigger(tmp_path).run()
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


def test_pattern_recursion_hidden_files_and_existing_files(tmp_path: Path) -> None:
    (tmp_path / "before.csv").write_text("x")

    async def scenario() -> None:
        events = trigger(tmp_path, pattern="*.csv", recursive=False, fire_on_existing=True).run()
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
    t = LocalFolderChangeTrigger(path=str(tmp_path), pattern="*.csv", settle_seconds=2)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_dropbox.triggers.local_folder.LocalFolderChangeTrigger"
    assert LocalFolderChangeTrigger(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="absolute"):
        LocalFolderChangeTrigger(path="relative/dir")
    with pytest.raises(ValueError, match="poll_interval"):
        LocalFolderChangeTrigger(path=str(tmp_path), poll_interval=0)
