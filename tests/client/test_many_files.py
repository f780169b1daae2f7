"""Many small files against the emulator's namespace write-lock model (real HTTP, real files).

The model: each commit holds the namespace lock for a service time; a commit that cannot get it within the
wait bound is answered 429 ``too_many_write_operations``. A batch takes the lock once. The client commits in
the background under an adaptive limit, and must lose or duplicate nothing under contention or lost answers.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.client.batch_commit import CommitGate, CommitPipeline, Slot
from airflow_provider_dropbox.client.content_hash import content_hash_bytes
from tests.client.conftest import MakeClient, write_random
from tests.emulator.helpers import Api
from tests.emulator_process import EmulatorProcess, start_emulator

LOCK_ARGS = ("--write-lock", "--write-lock-commit-ms", "20", "--write-lock-entry-ms", "1")


@pytest.fixture
def locked_emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """A private emulator started with the write-lock model on (the start-up flag)."""
    emu = start_emulator(tmp_path / "emu", *LOCK_ARGS)
    try:
        yield emu
    finally:
        emu.stop()


def _parallel_uploads(api: Api, folder: str, n: int) -> list[requests.Response]:
    def one(i: int) -> requests.Response:
        return Api(api.emu, api.token).upload_raw("files/upload", {"path": f"{folder}/f{i}"}, b"x" * 10)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_flag_and_admin_switch_the_model(locked_emulator: EmulatorProcess) -> None:
    snap = locked_emulator.admin("faults", method="GET")
    assert snap["write_lock"] is True and snap["write_lock_commit_ms"] == 20
    for bad in ({"write_lock_wait_ms": -1}, {"write_lock": "yes"}, {"write_lock_entry_ms": None}):
        with pytest.raises(urllib.error.HTTPError) as info:
            locked_emulator.set_faults(**bad)
        assert info.value.code == 400
        assert "write_lock" in info.value.read().decode()


def test_concurrent_commits_get_429_with_retry_after(locked_emulator: EmulatorProcess) -> None:
    emu = locked_emulator
    emu.set_faults(write_lock_commit_ms=300, write_lock_wait_ms=50, retry_after_s=2)
    api = Api(emu)
    answers = _parallel_uploads(api, "/c", 6)
    busy = [r for r in answers if r.status_code == 429]
    ok = [r for r in answers if r.status_code == 200]
    assert ok and busy, [r.status_code for r in answers]
    for r in busy:
        body = r.json()
        assert body["error"]["reason"] == {".tag": "too_many_write_operations"}
        assert body["error_summary"].startswith("too_many_write_operations/")
        assert r.headers["Retry-After"] == "2"
    # the losers left nothing behind; the winners are there
    names = {e["name"] for e in api.list_all("/c")[0] if e[".tag"] == "file"}
    assert len(names) == len(ok)


def test_waiters_within_the_bound_all_succeed(locked_emulator: EmulatorProcess) -> None:
    emu = locked_emulator
    emu.set_faults(write_lock_commit_ms=20, write_lock_wait_ms=5000)
    answers = _parallel_uploads(Api(emu), "/w", 6)
    assert [r.status_code for r in answers] == [200] * 6


def test_model_off_means_no_contention(fresh_emulator: EmulatorProcess) -> None:
    snap = fresh_emulator.admin("faults", method="GET")
    assert snap["write_lock"] is False
    fresh_emulator.set_faults(write_lock_commit_ms=300, write_lock_wait_ms=0)
    answers = _parallel_uploads(Api(fresh_emulator), "/o", 6)
    assert [r.status_code for r in answers] == [200] * 6


def _sessions(api: Api, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = api.upload_raw("files/upload_session/start", {"close": True}, b"y")
        assert r.status_code == 200, r.text
        ids.append(r.json()["session_id"])
    return ids


@pytest.mark.parametrize(
    "route,arg",
    [
        ("files/create_folder_v2", {"path": "/x/new"}),
        ("files/delete_v2", {"path": "/x/a"}),
        ("files/copy_v2", {"from_path": "/x/a", "to_path": "/x/b"}),
        ("files/move_v2", {"from_path": "/x/a", "to_path": "/x/c"}),
    ],
)
def test_namespace_writes_wait_for_a_batch(locked_emulator: EmulatorProcess, route: str, arg: Any) -> None:
    """A 40-entry batch holds the lock once for commit + 40 * entry time; other writes then get 429."""
    emu = locked_emulator
    api = Api(emu)
    api.upload("/x/a", b"a")
    ids = _sessions(api, 40)
    emu.set_faults(write_lock_commit_ms=0, write_lock_entry_ms=25, write_lock_wait_ms=50)
    entries = [
        {"cursor": {"session_id": sid, "offset": 1}, "commit": {"path": f"/x/b{i}"}}
        for i, sid in enumerate(ids)
    ]
    result: dict[str, Any] = {}

    def batch() -> None:
        route = "files/upload_session/finish_batch_v2"
        result["batch"] = Api(emu, api.token).rpc(route, {"entries": entries})

    t = threading.Thread(target=batch)
    t.start()
    time.sleep(0.3)  # the batch holds the lock for about 1 s
    other = api.rpc(route, arg)
    t.join()
    assert other.status_code == 429, other.text
    assert other.json()["error"]["reason"][".tag"] == "too_many_write_operations"
    answer = result["batch"]
    assert answer.status_code == 200
    assert [e[".tag"] for e in answer.json()["entries"]] == ["success"] * 40  # one lock for all 40


# ---------------------------------------------------------------- the client


def _tree(tmp_path: Path, n: int, size: int = 300) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    pairs, want = [], {}
    for i in range(n):
        data = write_random(tmp_path / "src" / f"d{i % 7}" / f"f{i}.bin", size)
        remote = f"/many/d{i % 7}/f{i}.bin"
        pairs.append((tmp_path / "src" / f"d{i % 7}" / f"f{i}.bin", remote))
        want[remote.lower()] = content_hash_bytes(data)
    return pairs, want


def _remote_files(api: Api) -> dict[str, str]:
    entries = api.list_all("/many")[0]
    return {e["path_lower"]: e["content_hash"] for e in entries if e[".tag"] == "file"}


def _noise(emu: EmulatorProcess, stop: threading.Event) -> None:
    """Another writer in the same namespace: one small upload after another, retrying its own 429s."""
    api = Api(emu)
    i = 0
    while not stop.is_set():
        api.upload_raw("files/upload", {"path": f"/noise/n{i}", "mode": "overwrite"}, b"n")
        i += 1


def test_upload_files_under_contention_loses_and_duplicates_nothing(
    locked_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    emu = locked_emulator
    # 240 files over 6 connections at 20 ms each: the data takes >= 0.8 s, well past the pipeline's 0.25 s
    # linger, so a commit must start while data is still going up (at 5 ms it could all finish first)
    emu.set_faults(latency_ms=20, write_lock_commit_ms=30, write_lock_entry_ms=1, write_lock_wait_ms=20)
    pairs, want = _tree(tmp_path, 240)
    client: DropboxClient = make_client(emu)
    stop = threading.Event()
    noise = [threading.Thread(target=_noise, args=(emu, stop)) for _ in range(2)]
    for t in noise:
        t.start()
    emu.reset_stats()
    try:
        results = client.upload_files(pairs, parallelism=6)
    finally:
        stop.set()
        for t in noise:
            t.join()
    assert len(results) == 240
    assert [r["path_lower"] for r in results] == [remote.lower() for _, remote in pairs]
    assert _remote_files(Api(emu)) == want  # nothing lost, nothing renamed or duplicated
    stats = emu.stats()
    # commits ran while data was still going up: more than one batch for 240 files (< 1000)
    assert stats.get("/2/files/upload_session/finish_batch_v2", 0) >= 2, stats


def test_upload_files_recovers_lost_batch_answers_by_hash(
    locked_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    emu = locked_emulator
    emu.set_faults(drop_after_commit=0.3, seed=7, write_lock_commit_ms=5, write_lock_entry_ms=0)
    pairs, want = _tree(tmp_path, 120)
    results = make_client(emu).upload_files(pairs, parallelism=4)
    emu.set_faults(drop_after_commit=0)
    assert len(results) == 120
    assert {r["path_lower"]: r["content_hash"] for r in results} == want
    assert _remote_files(Api(emu)) == want


# ---------------------------------------------------------------- the gate and the pipeline


def test_gate_grows_after_clean_commits_and_halves_on_contention() -> None:
    gate = CommitGate(most=4)
    assert gate.limit == 1
    for _ in range(4):
        with gate.slot() as slot:
            slot.used = True
    assert gate.limit == 2
    for _ in range(4):
        with gate.slot() as slot:
            slot.used = True
    assert gate.limit == 3
    with gate.slot() as slot:
        slot.used = True
        slot.contention()
    assert gate.limit == 1 and gate.contentions == 1
    for _ in range(4):  # after contention it takes twice as many clean commits to try more
        with gate.slot() as slot:
            slot.used = True
    assert gate.limit == 1
    for _ in range(4):
        with gate.slot() as slot:
            slot.used = True
    assert gate.limit == 2


def test_gate_never_exceeds_its_limit() -> None:
    gate = CommitGate(most=4)
    inside = peak = 0
    lock = threading.Lock()

    def commit() -> None:
        nonlocal inside, peak
        with gate.slot() as slot:
            slot.used = True
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.01)
            with lock:
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: commit(), range(16)))
    assert gate.limit >= 2  # 16 clean commits: the limit grew
    assert 1 <= peak <= gate.limit


def test_pipeline_requeues_and_commits_every_item_once() -> None:
    seen: list[int] = []
    tries: dict[int, int] = {}
    lock = threading.Lock()

    def commit(batch: list[int], slot: Slot) -> list[int]:
        retry = []
        with lock:
            for item in batch:
                tries[item] = tries.get(item, 0) + 1
                if item % 5 == 0 and tries[item] == 1:
                    retry.append(item)
                    slot.contention()
                else:
                    seen.append(item)
        return retry

    pipe: CommitPipeline[int] = CommitPipeline(commit, CommitGate(), batch_max=7)
    for i in range(100):
        pipe.add(i)
    pipe.finish()
    assert sorted(seen) == list(range(100))
    assert max(pipe.batches) <= 7


def test_pipeline_raises_a_commit_failure() -> None:
    def commit(batch: list[int], slot: Slot) -> list[int]:
        raise ConnectionError("gone")

    pipe: CommitPipeline[int] = CommitPipeline(commit, CommitGate(), batch_max=10)
    pipe.add(1)
    with pytest.raises(ConnectionError):
        pipe.finish()
