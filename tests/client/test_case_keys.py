"""Folder downloads under names that Dropbox folds differently from Python 3's ``str.lower()``.

The emulator folds like Dropbox (older Unicode rules: no final sigma, one ``i`` for the dotted capital I,
later-added capitals unchanged). The client must take keys from the server, so every file is found.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.client.folders import download_folder

ROOTS = [
    "ΟΔΟΣ",  # Greek: Python folds the last sigma to a final sigma, Dropbox does not
    "ΣΣΣ",
    "İzmir",  # Turkish dotted capital I: Python gives two code points
    "Ꙋ-Cyrillic",  # U+A64A: added after Unicode 4.1, Dropbox leaves it as it is
    "ẞtraße",  # capital sharp s: likewise
    "Ǆ-ligature",  # a titlecase-aware ligature
    "ПАПКА",  # plain Cyrillic: both fold alike, a control
]


def _put(client: DropboxClient, path: str, data: bytes) -> None:
    client.upload_call("files/upload", {"path": path, "mode": "add"}, lambda: data)


@pytest.mark.parametrize("root", ROOTS)
def test_download_folder_finds_files_under_any_folding(
    client: DropboxClient, remote_dir: str, tmp_path: Path, root: str
) -> None:
    base = f"{remote_dir}/{root}"
    _put(client, f"{base}/Σ-file.txt", b"one")
    _put(client, f"{base}/Sub İ/Ω.txt", b"two")
    written = download_folder(client, base, tmp_path / "out")
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in written) == [
        "Sub İ/Ω.txt",
        "Σ-file.txt",
    ]
    assert (tmp_path / "out" / "Σ-file.txt").read_bytes() == b"one"
    assert (tmp_path / "out" / "Sub İ" / "Ω.txt").read_bytes() == b"two"


def test_download_folder_given_another_case_of_the_root(
    client: DropboxClient, remote_dir: str, tmp_path: Path
) -> None:
    _put(client, f"{remote_dir}/ΣΣΣ/a.txt", b"x")
    written = download_folder(client, f"{remote_dir}/\u03c3\u03c3\u03c3", tmp_path / "out")
    assert [Path(p).name for p in written] == ["a.txt"]
