"""Folders of many small planned downloads come as one ``files/download_zip`` (sync/zipped.py): real HTTP
against the emulator, compared with the same mirror made one request per file."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.sync import mirror, zipped
from airflow_provider_dropbox.sync.paths import key_parent
from airflow_provider_dropbox.sync.plan import Action
from tests.emulator_process import EmulatorProcess
from tests.sync.chaos import Chaos
from tests.sync.conftest import local_hash_tree, remote_tree
from tests.sync.test_emulator_mirror import mirror_until_ok

ROOT = "/Mirror Src"
EmuClient = tuple[EmulatorProcess, DropboxClient]

# folder -> number of small files directly in it
LAYOUT = {"a": 6, "b": 5, "b/c": 4, "": 4, "d": 2, "e": 4}


def _seed(chaos: Chaos) -> None:
    for folder, n in LAYOUT.items():
        for i in range(n):
            chaos.upload(f"{folder}/f{i}.txt" if folder else f"top{i}.txt", f"{folder} {i}".encode() * 7)
    chaos.upload("e/large.bin", os.urandom(2 * zipped.MAX_FILE))  # makes e's zip (and the root's) too large


def _files(dest: Path) -> dict[str, tuple[bytes, int]]:
    """Relative path -> (content, mtime in whole seconds) of every mirrored file."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(dest):
        dirnames[:] = [d for d in dirnames if d != ".dropbox-mirror"]
        for f in filenames:
            p = Path(dirpath, f)
            out[str(p.relative_to(dest))] = (p.read_bytes(), int(p.stat().st_mtime))
    return out


def _client_modified(client: DropboxClient) -> dict[str, int]:
    entries, _ = client.list_folder_snapshot(ROOT, recursive=True)
    return {
        e["path_display"][len(ROOT) + 1 :]: int(
            datetime.fromisoformat(e["client_modified"][:-1]).replace(tzinfo=timezone.utc).timestamp()
        )
        for e in entries
        if e[".tag"] == "file"
    }


def test_a_zipped_first_run_leaves_what_one_request_per_file_leaves(
    emu_client: EmuClient, tmp_path: Path
) -> None:
    """Same files, bytes and mtimes (client_modified) as a per-file mirror, with one zip per folder of
    enough small files; a zip that would hold much more than its files (the root's and ``e``'s, which
    hold a large file) is dropped and its files downloaded one by one."""
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=1, workdir=str(tmp_path))
    _seed(chaos)
    emu.reset_stats()
    zipped_run = mirror(client, ROOT, tmp_path / "zipped", parallelism=4)
    stats = emu.stats()
    one_by_one = mirror(client, ROOT, tmp_path / "plain", parallelism=4, zip_small_files=False)

    assert zipped_run.ok and one_by_one.ok
    assert zipped_run.done["download"] == one_by_one.done["download"] == sum(LAYOUT.values()) + 1
    assert zipped_run.zipped == 6 + 5 + 4 and one_by_one.zipped == 0  # a, b (its own files), b/c
    assert zipped_run.to_dict()["downloaded_in_zips"] == 15
    assert stats["/2/files/download_zip"] == 5  # a, b, b/c, the root, e
    assert stats["/2/files/download"] == 4 + 2 + 4 + 1  # root, d, e's small files and its large one
    files = _files(tmp_path / "zipped")
    assert files == _files(tmp_path / "plain")
    assert {p: mtime for p, (_, mtime) in files.items()} == _client_modified(client)
    assert local_hash_tree(tmp_path / "zipped") == remote_tree(client, ROOT)
    assert not os.listdir(tmp_path / "zipped" / ".dropbox-mirror" / "staging")  # no zip left behind


@pytest.mark.parametrize("seed", [5, 6])
def test_zipped_runs_follow_random_histories_like_per_file_runs(
    emu_client: EmuClient, tmp_path: Path, seed: int
) -> None:
    """Random remote histories (creates, edits, deletes, moves, case-only renames, file/folder swaps,
    unicode names) plus whole new folders now and then: after every run the zipped mirror holds the
    same names, bytes and mtimes as the per-file one, and both equal Dropbox."""
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=seed, workdir=str(tmp_path))
    for i in range(24):
        chaos.upload(f"{['', 'Dir', 'data', 'sub dir'][i % 4]}/seed{i}.txt".lstrip("/"))
    zipped_dest, plain_dest = tmp_path / "zipped", tmp_path / "plain"
    served = 0
    for round_ in range(6):
        emu.reset_stats()
        a = mirror(client, ROOT, zipped_dest, parallelism=4, allow_empty_remote=True)
        served += emu.stats().get("/2/files/download_zip", 0)
        b = mirror(client, ROOT, plain_dest, parallelism=4, allow_empty_remote=True, zip_small_files=False)
        assert a.ok and b.ok and a.planned == b.planned and a.done == b.done, (round_, chaos.log[-8:])
        assert _files(zipped_dest) == _files(plain_dest), (round_, chaos.log[-8:])
        assert local_hash_tree(zipped_dest) == remote_tree(client, ROOT)
        chaos.round(max_ops=6)
        if chaos.rng.random() < 0.6:
            for i in range(chaos.rng.randint(zipped.MIN_FILES, 9)):
                chaos.upload(f"batch {round_}/n{i}.txt")
    assert served >= 2  # the first run's folders, and later batches


class _ChangesUnderTheZip:
    """The real client, but right before each zip is fetched one listed file is edited and another one
    deleted on the emulator: the zip then holds bytes the listing did not promise, and lacks a file."""

    def __init__(self, client: DropboxClient, chaos: Chaos) -> None:
        self._client = client
        self._chaos = chaos
        self.zips = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def download_zip(self, path: str, local_path: str, *, max_bytes: int | None = None) -> dict[str, Any]:
        if self.zips == 0:
            self._chaos.upload("a/f0.txt", b"FILE 0")  # same size: only the hash tells
            self._client.delete(f"{ROOT}/a/f1.txt")
        self.zips += 1
        return self._client.download_zip(path, local_path, max_bytes=max_bytes)


def test_a_member_that_does_not_match_the_listing_is_downloaded_on_its_own(
    emu_client: EmuClient, tmp_path: Path
) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=2, workdir=str(tmp_path))
    for i in range(6):
        chaos.upload(f"a/f{i}.txt", f"file {i}".encode())
    racing = _ChangesUnderTheZip(client, chaos)
    dest = tmp_path / "m"
    emu.reset_stats()
    report = mirror(racing, ROOT, dest)
    assert report.ok and racing.zips == 1
    assert report.zipped == 4  # f2..f5; f0 (other bytes) and f1 (not in the zip) went one by one
    assert emu.stats()["/2/files/download"] == 2
    assert (dest / "a" / "f0.txt").read_bytes() == b"FILE 0"  # the newer one, fetched and verified alone
    assert not (dest / "a" / "f1.txt").exists()  # gone before it could be fetched
    again = mirror(client, ROOT, dest)
    assert again.ok and again.mode == "incremental" and again.done.get("download", 0) == 0
    assert local_hash_tree(dest) == remote_tree(client, ROOT)


def test_cut_and_corrupted_zips_fall_back_and_converge(emu_client: EmuClient, tmp_path: Path) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=3, workdir=str(tmp_path))
    for folder in ("x", "y", "z"):
        for i in range(8):
            chaos.upload(f"{folder}/{i}.txt", f"{folder}{i}".encode() * 50)
    dest = tmp_path / "m"
    emu.set_faults(truncate_download=0.4, corrupt_download=0.4)
    try:
        mirror_until_ok(client, dest)
    finally:
        emu.clear_faults()
    assert local_hash_tree(dest) == remote_tree(client, ROOT)
    files = _files(dest)
    assert {p: mtime for p, (_, mtime) in files.items()} == _client_modified(client)


def test_the_app_folder_root_is_never_zipped(emu_client: EmuClient, tmp_path: Path) -> None:
    emu, client = emu_client
    chaos = Chaos(client, "", seed=4, workdir=str(tmp_path))
    for i in range(5):
        chaos.upload(f"top{i}.txt", f"top {i}".encode())
    emu.reset_stats()
    report = mirror(client, "/", tmp_path / "m")
    assert report.ok and report.done["download"] == 5 and report.zipped == 0
    assert "/2/files/download_zip" not in emu.stats()


# -- which downloads are grouped ---------------------------------------------------------------------


def _dl(
    key: str, size: int = 10, modified: str | None = "2026-01-01T00:00:00Z", op: str = "download"
) -> Action:
    return Action(op, key, key=key, content_hash="h" + key, size=size, modified=modified)  # type: ignore[arg-type]


def test_zip_groups_take_folders_of_enough_small_listed_files() -> None:
    acts = [_dl(f"a/{i}") for i in range(zipped.MIN_FILES)]
    acts += [_dl(f"b/{i}") for i in range(zipped.MIN_FILES - 1)]  # too few
    acts += [_dl(f"c/{i}", modified=None) for i in range(zipped.MIN_FILES)]  # times unknown: from the index
    acts += [_dl(f"d/{i}", size=zipped.MAX_FILE + 1) for i in range(zipped.MIN_FILES)]  # too large each
    acts += [_dl(f"e/{i}", op="copy_local") for i in range(zipped.MIN_FILES)]  # not a download
    acts += [_dl(f"f/{i}", size=zipped.MAX_FILE) for i in range(zipped.MAX_GROUP // zipped.MAX_FILE + 1)]
    acts += [_dl(f"{i}") for i in range(zipped.MIN_FILES)]  # the mirror root
    groups, rest = zipped.zip_groups(acts)
    assert [(g.folder, len(g.actions)) for g in groups] == [("a", zipped.MIN_FILES), ("", zipped.MIN_FILES)]
    assert rest == [a for a in acts if key_parent(a.key or "") not in ("a", "")]  # in their order
    assert groups[0].max_bytes == 10 * zipped.MIN_FILES + zipped.MIN_FILES * zipped.SLACK_PER_FILE


def test_direct_members_leave_out_subfolders_and_names_folding_together(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Top/", b"")
        zf.writestr("Top/One.txt", b"1")
        zf.writestr("Top/sub/two.txt", b"2")
        zf.writestr("Top/Twice.txt", b"a")
        zf.writestr("Top/twice.TXT", b"b")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zipped.direct_members(zf)) == ["one.txt"]
