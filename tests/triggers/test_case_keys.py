# ruff: noqa: RUF001
"""The watcher compares names as Dropbox does and does not fire for a case-only rename.

Watched folder and ``file_pattern`` are given in another spelling than the one stored (Greek capital
sigma, Turkish dotted capital I): changes still match, with patterns relative to the folder. A rename
that changes only case (Dropbox's ``list_folder/continue`` does not report it) yields no event; the next
real change does, with nothing lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger
from tests.emulator_process import EmulatorProcess
from tests.triggers.test_dropbox_triggers import (  # noqa: F401  (quick_emulator is a fixture)
    MemoryStateStore,
    _next_event,
    _stop,
    _upload,
    quick_emulator,
)


def test_watcher_spelling_and_case_only_rename(quick_emulator: EmulatorProcess, tmp_path: Path) -> None:  # noqa: F811
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="dbx_quick")
    hook.create_folder("/σασ-izmir/sub")
    _upload(hook, tmp_path, "/σασ-izmir/sub/straße.csv")
    trigger = DropboxChangeEventTrigger(
        path="/ΣΑΣ-İZMİR", dropbox_conn_id="dbx_quick", file_pattern="SUB/*.CSV"
    )
    trigger.asset_state_store = MemoryStateStore()

    async def scenario() -> dict[str, Any]:
        gen = trigger.run()
        pending = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(1.5)
        # Case-only renames: not reported by Dropbox, so no event.
        await asyncio.to_thread(hook.move, "/σασ-izmir/sub/straße.csv", "/σασ-izmir/sub/STRAßE.csv")
        await asyncio.sleep(2.0)
        assert not pending.done(), "a case-only rename fired the watcher"
        # A real change under the folder, matched through the folded pattern and root.
        await asyncio.to_thread(_upload, hook, tmp_path, "/ΣΑΣ-İZMİR/Sub/new.csv")
        payload = (await pending).payload
        quiet = asyncio.ensure_future(_next_event(gen, 60))
        await asyncio.sleep(1.0)
        await _stop(quiet)
        return payload  # type: ignore[no-any-return]

    payload = asyncio.run(scenario())
    assert [c["path_lower"] for c in payload["changes"]] == ["/σασ-izmir/sub/new.csv"]
