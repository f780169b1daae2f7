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


# -- open modes: each does what it means or is refused ------------------------------------------------------


@pytest.mark.parametrize("mode", ["ab", "a", "at"])
def test_append_keeps_existing_content(dropbox_default: Any, root: str, mode: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/log.csv")
    target.write_bytes(b"a,b\n1,2\n")
    with target.open(mode) as fh:
        fh.write(b"3,4\n" if "b" in mode else "3,4\n")
    with target.open(mode) as fh:
        fh.write(b"5,6\n" if "b" in mode else "5,6\n")
    assert target.read_bytes() == b"a,b\n1,2\n3,4\n5,6\n"


def test_append_creates_missing_file_and_large_appends(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/new.bin")
    with target.open("ab") as fh:
        fh.write(b"x" * 10)
    first = b"x" * 10
    big = bytes(range(256)) * 40_000  # > one fsspec block: flushed in several chunks
    with target.open("ab", block_size=1 << 20) as fh:
        assert fh.tell() == 10
        fh.write(big)
    assert target.read_bytes() == first + big


def test_append_refuses_to_overwrite_a_concurrent_change(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_dropbox.fs.dropbox import FileChangedError

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/shared.txt")
    target.write_bytes(b"one\n")
    fh = target.open("ab")
    fh.write(b"mine\n")
    target.write_bytes(b"one\ntheirs\n")  # someone else changes it meanwhile
    with pytest.raises(FileChangedError, match="changed on Dropbox"):
        fh.close()
    assert target.read_bytes() == b"one\ntheirs\n"


@pytest.mark.parametrize("mode", ["xb", "x", "xt"])
def test_exclusive_create_refuses_existing_file(dropbox_default: Any, root: str, mode: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/once.txt")
    with target.open(mode) as fh:
        fh.write(b"first" if "b" in mode else "first")
    with pytest.raises(FileExistsError):
        target.open(mode)
    assert target.read_bytes() == b"first"


def test_exclusive_create_loses_race_with_file_exists(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/race.txt")
    fh = target.open("xb")
    fh.write(b"late")
    target.write_bytes(b"early")
    with pytest.raises(FileExistsError):
        fh.close()
    assert target.read_bytes() == b"early"


@pytest.mark.parametrize("mode", ["wb", "w", "wt"])
def test_write_replaces(dropbox_default: Any, root: str, mode: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/w.txt")
    target.write_bytes(b"old content")
    with target.open(mode) as fh:
        fh.write(b"new" if "b" in mode else "new")
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize("mode", ["r+", "r+b", "rb+", "w+", "w+b", "a+", "ab+", "x+", "rw", "q", "", "rbt"])
def test_unsafe_modes_refused_file_kept(dropbox_default: Any, root: str, mode: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(f"dropbox://dropbox_default@{root}/keep.txt")
    target.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="mode"):
        target.fs.open(target.path, mode)
    assert target.read_bytes() == b"keep me"


# -- glob is case-insensitive like every other lookup ------------------------------------------------------


def test_glob_is_case_insensitive(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    base = ObjectStoragePath(f"dropbox://dropbox_default@{root}")
    (base / "O7Dir" / "A.TXT").write_text("1")
    (base / "O7Dir" / "b.txt").write_text("2")
    (base / "O7Dir" / "c.csv").write_text("3")
    (base / "O7Dir" / "Sub" / "D.Txt").write_text("4")
    fs = base.fs
    names = lambda ps: sorted(p.rsplit("/", 1)[1] for p in ps)  # noqa: E731
    assert names(fs.glob(f"{base.path}/o7dir/*.txt")) == ["A.TXT", "b.txt"]
    assert names(fs.glob(f"{base.path}/O7DIR/*.TXT")) == ["A.TXT", "b.txt"]
    assert names(fs.glob(f"{base.path}/o7dir/**/*.txt")) == ["A.TXT", "D.Txt", "b.txt"]
    assert names(fs.glob(f"{base.path}/o7dir/[ab].*")) == ["A.TXT", "b.txt"]
    assert names(fs.glob(f"{base.path}/o7dir/s?b/d.txt")) == ["D.Txt"]
    assert names(p.path for p in (base / "o7dir").glob("*.txt")) == ["A.TXT", "b.txt"]
    assert fs.glob(f"{base.path}/o7dir/*.md") == []
    detail = fs.glob(f"{base.path}/o7dir/a.*", detail=True)
    assert list(detail) and all(v["type"] == "file" for v in detail.values())


def test_glob_uses_server_keys_for_non_ascii(dropbox_default: Any, root: str) -> None:
    from airflow.sdk import ObjectStoragePath

    base = ObjectStoragePath(f"dropbox://dropbox_default@{root}")
    (base / "ÄRGER" / "Ωmega.txt").write_text("1")
    found = base.fs.glob(f"{base.path}/ärger/ω*.txt")
    assert [p.rsplit("/", 1)[1] for p in found] == ["Ωmega.txt"]
