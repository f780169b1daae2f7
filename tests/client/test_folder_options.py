"""``client/folders.py`` options with a real DropboxClient against the emulator: ``exclude``, names Dropbox
never syncs (skipped by default), and the local paths refused before any request."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient, errors
from airflow_provider_dropbox.client.folders import (
    check_local_path_arg,
    download_folder,
    exclude_matcher,
    upload_folder,
)
from tests.emulator_process import EmulatorProcess


def _write(root: Path, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _remote(client: DropboxClient, folder: str) -> dict[str, str]:
    """Relative path (as displayed) -> content hash of every file under ``folder``."""
    prefix = folder.lower() + "/"
    return {
        e["path_display"][len(prefix) :]: e["content_hash"]
        for e in client.list_folder(folder, recursive=True)
        if e[".tag"] == "file"
    }


@pytest.mark.parametrize(
    ("patterns", "rel", "excluded"),
    [
        ("*.tmp", "a/b.tmp", True),  # '*' crosses '/', as the pattern filter
        ("*.TMP", "a/b.tmp", True),  # case-insensitive, as Dropbox names
        (".git", "src/.git/config", True),  # a name anywhere: the folder and all below it
        ("cache/*", "cache/x.bin", True),
        ("cache/*", "sub/cache/x.bin", False),  # a path with '/' is anchored at the top
        ("cache", "cache/deep/x.bin", True),
        (["*.log", "data.csv"], "sub/data.csv", True),
        ("data.csv", "sub/data.csv.bak", False),
        ((), "a.csv", False),
        (None, "a.csv", False),
        ("/", "a.csv", False),  # an empty pattern excludes nothing (not everything)
    ],
)
def test_exclude_matcher(patterns: str | list[str] | None, rel: str, excluded: bool) -> None:
    assert exclude_matcher(patterns)(rel) is excluded


def test_exclude_matcher_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="exclude must be a glob or a list of globs"):
        exclude_matcher([3])  # type: ignore[list-item]


def test_upload_folder_exclude_and_never_synced_names(
    client: DropboxClient, remote_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(
        tmp_path / "src",
        {
            "keep.csv": b"1",
            "Sub/Keep.txt": b"2",
            "scratch.TMP": b"3",
            "node_modules/pkg/index.js": b"4",
            "Sub/node_modules/x.js": b"5",
            "desktop.ini": b"6",
            "Sub/.DS_Store": b"7",
            "Icon\r": b"8",
            ".dropbox.attr": b"9",
            ".dropbox/cache": b"10",
        },
    )
    caplog.set_level(logging.INFO, logger="airflow_provider_dropbox.client.folders")
    uploaded = upload_folder(client, tmp_path / "src", remote_dir, exclude=["*.tmp", "node_modules"])
    assert sorted(m["name"] for m in uploaded) == ["Keep.txt", "keep.csv"]
    assert sorted(_remote(client, remote_dir)) == ["Sub/Keep.txt", "keep.csv"]
    text = caplog.text
    assert "Left out 3 path(s)" in text and "'node_modules/'" in text and "'Sub/node_modules/'" in text
    assert "Skipped 5 path(s)" in text and "skip_disallowed_names=False" in text
    for name in ("'desktop.ini'", "'Sub/.DS_Store'", "'Icon\\r'", "'.dropbox.attr'", "'.dropbox/'"):
        assert name in text, name


def test_an_excluded_folder_is_not_walked(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    """A symlink out of the folder is refused, naming exclude as the way out; excluded, it is not seen."""
    _write(tmp_path / "src", {"a.csv": b"a"})
    _write(tmp_path / "elsewhere", {"secret.txt": b"not yours"})
    (tmp_path / "src" / "linked").mkdir()
    os.symlink(tmp_path / "elsewhere" / "secret.txt", tmp_path / "src" / "linked" / "secret.txt")
    with pytest.raises(errors.LocalPathError, match=r"symlink to outside.*exclude="):
        upload_folder(client, tmp_path / "src", remote_dir)
    assert not client.exists(remote_dir)
    upload_folder(client, tmp_path / "src", remote_dir, exclude="linked")
    assert sorted(_remote(client, remote_dir)) == ["a.csv"]


def test_strict_upload_folder_sends_nothing(client: DropboxClient, remote_dir: str, tmp_path: Path) -> None:
    _write(tmp_path / "src", {"a.csv": b"a", "sub/thumbs.db": b"t"})
    with pytest.raises(errors.DisallowedNameError, match=r"thumbs\.db.*skip_disallowed_names=False"):
        upload_folder(client, tmp_path / "src", remote_dir, skip_disallowed_names=False)
    assert not client.exists(remote_dir)


def test_a_remote_folder_with_a_never_synced_name_is_still_refused(
    client: DropboxClient, remote_dir: str, tmp_path: Path
) -> None:
    """Skipping applies to local names; a target the caller named explicitly fails, it is not emptied."""
    _write(tmp_path / "src", {"a.csv": b"a"})
    with pytest.raises(errors.DisallowedNameError, match=r"desktop\.ini"):
        upload_folder(client, tmp_path / "src", f"{remote_dir}/desktop.ini")
    assert not client.exists(remote_dir)


@pytest.mark.parametrize("local", ["/", "//", "///", "/tmp/..", "/./"])
def test_download_folder_refuses_the_root_before_any_request(
    client: DropboxClient, remote_dir: str, tmp_path: Path, emulator: EmulatorProcess, local: str
) -> None:
    _write(tmp_path / "src", {"a.csv": b"a"})
    upload_folder(client, tmp_path / "src", remote_dir)
    before = emulator.stats()
    with pytest.raises(errors.LocalPathError, match=r"local_dir .* is the root of the file system"):
        download_folder(client, remote_dir, local)
    assert emulator.stats() == before


@pytest.mark.parametrize("local", ["out", "./out", "../out", "~/out", "out/*.csv"])
def test_relative_local_paths_refused_only_when_asked(local: str) -> None:
    """Operators pass allow_relative=False (a worker's cwd is arbitrary); library callers keep their cwd."""
    with pytest.raises(errors.LocalPathError, match=r"local_path .* is a relative path.*absolute path"):
        check_local_path_arg(local, field="local_path", route="t", allow_relative=False)
    check_local_path_arg(local, field="local_path", route="t")
    check_local_path_arg("/data/out", field="local_path", route="t", allow_relative=False)
