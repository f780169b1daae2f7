"""Bad input: each case is a typed error naming the problem and the fix; nothing partial is left."""

from __future__ import annotations

import re
import urllib.error
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient, errors
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


def _api_requests(emu: EmulatorProcess) -> dict[str, int]:
    return {k: v for k, v in emu.stats().items() if k.startswith("/2/")}


def test_missing_local_file(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    emulator.reset_stats()
    with pytest.raises(errors.LocalPathError, match=r"does not exist; check local_path"):
        client.upload_file(tmp_path / "nope.csv", f"{remote_dir}/nope.csv")
    with pytest.raises(errors.LocalPathError, match="does not exist"):
        client.upload_files([(tmp_path / "nope.csv", f"{remote_dir}/nope.csv")])
    assert _api_requests(emulator) == {}


def test_local_directory_where_a_file_is_expected(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("a")
    client.upload_file(src, f"{remote_dir}/a.txt")
    emulator.reset_stats()
    with pytest.raises(errors.LocalPathError, match="is a directory") as info:
        client.upload_file(tmp_path, f"{remote_dir}/dir")
    assert "upload_folder" in str(info.value)
    target = tmp_path / "existing-dir"
    target.mkdir()
    with pytest.raises(errors.LocalPathError, match="is a directory"):
        client.download_file(f"{remote_dir}/a.txt", target)
    assert list(target.iterdir()) == []
    assert _api_requests(emulator) == {}


@pytest.mark.parametrize(
    ("remote", "hint"),
    [
        ("data/x.csv", "must start with '/'"),
        ("/data/x.csv/", "must not end with '/'"),
        ("/", "root folder"),
        ("/data/" + "n" * 256 + ".csv", "name of 260 characters .*allows at most 255"),  # finding #5
    ],
)
def test_bad_remote_paths_fail_before_any_request(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote: str, hint: str
) -> None:
    src = tmp_path / "x.csv"
    src.write_text("x")
    emulator.reset_stats()
    with pytest.raises(errors.MalformedPathError, match=hint):
        client.upload_file(src, remote)
    with pytest.raises(errors.MalformedPathError, match=hint):
        client.upload_files([(src, remote)])
    dst = tmp_path / "out" / "x.csv"
    with pytest.raises(errors.MalformedPathError, match=hint):
        client.download_file(remote, dst)
    with pytest.raises(errors.MalformedPathError):
        client.delete(remote)
    assert not dst.parent.exists()
    assert _api_requests(emulator) == {}


def test_remote_folder_where_a_file_is_expected(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    client.create_folder(f"{remote_dir}/folder")
    dst = tmp_path / "new-parent" / "f.bin"
    with pytest.raises(errors.NotAFileError, match=r"'.*/folder' is a folder, not a file \(files/download\)"):
        client.download_file(f"{remote_dir}/folder", dst)
    assert not dst.parent.exists()  # not even the parent folder was created
    small = tmp_path / "small.txt"
    small.write_text("small")
    with pytest.raises(errors.NotAFileError, match="is a folder"):
        client.upload_file(small, f"{remote_dir}/folder")
    big = tmp_path / "big.bin"
    write_random(big, 5 * MiB)
    emulator.reset_stats()
    with pytest.raises(errors.NotAFileError, match="is a folder"):
        client.upload_file(big, f"{remote_dir}/folder", single_request_limit=4 * MiB, chunk_size=4 * MiB)
    assert _api_requests(emulator) == {"/2/files/get_metadata": 1}  # refused before sending data
    assert client.get_metadata(f"{remote_dir}/folder")[".tag"] == "folder"


def test_missing_remote_file(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    dst = tmp_path / "keep.txt"
    dst.write_text("keep me")
    with pytest.raises(errors.PathNotFoundError) as info:
        client.download_file(f"{remote_dir}/missing.csv", dst)
    assert f"Dropbox path '{remote_dir}/missing.csv' not found (files/download)" in str(info.value)
    assert "relative to the app folder" in str(info.value)
    assert info.value.request_id
    assert dst.read_text() == "keep me" and leftovers(tmp_path) == []


def test_conflict_in_add_mode(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    src = tmp_path / "c.txt"
    src.write_text("one")
    client.upload_file(src, f"{remote_dir}/c.txt")
    src.write_text("two")
    with pytest.raises(errors.PathConflictError, match="mode='overwrite'"):
        client.upload_file(src, f"{remote_dir}/c.txt")


def test_bad_chunk_size_and_mode(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    src = tmp_path / "x"
    src.write_text("x")
    with pytest.raises(ValueError, match="multiple of 4 MiB"):
        client.upload_file(src, f"{remote_dir}/x", chunk_size=5 * MiB)
    with pytest.raises(ValueError, match="mode must be"):
        client.upload_file(src, f"{remote_dir}/x", mode="replace")


def test_insufficient_space(fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path) -> None:
    try:
        fresh_emulator.set_faults(quota_bytes=6 * MiB)
    except urllib.error.HTTPError:
        pytest.skip("the emulator has no quota knob yet (docs/known-limitations.md)")
    client = make_client(fresh_emulator)
    src = tmp_path / "big.bin"
    write_random(src, 8 * MiB)
    for kwargs in ({}, {"single_request_limit": 4 * MiB, "chunk_size": 4 * MiB, "parallelism": 2}):
        with pytest.raises(errors.InsufficientSpaceError, match="Not enough space"):
            client.upload_file(src, "/big.bin", **kwargs)  # type: ignore[arg-type]
        assert not client.exists("/big.bin")


def test_batch_reports_each_file_that_did_not_fit(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    try:
        fresh_emulator.set_faults(quota_bytes=6 * MiB)
    except urllib.error.HTTPError:
        pytest.skip("the emulator has no quota knob yet (docs/known-limitations.md)")
    client = make_client(fresh_emulator)
    pairs = []
    for i in range(2):
        src = tmp_path / f"{i}.bin"
        write_random(src, 4 * MiB)
        pairs.append((src, f"/q/{i}.bin"))
    with pytest.raises(errors.BatchUploadError, match="1 of 2 Dropbox uploads failed") as info:
        client.upload_files(pairs, parallelism=2)
    ((failed_path, error),) = info.value.failures.items()
    assert isinstance(error, errors.InsufficientSpaceError) and error.path == failed_path
    assert [m["path_display"] for m in info.value.succeeded] == [p for _, p in pairs if p != failed_path]
    assert not client.exists(failed_path)


@pytest.mark.parametrize("parallelism", [1, 4])
def test_disk_full_while_downloading_is_a_local_path_error(
    client: DropboxClient, tmp_path: Path, remote_dir: str, monkeypatch: pytest.MonkeyPatch, parallelism: int
) -> None:
    """ENOSPC from a local write (finding #2) names the path and the fix; the old file stays, no temp left."""
    import errno
    import os

    from airflow_provider_dropbox.client import download

    src = tmp_path / "big.bin"
    write_random(src, 20 * MiB)
    client.upload_file(src, f"{remote_dir}/big.bin")
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old")

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(download.os, "pwrite", full)
    with pytest.raises(errors.LocalPathError, match=r"No space left on device; free space") as info:
        client.download_file(f"{remote_dir}/big.bin", dest, parallelism=parallelism)
    assert str(dest) in str(info.value)
    assert dest.read_bytes() == b"old"
    assert leftovers(dest.parent) == []


def test_nul_in_a_local_path_fails_before_any_request(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    """Finding #15: a NUL is refused up front, for reads and writes, instead of a raw ValueError later."""
    emulator.reset_stats()
    with pytest.raises(errors.LocalPathError, match="NUL character"):
        client.download_file(f"{remote_dir}/a.csv", str(tmp_path / "a\x00b.csv"))
    with pytest.raises(errors.LocalPathError, match="NUL character"):
        client.upload_file(str(tmp_path / "a\x00b.csv"), f"{remote_dir}/a.csv")
    with pytest.raises(errors.LocalPathError, match="NUL character"):
        client.upload_files([(str(tmp_path / "a\x00b.csv"), f"{remote_dir}/a.csv")])
    assert _api_requests(emulator) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["desktop.ini", "Thumbs.db", ".DS_Store", ".dropbox", ".dropbox.attr"])
def test_disallowed_names_fail_before_any_request(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str, name: str
) -> None:
    """Finding #4: names Dropbox refuses are a typed error with the fix, found locally for upload_file."""
    src = tmp_path / "x"
    src.write_text("x")
    emulator.reset_stats()
    with pytest.raises(errors.DisallowedNameError, match=rf"{re.escape(name)}.*rename it or leave it out"):
        client.upload_file(src, f"{remote_dir}/{name}")
    assert _api_requests(emulator) == {}


def test_disallowed_name_from_the_server_is_typed(client: DropboxClient, remote_dir: str) -> None:
    """Routes checked only by Dropbox (create_folder, move, ...) map ``disallowed_name`` to the same class."""
    expected = r"'desktop\.ini'.*rename it or leave it out"
    with pytest.raises(errors.DisallowedNameError, match=expected) as info:
        client.create_folder(f"{remote_dir}/desktop.ini")
    assert isinstance(info.value, errors.MalformedPathError)
    assert "disallowed_name" in info.value.tags
