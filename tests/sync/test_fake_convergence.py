"""Long random histories on the in-memory fake (fast): every kind of remote change, cursor resets and
simulated crashes at random points of the apply phase; the local tree must match after every round."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sync import mirror
from tests.sync.chaos import Chaos
from tests.sync.conftest import local_hash_tree, remote_tree
from tests.sync.fakes import FakeClient

ROOT = "/Mirror Src"


class Crash(BaseException):
    """Stands in for kill -9: not an Exception, so nothing in the engine handles it."""


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_histories_with_resets_and_crashes(tmp_path: Path, seed: int) -> None:
    fake = FakeClient()
    chaos = Chaos(fake, ROOT, seed=seed, workdir=str(tmp_path))  # type: ignore[arg-type]
    for i in range(10):
        chaos.upload(f"dir{i % 3}/f{i}.bin")
    dest = tmp_path / "m"
    rng = random.Random(seed)
    real = fake.download_file
    crashes = 0
    for _ in range(60):
        chaos.round(max_ops=5)
        if rng.random() < 0.15:
            fake.reset_cursors()
        if rng.random() < 0.3:
            budget = {"left": rng.randint(0, 3)}

            def dying(remote: str, local: str, budget: dict[str, int] = budget) -> dict[str, Any]:
                if budget["left"] == 0:
                    raise Crash()
                budget["left"] -= 1
                return real(remote, local)

            fake.download_file = dying  # type: ignore[method-assign]
            try:
                mirror(fake, ROOT, dest, parallelism=3, allow_empty_remote=True)
            except Crash:
                crashes += 1
            fake.download_file = real  # type: ignore[method-assign]
        report = mirror(fake, ROOT, dest, parallelism=3, allow_empty_remote=True)
        assert report.ok and report.collisions == []
        remote, local = remote_tree(fake, ROOT), local_hash_tree(dest)  # type: ignore[arg-type]
        assert local == remote, f"diverged after {chaos.log[-10:]}"
    assert crashes >= 3
