"""Transfers under injected faults: 429 (Retry-After honoured), 5xx, lock contention, dropped responses,
connections cut mid-body, corrupted bytes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient, Endpoints, RetryPolicy, errors
from airflow_provider_dropbox.client.content_hash import content_hash_bytes
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.client.proxy import ProxyPlan, proxy
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


def _roundtrip_all_paths(client: DropboxClient, tmp_path: Path, tag: str) -> None:
    """Single request, sequential session, concurrent session, batch; then sequential and ranged downloads."""
    cases = [
        ("single", 1 * MiB + 3, {"parallelism": 1}),
        ("seq", 10 * MiB + 1, {"parallelism": 1, "single_request_limit": 4 * MiB, "chunk_size": 4 * MiB}),
        ("conc", 17 * MiB + 9, {"parallelism": 4, "single_request_limit": 4 * MiB, "chunk_size": 4 * MiB}),
    ]
    blobs: dict[str, bytes] = {}
    for name, size, kw in cases:
        src = tmp_path / f"{name}.bin"
        blobs[f"/{tag}/{name}.bin"] = data = write_random(src, size)
        meta = client.upload_file(src, f"/{tag}/{name}.bin", **kw)  # type: ignore[arg-type]
        assert meta["content_hash"] == content_hash_bytes(data)
    pairs = []
    for i in range(5):
        src = tmp_path / f"batch{i}.bin"
        blobs[f"/{tag}/batch/{i}.bin"] = write_random(src, 1000 * i + [0, 4 * MiB + 1][i % 2])
        pairs.append((src, f"/{tag}/batch/{i}.bin"))
    client.upload_files(pairs, parallelism=3, chunk_size=4 * MiB)
    for n, (remote, data) in enumerate(blobs.items()):
        for parallelism in (1, 4):
            dst = tmp_path / "out" / f"{n}-{parallelism}.bin"
            client.download_file(remote, dst, parallelism=parallelism)
            assert dst.read_bytes() == data, remote
    assert leftovers(tmp_path / "out") == []


def test_everything_completes_under_mixed_faults(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(fresh_emulator)
    fresh_emulator.set_faults(
        rate_limit=0.1,
        server_error=0.1,
        lock_contention=0.15,
        drop_after_commit=0.15,
        retry_after_s=0,
        seed=11,
    )
    _roundtrip_all_paths(client, tmp_path, "mixed")
    stats = fresh_emulator.stats()
    assert sum(stats.values()) > 40  # the faults really forced retries (counted by the server)


@pytest.mark.parametrize("seed", [2, 4])
def test_dropped_commits_are_recognised(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, seed: int
) -> None:
    """A third of the write responses are cut after the server committed; retries must not fail or copy."""
    client = make_client(fresh_emulator)
    fresh_emulator.set_faults(drop_after_commit=0.35, seed=seed)
    _roundtrip_all_paths(client, tmp_path, f"drop{seed}")
    names = sorted(e["name"] for e in client.list_folder(f"/drop{seed}"))
    assert names == ["batch", "conc.bin", "seq.bin", "single.bin"]  # no "(1)" copies


def test_lock_contention_in_batch_entries_is_recommitted(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(fresh_emulator)
    fresh_emulator.set_faults(lock_contention=0.5, seed=5)
    pairs = []
    for i in range(10):
        src = tmp_path / f"{i}.txt"
        src.write_bytes(b"x" * i)
        pairs.append((src, f"/lock/{i}.txt"))
    results = client.upload_files(pairs, parallelism=4)
    assert [r["size"] for r in results] == list(range(10))
    assert fresh_emulator.stats()["/2/files/upload_session/finish_batch_v2"] >= 2  # failed entries re-sent


def test_wait_on_429_honours_retry_after(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(
        fresh_emulator, retry_policy=RetryPolicy(initial_wait=0.01, max_wait=0.05, max_attempts=2)
    )
    client.get_current_account()  # token fetched before the faults
    fresh_emulator.reset_stats()
    fresh_emulator.set_faults(rate_limit=1.0, retry_after_s=2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(errors.RateLimitError) as info:
        client.get_current_account()
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 6.0  # one wait of Retry-After (2 s), not the 0.01-0.05 s backoff
    assert info.value.retry_after == 2.0 and info.value.status == 429
    assert fresh_emulator.stats()["/2/users/get_current_account"] == 2
    retry_lines = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retry_lines) == 1 and "2.00 s" in retry_lines[0] and "server asks 2 s" in retry_lines[0]


def test_plain_text_429_then_success(fresh_emulator: EmulatorProcess, make_client: MakeClient) -> None:
    waits: list[float] = []
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, max_attempts=6, sleep=waits.append)
    client = make_client(fresh_emulator, retry_policy=policy)
    client.get_current_account()
    fresh_emulator.set_faults(rate_limit=1.0, rate_limit_text=True, retry_after_s=3)
    timer = threading.Timer(0.5, fresh_emulator.clear_faults)
    timer.start()
    try:
        with pytest.raises(errors.RateLimitError):
            client.get_current_account()  # recorded sleeps return at once: all attempts see the 429
    finally:
        timer.join()
    assert waits and all(w >= 3.0 for w in waits)
    assert client.get_current_account()["account_id"].startswith("dbid:")


def test_download_resumes_after_connection_cut_mid_body(
    emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str
) -> None:
    uploader = make_client(emulator)
    src = tmp_path / "r.bin"
    data = write_random(src, 30 * MiB + 11)
    uploader.upload_file(src, f"{remote_dir}/r.bin")
    for parallelism in (1, 4):
        plan = ProxyPlan(cut_after=3 * MiB, cuts=3)
        with proxy(emulator.base_url, plan) as p:
            ep = Endpoints(
                api=emulator.base_url,
                content=p.base_url,
                notify=emulator.base_url,
                token=f"{emulator.base_url}/oauth2/token",
            )
            client = make_client(emulator, endpoints=ep)
            emulator.reset_stats()
            dst = tmp_path / f"r{parallelism}.out"
            client.download_file(f"{remote_dir}/r.bin", dst, parallelism=parallelism)
        assert dst.read_bytes() == data
        assert plan.cut_count == 3
        # Resumed with Range from what it had: at most one extra request per cut.
        assert emulator.stats()["/2/files/download"] <= (1 if parallelism == 1 else 5) + 3


@pytest.mark.parametrize("size", [2 * MiB, 20 * MiB + 1], ids=["hashed-inline", "hashed-behind"])
def test_corrupt_download_leaves_old_file_and_no_temp(
    emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str, size: int
) -> None:
    uploader = make_client(emulator)
    src = tmp_path / "c.bin"
    write_random(src, size)
    uploader.upload_file(src, f"{remote_dir}/c.bin")
    dst = tmp_path / "dst" / "c.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"precious old content")
    plan = ProxyPlan(corrupt_body=True)
    with proxy(emulator.base_url, plan) as p:
        ep = Endpoints(
            api=emulator.base_url,
            content=p.base_url,
            notify=emulator.base_url,
            token=f"{emulator.base_url}/oauth2/token",
        )
        client = make_client(emulator, endpoints=ep)
        with pytest.raises(errors.ContentHashMismatchError, match="left untouched"):
            client.download_file(f"{remote_dir}/c.bin", dst, parallelism=1)
    assert plan.corrupt_count >= 1
    assert dst.read_bytes() == b"precious old content"
    assert leftovers(dst.parent) == []


def test_client_timeouts_while_server_still_receiving(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """Chunks time out on the client while the throttled server is still storing them; re-sent chunks meet
    the ones in flight (incorrect_offset at the same offset), wait, and end up confirmed, not duplicated."""
    policy = RetryPolicy(initial_wait=0.2, max_wait=1.0, deadline=60.0, max_attempts=12)
    client = make_client(fresh_emulator, timeout=0.7, retry_policy=policy)
    client.get_current_account()
    src = tmp_path / "slow.bin"
    data = write_random(src, 16 * MiB + 1)
    fresh_emulator.set_faults(bandwidth_mbps=32)  # 4 MB/s per request: a 4 MiB chunk needs ~1 s
    timer = threading.Timer(1.5, fresh_emulator.clear_faults)  # requests started later are fast again
    timer.start()
    try:
        meta = client.upload_file(
            src, "/slow.bin", single_request_limit=4 * MiB, chunk_size=4 * MiB, parallelism=3
        )
    finally:
        timer.join()
    assert meta["content_hash"] == content_hash_bytes(data)
    client.download_file("/slow.bin", tmp_path / "slow.out")
    assert (tmp_path / "slow.out").read_bytes() == data


def test_lost_answers_of_write_rpcs_are_recognised(
    fresh_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """Every successful write answer is cut (errors are not): each retry meets the first attempt's effect
    (already deleted, moved, copied, created), and the client reports the success the lost answer carried."""
    client = make_client(fresh_emulator)
    src = tmp_path / "w.txt"
    src.write_text("content")
    client.upload_file(src, "/w/a.txt")
    fresh_emulator.set_faults(drop_after_commit=1.0)
    assert client.create_folder("/w/dir", exist_ok=False)["name"] == "dir"
    copied = client.copy("/w/a.txt", "/w/b.txt")
    assert (
        copied["name"] == "b.txt"
        and copied["content_hash"] == client.get_metadata("/w/a.txt")["content_hash"]
    )
    assert client.move("/w/b.txt", "/w/dir/c.txt")["path_display"] == "/w/dir/c.txt"
    assert client.delete("/w/a.txt")[".tag"] == "deleted"
    assert client.create_shared_link("/w/dir/c.txt").startswith("http")
    fresh_emulator.clear_faults()
    listed = {e["path_lower"] for e in client.list_folder("/w", recursive=True)} - {"/w"}
    assert sorted(listed) == ["/w/dir", "/w/dir/c.txt"]
    with pytest.raises(errors.PathNotFoundError):
        client.delete("/w/a.txt")  # without a lost answer, a missing path stays an error
