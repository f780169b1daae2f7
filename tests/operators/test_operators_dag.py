"""Every operator through real Airflow (``dag.test()``, Task SDK in-process) against the emulator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.ops_fixtures import RunDag, task_states, xcom


def _local_tree(base: Path) -> None:
    (base / "src" / "sub").mkdir(parents=True)
    (base / "src" / "report.csv").write_text("a,b\n1,2\n")
    (base / "src" / "sub" / "nested.csv").write_text("x\n")
    (base / "src" / "notes.txt").write_text("notes")
    (base / "src" / "skip.json").write_text("{}")
    (base / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024 + 123))


def test_every_operator_runs_in_a_dag(run_dag: RunDag, hook: Any, root: str, tmp_path: Path) -> None:
    _local_tree(tmp_path)
    dr = run_dag("ops_transfer_dag.py", "ops_transfer", {"root": root, "local": str(tmp_path)})
    states = task_states(dr)
    assert str(dr.state) == "success", states
    assert set(states.values()) == {"success"}

    summary = xcom(dr, "upload_file")
    assert summary["count"] == 1 and summary["uploaded"] == 1 and summary["truncated"] == 0
    uploaded = summary["files"]
    assert [m["path_display"] for m in uploaded] == [f"{root}/report.csv"]
    stats_before = uploaded[0]["rev"]
    again = xcom(dr, "upload_again_identical")
    assert again["skipped_identical"] == 1 and again["uploaded"] == 0
    assert again["files"][0]["rev"] == stats_before  # identical content: not sent again

    folder = sorted(m["path_display"] for m in xcom(dr, "upload_folder")["files"])
    assert folder == [f"{root}/folder/report.csv", f"{root}/folder/sub/nested.csv"]  # pattern *.csv
    assert [m["path_display"] for m in xcom(dr, "upload_glob")["files"]] == [f"{root}/glob/notes.txt"]
    assert xcom(dr, "upload_glob_empty")["count"] == 0  # documented: a glob matching nothing is not an error

    big = xcom(dr, "upload_chunked")["files"][0]
    assert big["size"] == (tmp_path / "big.bin").stat().st_size

    assert xcom(dr, "download_file")["files"] == [str(tmp_path / "out" / "big.bin")]
    assert (tmp_path / "out" / "big.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()
    assert xcom(dr, "download_folder")["files"] == [str(tmp_path / "out" / "folder" / "sub" / "nested.csv")]
    assert not (tmp_path / "out" / "folder" / "report.csv").exists()

    assert xcom(dr, "move")["path_display"] == f"{root}/moved/copy.csv"
    assert xcom(dr, "share").startswith("http")
    deleted = xcom(dr, "delete")
    assert deleted[1] is None and deleted[0]["path_display"] == f"{root}/glob"

    assert hook.exists(f"{root}/moved/copy.csv")
    assert not hook.exists(f"{root}/copy.csv")
    assert not hook.exists(f"{root}/glob")


def test_upload_outlet_schedules_the_asset_consumer(run_dag: RunDag, tmp_path: Path) -> None:
    """A static remote path is a ``dropbox://`` outlet: the upload emits an asset event that queues the
    DAG scheduled on it; that DAG then reads the file back through ObjectStoragePath."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    uri = "dropbox://dropbox_default/ops-published/data.csv"
    src = tmp_path / "data.csv"
    src.write_text("published,1\n")
    # dag.test() registers every DAG of the bundle; the consumer must be unpaused to be queued.
    run_dag("ops_transfer_dag.py", "ops_publish", {"local": str(src)})
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "ops_consume").values(is_paused=False))
    with create_session() as session:
        before = session.scalar(
            select(AssetEvent.id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id.desc())
        )
    dr = run_dag("ops_transfer_dag.py", "ops_publish", {"local": str(src)})
    assert str(dr.state) == "success", task_states(dr)
    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id.desc())
        ).first()
        assert event is not None and event.id != before
        assert event.source_dag_id == "ops_publish"
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    assert "ops_consume" in queued
    consumer = run_dag("ops_transfer_dag.py", "ops_consume")
    assert str(consumer.state) == "success", task_states(consumer)
    assert xcom(consumer, "read_published") == "published,1\n"
