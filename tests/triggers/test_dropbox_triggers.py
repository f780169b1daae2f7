"""Triggers: ``serialize()`` round trips, and real ``run()`` against the emulator (plain ``asyncio.run``).

The AssetWatcher trigger is shown to yield on a change (within 2 s of it) and to stay silent through a
quiet window spanning several longpoll timeouts, and to keep its cursor in the asset state store so a
restart neither replays nor loses changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger, DropboxChangeTrigger
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import conn_env

LONGPOLL = "/2/files/list_folder/longpoll"


class MemoryStateStore:
    """Stands in for the 3.3 triggerer's ``AssetStateStoreAccessors`` (same ``aget``/``aset`` calls)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = value


@pytest.fixture
def quick_emulator(
    fresh_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorProcess]:
    """A private emulator whose longpolls time out after 0.5 s, as connection ``dbx_quick``."""
    fresh_emulator.set_faults(longpoll_max_s=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_DBX_QUICK", conn_env(fresh_emulator.base_url))
    yield fresh_emulator


def _upload(hook: Any, tmp: Path, remote: str, text: str = "x") -> dict[str, Any]:
    local = tmp / remote.strip("/").replace("/", "_")
    local.write_text(text)
    return hook.upload_file(local, remote, mode="overwrite")  # type: ignore[no-any-return]


async def _wait_for_longpolls(emu: EmulatorProcess, before: int, n: int = 1, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while await asyncio.to_thread(lambda: emu.stats().get(LONGPOLL, 0)) < before + n:
        assert time.monotonic() < deadline, "trigger never started a longpoll"
        await asyncio.sleep(0.05)


# -- serialize ---------------------------------------------------------------------------------------------


def test_sensor_trigger_serializes_to_its_init_kwargs() -> None:
    trigger = DropboxChangeTrigger(path="/in", cursor="c1", file_pattern="*.csv", kinds=["added", "deleted"])
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dropbox.triggers.dropbox.DropboxChangeTrigger"
    assert kwargs == {
        "path": "/in",
        "cursor": "c1",
        "dropbox_conn_id": "dropbox_default",
        "recursive": True,
        "file_pattern": "*.csv",
        "kinds": ["added", "deleted"],
        "include_folders": False,
        "longpoll_timeout": 30,
        "on_cursor_reset": "relist",
    }
    assert DropboxChangeTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_event_trigger_serializes_without_a_cursor() -> None:
    """Watcher identity is the hash of its kwargs: a cursor in them would make every save a new trigger."""
    trigger = DropboxChangeEventTrigger(path="/in", longpoll_timeout=1000, max_changes_in_event=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dropbox.triggers.dropbox.DropboxChangeEventTrigger"
    assert "cursor" not in kwargs
    assert kwargs["longpoll_timeout"] == 480  # clamped to Dropbox's maximum
    assert DropboxChangeEventTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"kinds": ["created"]}, "Unknown change kind", id="kind"),
        pytest.param({"on_cursor_reset": "ignore"}, "on_cursor_reset", id="reset-policy"),
    ],
)
def test_bad_trigger_arguments_fail_early(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DropboxChangeEventTrigger(path="/in", **kwargs)


# -- the sensor's trigger ----------------------------------------------------------------------------------


def test_sensor_trigger_wakes_on_a_change_within_two_seconds(
    dropbox_default: EmulatorProcess, hook: Any, root: str, tmp_path: Path
) -> None:
    hook.create_folder(root)
    cursor = hook.get_latest_cursor(root)
    trigger = DropboxChangeTrigger(path=root, cursor=cursor, file_pattern="*.csv")

    async def scenario() -> tuple[dict[str, Any], float]:
        before = dropbox_default.stats().get(LONGPOLL, 0)
        task = asyncio.create_task(anext(trigger.run()))  # type: ignore[arg-type]
        await _wait_for_longpolls(dropbox_default, before)
        await asyncio.to_thread(_upload, hook, tmp_path, f"{root}/skip.txt")  # filtered out: keeps waiting
        await asyncio.sleep(1.0)
        assert not task.done()
        await _wait_for_longpolls(dropbox_default, before, n=2)
        await asyncio.to_thread(_upload, hook, tmp_path, f"{root}/a.csv")
        changed = time.monotonic()
        event = await asyncio.wait_for(task, 20)
        return event.payload, time.monotonic() - changed

    payload, latency = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [c["path"] for c in payload["changes"]] == [f"{root}/a.csv"]
    assert payload["cursor"] != cursor and payload["reset"] is False
    assert latency < 2.0, f"noticed the change after {latency:.2f} s"


def test_sensor_trigger_reports_a_missing_folder_as_an_error(
    dropbox_default: EmulatorProcess, hook: Any
) -> None:
    root = f"/ops-tests/missing-{time.time_ns()}"
    hook.create_folder(root)
    cursor = hook.get_latest_cursor(root)
    hook.delete(root)
    dropbox_default.admin("reset_cursors", {})
    trigger = DropboxChangeTrigger(path=root, cursor=cursor, on_cursor_reset="relist")

    async def first() -> Any:
        return await asyncio.wait_for(anext(trigger.run()), 60)  # type: ignore[arg-type]

    payload = asyncio.run(first()).payload
    assert payload["status"] == "error"
    assert "PathNotFound" in payload["message"] or "not found" in payload["message"].lower()


def test_sensor_trigger_reset_policy_fail_is_reported_clearly(
    quick_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/watched")
    cursor = hook.get_latest_cursor("/watched")
    quick_emulator.admin("reset_cursors", {})
    trigger = DropboxChangeTrigger(
        path="/watched", cursor=cursor, dropbox_conn_id="dbx_quick", on_cursor_reset="fail"
    )
    payload = asyncio.run(asyncio.wait_for(anext(trigger.run()), 30)).payload  # type: ignore[arg-type]
    assert payload["status"] == "error" and payload["reset"] is True


def test_sensor_trigger_relists_after_a_reset(quick_emulator: EmulatorProcess, tmp_path: Path) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/watched")
    _upload(hook, tmp_path, "/watched/old.csv")
    cursor = hook.get_latest_cursor("/watched")
    quick_emulator.admin("reset_cursors", {})
    trigger = DropboxChangeTrigger(path="/watched", cursor=cursor, dropbox_conn_id="dbx_quick")
    payload = asyncio.run(asyncio.wait_for(anext(trigger.run()), 30)).payload  # type: ignore[arg-type]
    assert payload["status"] == "success" and payload["reset"] is True
    assert [(c["path"], c["kind"]) for c in payload["changes"]] == [("/watched/old.csv", "changed")]


# -- the AssetWatcher trigger ------------------------------------------------------------------------------


async def _next_event(gen: AsyncIterator[Any], timeout: float) -> Any:
    return await asyncio.wait_for(anext(gen), timeout)


async def _stop(pending: asyncio.Future[Any]) -> None:
    """Cancel a waiting ``anext``: the cancellation runs the trigger's cleanup inside its own task."""
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pending


def test_event_trigger_silent_on_quiet_folder_then_fires_per_batch(
    quick_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """Several longpoll timeouts pass without an event; each real change yields exactly one event."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/inbox")
    trigger = DropboxChangeEventTrigger(path="/inbox", dropbox_conn_id="dbx_quick")
    trigger.asset_state_store = MemoryStateStore()

    async def scenario() -> tuple[int, list[dict[str, Any]], float]:
        gen = trigger.run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        before = quick_emulator.stats().get(LONGPOLL, 0)
        await asyncio.sleep(3.0)  # quiet window: ~6 longpoll timeouts at 0.5 s each
        quiet_polls = quick_emulator.stats().get(LONGPOLL, 0) - before
        assert not pending.done(), "trigger fired on a quiet folder"
        await asyncio.to_thread(_upload, hook, tmp_path, "/inbox/a.csv")
        changed = time.monotonic()
        first = (await pending).payload
        latency = time.monotonic() - changed
        second_wait = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(1.5)
        assert not second_wait.done(), "fired again without a new change"
        await asyncio.to_thread(hook.delete, "/inbox/a.csv")
        second = (await second_wait).payload
        await gen.aclose()
        return quiet_polls, [first, second], latency

    quiet_polls, events, latency = asyncio.run(scenario())
    assert quiet_polls >= 3
    assert [(c["path"], c["kind"]) for c in events[0]["changes"]] == [("/inbox/a.csv", "changed")]
    assert [(c["path_lower"], c["kind"]) for c in events[1]["changes"]] == [("/inbox/a.csv", "deleted")]
    assert events[0]["count"] == 1 and events[0]["truncated"] is False
    assert latency < 2.0, f"noticed the change after {latency:.2f} s"
    # The cursor is saved once the triggerer has taken an event and asks for the next one (at least
    # once); the watcher was stopped right after the second event, so the store holds the first one's.
    saved = trigger.asset_state_store.data[trigger.state_key()]
    assert saved["cursor"] == events[0]["cursor"] and saved["path"] == "/inbox"


def test_event_trigger_restart_neither_replays_nor_loses(
    quick_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """3.3+: the cursor lives in the asset state store, so a restarted watcher picks up where it stopped."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/inbox")
    store = MemoryStateStore()

    def watcher() -> DropboxChangeEventTrigger:
        trigger = DropboxChangeEventTrigger(path="/inbox", dropbox_conn_id="dbx_quick")
        trigger.asset_state_store = store
        return trigger

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        # First life: consume one change the way the triggerer does (``async for``: it asks for the
        # next event at once), then the triggerer stops while the watcher waits in a longpoll.
        gen = watcher().run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_upload, hook, tmp_path, "/inbox/one.csv")
        first = (await pending).payload
        waiting = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(0.5)
        await _stop(waiting)
        # While down: another change.
        await asyncio.to_thread(_upload, hook, tmp_path, "/inbox/two.csv")
        # Second life: reports only the change made while down.
        gen = watcher().run()
        second = (await _next_event(gen, 60)).payload
        quiet = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(2.0)
        assert not quiet.done(), "replayed an already reported change"
        await _stop(quiet)
        return first, second

    first, second = asyncio.run(scenario())
    assert [c["path"] for c in first["changes"]] == ["/inbox/one.csv"]
    assert [c["path"] for c in second["changes"]] == ["/inbox/two.csv"]


def test_event_trigger_without_state_store_starts_from_latest(
    quick_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """Airflow 3.2 (no asset state store): a (re)start begins at the latest cursor, as documented."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/inbox")
    _upload(hook, tmp_path, "/inbox/before-start.csv")
    trigger = DropboxChangeEventTrigger(path="/inbox", dropbox_conn_id="dbx_quick")
    assert getattr(trigger, "asset_state_store", None) is None

    async def scenario() -> dict[str, Any]:
        gen = trigger.run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_upload, hook, tmp_path, "/inbox/after-start.csv")
        payload = (await pending).payload
        await gen.aclose()
        return payload  # type: ignore[no-any-return]

    payload = asyncio.run(scenario())
    assert [c["path"] for c in payload["changes"]] == ["/inbox/after-start.csv"]


def test_event_trigger_honours_backoff_even_without_changes(quick_emulator: EmulatorProcess) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    DropboxHook(dropbox_conn_id="dbx_quick").create_folder("/inbox")
    quick_emulator.set_faults(longpoll_max_s=0.2, longpoll_backoff_s=2)
    trigger = DropboxChangeEventTrigger(path="/inbox", dropbox_conn_id="dbx_quick")

    async def scenario() -> int:
        gen = trigger.run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(0.5)
        before = quick_emulator.stats().get(LONGPOLL, 0)
        await asyncio.sleep(4.0)
        polls = quick_emulator.stats().get(LONGPOLL, 0) - before
        await _stop(pending)
        return polls

    polls = asyncio.run(scenario())
    # Without honouring backoff=2 s it would longpoll ~20 times in 4 s (0.2 s each).
    assert polls <= 3, polls


def test_event_trigger_waits_for_a_missing_folder_without_firing(
    quick_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """A watcher deployed before its folder exists logs the problem, neither fires nor ends, and starts
    reporting once the folder appears."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    trigger = DropboxChangeEventTrigger(path="/later", dropbox_conn_id="dbx_quick")
    trigger.missing_retry_s = 0.5

    async def scenario() -> dict[str, Any]:
        gen = trigger.run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(2.0)
        assert not pending.done(), "fired (or ended) on a missing folder"
        await asyncio.to_thread(hook.create_folder, "/later")
        await asyncio.sleep(1.5)  # the next look takes a cursor
        await asyncio.to_thread(_upload, hook, tmp_path, "/later/a.csv")
        payload = (await pending).payload
        await gen.aclose()
        return payload  # type: ignore[no-any-return]

    payload = asyncio.run(scenario())
    assert [c["path"] for c in payload["changes"]] == ["/later/a.csv"]
