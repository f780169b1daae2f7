"""The AssetWatcher trigger honours Dropbox's longpoll ``backoff`` also after a batch that carried
changes (the no-change path is covered in tests/triggers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import conn_env

LONGPOLL = "/2/files/list_folder/longpoll"
BACKOFF_S = 3


@pytest.fixture
def backoff_emulator(
    fresh_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorProcess]:
    """Longpolls answer within 0.2 s and every answer asks for a 3 s backoff; connection ``dbx_backoff``."""
    monkeypatch.setenv("AIRFLOW_CONN_DBX_BACKOFF", conn_env(fresh_emulator.base_url))
    fresh_emulator.set_faults(longpoll_max_s=0.2, longpoll_backoff_s=BACKOFF_S)
    yield fresh_emulator


def test_event_trigger_honours_backoff_after_a_batch_with_changes(
    backoff_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_backoff")
    hook.create_folder("/inbox")
    trigger = DropboxChangeEventTrigger(path="/inbox", dropbox_conn_id="dbx_backoff")

    async def scenario() -> tuple[dict[str, Any], int]:
        gen = trigger.run()
        first = asyncio.ensure_future(asyncio.wait_for(anext(gen), 60))
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(lambda: backoff_emulator.stats().get(LONGPOLL, 0)) < 1:
            assert time.monotonic() < deadline, "trigger never started a longpoll"
            await asyncio.sleep(0.05)
        # The first longpoll timed out quietly and asked for a backoff; the change made meanwhile is
        # answered by the next longpoll, with a backoff again.
        local = tmp_path / "a.csv"
        local.write_text("x")
        await asyncio.to_thread(hook.upload_file, local, "/inbox/a.csv")
        payload = (await first).payload
        before = await asyncio.to_thread(lambda: backoff_emulator.stats().get(LONGPOLL, 0))
        second = asyncio.ensure_future(asyncio.wait_for(anext(gen), 60))
        await asyncio.sleep(BACKOFF_S - 1.0)
        polls = await asyncio.to_thread(lambda: backoff_emulator.stats().get(LONGPOLL, 0)) - before
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
        return payload, polls

    payload, polls = asyncio.run(scenario())
    hook.close()
    assert [c["path"] for c in payload["changes"]] == ["/inbox/a.csv"]
    # Honouring backoff=3 s: no longpoll in the 2 s after the event; ignoring it: ~10 (0.2 s each).
    assert polls == 0, polls
