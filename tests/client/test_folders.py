"""Folder transfers (``client/folders.py``) with a real DropboxClient against the emulator.

Uses the ``client`` and ``remote_dir`` fixtures of ``tests/client/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from airflow_provider_dropbox.client import DropboxClient, errors
from airflow_provider_dropbox.client.folders import check_upload_targets, download_folder, upload_folder
from tests.emulator_process import EmulatorProcess

TREE = {
    "top.csv": b"a,b\n1,2\n",
    "Übersicht 📊.txt": "größe".encode(),
    "Nested/Deeper/data.csv": b"x" * 10_000,
    "Nested/empty.bin": b"",
    "Nested/notes.md": b"# notes",
}


def _write_tree(root: Path, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _downloads(emulator: EmulatorProcess) -> int:
    return emulator.stats().get("/2/files/download", 0)


def test_round_trip_keeps_layout_names_and_bytes(
    client: DropboxClient, remote_dir: str, tmp_path: Path, emulator: EmulatorProcess
) -> None:
    src = tmp_path / "src"
    _write_tree(src, TREE)
    (src / "Nested" / "Hollow").mkdir()
    uploaded = upload_folder(client, src, remote_dir, parallelism=4)
    assert sorted(m["path_display"] for m in uploaded) == sorted(f"{remote_dir}/{rel}" for rel in TREE)

    dest = tmp_path / "dest"
    written = download_folder(client, remote_dir, dest, parallelism=4)
    assert sorted(Path(p).relative_to(dest).as_posix() for p in written) == sorted(TREE)
    assert _local_tree(dest) == TREE

    before = _downloads(emulator)
    assert download_folder(client, remote_dir, dest) == []  # content hashes match: nothing fetched again
    assert _downloads(emulator) == before


def test_pattern_and_non_recursive(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_tree(src, TREE)
    upload_folder(client, src, remote_dir)

    only_csv = tmp_path / "csv"
    download_folder(client, remote_dir, only_csv, pattern="*.CSV")  # case-insensitive, '*' crosses '/'
    assert sorted(_local_tree(only_csv)) == ["Nested/Deeper/data.csv", "top.csv"]
    assert not (only_csv / "Nested" / "Hollow").exists()

    flat = tmp_path / "flat"
    download_folder(client, remote_dir, flat, recursive=False)
    assert sorted(_local_tree(flat)) == ["top.csv", "Übersicht 📊.txt"]

    sub_remote = f"{remote_dir}-md"
    uploaded = upload_folder(client, src, sub_remote, pattern="nested/*.md")
    assert [m["path_display"] for m in uploaded] == [f"{sub_remote}/Nested/notes.md"]
    assert upload_folder(client, src, sub_remote, pattern="*.nothing") == []


def test_overwrite_flag(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_tree(src, {"a.txt": b"remote"})
    upload_folder(client, src, remote_dir)
    dest = tmp_path / "dest"
    _write_tree(dest, {"a.txt": b"local edit"})

    assert download_folder(client, remote_dir, dest, overwrite=False) == []
    assert (dest / "a.txt").read_bytes() == b"local edit"
    assert download_folder(client, remote_dir, dest, overwrite=True) == [str(dest / "a.txt")]
    assert (dest / "a.txt").read_bytes() == b"remote"


def test_upload_mode_overwrite(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_tree(src, {"a.txt": b"one"})
    upload_folder(client, src, remote_dir)
    (src / "a.txt").write_bytes(b"two")
    [meta] = upload_folder(client, src, remote_dir, mode="overwrite")
    assert meta["size"] == 3
    assert client.get_metadata(f"{remote_dir}/a.txt")["content_hash"] == meta["content_hash"]


def test_symlink_escaping_local_dir_is_refused_before_any_download(
    client: DropboxClient, remote_dir: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _write_tree(src, {"aaa.txt": b"first", "sub/evil.txt": b"would land outside"})
    upload_folder(client, src, remote_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)

    with pytest.raises(errors.LocalPathError, match="outside"):
        download_folder(client, remote_dir, dest)
    assert list(outside.iterdir()) == []
    assert not (dest / "aaa.txt").exists()  # checked before the first byte moved


class _Listing:
    """A stand-in client listing crafted entries (names a real server never sends); records downloads."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.downloads: list[str] = []

    def list_folder(self, path: str, recursive: bool = False) -> Iterator[dict[str, Any]]:
        return iter(self.entries)

    def download_file(self, remote: str, local: Any, **kwargs: Any) -> dict[str, Any]:
        self.downloads.append(remote)
        return {}


@pytest.mark.parametrize("bad_name", ["..", ".", "a\\..\\b", ""])
def test_hostile_remote_names_are_refused(tmp_path: Path, bad_name: str) -> None:
    fake = _Listing(
        [
            {
                ".tag": "file",
                "name": "ok.txt",
                "path_lower": "/r/ok.txt",
                "path_display": "/r/ok.txt",
                "size": 1,
            },
            {
                ".tag": "file",
                "name": bad_name,
                "path_lower": f"/r/{bad_name}",
                "path_display": f"/r/{bad_name}",
                "size": 1,
            },
        ]
    )
    with pytest.raises(errors.LocalPathError):
        download_folder(fake, "/r", tmp_path / "dest")  # type: ignore[arg-type]
    assert fake.downloads == []


def test_upload_refuses_symlink_to_outside(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_bytes(b"not for upload")
    src = tmp_path / "src"
    _write_tree(src, {"fine.txt": b"ok"})
    os.symlink(secret, src / "link.txt")
    with pytest.raises(errors.LocalPathError, match="symlink"):
        upload_folder(client, src, remote_dir)
    assert not client.exists(remote_dir)


def test_bad_inputs(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    with pytest.raises(errors.LocalPathError, match=r"not a folder|does not exist"):
        upload_folder(client, tmp_path / "missing", remote_dir)
    with pytest.raises(errors.MalformedPathError):
        upload_folder(client, tmp_path, "no-slash")
    with pytest.raises(errors.MalformedPathError):
        download_folder(client, "trailing/", tmp_path / "d")
    with pytest.raises(errors.PathNotFoundError):
        download_folder(client, f"{remote_dir}/nothing-here", tmp_path / "d")
    a_file = tmp_path / "file.txt"
    a_file.write_bytes(b"x")
    with pytest.raises(errors.LocalPathError, match="is a file"):
        download_folder(client, remote_dir, a_file)


def test_unwritable_destination_is_a_local_path_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing mkdir (read-only file system) is a LocalPathError naming the folder, not a raw OSError."""
    import errno

    fake = _Listing(
        [{".tag": "file", "name": "a.txt", "path_lower": "/r/a.txt", "path_display": "/r/a.txt", "size": 1}]
    )

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(errors.LocalPathError, match=r"Cannot create the local folder .*Read-only file"):
        download_folder(fake, "/r", tmp_path / "dest")  # type: ignore[arg-type]
    assert fake.downloads == []


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_local_dir_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """#17: '' (a blank template) would mean the current directory; refused before listing anything."""
    monkeypatch.chdir(tmp_path)
    fake = mock.MagicMock()
    with pytest.raises(errors.LocalPathError, match=r"local_dir .* is empty or blank"):
        download_folder(fake, "/r", blank)
    assert fake.mock_calls == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("local", ["", " ", "/", "//", "/tmp/.."])
def test_upload_folder_refuses_blank_and_root(local: str) -> None:
    """#8/#17: '' (the cwd) and '/' (the whole file system) are refused before any walk or request."""
    fake = mock.MagicMock()
    with pytest.raises(errors.LocalPathError, match=r"empty or blank|root of the file system"):
        upload_folder(fake, local, "/r")
    assert fake.mock_calls == []


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        pytest.param(
            [("a/R.csv", "/r/R.csv"), ("a/r.csv", "/r/r.csv")], r"'a/R.csv' and 'a/r.csv'", id="case"
        ),
        pytest.param(
            [("nfc", "/r/caf\u00e9.csv"), ("nfd", "/r/cafe\u0301.csv")], r"'nfc' and 'nfd'", id="nfc-nfd"
        ),
        pytest.param(
            [("f", "/r/Data"), ("g", "/r/data/x.csv")], r"'f' -> '/r/Data' is also a folder", id="dir"
        ),
    ],
)
def test_upload_targets_that_dropbox_folds_together_are_refused(
    pairs: list[tuple[str, str]], message: str
) -> None:
    """#3: names equal under NFC + lower-case are one Dropbox path; refused up front, naming both files."""
    with pytest.raises(errors.LocalPathError, match=rf"{message}.*rename one of them"):
        check_upload_targets(pairs, route="t")


def test_distinct_upload_targets_pass() -> None:
    check_upload_targets(
        [("a", "/r/a.csv"), ("b", "/r/sub/a.csv"), ("c", "/R/Sub/b.csv"), ("d", "no-slash.csv")], route="t"
    )


@pytest.mark.parametrize(
    "name", ["desktop.ini", "Thumbs.db", ".DS_Store", "Icon\r", ".dropbox", ".dropbox.attr"]
)
def test_upload_folder_holding_a_name_dropbox_refuses_sends_nothing(tmp_path: Path, name: str) -> None:
    """#4: with skip_disallowed_names=False, refused before any request (not half uploaded), naming the
    file and the way out; by default the name is skipped (as the Dropbox app does) and the rest is sent."""
    _write_tree(tmp_path / "src", {"a.csv": b"a", f"sub/{name}": b"x"})
    fake = mock.MagicMock()
    with pytest.raises(errors.DisallowedNameError, match=r"name Dropbox does not store.*rename or delete"):
        upload_folder(fake, tmp_path / "src", "/r", skip_disallowed_names=False)
    assert fake.mock_calls == []
    upload_folder(fake, tmp_path / "src", "/r", pattern="*.csv", skip_disallowed_names=False)  # left out
    assert [p for p, _ in fake.upload_files.call_args.args[0]] == [str(tmp_path / "src" / "a.csv")]
    fake.reset_mock()
    upload_folder(fake, tmp_path / "src", "/r")  # the default: skipped
    assert [p for p, _ in fake.upload_files.call_args.args[0]] == [str(tmp_path / "src" / "a.csv")]
