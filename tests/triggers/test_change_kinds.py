"""Added vs modified relative to the cursor (``changes.py``), decided against the emulator's real
revision history and its ``Date`` header: the kind function directly, the fallback when
``list_revisions`` fails, and the AssetWatcher trigger reporting exactly what the sensor reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.changes import (
    MAX_CURSOR_PATHS,
    fetch_revisions,
    kind_lookups,
    kind_since,
    revisions_arg,
    select_changes,
    server_time,
    state_at_cursor,
)
from airflow_provider_dropbox.client.retry import RetryPolicy
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger, DropboxChangeTrigger
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import conn_env
from tests.triggers.test_dropbox_triggers import MemoryStateStore

ADDED_ONLY = ["added"]
MODIFIED_ONLY = ["modified"]


def next_second() -> None:
    """Dropbox times are whole seconds: step past the current one so "before the cursor" is unambiguous."""
    time.sleep(1.05 - (time.time() % 1.0))


def put(hook: Any, tmp: Path, remote: str, text: str) -> dict[str, Any]:
    local = tmp / f"{time.time_ns()}.txt"
    local.write_text(text)
    return hook.upload_file(local, remote, mode="overwrite")  # type: ignore[no-any-return]


def take_cursor(hook: Any, root: str) -> tuple[str, str | None]:
    return hook.latest_cursor_at(root)  # type: ignore[no-any-return]


def changes_since(
    hook: Any, root: str, cursor: str, cursor_time: str | None, kinds: list[str]
) -> list[tuple[str, str, bool]]:
    entries, _ = hook.list_changes(cursor)
    lookups = kind_lookups(entries, root=root, kinds=kinds)
    revisions = fetch_revisions(hook.get_conn().rpc, lookups)
    picked = select_changes(entries, root=root, kinds=kinds, revisions=revisions, cursor_time=cursor_time)
    return sorted((c["path_lower"].rsplit("/", 1)[-1], c["kind"], c["kind_exact"]) for c in picked)


@pytest.fixture
def window(hook: Any, root: str, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """Files existing before the cursor, the cursor (+ its server time), then every kind of change after."""
    put(hook, tmp_path, f"{root}/existing.csv", "e0")
    put(hook, tmp_path, f"{root}/twice.csv", "t0")
    put(hook, tmp_path, f"{root}/recreated.csv", "r0")
    put(hook, tmp_path, f"{root}/replaced.csv", "p0")
    hook.delete(f"{root}/replaced.csv")  # gone before the cursor, back after it
    put(hook, tmp_path, f"{root}/old/inner.csv", "i0")
    put(hook, tmp_path, f"{root}/untouched.csv", "u0")
    put(hook, tmp_path, f"/ops-tests/outside-{root.rsplit('/', 1)[-1]}.csv", "o0")
    next_second()
    cursor = take_cursor(hook, root)
    next_second()
    put(hook, tmp_path, f"{root}/new.csv", "n1")
    put(hook, tmp_path, f"{root}/busy.csv", "b1")  # created, then modified twice: still new to the cursor
    put(hook, tmp_path, f"{root}/busy.csv", "b2")
    put(hook, tmp_path, f"{root}/busy.csv", "b3")
    put(hook, tmp_path, f"{root}/existing.csv", "e1")
    put(hook, tmp_path, f"{root}/twice.csv", "t1")
    put(hook, tmp_path, f"{root}/twice.csv", "t2")
    hook.delete(f"{root}/recreated.csv")
    put(hook, tmp_path, f"{root}/recreated.csv", "r1")
    put(hook, tmp_path, f"{root}/replaced.csv", "p1")
    hook.delete(f"{root}/old")  # a folder delete lists no children; inner.csv comes back in a new folder
    put(hook, tmp_path, f"{root}/old/inner.csv", "i1")
    hook.get_conn().rpc(
        "files/move_v2",
        {"from_path": f"/ops-tests/outside-{root.rsplit('/', 1)[-1]}.csv", "to_path": f"{root}/moved.csv"},
    )
    yield cursor


ADDED = [
    ("busy.csv", "added", True),
    ("inner.csv", "added", True),
    ("moved.csv", "added", True),
    ("new.csv", "added", True),
    ("recreated.csv", "added", True),
    ("replaced.csv", "added", True),
]
MODIFIED = [("existing.csv", "modified", True), ("twice.csv", "modified", True)]


def test_added_only_passes_exactly_the_new_files(hook: Any, root: str, window: tuple[str, str]) -> None:
    cursor, cursor_time = window
    assert cursor_time is not None
    assert changes_since(hook, root, cursor, cursor_time, ADDED_ONLY) == ADDED


def test_modified_only_passes_exactly_the_changed_files(
    hook: Any, root: str, window: tuple[str, str]
) -> None:
    cursor, cursor_time = window
    assert changes_since(hook, root, cursor, cursor_time, MODIFIED_ONLY) == MODIFIED


def test_all_kinds_look_nothing_up(hook: Any, root: str, window: tuple[str, str], emulator: Any) -> None:
    """Without a filter that needs it no list_revisions is spent; only a re-creation seen in the batch is
    exact, everything else is 'changed' (undetermined) with kind_exact False, never 'added'/'modified'."""
    cursor, cursor_time = window
    before = emulator.stats().get("/2/files/list_revisions", 0)
    got = changes_since(hook, root, cursor, cursor_time, ["added", "modified", "deleted"])
    assert emulator.stats().get("/2/files/list_revisions", 0) == before
    assert sorted(c for c in got if c[2]) == [
        ("inner.csv", "added", True),
        ("old", "deleted", True),
        ("recreated.csv", "added", True),
    ]
    assert ("new.csv", "changed", False) in got and ("existing.csv", "changed", False) in got
    assert all(c[2] for c in got if c[1] in ("added", "modified", "deleted"))


def test_unknown_cursor_time_is_not_exact_and_passes_both_filters(
    hook: Any, root: str, window: tuple[str, str]
) -> None:
    cursor, _ = window
    added = changes_since(hook, root, cursor, None, ADDED_ONLY)
    # every changed file passes (as 'changed', not exact), except the re-creations the batch itself proves
    assert ("existing.csv", "changed", False) in added and ("new.csv", "changed", False) in added
    assert ("recreated.csv", "added", True) in added
    modified = changes_since(hook, root, cursor, None, MODIFIED_ONLY)
    assert ("existing.csv", "changed", False) in modified and ("new.csv", "changed", False) in modified
    assert not [c for c in added + modified if c[1] in ("added", "modified") and not c[2]]
    assert all(name not in ("recreated.csv", "inner.csv") for name, _, _ in modified)


def test_same_second_as_the_cursor_is_not_exact(hook: Any, root: str, tmp_path: Path) -> None:
    first = put(hook, tmp_path, f"{root}/tie.csv", "1")
    second = put(hook, tmp_path, f"{root}/tie.csv", "2")
    revisions = hook.get_conn().rpc("files/list_revisions", revisions_arg(f"{root}/tie.csv"))
    assert [r["rev"] for r in revisions["entries"]] == [second["rev"], first["rev"]]
    latest = second["server_modified"]
    # Both revisions in the cursor's second: "created before the cursor" and "created after it" disagree.
    assert kind_since(second, revisions, latest) is None
    assert kind_since(second, revisions, "2000-01-01T00:00:00Z") == "added"  # all after the cursor
    assert kind_since(second, revisions, "2999-01-01T00:00:00Z") == "modified"  # all before it
    assert kind_since(second, {**revisions, "entries": [], "has_more": True}, latest) is None
    assert kind_since(second, None, latest) is None and kind_since(second, revisions, None) is None


def test_same_second_edits_of_an_older_file_are_still_modified(hook: Any, root: str, tmp_path: Path) -> None:
    put(hook, tmp_path, f"{root}/old.csv", "1")
    next_second()
    put(hook, tmp_path, f"{root}/old.csv", "2")
    third = put(hook, tmp_path, f"{root}/old.csv", "3")
    revisions = hook.get_conn().rpc("files/list_revisions", revisions_arg(f"{root}/old.csv"))
    if revisions["entries"][1]["server_modified"] != third["server_modified"]:
        pytest.skip("the two edits straddled a second boundary")
    # every reading of the tie (before or after either edit) finds the same file there: exact
    assert kind_since(third, revisions, third["server_modified"]) == "modified"


def test_the_batch_behind_the_cursor_settles_same_second_ties(hook: Any, root: str, tmp_path: Path) -> None:
    """A watcher reading changes right after they happen takes its next cursor in their second. The batch
    that produced that cursor says what its paths held then, so an edit right after is exact."""
    hook.create_folder(root)
    cursor, _ = take_cursor(hook, root)
    put(hook, tmp_path, f"{root}/quick.csv", "1")
    entries, cursor, cursor_time = hook.list_changes_at(cursor)
    cursor_paths = state_at_cursor(entries)
    assert cursor_paths is not None and cursor_paths[f"{root}/quick.csv"] == entries[0]["id"]
    put(hook, tmp_path, f"{root}/quick.csv", "2")
    later, _ = hook.list_changes(cursor)
    for kinds, expected in ((MODIFIED_ONLY, [("modified", True)]), (ADDED_ONLY, [])):
        lookups = kind_lookups(later, root=root, kinds=kinds, cursor_paths=cursor_paths)
        assert lookups == []  # known without a list_revisions call
        picked = select_changes(
            later, root=root, kinds=kinds, cursor_time=cursor_time, cursor_paths=cursor_paths
        )
        assert [(c["kind"], c["kind_exact"]) for c in picked] == expected
    many = [{".tag": "deleted", "path_lower": f"/x/{i}"} for i in range(MAX_CURSOR_PATHS + 1)]
    assert state_at_cursor(many) is None and state_at_cursor(many[:-1]) == {
        e["path_lower"]: None for e in many[:-1]
    }


def test_server_time_parses_http_dates() -> None:
    assert server_time("Fri, 27 Nov 2026 02:02:27 GMT") == "2026-11-27T02:02:27Z"
    assert server_time("not a date") is None and server_time(None) is None


def test_list_revisions_failure_falls_back_to_not_exact(
    faulty_emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every list_revisions answered 5xx (retried until the deadline): both files pass an added-only
    filter as not exact instead of failing the batch or dropping a new file."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    monkeypatch.setenv("AIRFLOW_CONN_DBX_FAULTY", conn_env(faulty_emulator.base_url))
    hook = DropboxHook(dropbox_conn_id="dbx_faulty")
    root = f"/kinds-{time.time_ns()}"
    put(hook, tmp_path, f"{root}/existing.csv", "1")
    next_second()
    cursor, when = take_cursor(hook, root)
    next_second()
    put(hook, tmp_path, f"{root}/existing.csv", "2")
    put(hook, tmp_path, f"{root}/new.csv", "1")
    entries, _ = hook.list_changes(cursor)
    client = hook.get_conn()
    client.retry = RetryPolicy(initial_wait=0.05, max_wait=0.1, deadline=0.5)
    faulty_emulator.set_faults(server_error=1.0)
    started = time.monotonic()
    lookups = kind_lookups(entries, root=root, kinds=ADDED_ONLY)
    revisions = fetch_revisions(client.rpc, lookups)
    assert time.monotonic() - started < 10
    faulty_emulator.clear_faults()
    assert revisions == {f"{root}/existing.csv": None, f"{root}/new.csv": None}
    picked = select_changes(entries, root=root, kinds=ADDED_ONLY, revisions=revisions, cursor_time=when)
    assert sorted((c["path_lower"], c["kind"], c["kind_exact"]) for c in picked) == [
        (f"{root}/existing.csv", "changed", False),
        (f"{root}/new.csv", "changed", False),
    ]
    # with the server healthy again, the same batch is told apart exactly
    revisions = fetch_revisions(client.rpc, lookups)
    picked = select_changes(entries, root=root, kinds=ADDED_ONLY, revisions=revisions, cursor_time=when)
    assert [(c["path_lower"], c["kind_exact"]) for c in picked] == [(f"{root}/new.csv", True)]
    hook.close()


def test_triggers_report_like_the_kind_function(
    fresh_emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deferrable sensor's trigger and the AssetWatcher trigger, each started from a cursor, report the
    same added-only batch as the kind function, and hand on the server time of their new cursor."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    fresh_emulator.set_faults(longpoll_max_s=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_DBX_KINDS", conn_env(fresh_emulator.base_url))
    hook = DropboxHook(dropbox_conn_id="dbx_kinds")
    put(hook, tmp_path, "/w/existing.csv", "1")
    next_second()

    watcher = DropboxChangeEventTrigger(path="/w", dropbox_conn_id="dbx_kinds", kinds=ADDED_ONLY)
    watcher.asset_state_store = MemoryStateStore()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        cursor, cursor_time = await asyncio.to_thread(take_cursor, hook, "/w")
        sensor_trigger = DropboxChangeTrigger(
            path="/w", cursor=cursor, cursor_time=cursor_time, dropbox_conn_id="dbx_kinds", kinds=ADDED_ONLY
        )
        gen = watcher.run()
        watched = asyncio.ensure_future(asyncio.wait_for(anext(gen), 60))
        runs = sensor_trigger.run()
        deferred = asyncio.ensure_future(asyncio.wait_for(anext(runs), 60))  # type: ignore[arg-type]
        while not watcher.asset_state_store.data:  # the watcher took its cursor
            await asyncio.sleep(0.05)
        await asyncio.to_thread(next_second)
        # The new file first: a batch holding only the edit would be filtered out and advance the cursor
        # into the second of the next writes (a tie: not exact, by design).
        for remote, text in [("/w/new.csv", "1"), ("/w/new.csv", "2"), ("/w/existing.csv", "2")]:
            await asyncio.to_thread(put, hook, tmp_path, remote, text)
        event, fired = (await watched).payload, (await deferred).payload
        await gen.aclose()
        return event, fired

    event, fired = asyncio.run(scenario())
    expected = [("/w/new.csv", "added", True)]
    assert [(c["path_lower"], c["kind"], c["kind_exact"]) for c in event["changes"]] == expected
    assert [(c["path_lower"], c["kind"], c["kind_exact"]) for c in fired["changes"]] == expected
    assert fired["cursor_time"] and fired["cursor_time"] >= fired["changes"][0]["server_modified"]
    saved = watcher.asset_state_store.data[watcher.state_key()]
    assert saved["cursor_time"] is not None
    hook.close()


def test_trigger_serialized_without_cursor_time_still_loads() -> None:
    """Triggers serialized before cursor_time existed load (kinds then not exact for their first batch)."""
    old = {"path": "/in", "cursor": "c1", "kinds": ["added"], "dropbox_conn_id": "dropbox_default"}
    trigger = DropboxChangeTrigger(**old)  # type: ignore[arg-type]
    assert trigger.cursor_time is None and "cursor_time" not in trigger.serialize()[1]
    new = DropboxChangeTrigger(path="/in", cursor="c1", cursor_time="2026-01-01T00:00:00Z")
    classpath, kwargs = new.serialize()
    assert kwargs["cursor_time"] == "2026-01-01T00:00:00Z"
    assert DropboxChangeTrigger(**kwargs).serialize() == (classpath, kwargs)
