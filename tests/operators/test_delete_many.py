"""The delete operator sends many paths as one ``files/delete_batch`` job, not one call per path (issue 14
item 5), keeping its per-path result and its ``missing_ok`` rule. Real HTTP against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dropbox.client.errors import PathNotFoundError
from airflow_provider_dropbox.operators.dropbox import DropboxDeleteOperator
from tests.emulator_process import EmulatorProcess


def _put(hook: Any, tmp_path: Any, remote: str) -> None:
    local = tmp_path / "f.txt"
    local.write_bytes(remote.encode())
    hook.upload_file(local, remote)


@pytest.mark.parametrize("count", [2, 12])
def test_many_paths_go_in_one_batch_job(
    hook: Any, root: str, tmp_path: Any, dropbox_default: EmulatorProcess, count: int
) -> None:
    paths = [f"{root}/f{i}.txt" for i in range(count - 1)] + [f"{root}/sub"]
    for p in paths[:-1]:
        _put(hook, tmp_path, p)
    _put(hook, tmp_path, f"{root}/sub/inner.txt")
    dropbox_default.reset_stats()
    result = DropboxDeleteOperator(task_id="d", path=paths).execute({})  # type: ignore[arg-type]
    assert [m["path_display"] for m in result] == paths  # type: ignore[index]
    stats = dropbox_default.stats()
    assert stats.get("/2/files/delete_batch") == 1, stats
    assert not stats.get("/2/files/delete_v2"), stats
    assert not any(hook.exists(p) for p in paths)


def test_missing_paths_fail_naming_them_or_are_none_with_missing_ok(
    hook: Any, root: str, tmp_path: Any
) -> None:
    _put(hook, tmp_path, f"{root}/a.txt")
    _put(hook, tmp_path, f"{root}/b.txt")
    with pytest.raises(
        PathNotFoundError, match=r"1 path\(s\) to delete do not exist: .*/gone\.txt.*missing_ok"
    ):
        DropboxDeleteOperator(task_id="d", path=[f"{root}/a.txt", f"{root}/gone.txt"]).execute({})  # type: ignore[arg-type]
    result = DropboxDeleteOperator(
        task_id="d", path=[f"{root}/gone.txt", f"{root}/b.txt"], missing_ok=True
    ).execute({})  # type: ignore[arg-type]
    assert result[0] is None and result[1]["name"] == "b.txt"  # type: ignore[index]
    assert not hook.exists(f"{root}/b.txt")


def test_a_path_dropbox_remembers_as_deleted_counts_as_deleted(hook: Any, root: str, tmp_path: Any) -> None:
    """A task retry after the batch ran (or a re-sent job after a lost answer) finds the paths gone; as
    with a single delete, a path Dropbox remembers as deleted is done, not an error."""
    for name in ("a.txt", "b.txt"):
        _put(hook, tmp_path, f"{root}/{name}")
    paths = [f"{root}/a.txt", f"{root}/b.txt"]
    DropboxDeleteOperator(task_id="d", path=paths).execute({})  # type: ignore[arg-type]
    again = DropboxDeleteOperator(task_id="d", path=paths).execute({})  # type: ignore[arg-type]
    assert [m[".tag"] for m in again] == ["deleted", "deleted"]  # type: ignore[index]
