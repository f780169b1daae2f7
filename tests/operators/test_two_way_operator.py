"""DropboxTwoWaySyncOperator: its contract, then a dry run and real runs against the emulator."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from airflow_provider_dropbox.operators.two_way import DropboxTwoWaySyncOperator


def test_paths_and_limits_are_templated_and_hook_is_lazy() -> None:
    with mock.patch("airflow_provider_dropbox.operators.base.DropboxHook") as hook_cls:
        op = DropboxTwoWaySyncOperator(task_id="s", dropbox_path="/r", local_path="/l")
    hook_cls.assert_not_called()
    assert {"dropbox_path", "local_path", "max_deletes", "dropbox_conn_id"} <= set(op.template_fields)
    assert callable(op.dry_run), "BaseOperator.dry_run() must stay a method"
    params = inspect.signature(DropboxTwoWaySyncOperator.__init__).parameters
    assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n not in ("self", "kwargs"))


def test_dry_run_then_both_ways(hook: Any, root: str, tmp_path: Path) -> None:
    source = tmp_path / "remote.csv"
    source.write_text("r\n")
    hook.upload_file(source, f"{root}/remote.csv")
    dest = tmp_path / "both"
    dest.mkdir()
    (dest / "local.csv").write_text("l\n")

    plan = DropboxTwoWaySyncOperator(task_id="plan", dropbox_path=root, local_path=str(dest), dry_run=True)
    report = plan.execute(context={})  # type: ignore[arg-type]
    assert report["dry_run"] is True and report["planned"] == {"download": 1, "upload": 1}
    assert sorted(p.name for p in dest.iterdir()) == ["local.csv"]

    run = DropboxTwoWaySyncOperator(task_id="run", dropbox_path=root, local_path=str(dest))
    report = run.execute(context={})  # type: ignore[arg-type]
    assert report["ok"] and report["done"] == {"download": 1, "upload": 1}
    assert (dest / "remote.csv").read_text() == "r\n"
    assert hook.get_metadata(f"{root}/local.csv")["size"] == 2
    assert run.execute(context={})["done"] == {}  # type: ignore[arg-type]


def test_bad_conflict_policy_is_a_clear_error(hook: Any, root: str, tmp_path: Path) -> None:
    from airflow_provider_dropbox.sync import MirrorConfigError

    op = DropboxTwoWaySyncOperator(
        task_id="bad", dropbox_path=root, local_path=str(tmp_path), conflict="ours"
    )
    with pytest.raises(MirrorConfigError, match="keep_both"):
        op.execute(context={})  # type: ignore[arg-type]


def test_no_automatic_outlet_on_an_asset_that_schedules_its_own_dag() -> None:
    """An outlet on the asset that schedules the DAG would queue the next run at the end of every run."""
    from airflow.sdk import DAG, Asset

    watched = Asset(uri="dropbox://dropbox_default/sync", name="watched_sync_folder")
    with DAG("scheduled_by_its_folder", schedule=[watched]):
        looping = DropboxTwoWaySyncOperator(task_id="sync", dropbox_path="/Sync", local_path="/tmp/sync")
    with DAG("scheduled_by_time", schedule=None):
        plain = DropboxTwoWaySyncOperator(task_id="sync", dropbox_path="/Sync", local_path="/tmp/sync")
    assert looping.outlets == []
    assert [a.uri for a in plain.outlets] == ["dropbox://dropbox_default/sync"]
    assert (
        [a.uri for a in looping.inlets] == [a.uri for a in plain.inlets] == ["dropbox://dropbox_default/sync"]
    )


def _events_context(run_type: str, *payloads: dict[str, Any]) -> dict[str, Any]:
    """A task context as the task runner builds it for a run made by the given asset events (real SDK
    types: the same accessor and event models the runner fills from the API server)."""
    import datetime
    import types

    from airflow.sdk.api.datamodels._generated import AssetReferenceAssetEventDagRun
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    events = [
        AssetEventDagRunReferenceResult(
            asset=AssetReferenceAssetEventDagRun(name=f"a{i}", uri=f"file:///watched/{i}", extra={}),
            extra={"from_trigger": True, "payload": payload},
            source_task_id=None,
            source_dag_id=None,
            source_run_id=None,
            source_map_index=None,
            source_aliases=[],
            timestamp=datetime.datetime.now(datetime.timezone.utc),
        )
        for i, payload in enumerate(payloads)
    ]
    return {
        "dag_run": types.SimpleNamespace(run_type=run_type),
        "triggering_asset_events": TriggeringAssetEventsAccessor.build(events),
    }


def test_a_run_made_by_the_folder_watcher_looks_only_at_the_paths_it_named(
    hook: Any, root: str, tmp_path: Path
) -> None:
    from airflow.sdk import DAG, Asset, AssetWatcher

    from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

    dest = tmp_path / "both"
    dest.mkdir()
    (dest / "named.csv").write_text("1\n")
    (dest / "unnamed.csv").write_text("1\n")
    local = Asset(
        name="local_side", uri=f"file://{dest}",
        watchers=[AssetWatcher(name="w", trigger=LocalFolderChangeTrigger(path=str(dest)))],
    )  # fmt: skip
    with DAG("two_way_watched", schedule=[local]):
        op = DropboxTwoWaySyncOperator(
            task_id="s", dropbox_path=root, local_path=str(dest), local_scan="watcher"
        )
    with DAG("two_way_unwatched", schedule=None):
        blind = DropboxTwoWaySyncOperator(
            task_id="s", dropbox_path=root, local_path=str(dest), local_scan="watcher"
        )
    assert op.execute(context={})["done"] == {"upload": 2}  # type: ignore[arg-type]  # first run: walks
    assert op.execute(context={})["done"] == {}  # type: ignore[arg-type]  # (its uploads, seen as synced)
    (dest / "named.csv").write_text("2 named\n")
    (dest / "unnamed.csv").write_text("2 not named\n")
    named = {"path": str(dest), "changed": ["named.csv"], "deleted": [], "truncated": False, "count": 1}
    dropbox_event = {"changes": [{"path": f"{root}/elsewhere"}], "cursor": "c"}
    report = op.execute(context=_events_context("asset_triggered", named, dropbox_event))  # type: ignore[arg-type]
    assert report["focused"] and report["done"] == {"upload": 1}, report
    assert hook.get_metadata(f"{root}/named.csv")["size"] == len("2 named\n")
    assert hook.get_metadata(f"{root}/unnamed.csv")["size"] == 2
    # Events that could not name every path, a scheduled run, a DAG with no folder watcher: all walk.
    cut = {**named, "truncated": True}
    for walker, context in (
        (op, _events_context("asset_triggered", cut)),
        (op, _events_context("scheduled")),
        (blind, _events_context("asset_triggered", named)),
    ):
        report = walker.execute(context=context)  # type: ignore[arg-type]
        assert not report["focused"], report
    assert hook.get_metadata(f"{root}/unnamed.csv")["size"] == len("2 not named\n")


def test_local_scan_takes_only_walk_or_watcher() -> None:
    with pytest.raises(ValueError, match="local_scan"):
        DropboxTwoWaySyncOperator(task_id="s", dropbox_path="/r", local_path="/l", local_scan="inotify")
