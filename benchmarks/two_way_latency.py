"""Change-to-other-side latency of the event-driven two-way sync through real Airflow (issue 17: median
under 5 s each way).

The distributed suite's cluster (``tests/distributed/conftest.py``: PostgreSQL, Redis, api-server,
scheduler, dag-processor, triggerer, two Celery workers, the emulator) runs the example DAG
``dags/dropbox_two_way_sync.py`` unchanged, scheduled by its two watchers. Each trial times, from the
moment the change is made to the moment the other side has the new bytes:

- ``dropbox->local``: an upload to the Dropbox folder (the ``DropboxChangeEventTrigger`` long-polls it),
  until the local file holds the bytes;
- ``local->dropbox``: a file written into the local folder (the ``LocalFolderChangeTrigger`` watches it
  with inotify and takes a file once it was closed after writing), until Dropbox serves the bytes.

It also reads each run's report: whether the run looked only at what the watchers named (focused).

Each trial waits for the run it caused to finish before the next one. A pytest module, so it can use the
suite's cluster fixture: ``.venv/bin/python -m pytest benchmarks/two_way_latency.py -q -s`` (about 10
minutes; ``BENCH_TRIALS`` trials each way, default 5); writes ``benchmarks/results/two_way_latency.json``.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import errors
from tests.distributed import conftest as dist
from tests.distributed.conftest import Cluster, cluster  # noqa: F401  (the fixture, used by name)
from tests.sync.conftest import make_client

REMOTE = "/bench-two-way"
DAG_ID = "dropbox_two_way_sync"
TRIALS = int(os.environ.get("BENCH_TRIALS", "5"))
OUT = Path(__file__).parent / "results" / "two_way_latency.json"


@pytest.fixture(scope="session")
def two_way_env() -> Iterator[Path]:
    """Point the example DAG at a Dropbox folder and a local folder, before the cluster copies it."""
    local = Path(tempfile.mkdtemp(prefix="bench-two-way-"))
    saved = dict(os.environ)
    os.environ["DROPBOX_SYNC_PATH"] = REMOTE
    os.environ["DROPBOX_SYNC_LOCAL_PATH"] = str(local)
    dist.EXAMPLE_DAGS = ("dropbox_two_way_sync.py",)  # type: ignore[assignment]
    try:
        yield local
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.05)
    return time.monotonic()


def _holds(path: Path, data: bytes) -> Callable[[], bool]:
    return lambda: path.exists() and path.read_bytes() == data


def _serves(remote_bytes: Callable[[str], bytes | None], name: str, data: bytes) -> bool:
    return remote_bytes(name) == data


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _warm_up(change: Callable[[int], object], arrived: Callable[[int], bytes | None]) -> None:
    for k in range(20):
        change(k)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any(arrived(j) == b"warm" for j in range(k + 1)):
                return
            time.sleep(0.5)
    raise AssertionError("no change came across in 5 minutes: are the watchers running?")


def _quiet(cl: Cluster, still: float = 20.0) -> None:
    """Wait until no run is queued or running and no new run was made for ``still`` seconds. A run's own
    writes wake the other side's watcher (the local one takes a file after one scan plus the settle time,
    up to 10 s, then the scheduler), and that echo run must not serve the next trial's change."""
    seen = len(cl.dag_runs(DAG_ID))
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < still:
        time.sleep(1)
        runs = cl.dag_runs(DAG_ID)
        if len(runs) != seen or any(r["state"] in ("queued", "running") for r in runs):
            seen = len(runs)
            quiet_since = time.monotonic()


def _run_ids(cl: Cluster) -> set[str]:
    return {r["dag_run_id"] for r in cl.dag_runs(DAG_ID)}


def _focused(cl: Cluster, run_ids: set[str]) -> list[bool]:
    """Whether each finished run looked only at what its watchers named (the sync task's report)."""
    out = []
    for run_id in sorted(run_ids):
        report = cl.xcom(DAG_ID, run_id, "sync")
        out.append(bool(isinstance(report, dict) and report.get("focused")))
    return out


def test_two_way_latency(two_way_env: Path, cluster: Cluster) -> None:  # noqa: F811
    local = two_way_env
    client = make_client(cluster.emulator)
    work = Path(tempfile.mkdtemp(prefix="bench-two-way-work-"))

    def put_remote(name: str, data: bytes) -> None:
        src = work / name
        src.write_bytes(data)
        client.upload_file(src, f"{REMOTE}/{name}", mode="overwrite")

    def remote_bytes(name: str) -> bytes | None:
        try:
            client.download_file(f"{REMOTE}/{name}", work / f"got-{name}")
        except errors.PathNotFoundError:
            return None
        return (work / f"got-{name}").read_bytes()

    cluster.unpause(DAG_ID)
    # Warm-up: the watchers start once the triggerer picks them up; keep making a new change on each side
    # until one comes across, then wait for the runs to end.
    _warm_up(
        lambda k: (local / f"warm-{k}.txt").write_bytes(b"warm"), lambda k: remote_bytes(f"warm-{k}.txt")
    )
    _warm_up(
        lambda k: put_remote(f"warm-remote-{k}.txt", b"warm"), lambda k: _read(local / f"warm-remote-{k}.txt")
    )
    _quiet(cluster)

    down: list[float] = []
    up: list[float] = []
    runs: list[int] = []  # runs made between each change and its arrival: 1 when the change caused it
    focused: list[bool] = []  # each run made in the trials (echo runs too): looked only at what was named
    for i in range(TRIALS):
        data = f"from dropbox {i} {time.time()}".encode()
        before = _run_ids(cluster)
        t0 = time.monotonic()
        put_remote(f"remote-{i}.txt", data)
        t1 = _until(_holds(local / f"remote-{i}.txt", data), 120, f"remote-{i}.txt locally")
        down.append(t1 - t0)
        runs.append(len(_run_ids(cluster) - before))
        _quiet(cluster)
        focused.extend(_focused(cluster, _run_ids(cluster) - before))

        data = f"from local {i} {time.time()}".encode()
        before = _run_ids(cluster)
        t0 = time.monotonic()
        with open(local / f"local-{i}.txt", "wb") as f:  # written in place, as an editor or a copy does
            f.write(data)
        t1 = _until(functools.partial(_serves, remote_bytes, f"local-{i}.txt", data), 120, f"local-{i}.txt")
        up.append(t1 - t0)
        runs.append(len(_run_ids(cluster) - before))
        _quiet(cluster)
        focused.extend(_focused(cluster, _run_ids(cluster) - before))

    result: dict[str, Any] = {
        "command": ".venv/bin/python -m pytest benchmarks/two_way_latency.py -q -s",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "trials": TRIALS,
        "goal_s": 5.0,
        "dropbox_to_local_s": {"median": statistics.median(down), "all": [round(x, 2) for x in down]},
        "local_to_dropbox_s": {"median": statistics.median(up), "all": [round(x, 2) for x in up]},
        "runs_made_per_trial": runs,
        "runs_focused": f"{sum(focused)} of {len(focused)}",
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
