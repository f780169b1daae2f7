"""Transfer details: progress, a file changing mid-download, batches over the entry limit, memory."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import DropboxClient, Endpoints, ProgressLogger
from airflow_provider_dropbox.client import upload as upload_module
from airflow_provider_dropbox.client.batch_commit import gate_for
from airflow_provider_dropbox.client.content_hash import content_hash_bytes
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.client.proxy import ProxyPlan, proxy
from tests.emulator_process import EmulatorProcess

MiB = 1024 * 1024


@pytest.mark.parametrize("parallelism", [1, 4])
def test_progress_reaches_total_and_never_goes_back(
    client: DropboxClient, tmp_path: Path, remote_dir: str, parallelism: int
) -> None:
    src = tmp_path / "p.bin"
    write_random(src, 21 * MiB + 5)
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def record(done: int, total: int) -> None:
        with lock:
            calls.append((done, total))

    client.upload_file(
        src,
        f"{remote_dir}/p.bin",
        parallelism=parallelism,
        single_request_limit=4 * MiB,
        chunk_size=8 * MiB,
        progress=record,
    )
    assert calls[-1] == (21 * MiB + 5, 21 * MiB + 5)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
    calls.clear()
    client.download_file(f"{remote_dir}/p.bin", tmp_path / "p.out", parallelism=parallelism, progress=record)
    assert calls[-1] == (21 * MiB + 5, 21 * MiB + 5)
    assert len(calls) > 10


def test_progress_logger_in_a_real_upload(
    client: DropboxClient, tmp_path: Path, remote_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "l.bin"
    write_random(src, 9 * MiB)
    with caplog.at_level(logging.INFO, logger="airflow_provider_dropbox.client.progress"):
        client.upload_file(src, f"{remote_dir}/l.bin", progress=ProgressLogger("upload l.bin", interval=0.0))
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_dropbox.client.progress"]
    assert lines and "9.0 MiB of 9.0 MiB (100.0%)" in lines[-1] and "ETA done" in lines[-1]


def test_progress_logger_in_a_real_download(
    client: DropboxClient, tmp_path: Path, remote_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The size is unknown until the first response: no premature "0 B of 0 B (100%)" line."""
    src = tmp_path / "d.bin"
    write_random(src, 9 * MiB)
    client.upload_file(src, f"{remote_dir}/d.bin")
    with caplog.at_level(logging.INFO, logger="airflow_provider_dropbox.client.progress"):
        client.download_file(
            f"{remote_dir}/d.bin", tmp_path / "d.out", progress=ProgressLogger("get d.bin", interval=0.0)
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_dropbox.client.progress"]
    assert lines and not any("0 B of 0 B" in line for line in lines), lines
    assert "9.0 MiB of 9.0 MiB (100.0%)" in lines[-1]


def test_file_changed_mid_download_restarts_with_new_content(
    emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path, remote_dir: str
) -> None:
    """The connection drops after 3 MiB and the file is replaced before the resume: new rev, restart."""
    writer = make_client(emulator)
    src = tmp_path / "v1.bin"
    write_random(src, 6 * MiB)
    writer.upload_file(src, f"{remote_dir}/v.bin")
    v2 = tmp_path / "v2.bin"
    new = write_random(v2, 5 * MiB)
    replaced = threading.Event()

    def replace_once(done: int, total: int) -> None:
        if done >= 2 * MiB and not replaced.is_set():
            replaced.set()
            writer.upload_file(v2, f"{remote_dir}/v.bin", mode="overwrite")

    plan = ProxyPlan(cut_after=3 * MiB, cuts=1)
    with proxy(emulator.base_url, plan) as p:
        ep = Endpoints(
            api=emulator.base_url,
            content=p.base_url,
            notify=emulator.base_url,
            token=f"{emulator.base_url}/oauth2/token",
        )
        reader = make_client(emulator, endpoints=ep)
        meta = reader.download_file(
            f"{remote_dir}/v.bin", tmp_path / "v.out", parallelism=1, progress=replace_once
        )
    assert replaced.is_set() and plan.cut_count == 1
    assert (tmp_path / "v.out").read_bytes() == new
    assert meta["content_hash"] == content_hash_bytes(new)
    assert leftovers(tmp_path) == []


def test_upload_files_splits_batches_and_commits_each_file_once(
    emulator: EmulatorProcess,
    client: DropboxClient,
    tmp_path: Path,
    remote_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches stay within BATCH_MAX, every file is committed in exactly one batch, and no more commits run at
    once than the client's gate allows (tests/client/test_many_files.py covers the gate itself)."""
    monkeypatch.setattr(upload_module, "BATCH_MAX", 4)
    active = 0
    peak = 0
    sizes: list[int] = []
    original = client.send
    lock = threading.Lock()

    def counting_send(route: str, **kw: Any) -> Any:
        nonlocal active, peak
        if route != "files/upload_session/finish_batch_v2":
            return original(route, **kw)
        entries = json.loads(kw["data"])["entries"]
        with lock:
            sizes.append(len(entries))
            active += 1
            peak = max(peak, active)
        try:
            return original(route, **kw)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(client, "send", counting_send)
    pairs = []
    for i in range(11):
        src = tmp_path / f"{i}.txt"
        src.write_text(f"file {i}")
        pairs.append((src, f"{remote_dir}/b/{i}.txt"))
    emulator.reset_stats()
    results = client.upload_files(pairs, parallelism=6)
    assert [r["name"] for r in results] == [f"{i}.txt" for i in range(11)]
    assert emulator.stats()["/2/files/upload_session/finish_batch_v2"] == len(sizes) >= 3
    assert max(sizes) <= 4 and sum(sizes) == 11
    assert 1 <= peak <= gate_for(client).limit  # no contention here, so the limit only grew


@pytest.mark.slow
def test_memory_stays_flat_for_large_transfers(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """Peak RSS growth for a 1 GiB parallel upload and download stays far below chunk x parallelism."""
    script = textwrap.dedent(
        f"""
        import json, os, resource, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from tests.client.conftest import client_for
        from tests.emulator_process import EmulatorProcess
        emu = EmulatorProcess(base_url={emulator.base_url!r}, data_dir=None, process=None)
        client = client_for(emu, parallelism=8)
        src = {str(tmp_path / "big.bin")!r}
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(1024):
                f.write(block)
        client.get_current_account()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        client.upload_file(src, "/mem/big.bin", chunk_size=32 << 20, skip_if_identical=False,
                           mode="overwrite")
        up = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        client.download_file("/mem/big.bin", src + ".out")
        down = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"up": (up - base) / 1024, "down": (down - base) / 1024}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True
    )
    growth = json.loads(out.stdout.strip().splitlines()[-1])
    print("peak RSS growth MiB", growth)
    assert growth["up"] < 100 and growth["down"] < 100, growth


def test_upload_files_keeps_few_files_open(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """300 files under a 64-descriptor limit: each file is open only while its data goes up."""
    for i in range(300):
        (tmp_path / f"{i}.txt").write_text(f"{i}")
    script = textwrap.dedent(
        f"""
        import resource, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from tests.client.conftest import client_for
        from tests.emulator_process import EmulatorProcess
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        client = client_for(EmulatorProcess(base_url={emulator.base_url!r}, data_dir=None, process=None))
        pairs = [({str(tmp_path)!r} + f"/{{i}}.txt", f"/fds/{{i}}.txt") for i in range(300)]
        print(len(client.upload_files(pairs, parallelism=8)))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "300"


def test_upload_files_one_bad_file_does_not_stop_the_rest(
    client: DropboxClient, tmp_path: Path, remote_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_dropbox.client import errors

    real_open = upload_module._open_local

    def flaky_open(local: Path, remote: str, route: str) -> object:
        if remote.endswith("/2.txt"):
            raise errors.LocalPathError(
                f"Cannot read local file '{local}' (Permission denied)", path=str(local)
            )
        return real_open(local, remote, route)

    monkeypatch.setattr(upload_module, "_open_local", flaky_open)
    pairs = []
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(str(i))
        pairs.append((tmp_path / f"{i}.txt", f"{remote_dir}/{i}.txt"))
    with pytest.raises(errors.BatchUploadError) as info:
        client.upload_files(pairs, parallelism=3)
    assert list(info.value.failures) == [f"{remote_dir}/2.txt"]
    assert sorted(m["name"] for m in info.value.succeeded) == ["0.txt", "1.txt", "3.txt", "4.txt"]
