"""``ObjectStoragePath("dropbox://<conn>@/...")``: read, write, list, delete through our fsspec filesystem."""

from __future__ import annotations

from typing import Any

import fsspec
import pytest

from airflow_provider_dropbox.fs.dropbox import DropboxFileSystem, get_fs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("dropbox://dropbox_default@/folder/file.csv", "/folder/file.csv", id="objectstorage"),
        pytest.param("dropbox:///folder/file.csv", "/folder/file.csv", id="triple-slash"),
        pytest.param("/folder//file.csv/", "/folder/file.csv", id="plain"),
        pytest.param("dropbox://", "/", id="root"),
    ],
)
def test_strip_protocol(raw: str, expected: str) -> None:
    assert DropboxFileSystem._strip_protocol(raw) == expected


def test_fsspec_entry_point_wins_over_dropboxdrivefs() -> None:
    assert fsspec.get_filesystem_class("dropbox") is DropboxFileSystem


def test_get_fs_builds_no_client() -> None:
    fs = get_fs("some_conn", {"parallelism": 2})
    assert isinstance(fs, DropboxFileSystem) and fs.conn_id == "some_conn" and fs._hook is None


def test_object_storage_path_round_trip(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    base = ObjectStoragePath(f"dropbox://dropbox_default@{root}")
    assert base.conn_id == "dropbox_default"
    target = base / "data" / "file.csv"
    target.write_text("a,b\n1,2\n")
    assert target.exists() and target.is_file()
    assert target.read_text() == "a,b\n1,2\n"
    assert target.stat()["size"] == 8
    (base / "data" / "other.bin").write_bytes(b"\x00" * 10)
    assert sorted(p.name for p in (base / "data").iterdir()) == ["file.csv", "other.bin"]
    assert (base / "data").is_dir()
    with target.open("rb") as fh:
        fh.seek(2)
        assert fh.read(3) == b"b\n1"
    target.unlink()
    assert not target.exists()
    with pytest.raises(FileNotFoundError):
        (base / "missing.txt").read_text()


def test_object_storage_copy_and_move(dropbox_default: Any, root: str, tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    base = ObjectStoragePath(f"dropbox://dropbox_default@{root}")
    src = base / "a.txt"
    src.write_text("hello")
    local = tmp_path / "a.txt"
    src.fs.get_file(src.path, str(local))
    assert local.read_text() == "hello"
    src.fs.cp_file(src.path, (base / "b.txt").path)
    src.fs.mv(src.path, (base / "c.txt").path)
    assert sorted(p.name for p in base.iterdir()) == ["b.txt", "c.txt"]
    base.fs.rm(base.path, recursive=True)
    assert not base.exists()
