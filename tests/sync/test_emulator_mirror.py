"""Mirror on the emulator over real HTTP with the real client: cost bars, convergence, faults, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dropbox.client import DropboxClient, errors
from airflow_provider_dropbox.sync import (
    EmptyRemoteError,
    MirrorFailedError,
    MirrorReport,
    RemoteShrankError,
    TooManyDeletesError,
    mirror,
)
from airflow_provider_dropbox.sync.state import load_state
from tests.emulator_process import EmulatorProcess
from tests.sync.chaos import Chaos
from tests.sync.conftest import local_hash_tree, remote_tree

ROOT = "/Mirror Src"
FAULTS = {
    "rate_limit": 0.1,
    "server_error": 0.1,
    "lock_contention": 0.1,
    "drop_after_commit": 0.1,
    "retry_after_s": 0,
}
REPO = Path(__file__).resolve().parents[2]

EmuClient = tuple[EmulatorProcess, DropboxClient]


def seed_tree(chaos: Chaos, n: int = 12) -> None:
    for i in range(n):
        chaos.upload(f"dir{i % 3}/f{i}.bin")
    chaos.client.create_folder(f"{ROOT}/empty folder")


def _mirror_child(emu: EmulatorProcess, dest: Path) -> subprocess.Popen[str]:
    """One mirror run in a child process (``tests.sync.mirror_child``) that a test can SIGKILL; it prints
    ``ready``, then ``plan`` each time a plan is made."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sync.mirror_child", emu.base_url, ROOT, str(dest)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def mirror_until_ok(client: DropboxClient, dest: Path, attempts: int = 8, **kw: Any) -> MirrorReport:
    """Under faults a run may fail (then nothing is deleted and the cursor stays); the next run converges."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            # the remote may legitimately end up empty in a random history; the guard has its own tests
            return mirror(client, ROOT, dest, parallelism=4, allow_empty_remote=True, **kw)
        except (MirrorFailedError, errors.DropboxApiError) as exc:
            last = exc
    raise AssertionError(f"mirror did not succeed in {attempts} runs: {last}")


def assert_converged(client: DropboxClient, dest: Path, chaos: Chaos) -> None:
    remote = remote_tree(client, ROOT)
    local = local_hash_tree(dest)
    if local != remote:
        missing = {k: v for k, v in remote.items() if local.get(k, "?") != v}
        extra = {k: v for k, v in local.items() if k not in remote}
        raise AssertionError(f"diverged: missing/different={missing} extra={extra}\nops: {chaos.log[-12:]}")


def test_incremental_run_with_one_change_makes_one_list_call_and_one_download(
    emu_client: EmuClient, tmp_path: Path
) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=1, workdir=str(tmp_path))
    seed_tree(chaos, 30)
    dest = tmp_path / "m"
    first = mirror(client, ROOT, dest)
    assert first.mode == "full" and first.done["download"] == 30
    chaos.upload("dir1/f4.bin", b"one change")
    emu.reset_stats()
    report = mirror(client, ROOT, dest)
    stats = {k: v for k, v in emu.stats().items() if not k.startswith("/oauth2")}
    assert stats == {"/2/files/list_folder/continue": 1, "/2/files/download": 1}, stats
    assert report.mode == "incremental" and report.done == {"download": 1}
    emu.reset_stats()
    assert mirror(client, ROOT, dest).done == {}
    assert {k: v for k, v in emu.stats().items() if not k.startswith("/oauth2")} == {
        "/2/files/list_folder/continue": 1
    }
    assert_converged(client, dest, chaos)


def test_moves_and_renames_are_not_downloaded_again(emu_client: EmuClient, tmp_path: Path) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=2, workdir=str(tmp_path))
    seed_tree(chaos, 9)
    dest = tmp_path / "m"
    mirror(client, ROOT, dest)
    client.move(f"{ROOT}/dir0", f"{ROOT}/renamed")
    client.move(f"{ROOT}/dir1/f1.bin", f"{ROOT}/tmp")
    client.move(f"{ROOT}/tmp", f"{ROOT}/dir1/F1.BIN")  # case-only, through a temp name
    emu.reset_stats()
    report = mirror(client, ROOT, dest)
    assert "/2/files/download" not in emu.stats()
    assert report.done["copy_local"] == 4
    assert_converged(client, dest, chaos)


@pytest.mark.parametrize(
    ("faults", "seed", "rounds"),
    [(False, 11, 25), (True, 12, 15)],
    ids=["clean", "faults"],
)
def test_randomised_convergence(
    emu_client: EmuClient, tmp_path: Path, faults: bool, seed: int, rounds: int
) -> None:
    run_convergence(emu_client, tmp_path, faults=faults, seed=seed, rounds=rounds)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [101, 102, 103])
def test_randomised_convergence_long(emu_client: EmuClient, tmp_path: Path, seed: int) -> None:
    run_convergence(emu_client, tmp_path, faults=seed != 101, seed=seed, rounds=120)


def run_convergence(emu_client: EmuClient, tmp_path: Path, *, faults: bool, seed: int, rounds: int) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=seed, workdir=str(tmp_path))
    seed_tree(chaos)
    dest = tmp_path / "m"
    modes: dict[str, int] = {}
    for rnd in range(rounds):
        if faults:
            emu.set_faults(**FAULTS, seed=seed * 1000 + rnd)
        try:
            chaos.round()
            if faults and chaos.rng.random() < 0.25:
                emu.admin("reset_cursors", {})
            report = mirror_until_ok(client, dest)
        finally:
            emu.clear_faults()
        modes[report.mode] = modes.get(report.mode, 0) + 1
        assert report.collisions == []
        assert_converged(client, dest, chaos)
    assert modes.get("incremental", 0) > rounds // 3, modes
    if faults:
        assert modes.get("reset", 0) >= 1, modes


def _visible_files(dest: Path) -> dict[str, str | None]:
    return {k: v for k, v in local_hash_tree(dest).items() if v is not None}


@pytest.mark.parametrize(
    ("seed", "kills", "faults"),
    [
        pytest.param(21, 6, False, id="kills"),
        pytest.param(22, 12, True, id="kills-under-faults", marks=pytest.mark.slow),
    ],
)
def test_killed_mid_run_converges_without_partial_files(
    emu_client: EmuClient, tmp_path: Path, seed: int, kills: int, faults: bool
) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=seed, workdir=str(tmp_path))
    seed_tree(chaos, 30)
    dest = tmp_path / "m"
    rng = random.Random(seed)
    killed = mid_apply = 0
    for rnd in range(kills):
        chaos.round(max_ops=6)
        for i in range(6):  # a batch with a few multi-MiB files, so kills land mid-transfer
            big = i < 2
            chaos.upload(f"batch{rnd}/g{i}.bin", rng.randbytes(3_000_000 if big else 2_000))
        extra = {**FAULTS, "seed": seed * 100 + rnd} if faults else {}
        emu.set_faults(latency_ms=10, bandwidth_mbps=100, **extra)
        try:
            proc = _mirror_child(emu, dest)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            if rnd % 2:  # anywhere in the run
                time.sleep(rng.uniform(0.0, 0.5))
            else:  # aimed at the apply phase
                assert proc.stdout.readline().strip() == "plan"
                time.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
            proc.stdout.close()
        finally:
            emu.clear_faults()
        state = load_state(str(dest.resolve())) if dest.exists() else None
        if state is not None and state.pending:
            mid_apply += 1
        # nothing half-written under a real name: every visible file holds content that was uploaded
        for rel, h in _visible_files(dest).items():
            assert h in chaos.hashes, f"{rel} holds bytes that were never uploaded (a partial file?)"
        report = mirror_until_ok(client, dest)
        assert report.ok
        assert_converged(client, dest, chaos)
        assert not os.listdir(dest / ".dropbox-mirror" / "staging")
        assert not (dest / ".dropbox-mirror" / "lock").exists()
    assert killed >= kills // 2 and mid_apply >= 2, (killed, mid_apply)


# -- guards on the real stack -------------------------------------------------------------------------
def test_guards_stop_destructive_plans_on_the_emulator(emu_client: EmuClient, tmp_path: Path) -> None:
    emu, client = emu_client
    chaos = Chaos(client, ROOT, seed=3, workdir=str(tmp_path))
    seed_tree(chaos, 10)
    dest = tmp_path / "m"
    mirror(client, ROOT, dest)
    before = local_hash_tree(dest)
    client.delete(f"{ROOT}/dir0")  # 4 of 10 files
    with pytest.raises(TooManyDeletesError, match=r"deletes 4 of 10 files \(40%\)"):
        mirror(client, ROOT, dest, max_deletes="10%")
    with pytest.raises(TooManyDeletesError):
        mirror(client, ROOT, dest, max_deletes=3)
    assert local_hash_tree(dest) == before
    for p in ("dir1", "dir2", "empty folder"):
        client.delete(f"{ROOT}/{p}")
    with pytest.raises(EmptyRemoteError):
        mirror(client, ROOT, dest)
    emu.admin("reset_cursors", {})
    with pytest.raises(EmptyRemoteError):
        mirror(client, ROOT, dest)
    assert local_hash_tree(dest) == before
    # Dropbox failing for good (after the client's retries): the typed client error surfaces, nothing changes
    chaos.upload("dir9/new.bin")
    emu.set_faults(server_error=1.0)
    try:
        with pytest.raises(errors.ServerError):
            mirror(client, ROOT, dest, allow_empty_remote=True)
    finally:
        emu.clear_faults()
    assert local_hash_tree(dest) == before
    # one file left after the cursor reset: a full listing that deletes 10 of 10 files is refused too
    with pytest.raises(RemoteShrankError, match="would delete 10 of the 10 file"):
        mirror(client, ROOT, dest)
    assert local_hash_tree(dest) == before
    mirror(client, ROOT, dest, allow_empty_remote=True)
    assert_converged(client, dest, chaos)


@pytest.mark.parametrize("root", ["/", "/Donn\u00e9es \u03a9"])
def test_whole_dropbox_and_unicode_roots(emu_client: EmuClient, tmp_path: Path, root: str) -> None:
    emu, client = emu_client
    base = "" if root == "/" else root
    chaos = Chaos(client, base or "", seed=4, workdir=str(tmp_path))
    for name in ("a.txt", "Sub/B.bin", "caf\u00e9/\u65e5\u672c.txt"):
        chaos.upload(name)
    dest = tmp_path / "m"
    assert mirror(client, root, dest).ok
    chaos.upload("Sub/new.bin", b"bytes no other file has")
    emu.reset_stats()
    report = mirror(client, root, dest)
    assert report.mode == "incremental" and report.done == {"download": 1}
    assert local_hash_tree(dest) == remote_tree(client, base)


# -- a first run streams the listing ------------------------------------------------------------------


def test_first_run_streams_pages_and_a_killed_one_continues(emu_client: EmuClient, tmp_path: Path) -> None:
    """1,250 files list in three pages of the emulator's 500: one ``list_folder`` and two ``continue``
    calls, every page applied and committed with its cursor; a first run killed after its first page
    continues from that page (incremental, the first page's files not fetched again)."""
    emu, client = emu_client
    r = requests.post(
        f"{emu.base_url}/_emulator/populate",
        json={"path": f"{ROOT}/bulk", "files": 1250, "size": 40, "per_folder": 100, "unique": True},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    emu.reset_stats()
    dest = tmp_path / "m"
    report = mirror(client, ROOT, dest, parallelism=4)
    stats = emu.stats()
    assert stats["/2/files/list_folder"] == 1 and stats["/2/files/list_folder/continue"] == 2, stats
    assert report.ok and report.mode == "full" and report.done["download"] == 1250 == report.remote_files
    # thirteen folders of up to 100 small files: one zip each, a folder split by a page boundary twice
    assert report.zipped == 1250 and "/2/files/download" not in stats
    assert 13 <= stats["/2/files/download_zip"] <= 13 + 2, stats
    assert local_hash_tree(dest) == remote_tree(client, ROOT)

    killed = tmp_path / "killed"
    emu.set_faults(latency_ms=5)
    try:
        proc = _mirror_child(emu, killed)
        assert proc.stdout is not None
        assert [proc.stdout.readline().strip() for _ in range(3)] == ["ready", "plan", "plan"]
        proc.send_signal(signal.SIGKILL)  # the second page is planned: the first one has committed
        proc.wait(timeout=60)
        proc.stdout.close()
    finally:
        emu.clear_faults()
    state = load_state(str(killed.resolve()))
    assert state is not None and state.cursor  # the first page's cursor
    emu.reset_stats()
    again = mirror(client, ROOT, killed, parallelism=4)
    assert again.ok and again.mode == "incremental"
    assert emu.stats().get("/2/files/list_folder", 0) == 0
    assert again.done["download"] <= 1250 - 400  # the first page's files (500 entries) were kept
    assert local_hash_tree(killed) == remote_tree(client, ROOT)
