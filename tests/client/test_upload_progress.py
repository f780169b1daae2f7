"""Progress of many-file uploads counts each byte once: bytes of an attempt that is sent again (the file
changed while it was read, or Dropbox holds fewer bytes than were sent) are taken back first."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_dropbox.client import DropboxClient, content_hash_file

MiB = 1024 * 1024


def _grow_once(path: Path, at: int, seen: list[int]) -> object:
    state = {"done": False}

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if not state["done"] and done >= at:
            state["done"] = True
            with open(path, "ab") as f:
                f.write(b"tail" * 1000)

    return progress


def test_a_file_sent_again_is_not_counted_twice(
    client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    steady = tmp_path / "steady.bin"
    steady.write_bytes(os.urandom(1000))
    grow = tmp_path / "grow.bin"
    grow.write_bytes(os.urandom(3 * MiB))
    seen: list[int] = []
    got = client.upload_files(
        [(steady, f"{remote_dir}/steady.bin"), (grow, f"{remote_dir}/grow.bin")],
        parallelism=1,
        progress=_grow_once(grow, 2 * MiB, seen),  # type: ignore[arg-type]
    )
    assert {m["name"]: m["content_hash"] for m in got}["grow.bin"] == content_hash_file(grow)
    # The first attempt's 3 MiB were taken back before the file went again: progress fell back below 2 MiB
    # after it had passed it, instead of sitting at the total while the second attempt was still sending.
    peak = seen.index(max(s for s in seen if s >= 2 * MiB))
    assert min(seen[peak:]) < 2 * MiB
    assert seen[-1] == 1000 + 3 * MiB  # the total counted at the start (the re-sent bytes clamp to it)


def test_many_files_progress_ends_at_the_total_once(
    client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    pairs = []
    for i in range(30):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(10 * 1024))
        pairs.append((p, f"{remote_dir}/f{i}.bin"))
    seen: list[int] = []
    client.upload_files(pairs, parallelism=4, progress=lambda d, t: seen.append(d))
    assert seen[-1] == 30 * 10 * 1024
    assert seen.count(30 * 10 * 1024) == 1
