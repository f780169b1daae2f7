"""How faithful and how costly the emulator's TCP-window pacing is: ``python -m benchmarks.throttle_check``.

For one and for N connections, a 128 MiB download and a 128 MiB single-request upload run against a plain
HTTP emulator with 50 ms latency, once with the 4 MiB window (80 MiB/s per connection) and once without
(latency only). Prints, per case, the achieved rate against the modelled one (``accuracy``: 1.00 means the
wall time is exactly latency + bytes / rate) and the emulator's CPU per GiB moved, so the pacing's own cost
(one event-loop sleep per received piece) shows as the difference between the two. Medians of
``--repeats`` runs. A check of the model, not a speed claim; the numbers go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from benchmarks.run import WINDOW_BYTES, MiB, machine
from benchmarks.trial import Raw
from tests.emulator_process import start_emulator

SIZE = 128 * MiB
LATENCY_MS = 50


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _session(base: str) -> requests.Session:
    """An authorised bare session: the throughput baseline's own (``trial.Raw``)."""
    return Raw({"base_url": base}).session


def _download(s: requests.Session, base: str) -> int:
    r = s.post(
        f"{base}/2/files/download", headers={"Dropbox-API-Arg": json.dumps({"path": "/tc.bin"})}, stream=True
    )
    r.raise_for_status()
    n = sum(len(piece) for piece in r.iter_content(MiB))
    r.close()
    return n


def _upload(s: requests.Session, base: str, data: bytes, i: int) -> int:
    arg = {"path": f"/tc-up-{i}.bin", "mode": "overwrite"}
    r = s.post(
        f"{base}/2/files/upload",
        data=data,
        headers={"Content-Type": "application/octet-stream", "Dropbox-API-Arg": json.dumps(arg)},
        timeout=300,
    )
    r.raise_for_status()
    return len(data)


def _median_case(
    repeats: int, n: int, direction: str, sessions: list[requests.Session], base: str, data: bytes, pid: int
) -> tuple[float, float]:
    """Median wall time and median emulator CPU of ``repeats`` runs of ``n`` parallel requests."""
    times: list[float] = []
    cpus: list[float] = []
    for _ in range(repeats):
        with ThreadPoolExecutor(n) as pool:
            cpu0, t0 = _cpu_s(pid), time.perf_counter()
            if direction == "download":
                list(pool.map(lambda s: _download(s, base), sessions[:n]))
            else:
                list(pool.map(lambda a: _upload(a[1], base, data, a[0]), enumerate(sessions[:n])))
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu_s(pid) - cpu0)
    return statistics.median(times), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.throttle_check", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported")
    ap.add_argument("--out", type=Path)
    ns = ap.parse_args()
    data = os.urandom(SIZE)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="throttle-check-") as work:
        emu = start_emulator(Path(work) / "data")
        try:
            base, pid = emu.base_url, emu.process.pid
            sessions = [_session(base) for _ in range(ns.connections)]
            _upload(sessions[0], base, data, 0)
            sessions[0].post(
                f"{base}/2/files/move_v2", json={"from_path": "/tc-up-0.bin", "to_path": "/tc.bin"}
            )
            for window in (WINDOW_BYTES, None):
                emu.set_faults(latency_ms=LATENCY_MS, window_bytes=window)
                rate = None if window is None else window / (LATENCY_MS / 1000)
                for direction in ("download", "upload"):
                    for n in (1, ns.connections):
                        took, cpu = _median_case(ns.repeats, n, direction, sessions, base, data, pid)
                        model = None if rate is None else LATENCY_MS / 1000 + SIZE / rate
                        row = {
                            "window_mib": None if window is None else window / MiB,
                            "direction": direction,
                            "connections": n,
                            "seconds": round(took, 3),
                            "mib_s_per_connection": round(SIZE / MiB / took, 1),
                            "model_seconds": None if model is None else round(model, 3),
                            "accuracy": None if model is None else round(model / took, 3),
                            "emulator_cpu_s_per_gib": round(cpu / (n * SIZE / 1024 / MiB), 2),
                        }
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            emu.stop()
    if ns.out:
        command = " ".join([".venv/bin/python -m benchmarks.throttle_check", *sys.argv[1:]])
        out = {"command": command, "machine": machine(), "rows": rows}
        ns.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
