"""DropboxMirrorOperator: its contract, and dry run vs real run through the hook against the emulator."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator


def test_paths_and_limits_are_templated_and_hook_is_lazy() -> None:
    with mock.patch("airflow_provider_dropbox.operators.base.DropboxHook") as hook_cls:
        op = DropboxMirrorOperator(task_id="m", dropbox_path="/r", local_path="/l")
    hook_cls.assert_not_called()
    assert {"dropbox_path", "local_path", "max_deletes", "dropbox_conn_id"} <= set(op.template_fields)
    assert op.dropbox_conn_id == "dropbox_default"
    assert callable(op.dry_run), "BaseOperator.dry_run() must stay a method"
    params = inspect.signature(DropboxMirrorOperator.__init__).parameters
    assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n not in ("self", "kwargs"))


def test_dry_run_plans_without_writing_then_real_run_mirrors(hook: Any, root: str, tmp_path: Path) -> None:
    hook.create_folder(f"{root}/sub")
    source = tmp_path / "a.csv"
    source.write_text("a,b\n1,2\n")
    hook.upload_file(source, f"{root}/sub/a.csv")
    dest = tmp_path / "mirror"

    plan = DropboxMirrorOperator(task_id="plan", dropbox_path=root, local_path=str(dest), dry_run=True)
    report = plan.execute(context={})  # type: ignore[arg-type]
    assert report["dry_run"] is True and report["planned"].get("download") == 1
    assert not dest.exists() or not any(dest.iterdir())

    real = DropboxMirrorOperator(task_id="run", dropbox_path=root, local_path=str(dest))
    report = real.execute(context={})  # type: ignore[arg-type]
    assert report["ok"] and report["done"]["download"] == 1
    assert (dest / "sub" / "a.csv").read_text() == "a,b\n1,2\n"


def test_max_deletes_stops_the_run_before_deleting(hook: Any, root: str, tmp_path: Path) -> None:
    from airflow_provider_dropbox.sync import TooManyDeletesError

    for name in ("x", "y", "z"):
        (tmp_path / name).write_text(name)
        hook.upload_file(tmp_path / name, f"{root}/{name}.txt")
    dest = tmp_path / "mirror"
    DropboxMirrorOperator(task_id="a", dropbox_path=root, local_path=str(dest)).execute(context={})  # type: ignore[arg-type]
    hook.delete(f"{root}/x.txt")
    hook.delete(f"{root}/y.txt")
    op = DropboxMirrorOperator(task_id="b", dropbox_path=root, local_path=str(dest), max_deletes="1")
    with pytest.raises(TooManyDeletesError, match="max_deletes"):
        op.execute(context={})  # type: ignore[arg-type]
    assert sorted(p.name for p in dest.glob("*.txt")) == ["x.txt", "y.txt", "z.txt"]


@pytest.mark.parametrize("zip_small_files", [True, False])
def test_zip_small_files_reaches_the_mirror(
    hook: Any, root: str, tmp_path: Path, zip_small_files: bool
) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(f"file {i}")
        hook.upload_file(tmp_path / f"{i}.txt", f"{root}/many/{i}.txt")
    dest = tmp_path / "mirror"
    op = DropboxMirrorOperator(
        task_id="m", dropbox_path=root, local_path=str(dest), zip_small_files=zip_small_files
    )
    report = op.execute(context={})  # type: ignore[arg-type]
    assert report["ok"] and report["downloaded"] == 5
    assert report["downloaded_in_zips"] == (5 if zip_small_files else 0)
    assert sorted(p.read_text() for p in (dest / "many").iterdir()) == [f"file {i}" for i in range(5)]
