"""Download streaming rules: one stream unless it is slow, connection reuse, write-behind, part failures."""

from __future__ import annotations

import errno
import itertools
import os
import socket
import threading
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import Endpoints, content_hash, errors
from airflow_provider_dropbox.client import download as download_module
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.client.proxy import TcpProxy
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


def test_fast_stream_is_not_split(
    faulty_emulator: EmulatorProcess,
    make_client: MakeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream faster than FAST_STREAM keeps the whole file: one request even at parallelism 8."""
    monkeypatch.setattr(download_module, "FAST_STREAM", 1 * MiB)  # any loopback stream is faster than this
    client = make_client(faulty_emulator, parallelism=8)
    src = tmp_path / "fast.bin"
    data = write_random(src, 40 * MiB + 3)
    client.upload_file(src, "/fast.bin")
    faulty_emulator.reset_stats()
    dst = tmp_path / "fast.out"
    client.download_file("/fast.bin", dst, parallelism=8)
    assert dst.read_bytes() == data
    assert faulty_emulator.stats()["/2/files/download"] == 1


def test_slow_stream_is_split_into_ranged_parts(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """Under a per-connection cap (100 Mbit/s, below FAST_STREAM) the rest of the file goes to parts."""
    client = make_client(faulty_emulator, parallelism=4)
    src = tmp_path / "slow.bin"
    data = write_random(src, 40 * MiB + 3)
    client.upload_file(src, "/slow.bin")
    faulty_emulator.reset_stats()
    faulty_emulator.set_faults(bandwidth_mbps=100)
    dst = tmp_path / "slow.out"
    client.download_file("/slow.bin", dst, parallelism=4)
    assert dst.read_bytes() == data
    assert 3 <= faulty_emulator.stats()["/2/files/download"] <= 8
    assert leftovers(tmp_path) == []


def test_parallelism_one_never_splits(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(faulty_emulator, parallelism=8)
    src = tmp_path / "one.bin"
    data = write_random(src, 24 * MiB)
    client.upload_file(src, "/one.bin")
    faulty_emulator.reset_stats()
    faulty_emulator.set_faults(bandwidth_mbps=200)
    client.download_file("/one.bin", tmp_path / "one.out", parallelism=1)
    assert (tmp_path / "one.out").read_bytes() == data
    assert faulty_emulator.stats()["/2/files/download"] == 1


def test_parts_resume_after_cut_bodies(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """Split into parts and half of all bodies cut mid-way: every part resumes with Range, bytes exact."""
    client = make_client(faulty_emulator, parallelism=4)
    src = tmp_path / "cut.bin"
    data = write_random(src, 40 * MiB + 5)
    client.upload_file(src, "/cut.bin")
    faulty_emulator.set_faults(bandwidth_mbps=200, truncate_download=0.5, seed=7)
    faulty_emulator.reset_stats()
    dst = tmp_path / "cut.out"
    client.download_file("/cut.bin", dst, parallelism=4)
    assert dst.read_bytes() == data
    assert faulty_emulator.stats()["/2/files/download"] > 3
    assert leftovers(tmp_path) == []


def test_part_failure_leaves_old_file_and_no_temp(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """The file is deleted while parts are running: later parts get not_found, which ends the download with
    that typed error (not the cancellation it causes in the other threads); the old local file stays."""
    client = make_client(faulty_emulator, parallelism=3)
    src = tmp_path / "gone.bin"
    write_random(src, 48 * MiB)
    client.upload_file(src, "/gone.bin")
    dst = tmp_path / "dst" / "gone.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    deleter = make_client(faulty_emulator)
    deleter.get_current_account()
    faulty_emulator.set_faults(bandwidth_mbps=100)  # 12.5 MB/s per stream: an 8 MiB part takes 0.7 s
    timer = threading.Timer(0.5, deleter.delete, args=("/gone.bin",))
    timer.start()
    try:
        with pytest.raises(errors.PathNotFoundError):
            client.download_file("/gone.bin", dst, parallelism=3)
    finally:
        timer.join()
    assert dst.read_bytes() == b"old"
    assert leftovers(dst.parent) == []


class _CountingProxy(TcpProxy):
    """Relays untouched and counts the TCP connections the client opens."""

    connections = 0

    def _relay(self, down: socket.socket, up: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        super()._relay(down, up)


def test_finished_bodies_give_their_connection_back(
    emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str
) -> None:
    """Bodies read with readinto to the end return the connection to the pool: five downloads, one socket
    (a mirror of many small files would otherwise pay a new connection, and TLS handshake, per file)."""
    uploader = make_client(emulator)
    sizes = (0, 1, 1000, 3 * MiB, 9 * MiB + 1)
    for i, size in enumerate(sizes):
        write_random(tmp_path / f"{i}.bin", size)
        uploader.upload_file(tmp_path / f"{i}.bin", f"{remote_dir}/{i}.bin")
    with _CountingProxy(emulator.base_url) as counting:
        ep = Endpoints(
            api=emulator.base_url,
            content=counting.base_url,
            notify=emulator.base_url,
            token=f"{emulator.base_url}/oauth2/token",
        )
        client = make_client(emulator, endpoints=ep)
        for i in range(len(sizes)):
            client.download_file(f"{remote_dir}/{i}.bin", tmp_path / f"{i}.out", parallelism=1)
            assert (tmp_path / f"{i}.out").read_bytes() == (tmp_path / f"{i}.bin").read_bytes()
        assert counting.connections == 1


@pytest.mark.skipif(download_module.start_writeback is None, reason="no sync_file_range on this platform")
@pytest.mark.parametrize("fsync", [True, False])
def test_write_behind_only_when_fsyncing(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    tmp_path: Path,
    remote_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    fsync: bool,
) -> None:
    """With fsync the written bytes are handed to writeback in WRITE_BEHIND steps, in order, so the final
    fsync has at most one step left; without fsync (the mirror) nothing is forced out early."""
    real = download_module.start_writeback
    assert real is not None
    calls: list[tuple[int, int]] = []

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(download_module, "start_writeback", spy)
    client = make_client(emulator)
    size = 3 * download_module.WRITE_BEHIND + 5
    data = write_random(tmp_path / "wb.bin", size)
    client.upload_file(tmp_path / "wb.bin", f"{remote_dir}/wb.bin")
    client.download_file(f"{remote_dir}/wb.bin", tmp_path / "wb.out", parallelism=1, fsync=fsync)
    assert (tmp_path / "wb.out").read_bytes() == data
    if not fsync:
        assert calls == []
        return
    assert calls[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(calls))  # contiguous
    assert all(n >= download_module.WRITE_BEHIND for _, n in calls)
    assert size - (calls[-1][0] + calls[-1][1]) < download_module.WRITE_BEHIND


@pytest.mark.parametrize("threads", [1, 2])
def test_big_files_are_verified_from_what_was_written(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    tmp_path: Path,
    remote_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
) -> None:
    """Blocks of big files are hashed by reading them back from the temp file, so a write that stored the
    wrong bytes fails verification like a corrupt body would: the download starts over and ends correct.
    Two hashing threads (what machines with 4+ cores get) give the same result."""
    monkeypatch.setattr(content_hash, "HASH_BEHIND_THREADS", threads)
    size = download_module.HASH_BEHIND_MIN + 5
    data = write_random(tmp_path / "big.bin", size)
    make_client(emulator).upload_file(tmp_path / "big.bin", f"{remote_dir}/big.bin")
    real_pwrite = os.pwrite
    damaged: list[int] = []

    def pwrite_damaging_once(fd: int, buf: bytes | memoryview, offset: int) -> int:
        if not damaged and offset >= 5 * MiB:
            damaged.append(offset)
            bad = bytearray(buf)
            bad[0] ^= 0xFF
            return real_pwrite(fd, bad, offset)
        return real_pwrite(fd, buf, offset)

    monkeypatch.setattr(download_module.os, "pwrite", pwrite_damaging_once)
    client = make_client(emulator)
    emulator.reset_stats()
    dst = tmp_path / "out" / "big.bin"
    client.download_file(f"{remote_dir}/big.bin", dst, parallelism=1)
    assert damaged, "the damaging write never happened"
    assert dst.read_bytes() == data
    assert emulator.stats()["/2/files/download"] == 2  # the damaged attempt, then a clean one
    assert leftovers(dst.parent) == []


def test_a_failed_read_back_is_a_local_error_and_keeps_the_old_file(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    tmp_path: Path,
    remote_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An I/O error while hash-behind reads the temp file back (a failing disk) is the local side's problem:
    a typed LocalPathError naming the target, the old file untouched, no temp file left."""
    write_random(tmp_path / "big.bin", download_module.HASH_BEHIND_MIN)
    make_client(emulator).upload_file(tmp_path / "big.bin", f"{remote_dir}/big.bin")

    def failing_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(content_hash.os, "preadv", failing_preadv)
    dst = tmp_path / "out" / "big.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"precious old content")
    with pytest.raises(errors.LocalPathError, match="Input/output error") as info:
        make_client(emulator).download_file(f"{remote_dir}/big.bin", dst, parallelism=1)
    assert info.value.path == str(dst)
    assert dst.read_bytes() == b"precious old content"
    assert leftovers(dst.parent) == []


def test_downloaded_file_gets_the_dropbox_client_modified_time(
    emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str
) -> None:
    """The upload sends the local mtime as client_modified; the download puts it back on the new file, so
    mtime-comparing tools (rsync, make) see the file as unchanged."""
    src = tmp_path / "m.txt"
    src.write_bytes(b"dated")
    os.utime(src, (1_700_000_000, 1_600_000_007))  # 2020-09-13T12:26:47Z
    client = make_client(emulator)
    client.upload_file(src, f"{remote_dir}/m.txt")
    meta = client.download_file(f"{remote_dir}/m.txt", tmp_path / "m.out", parallelism=1)
    assert meta["client_modified"] == "2020-09-13T12:26:47Z"
    assert os.stat(tmp_path / "m.out").st_mtime == 1_600_000_007
