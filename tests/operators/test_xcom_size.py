"""Transfer results stay small in XCom: counts, a bounded list and where the rest are, by default.

A folder upload of thousands of files used to push every file's metadata (about 370 bytes each) into the
metadata database on every run; ``full_list=True`` still returns everything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.operators.dropbox import (
    XCOM_FILE_LIMIT,
    DropboxDownloadOperator,
    DropboxUploadOperator,
    file_summary,
)

N = 250  # well above the listed bound, small enough for the emulator to take quickly


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(N):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 5}" / f"f{i:04d}.csv").write_text(f"{i}\n")
    return src


def test_folder_upload_and_download_results_are_bounded(
    dropbox_default: Any, root: str, tree: Path, tmp_path: Path
) -> None:
    up = DropboxUploadOperator(task_id="u", local_path=str(tree), remote_path=f"{root}/many")
    result = up.execute({})  # type: ignore[arg-type]
    assert isinstance(result, dict)
    assert result["count"] == N and result["uploaded"] == N and result["skipped_identical"] == 0
    assert len(result["files"]) == XCOM_FILE_LIMIT and result["truncated"] == N - XCOM_FILE_LIMIT
    assert f"{root}/many" in result["rest"] and "full_list=True" in result["rest"]
    assert result["bytes"] == sum(p.stat().st_size for p in tree.rglob("*.csv"))
    bounded = len(json.dumps(result))

    full = DropboxUploadOperator(
        task_id="u", local_path=str(tree), remote_path=f"{root}/many", full_list=True
    )
    every = full.execute({})  # type: ignore[arg-type]
    assert isinstance(every, list) and len(every) == N  # all skipped as identical, all listed
    assert bounded * 2 < len(json.dumps(every))

    out = tmp_path / "out"
    down = DropboxDownloadOperator(task_id="d", remote_path=f"{root}/many", local_path=str(out))
    got = down.execute({})  # type: ignore[arg-type]
    assert isinstance(got, dict) and got["count"] == N and len(got["files"]) == XCOM_FILE_LIMIT
    assert got["truncated"] == N - XCOM_FILE_LIMIT and str(out) in got["rest"]
    assert len(list(out.rglob("*.csv"))) == N  # the summary lists fewer; every file is there

    (out / "d0" / "f0000.csv").write_text("local change")
    again = DropboxDownloadOperator(
        task_id="d", remote_path=f"{root}/many", local_path=str(out), full_list=True
    ).execute({})  # type: ignore[arg-type]
    assert again == [str(out / "d0" / "f0000.csv")]


@pytest.mark.parametrize(
    ("n", "listed", "more"),
    [(0, 0, 0), (1, 1, 0), (XCOM_FILE_LIMIT, XCOM_FILE_LIMIT, 0), (XCOM_FILE_LIMIT + 1, XCOM_FILE_LIMIT, 1)],
)
def test_summary_bounds(n: int, listed: int, more: int) -> None:
    files = [f"/p/{i}" for i in range(n)]
    got = file_summary(files, where="Dropbox /p", full_list=False, extra=1)
    assert isinstance(got, dict)
    assert got["count"] == n and len(got["files"]) == listed and got["truncated"] == more
    assert got["files"] == files[:listed] and got["extra"] == 1
    assert (got["rest"] is None) == (more == 0)
    assert file_summary(files, where="x", full_list=True) == files


def test_xcom_row_of_a_dag_run_is_bounded(
    airflow_db: None, dropbox_default: Any, root: str, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through real Airflow (``dag.test``): the XCom rows hold the summary, not one entry per file."""
    import airflow.settings

    from tests.ops_fixtures import load_dag_module, xcom

    dags = Path(__file__).parent / "dags"
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    dag = load_dag_module(dags / "ops_xcom_dag.py").dag
    dr = dag.test(run_conf={"remote": f"{root}/x", "local": str(tree), "out": str(tree.parent / "out")})
    assert str(dr.state) == "success"
    up, down, full = xcom(dr, "upload"), xcom(dr, "download"), xcom(dr, "upload_full")
    assert up["count"] == N and len(up["files"]) == XCOM_FILE_LIMIT
    assert down["count"] == N and len(down["files"]) == XCOM_FILE_LIMIT
    assert isinstance(full, list) and len(full) == N
    assert len(json.dumps(up)) * 2 < len(json.dumps(full))
