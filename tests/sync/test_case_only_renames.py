"""Case-only renames in place: Dropbox's ``list_folder/continue`` does not report them (files.stone,
``Metadata.path_display``) and the emulator omits them too, so an incremental mirror keeps the old local case
and a ``full_rescan`` brings the new one, without downloading the bytes again (docs/mirror.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.sync import mirror
from tests.emulator_process import EmulatorProcess

EmuClient = tuple[EmulatorProcess, DropboxClient]

ROOT = "/Case Root"


@pytest.mark.parametrize(
    ("old", "new"),
    [("report.csv", "REPORT.csv"), ("σοφία.txt", "ΣΟΦΊΑ.txt"), ("straße.txt", "STRAßE.txt")],
    ids=["ascii", "greek", "sharp-s"],
)
def test_in_place_case_only_rename_is_picked_up_by_a_full_rescan(
    emu_client: EmuClient, tmp_path: Path, old: str, new: str
) -> None:
    emu, client = emu_client
    for name, data in ((old, b"same bytes"), ("keep.txt", b"other")):
        src = tmp_path / "src"
        src.write_bytes(data)
        client.upload_file(src, f"{ROOT}/{name}", mode="overwrite")
    dest = tmp_path / "m"
    mirror(client, ROOT, dest)
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted([old, "keep.txt"])

    client.move(f"{ROOT}/{old}", f"{ROOT}/{new}")  # in place: the same item, only its case changes
    _downloads_since_reset(emu)
    mirror(client, ROOT, dest)  # incremental: the change is not reported, nothing changes, nothing is lost
    assert (dest / old).read_bytes() == b"same bytes"
    assert not (dest / new).exists()

    report = mirror(client, ROOT, dest, full_rescan=True)
    assert (dest / new).read_bytes() == b"same bytes"
    assert not (dest / old).exists()
    assert (dest / "keep.txt").read_bytes() == b"other"
    assert _downloads_since_reset(emu) == 0, report  # re-recorded under its new name, not fetched again


def _downloads_since_reset(emu: EmulatorProcess) -> int:
    count = emu.stats().get("/2/files/download", 0)
    emu.reset_stats()
    return count
