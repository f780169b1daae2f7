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
