"""Bad input gives a clear error naming the problem (or the documented no-op), against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_dropbox.operators.dropbox import (
    DropboxCreateSharedLinkOperator,
    DropboxDeleteOperator,
    DropboxDownloadOperator,
    DropboxUploadOperator,
)


def test_unknown_connection(dropbox_default: Any) -> None:
    op = DropboxCreateSharedLinkOperator(task_id="t", path="/x", dropbox_conn_id="no_such_dropbox")
    with pytest.raises(Exception, match="no_such_dropbox"):
        op.execute({})  # type: ignore[arg-type]


def test_connection_missing_fields(dropbox_default: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DBX_INCOMPLETE",
        json.dumps({"conn_type": "dropbox", "host": dropbox_default.base_url, "login": "dev-app-key"}),
    )
    op = DropboxDeleteOperator(task_id="t", path="/x", dropbox_conn_id="dbx_incomplete")
    with pytest.raises(Exception, match="no refresh token or access token"):
        op.execute({})  # type: ignore[arg-type]


def test_missing_local_file(dropbox_default: Any, tmp_path: Path) -> None:
    op = DropboxUploadOperator(task_id="t", local_path=str(tmp_path / "nope.csv"), remote_path="/x.csv")
    with pytest.raises(AirflowException, match="does not exist"):
        op.execute({})  # type: ignore[arg-type]


def test_glob_matching_nothing_is_documented_noop_or_error(dropbox_default: Any, tmp_path: Path) -> None:
    op = DropboxUploadOperator(task_id="t", local_path=str(tmp_path / "*.csv"), remote_path="/x")
    assert op.execute({})["count"] == 0  # type: ignore[arg-type,index]
    strict = DropboxUploadOperator(
        task_id="t", local_path=str(tmp_path / "*.csv"), remote_path="/x", fail_on_empty=True
    )
    with pytest.raises(AirflowException, match="matched no files"):
        strict.execute({})  # type: ignore[arg-type]


def test_download_missing_remote_names_it(dropbox_default: Any, tmp_path: Path, root: str) -> None:
    op = DropboxDownloadOperator(task_id="t", remote_path=f"{root}/missing.csv", local_path=str(tmp_path))
    with pytest.raises(AirflowException, match=f"'{root}/missing.csv' does not exist"):
        op.execute({})  # type: ignore[arg-type]


def test_bad_remote_path_is_a_typed_error(dropbox_default: Any, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("x")
    op = DropboxUploadOperator(task_id="t", local_path=str(src), remote_path="no-leading-slash.csv")
    with pytest.raises(Exception, match="must start with '/'"):
        op.execute({})  # type: ignore[arg-type]


def test_download_overwrite_policies(dropbox_default: Any, hook: Any, tmp_path: Path, root: str) -> None:
    src = tmp_path / "src.csv"
    src.write_text("remote")
    hook.upload_file(src, f"{root}/f/a.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("local edit")

    never = DropboxDownloadOperator(
        task_id="t", remote_path=f"{root}/f", local_path=str(out), overwrite="never"
    )
    assert never.execute({})["files"] == []  # type: ignore[arg-type,index]
    assert (out / "a.csv").read_text() == "local edit"

    error = DropboxDownloadOperator(
        task_id="t", remote_path=f"{root}/f", local_path=str(out), overwrite="error"
    )
    with pytest.raises(AirflowException, match="exist with different content"):
        error.execute({})  # type: ignore[arg-type]

    changed = DropboxDownloadOperator(task_id="t", remote_path=f"{root}/f", local_path=str(out))
    assert changed.execute({})["files"] == [str(out / "a.csv")]  # type: ignore[arg-type,index]
    assert (out / "a.csv").read_text() == "remote"
    assert changed.execute({})["count"] == 0  # type: ignore[arg-type,index]  # identical now: nothing written


def test_update_mode_by_rev(dropbox_default: Any, hook: Any, tmp_path: Path, root: str) -> None:
    src = tmp_path / "a.csv"
    src.write_text("v1")
    rev = hook.upload_file(src, f"{root}/a.csv")["rev"]
    src.write_text("v2")
    ok = DropboxUploadOperator(
        task_id="t", local_path=str(src), remote_path=f"{root}/a.csv", mode="update", rev=rev
    )
    new_rev = ok.execute({})["files"][0]["rev"]  # type: ignore[arg-type,index]
    assert new_rev != rev
    src.write_text("v3")
    stale = DropboxUploadOperator(
        task_id="t", local_path=str(src), remote_path=f"{root}/a.csv", mode="update", rev=rev
    )
    with pytest.raises(Exception, match="already exists"):
        stale.execute({})  # type: ignore[arg-type]
