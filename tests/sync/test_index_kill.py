"""kill -9 inside every index commit point (before and after each COMMIT): the next run converges."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_dropbox.sync import mirror
from airflow_provider_dropbox.sync.state import load_state
from tests.sync.fakes import FakeDropbox, local_tree

REPO = Path(__file__).resolve().parents[2]


def _child(fake: FakeDropbox, tmp: Path, dest: Path, nth: int, when: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "fake.pkl"
    path.write_bytes(pickle.dumps(fake))
    return subprocess.run(
        [sys.executable, "-m", "tests.sync.index_kill_child", str(path), str(dest), str(nth), when],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _commits(fake: FakeDropbox, tmp: Path, dest: Path) -> int:
    """How many index commits a run makes (a child that is never killed)."""
    out = _child(fake, tmp, dest, 10**6, "before")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def _converges(fake: FakeDropbox, dest: Path) -> None:
    report = mirror(fake, "/Root", dest, parallelism=2, allow_empty_remote=True)
    assert report.ok and report.cursor_advanced
    assert local_tree(dest) == fake.tree("/Root")
    staging = dest / ".dropbox-mirror" / "staging"
    assert not staging.exists() or os.listdir(staging) == []
    state = load_state(str(dest.resolve()))
    assert state is not None and not state.pending
    again = mirror(fake, "/Root", dest, parallelism=2)
    assert again.plan == []


def _seeded() -> FakeDropbox:
    dbx = FakeDropbox()
    for i in range(6):
        dbx.put(f"/Root/d{i % 2}/f{i}.txt", b"file %d" % i)
    return dbx


def _change(dbx: FakeDropbox) -> None:
    dbx.put("/Root/d0/f0.txt", b"changed")
    dbx.delete("/Root/d1/f1.txt")
    dbx.move("/Root/d1", "/Root/moved")
    dbx.put("/Root/new/n.txt", b"new")


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("phase", ["initial", "incremental"])
def test_kill_at_every_index_commit_converges(tmp_path: Path, when: str, phase: str) -> None:
    probe = tmp_path / "probe"
    dbx = _seeded()
    if phase == "incremental":
        mirror(dbx, "/Root", probe, parallelism=2)
        _change(dbx)
    total = _commits(dbx, tmp_path, probe)
    assert total >= 3  # intents, checkpoints, final commit
    for nth in range(1, total + 1):
        dest = tmp_path / f"{when}-{nth}"
        dbx = _seeded()
        if phase == "incremental":
            mirror(dbx, "/Root", dest, parallelism=2)
            _change(dbx)
        out = _child(dbx, tmp_path, dest, nth, when)
        assert out.returncode == -signal.SIGKILL, (nth, out.stdout, out.stderr)
        _converges(dbx, dest)
