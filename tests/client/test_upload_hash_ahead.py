"""Concurrent-session uploads hash each chunk ahead of its request (``upload._HashAhead``).

The emulator checks every append's ``content_hash``, so a hash paired with the wrong chunk fails the upload
(``content_hash_mismatch``); the unit tests pin how far ahead hashing runs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.client.content_hash import content_hash_file
from airflow_provider_dropbox.client.upload import _HashAhead, _open_local
from tests.client.conftest import MakeClient
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_parallel_upload_pairs_every_hash_with_its_chunk(
    client: DropboxClient, tmp_path: Path, remote_dir: str
) -> None:
    src = _file(tmp_path / "src.bin", 9 * 4 * MiB + 12345)  # 9 chunks of 4 MiB and a short closing piece
    meta = client.upload_file(
        src, f"{remote_dir}/a.bin", parallelism=3, chunk_size=4 * MiB, single_request_limit=4 * MiB
    )
    assert meta["size"] == src.stat().st_size
    assert meta["content_hash"] == content_hash_file(src)


def test_hashing_runs_at_most_depth_chunks_ahead(tmp_path: Path) -> None:
    src = _file(tmp_path / "h.bin", 6 * 4 * MiB)
    f = _open_local(src, "/h.bin", "files/upload")
    chunks = [(i * 4 * MiB, 4 * MiB) for i in range(6)]
    started: list[int] = []
    gate = threading.Event()
    real = f.request_hash

    def request_hash(offset: int, length: int, workers: int = 1) -> str:
        started.append(offset)
        gate.wait(10)
        return real(offset, length, workers)

    f.request_hash = request_hash  # type: ignore[method-assign]
    try:
        with _HashAhead(f, chunks, depth=2) as ahead:
            time.sleep(0.2)
            assert set(started) <= {0, 4 * MiB}  # only the first ``depth`` chunks before any take
            gate.set()
            first = ahead.take(0)  # queues the third chunk
            assert first == real(0, 4 * MiB, 1)
            results = [ahead.take(off) for off, _ in chunks[1:]]
        assert started == [off for off, _ in chunks]  # each chunk hashed once, in order
        assert results == [real(off, n, 1) for off, n in chunks[1:]]
    finally:
        f.close()


def test_nothing_is_hashed_beyond_depth_before_a_take(tmp_path: Path) -> None:
    src = _file(tmp_path / "d.bin", 5 * 4 * MiB)
    f = _open_local(src, "/d.bin", "files/upload")
    seen: list[int] = []
    real = f.request_hash

    def request_hash(offset: int, length: int, workers: int = 1) -> str:
        seen.append(offset)
        return real(offset, length, workers)

    f.request_hash = request_hash  # type: ignore[method-assign]
    try:
        with _HashAhead(f, [(i * 4 * MiB, 4 * MiB) for i in range(5)], depth=2) as ahead:
            ahead.take(0)
            ahead.take(4 * MiB)
            # two taken, depth 2: chunks 0-3 may have been hashed, never chunk 4
            assert 16 * MiB not in seen
    finally:
        f.close()


def test_a_file_that_shrinks_during_a_parallel_upload_is_sent_again_whole(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """The shrink is detected before the commit; the retry sends the file as it now is, never a mix."""
    client = make_client(fresh_emulator)
    src = _file(tmp_path / "s.bin", 8 * 4 * MiB)
    fresh_emulator.set_faults(latency_ms=100)  # the truncation lands while chunks are still queued
    timer = threading.Timer(0.05, lambda: os.truncate(src, 6 * MiB))
    timer.start()
    try:
        meta = client.upload_file(
            src, "/s.bin", parallelism=2, chunk_size=4 * MiB, single_request_limit=4 * MiB
        )
    finally:
        timer.cancel()
        fresh_emulator.clear_faults()
    assert meta["size"] == 6 * MiB
    assert meta["content_hash"] == content_hash_file(src)
