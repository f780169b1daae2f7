"""Upload and download round trips over real HTTP against the emulator: bytes equal, content_hash agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient, batch_commit, content_hash_file, errors
from airflow_provider_dropbox.client.content_hash import content_hash_bytes
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


def round_trip(
    client: DropboxClient,
    tmp_path: Path,
    remote: str,
    size: int,
    *,
    parallelism: int = 4,
    **upload_kw: object,
) -> None:
    src = tmp_path / "src.bin"
    data = write_random(src, size)
    meta = client.upload_file(src, remote, parallelism=parallelism, **upload_kw)  # type: ignore[arg-type]
    assert meta["size"] == size
    assert meta["content_hash"] == content_hash_bytes(data) == content_hash_file(src)
    server = client.get_metadata(remote)
    assert server["content_hash"] == meta["content_hash"] and server[".tag"] == "file"
    dst = tmp_path / "out" / "dst.bin"
    got = client.download_file(remote, dst, parallelism=parallelism)
    assert dst.read_bytes() == data
    assert got["content_hash"] == meta["content_hash"] and got["rev"] == server["rev"]
    assert leftovers(dst.parent) == []


@pytest.mark.parametrize("size", [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1])
def test_round_trip_boundary_sizes(client: DropboxClient, tmp_path: Path, remote_dir: str, size: int) -> None:
    round_trip(client, tmp_path, f"{remote_dir}/f-{size}.bin", size)


@pytest.mark.parametrize("size", [0, 1, 4 * MiB + 1, 20 * MiB + 3])
def test_round_trip_sequential(client: DropboxClient, tmp_path: Path, remote_dir: str, size: int) -> None:
    round_trip(client, tmp_path, f"{remote_dir}/s-{size}.bin", size, parallelism=1)


@pytest.mark.parametrize("parallelism", [1, 4])
@pytest.mark.parametrize("size", [8 * MiB, 8 * MiB + 1, 13 * MiB + 5])
def test_round_trip_through_upload_sessions(
    client: DropboxClient, tmp_path: Path, remote_dir: str, size: int, parallelism: int
) -> None:
    """Small limit and chunk force sequential/concurrent sessions with several chunks and a short tail."""
    round_trip(
        client,
        tmp_path,
        f"{remote_dir}/p{parallelism}-{size}.bin",
        size,
        parallelism=parallelism,
        single_request_limit=4 * MiB,
        chunk_size=4 * MiB,
    )


def test_parallel_download_uses_ranged_parts(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str
) -> None:
    client = make_client(faulty_emulator, parallelism=4)
    src = tmp_path / "big.bin"
    data = write_random(src, 40 * MiB + 7)
    client.upload_file(src, f"{remote_dir}/big.bin")
    faulty_emulator.reset_stats()
    # Parts only pay when one stream is slow (client/download.py FAST_STREAM): cap each connection.
    faulty_emulator.set_faults(bandwidth_mbps=100)
    dst = tmp_path / "big.out"
    client.download_file(f"{remote_dir}/big.bin", dst)
    assert dst.read_bytes() == data
    # The first stream + parts of the rest: more than one request, fewer than one per MiB.
    downloads = faulty_emulator.stats().get("/2/files/download", 0)
    assert 3 <= downloads <= 10


def test_unicode_and_emoji_names(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    remote = f"{remote_dir}/Grüße ünïcødé/naïve 😀 \u0001-🚀.csv"
    round_trip(client, tmp_path, remote, 1234)
    names = [e["name"] for e in client.list_folder(f"{remote_dir}/Grüße ünïcødé")]
    assert names == ["naïve 😀 \u0001-🚀.csv"]
    local = tmp_path / "dl" / "naïve 😀.csv"
    client.download_file(remote, local)
    assert local.stat().st_size == 1234


@pytest.mark.parametrize("name", ["a\u007fb.csv", "a\u0000b.csv"])
def test_names_dropbox_refuses_are_refused_before_any_request(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str, name: str
) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(b"x")
    before = sum(emulator.stats().values())
    with pytest.raises(errors.MalformedPathError, match=r"DEL|NUL"):
        client.upload_file(src, f"{remote_dir}/{name}")
    assert sum(emulator.stats().values()) == before


def test_download_replaces_existing_file_atomically(
    client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"new content")
    client.upload_file(src, f"{remote_dir}/a.txt")
    dst = tmp_path / "dst.txt"
    dst.write_bytes(b"old")
    client.download_file(f"{remote_dir}/a.txt", dst)
    assert dst.read_bytes() == b"new content"
    assert leftovers(tmp_path) == []


def test_skip_if_identical_sends_no_data(
    emulator: EmulatorProcess, client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    src = tmp_path / "same.bin"
    write_random(src, 5 * MiB)
    first = client.upload_file(src, f"{remote_dir}/same.bin")
    emulator.reset_stats()
    again = client.upload_file(src, f"{remote_dir}/same.bin")
    assert again["rev"] == first["rev"]
    stats = emulator.stats()
    assert stats.get("/2/files/upload", 0) == 0 and stats.get("/2/files/get_metadata", 0) == 1


def test_overwrite_and_update_modes(client: DropboxClient, tmp_path: Path, remote_dir: str) -> None:
    src = tmp_path / "m.txt"
    src.write_bytes(b"one")
    first = client.upload_file(src, f"{remote_dir}/m.txt")
    src.write_bytes(b"two")
    second = client.upload_file(src, f"{remote_dir}/m.txt", mode={"update": first["rev"]})
    assert second["rev"] != first["rev"]
    src.write_bytes(b"three")
    third = client.upload_file(src, f"{remote_dir}/m.txt", mode="overwrite")
    dst = tmp_path / "m.out"
    client.download_file(f"{remote_dir}/m.txt", dst)
    assert dst.read_bytes() == b"three" and third["size"] == 5


def test_upload_files_batches_commits(
    emulator: EmulatorProcess,
    client: DropboxClient,
    tmp_path: Path,
    remote_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_commit, "LINGER_S", 60.0)  # gather until the data is done: one commit
    pairs = []
    blobs = {}
    for i in range(12):
        p = tmp_path / f"in{i}.bin"
        blobs[f"{remote_dir}/many/f{i}.bin"] = write_random(p, [0, 1, 4 * MiB + 1][i % 3] + i)
        pairs.append((p, f"{remote_dir}/many/f{i}.bin"))
    emulator.reset_stats()
    results = client.upload_files(pairs, parallelism=4, chunk_size=4 * MiB)
    assert [r["path_display"] for r in results] == [remote for _, remote in pairs]
    stats = emulator.stats()
    assert stats.get("/2/files/upload_session/finish_batch_v2") == 1
    assert stats.get("/2/files/upload", 0) == 0
    for remote, data in blobs.items():
        assert client.get_metadata(remote)["content_hash"] == content_hash_bytes(data)


@pytest.mark.slow
@pytest.mark.parametrize("parallelism", [1, 4])
def test_round_trip_150_mib_plus_one(
    client: DropboxClient, tmp_path: Path, remote_dir: str, parallelism: int
) -> None:
    round_trip(
        client, tmp_path, f"{remote_dir}/huge-{parallelism}.bin", 150 * MiB + 1, parallelism=parallelism
    )
