"""Run the benchmarks: ``.venv/bin/python -m benchmarks.run [--quick] [--only NAME] [--out results.json]``.

Suites (``--only`` takes these names):

- ``throughput``  1 GiB upload and download, client vs a bare ``requests`` client (plain HTTP emulator); the
                  download also vs a leaner raw client (``http.client``, one reused buffer).
- ``memory``      peak RSS growth of 2 GiB upload and download through the client.
- ``parallel``    50 ms round trip with a 4 MiB TCP window (at most 80 MiB/s per connection), 1 GiB: client
                  (parallel) vs the official SDK's sequential session / ``files_download_to_file`` and its
                  ``dropbox.file_transfer`` Uploader/Downloader (HTTPS); then the same with latency alone
                  (an infinite window), as extra rows.
- ``mirror``      10,000 files under 20 ms latency: ``sync.mirror`` vs an SDK script, sequential and in a
                  thread pool of the same width; then an incremental run after one change (HTTPS).
- ``chunks``      upload chunk-size and download part-size sweep, with and without latency.
- ``longpoll``    time from a change to ``client.longpoll`` returning.
- ``diagnose``    where the client's download time goes (verification / fsync patched out in the child).
- ``wan``         ``parallel`` with a per-request bandwidth cap on top of the latency (information only).
- ``profile``     one sampled run each of client and file_transfer, up and down (hottest lines).
- ``emulator``    the emulator at scale (``benchmarks.emulator_scale``): full listing of 10k and 100k
                  entries, resident memory holding 1,000,000 (``--quick``: 1k/10k and 100k).
- ``scale``       the mirror engine at 1k/10k/100k files on the in-memory fake remote: incremental-run wall
                  time and peak RSS growth, bytes written by a no-change run (``benchmarks/scale.py``).

Each comparison runs its variants interleaved (A, B, C, A, B, C, ...) on the same emulator, every trial
in a fresh child process (``benchmarks.trial``); the table shows medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints
from benchmarks import many_files
from tests.emulator_process import (
    DEV_APP_KEY,
    DEV_APP_SECRET,
    DEV_REFRESH_TOKEN,
    EmulatorProcess,
    start_emulator,
)
from tests.sdk.certs import make_cert, sdk_env

MiB = 1024 * 1024
GiB = 1024 * MiB
REPO = Path(__file__).resolve().parent.parent
WINDOW_BYTES = 4 * MiB
"""The TCP window of the ``parallel`` suite's 50 ms path: Linux's default ``net.ipv4.tcp_wmem`` maximum
(4194304), the most a sender's socket buffer, and so its unacknowledged bytes in flight, grows to by
autotuning. A 50 ms round trip then allows 4 MiB / 0.05 s = 80 MiB/s per connection."""
SUITES = (
    "throughput",
    "memory",
    "parallel",
    "chunks",
    "longpoll",
    "mirror",
    "diagnose",
    "wan",
    "profile",
    "emulator",
    "scale",
    "many_files",
)


@dataclass
class Config:
    quick: bool
    repeats: int
    big: int  # throughput / parallel file size
    huge: int  # memory file size
    chunk: int | None  # client chunk size (None = client default)
    single_request_limit: int
    parallelism: int
    latency_ms: float  # for ``parallel``: the round trip, paid once per request
    window_bytes: int  # for ``parallel``: TCP window, so each connection moves <= window / latency per second
    mirror_files: int
    mirror_file_size: int
    mirror_latency_ms: float
    sweep_size: int
    wan_size: int
    wan_mbps: float
    sweep_chunks: list[int]
    sweep_parallelism: list[int]
    sweep_parts: list[int]
    sweep_part_parallelism: list[int]
    sweep_latencies: list[float]
    longpoll_repeats: int
    trial_timeout: float
    mirror_sequential: bool = True
    many_files: int = 10_000  # many_files suite: files of 10 KiB per upload_folder
    many_files_parts: tuple[str, ...] = ("light", "default", "heavy", "off", "big")  # which conditions

    @classmethod
    def make(cls, quick: bool, repeats: int | None) -> Config:
        if quick:
            return cls(
                quick=True,
                repeats=repeats or 1,
                big=12 * MiB + 12345,
                huge=12 * MiB + 12345,
                chunk=4 * MiB,
                single_request_limit=4 * MiB,
                parallelism=3,
                latency_ms=5,
                window_bytes=1 * MiB,
                mirror_files=24,
                mirror_file_size=1000,
                mirror_latency_ms=2,
                sweep_size=12 * MiB + 12345,
                wan_size=12 * MiB + 12345,
                wan_mbps=800,
                sweep_chunks=[4 * MiB, 8 * MiB],
                sweep_parallelism=[1, 2],
                sweep_parts=[4 * MiB, 8 * MiB],
                sweep_part_parallelism=[2],
                sweep_latencies=[0],
                longpoll_repeats=1,
                trial_timeout=120,
                many_files=40,
            )
        return cls(
            quick=False,
            repeats=repeats or 3,
            big=1 * GiB,
            huge=2 * GiB,
            chunk=None,
            single_request_limit=150 * MiB,
            parallelism=8,
            latency_ms=50,
            window_bytes=WINDOW_BYTES,
            mirror_files=10_000,
            mirror_file_size=2048,
            mirror_latency_ms=20,
            sweep_size=512 * MiB,
            wan_size=512 * MiB,
            wan_mbps=200,
            sweep_chunks=[8 * MiB, 16 * MiB, 32 * MiB, 48 * MiB],
            sweep_parallelism=[1, 4],
            sweep_parts=[16 * MiB, 32 * MiB, 64 * MiB],
            sweep_part_parallelism=[8],
            sweep_latencies=[0, 50],
            longpoll_repeats=5,
            trial_timeout=1800,
        )


# ---------------------------------------------------------------------------------------------- plumbing


@dataclass
class Emu:
    proc: EmulatorProcess
    env: dict[str, str]  # extra environment for trial children (the SDK's hosts for https)
    cafile: str | None
    client: DropboxClient

    @property
    def base_url(self) -> str:
        return self.proc.base_url

    def latency(self, ms: float, window_bytes: int | None = None) -> None:
        """Latency per request; with ``window_bytes`` also the TCP-window rate cap (None: infinite window)."""
        self.proc.set_faults(latency_ms=ms, window_bytes=window_bytes)


class Emulators:
    """One plain-HTTP and one HTTPS emulator for the whole run, started on first use.

    The HTTPS one is for comparisons with the official SDK, which only speaks https. Its self-signed
    certificate is passed to the client as ``ca_bundle`` and, for the SDK, through ``REQUESTS_CA_BUNDLE``
    (trial children get the SDK's host variables too). The parent process also sets ``REQUESTS_CA_BUNDLE``,
    because ``requests`` lets that variable override ``Session.verify``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.running: dict[str, Emu] = {}
        self.saved_env: dict[str, str | None] = {}

    def get(self, name: str) -> Emu:
        if name not in self.running:
            self.running[name] = self._start(name, https=name == "tls")
        return self.running[name]

    def _start(self, name: str, https: bool) -> Emu:
        args: list[str] = []
        cafile: str | None = None
        if https:
            cert, key = make_cert(self.work / f"{name}-tls")
            args = ["--certfile", str(cert), "--keyfile", str(key)]
            cafile = str(cert)
        proc = start_emulator(self.work / f"{name}-data", *args)
        env = sdk_env(urlparse(proc.base_url).netloc, Path(cafile)) if cafile else {}
        if cafile:
            self.saved_env.setdefault("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE"))
            os.environ["REQUESTS_CA_BUNDLE"] = cafile
        client = DropboxClient(
            Credentials(app_key=DEV_APP_KEY, app_secret=DEV_APP_SECRET, refresh_token=DEV_REFRESH_TOKEN),
            endpoints=Endpoints.single_host(proc.base_url),
            parallelism=8,
            ca_bundle=cafile,
        )
        return Emu(proc, env, cafile, client)

    def close(self) -> None:
        for emu in self.running.values():
            emu.client.close()
            emu.proc.stop()
        self.running.clear()
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_file(path: Path, size: int) -> Path:
    """Random (incompressible) bytes, written in 16 MiB blocks."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as fh:
        left = size
        i = 0
        while left > 0:
            piece = block[: min(len(block), left)]
            # vary each block so no two 4 MiB hash blocks are equal
            fh.write(i.to_bytes(8, "little") + piece[8:] if len(piece) > 8 else piece)
            left -= len(piece)
            i += 1
    return path


def run_trials(emu: Emu, tasks: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Run ``tasks`` one after the other in one child process; one result (or ``{"error": ...}``) each."""
    base = {"base_url": emu.base_url, "cafile": emu.cafile, "emulator_pid": emu.proc.process.pid}
    full = [{**base, **task} for task in tasks]
    env = {**os.environ, **emu.env, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.trial", json.dumps(full)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout * len(tasks),
        )
    except subprocess.TimeoutExpired:
        return [{"error": f"timed out after {timeout:.0f} s"}] * len(tasks)
    results: list[dict[str, Any]] = [
        json.loads(line[len("RESULT ") :]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")
    ]
    missing = len(tasks) - len(results)
    if missing > 0:
        error = (proc.stderr or proc.stdout)[-2000:] or f"exit {proc.returncode}"
        results += [{"error": error}] * missing
    return results


def run_trial(emu: Emu, task: dict[str, Any], timeout: float) -> dict[str, Any]:
    return run_trials(emu, [task], timeout)[0]


@dataclass
class Results:
    cfg: Config
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # "suite/variant" -> summary
    rows: list[dict[str, Any]] = field(default_factory=list)  # comparisons against goals
    notes: dict[str, Any] = field(default_factory=dict)

    def interleave(
        self, emu: Emu, suite: str, tasks: dict[str, dict[str, Any]], repeats: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """Run every task ``repeats`` times in A, B, C, A, B, C order; summarise each by its median."""
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in tasks}
        for r in range(repeats or self.cfg.repeats):
            if self.cfg.quick:  # one child for the whole round
                batch = run_trials(emu, list(tasks.values()), self.cfg.trial_timeout)
            else:  # a fresh child per trial, so peak RSS is the trial's own
                batch = [run_trial(emu, task, self.cfg.trial_timeout) for task in tasks.values()]
            for name, res in zip(tasks, batch, strict=True):
                runs[name].append(res)
                shown = f"{res['seconds']:.2f} s" if "seconds" in res else "ERROR " + res["error"][-300:]
                print(f"  [{suite}] {name} #{r + 1}: {shown}", flush=True)
        out = {}
        for name, rs in runs.items():
            out[name] = summarise(rs)
            self.variants[f"{suite}/{name}"] = out[name]
        return out

    def compare(
        self,
        suite: str,
        metric: str,
        value: float | None,
        goal: str,
        met: bool | None,
        detail: str = "",
    ) -> None:
        self.rows.append(
            {"suite": suite, "metric": metric, "value": value, "goal": goal, "met": met, "detail": detail}
        )


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "seconds" in r]
    out: dict[str, Any] = {"runs": runs, "errors": len(runs) - len(ok)}
    if not ok:
        return out
    secs = [r["seconds"] for r in ok]
    out["median_s"] = statistics.median(secs)
    out["min_s"] = min(secs)
    out["max_s"] = max(secs)
    nbytes = ok[0].get("bytes", 0)
    if nbytes:
        out["mib_s"] = nbytes / MiB / out["median_s"]
    cpu = [r["cpu_s"] for r in ok if "cpu_s" in r]
    if cpu:
        out["cpu_s_median"] = statistics.median(cpu)
    emu_cpu = [r["emu_cpu_s"] for r in ok if "emu_cpu_s" in r]
    if emu_cpu:
        out["emu_cpu_s_median"] = statistics.median(emu_cpu)
    out["rss_growth_mib_max"] = max(r["rss_growth_mib"] for r in ok)
    out["rss_growth_mib_median"] = statistics.median(r["rss_growth_mib"] for r in ok)
    return out


def ratio(slow: dict[str, Any], fast: dict[str, Any]) -> float | None:
    """How many times faster ``fast`` is than ``slow`` (median over median)."""
    if "median_s" not in slow or "median_s" not in fast:
        return None
    return float(slow["median_s"] / fast["median_s"])


def at_least(x: float | None, goal: float) -> bool | None:
    return None if x is None else x >= goal


# ---------------------------------------------------------------------------------------------- suites


def suite_throughput(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    emu = emus.get("plain")
    src = make_file(work / "src-big.bin", cfg.big)
    emu.client.upload_file(src, "/bench/src-big.bin", mode="overwrite", parallelism=8)
    raw_chunk = cfg.chunk or _client_default_chunk()
    common = {"single_request_limit": cfg.single_request_limit}
    up = res.interleave(
        emu,
        "throughput",
        {
            "raw-upload": {"kind": "raw_upload", "local": str(src), "remote": "/bench/up-raw.bin",
                           "chunk_size": raw_chunk, **common},
            "client-upload-p1": {"kind": "client_upload", "local": str(src), "remote": "/bench/up-c1.bin",
                                 "chunk_size": cfg.chunk, "parallelism": 1, **common},
            f"client-upload-p{cfg.parallelism}": {
                "kind": "client_upload", "local": str(src), "remote": "/bench/up-cp.bin",
                "chunk_size": cfg.chunk, "parallelism": cfg.parallelism, **common},
        },
    )  # fmt: skip
    down_local = str(work / "down" / "big.bin")
    down = res.interleave(
        emu,
        "throughput",
        {
            "raw-download": {"kind": "raw_download", "remote": "/bench/src-big.bin", "local": down_local},
            "raw-readinto-download": {"kind": "raw_download_readinto", "remote": "/bench/src-big.bin",
                                      "local": down_local},
            "client-download-p1": {"kind": "client_download", "remote": "/bench/src-big.bin",
                                   "local": down_local, "parallelism": 1},
            f"client-download-p{cfg.parallelism}": {
                "kind": "client_download", "remote": "/bench/src-big.bin", "local": down_local,
                "parallelism": cfg.parallelism},
        },
    )  # fmt: skip
    emu.client.delete("/bench/src-big.bin")
    src.unlink()
    size = _size(cfg.big)
    baselines = [("upload", "raw-upload", "raw requests"), ("download", "raw-download", "raw requests"),
                 ("download", "raw-readinto-download", "raw http.client readinto")]  # fmt: skip
    for direction, base, what in baselines:
        table = up if direction == "upload" else down
        raw = table[base]
        for p in (1, cfg.parallelism):
            mine = table[f"client-{direction}-p{p}"]
            r = ratio(raw, mine)
            res.compare(
                "throughput",
                f"{size} {direction}, client p={p} vs {what} (x raw speed)",
                r,
                ">= 0.8x",
                at_least(r, 0.8),
                f"client {_speed(mine)}, raw {_speed(raw)}",
            )


def suite_memory(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    emu = emus.get("plain")
    src = make_file(work / "src-huge.bin", cfg.huge)
    emu.client.upload_file(src, "/bench/src-huge.bin", mode="overwrite", parallelism=8)
    common = {"single_request_limit": cfg.single_request_limit, "chunk_size": cfg.chunk}
    table = res.interleave(
        emu,
        "memory",
        {
            "client-upload": {"kind": "client_upload", "local": str(src), "remote": "/bench/up-huge.bin",
                              "parallelism": cfg.parallelism, **common},
            "client-download": {"kind": "client_download", "remote": "/bench/src-huge.bin",
                                "local": str(work / "down" / "huge.bin"), "parallelism": cfg.parallelism},
        },
    )  # fmt: skip
    emu.client.delete("/bench/src-huge.bin")
    src.unlink()
    for direction in ("upload", "download"):
        s = table[f"client-{direction}"]
        peak = s.get("rss_growth_mib_max")
        res.compare(
            "memory",
            f"{_size(cfg.huge)} {direction} p={cfg.parallelism}: peak RSS growth, MiB (max of runs)",
            peak,
            "< 100 MiB",
            None if peak is None else peak < 100,
            f"{_speed(s)}",
        )


def suite_parallel(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    """The parallel-vs-SDK goals on a modelled 50 ms path: latency per request plus a TCP window per
    connection (``WINDOW_BYTES``), so one connection cannot fill the path, which is the condition parallel
    transfers exist for. The same comparisons with latency alone (an infinite window, the model this suite
    used before) follow as extra rows, not goals."""
    p = cfg.parallelism
    emu = emus.get("tls")
    src = make_file(work / "src-par.bin", cfg.big)
    emu.client.upload_file(src, "/bench/src-par.bin", mode="overwrite", parallelism=8)
    chunk = cfg.chunk or _client_default_chunk()
    common = {"local": str(src), "single_request_limit": cfg.single_request_limit}
    local = str(work / "down" / "par.bin")
    cap = cfg.window_bytes / (cfg.latency_ms / 1000) / MiB
    window = f"{cfg.window_bytes / MiB:g} MiB window ({cap:.0f} MiB/s per connection)"
    models: list[tuple[str, int | None, str]] = [
        ("parallel", cfg.window_bytes, f"{cfg.latency_ms:g} ms RTT + {window}"),
        ("parallel-infinite-window", None, f"{cfg.latency_ms:g} ms latency, infinite window"),
    ]
    try:
        for suite, window, label in models:
            emu.latency(cfg.latency_ms, window)
            up = res.interleave(
                emu,
                suite,
                {
                    f"client-upload-p{p}": {"kind": "client_upload", "remote": "/bench/pc.bin",
                                            "parallelism": p, "chunk_size": cfg.chunk, **common},
                    "sdk-upload-session-seq": {"kind": "sdk_upload_seq", "remote": "/bench/ps.bin",
                                               "chunk_size": chunk, **common},
                    f"sdk-file_transfer-upload-p{p}": {"kind": "sdk_upload_ft", "remote": "/bench/pf.bin",
                                                       "parallelism": p, **common},
                },
            )  # fmt: skip
            down = res.interleave(
                emu,
                suite,
                {
                    f"client-download-p{p}": {"kind": "client_download", "remote": "/bench/src-par.bin",
                                              "local": local, "parallelism": p},
                    "sdk-download-seq": {"kind": "sdk_download_seq", "remote": "/bench/src-par.bin",
                                         "local": local},
                    f"sdk-file_transfer-download-p{p}": {"kind": "sdk_download_ft",
                                                         "remote": "/bench/src-par.bin", "local": local,
                                                         "parallelism": p},
                },
            )  # fmt: skip
            _parallel_rows(res, cfg, label, up, down, goals=window is not None)
    finally:
        emu.latency(0)
    emu.client.delete("/bench/src-par.bin")
    src.unlink()


def _parallel_rows(
    res: Results,
    cfg: Config,
    label: str,
    up: dict[str, dict[str, Any]],
    down: dict[str, dict[str, Any]],
    goals: bool,
) -> None:
    p = cfg.parallelism
    size = _size(cfg.big)
    for direction, table, seq in (
        ("upload", up, "sdk-upload-session-seq"),
        ("download", down, "sdk-download-seq"),
    ):
        mine = table[f"client-{direction}-p{p}"]
        ft = table[f"sdk-file_transfer-{direction}-p{p}"]
        r = ratio(table[seq], mine)
        res.compare(
            "parallel",
            f"{size} {direction}, {label}: client p={p} vs SDK sequential (x faster)",
            r,
            ">= 3x" if goals else "info (goal: the window model)",
            at_least(r, 3) if goals else None,
            f"client {_speed(mine)}, SDK sequential {_speed(table[seq])}; emulator CPU "
            f"{_emu_cpu(mine)} / {_emu_cpu(table[seq])}",
        )
        r = ratio(ft, mine)
        res.compare(
            "parallel",
            f"{size} {direction}, {label}: client p={p} vs SDK file_transfer p={p} (x faster)",
            r,
            ">= 1.2x" if goals else "info (goal: the window model)",
            at_least(r, 1.2) if goals else None,
            f"client {_speed(mine)}, file_transfer {_speed(ft)}; "
            f"emulator CPU {_emu_cpu(mine)} / {_emu_cpu(ft)}",
        )
        a, b = mine.get("rss_growth_mib_max"), ft.get("rss_growth_mib_max")
        res.compare(
            "parallel",
            f"{size} {direction}, {label}: peak RSS growth client vs file_transfer, MiB",
            a,
            "lower than file_transfer" if goals else "info",
            (None if a is None or b is None else a < b) if goals else None,
            f"client {a} MiB, file_transfer {b} MiB",
        )


def suite_mirror(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    p = cfg.parallelism
    root = "/mirror"
    emu = emus.get("tls")
    t0 = time.monotonic()
    _seed_tree(emu.client, work / "seed", root, cfg.mirror_files, cfg.mirror_file_size)
    res.notes["mirror_seed_s"] = round(time.monotonic() - t0, 1)
    emu.latency(cfg.mirror_latency_ms)
    keep = str(work / "mirror-keep")
    tasks: dict[str, dict[str, Any]] = {
        f"client-mirror-p{p}": {"kind": "client_mirror", "remote": root, "parallelism": p,
                                "local": str(work / "mirror-client")},
        f"client-mirror-p{p}-per-file": {"kind": "client_mirror", "remote": root, "parallelism": p,
                                         "local": str(work / "mirror-client-per-file"), "zip": False},
        f"sdk-thread-pool-p{p}": {"kind": "sdk_mirror_pool", "remote": root, "parallelism": p,
                                  "local": str(work / "mirror-pool")},
        "sdk-sequential": {"kind": "sdk_mirror_seq", "remote": root, "local": str(work / "mirror-seq")},
    }  # fmt: skip
    if not cfg.mirror_sequential:
        del tasks["sdk-sequential"]
    table = res.interleave(emu, "mirror", tasks)
    # Incremental: a fresh full mirror (kept), one remote change, then a second run, counted by the stats.
    first = run_trial(emu, {**tasks[f"client-mirror-p{p}"], "local": keep, "keep": True}, cfg.trial_timeout)
    changed = work / "changed.txt"
    changed.write_bytes(os.urandom(cfg.mirror_file_size))
    emu.latency(0)
    emu.client.upload_file(changed, f"{root}/d000/f00000.txt", mode="overwrite")
    emu.latency(cfg.mirror_latency_ms)
    emu.proc.reset_stats()
    second = run_trial(emu, {**tasks[f"client-mirror-p{p}"], "local": keep, "keep": True}, cfg.trial_timeout)
    stats = emu.proc.stats()
    emu.latency(0)
    shutil.rmtree(keep, ignore_errors=True)
    lat = f"{cfg.mirror_latency_ms:g} ms latency"
    n = cfg.mirror_files
    rows = (
        (f"client-mirror-p{p}", f"sdk-thread-pool-p{p}", ">= 1.2x", 1.2),
        (f"client-mirror-p{p}-per-file", f"sdk-thread-pool-p{p}", ">= 1x", 1.0),
        (f"client-mirror-p{p}", "sdk-sequential", ">= 5x", 5.0),
    )
    for name, other, goal, g in rows:
        if other not in table:
            continue
        r = ratio(table[other], table[name])
        res.compare(
            "mirror",
            f"{n} files initial mirror, {lat}: {name} vs {other} (x faster)",
            r,
            goal,
            at_least(r, g),
            f"client {_secs(table[name])} ({_files(table[name])}), {other} {_secs(table[other])} "
            f"({_files(table[other])})",
        )
    lists = sum(v for k, v in stats.items() if "list_folder" in k)
    downloads = sum(v for k, v in stats.items() if k.endswith("files/download") or k == "files/download")
    res.notes["mirror_incremental"] = {"first": first, "second": second, "stats": stats}
    res.compare(
        "mirror",
        f"incremental run after one change ({lat}): list calls / downloads",
        None,
        "1 list call, 1 download",
        lists == 1 and downloads == 1,
        f"{lists} list call(s), {downloads} download(s) in {second.get('seconds', float('nan')):.2f} s; "
        f"all requests: {json.dumps(stats, sort_keys=True)}",
    )


def _seed_tree(client: DropboxClient, local: Path, root: str, count: int, size: int) -> None:
    """``count`` small files in folders of 100 (d000/f00000.txt, ...), uploaded in batches of 500."""
    local.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        name = f"d{i // 100:03d}/f{i:05d}.txt"
        path = local / name.replace("/", "_")
        path.write_bytes(os.urandom(size))
        pairs.append((path, f"{root}/{name}"))
    for start in range(0, len(pairs), 500):
        client.upload_files(pairs[start : start + 500], mode="overwrite", parallelism=8)
    shutil.rmtree(local, ignore_errors=True)


def suite_chunks(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    emu = emus.get("plain")
    src = make_file(work / "src-sweep.bin", cfg.sweep_size)
    emu.client.upload_file(src, "/bench/src-sweep.bin", mode="overwrite", parallelism=8)
    sweep: dict[str, Any] = {"upload": {}, "download": {}}
    for lat in cfg.sweep_latencies:
        emu.latency(lat)
        tasks = {
            f"upload-lat{lat:g}-c{c // MiB}-p{p}": {
                "kind": "client_upload", "local": str(src), "remote": f"/bench/sw-{c}-{p}.bin",
                "chunk_size": c, "parallelism": p, "single_request_limit": cfg.single_request_limit}
            for p in cfg.sweep_parallelism for c in cfg.sweep_chunks
        }  # fmt: skip
        table = res.interleave(emu, "chunks", tasks)
        for name, s in table.items():
            sweep["upload"][name] = s.get("mib_s")
        tasks = {
            f"download-lat{lat:g}-part{part // MiB}-p{p}": {
                "kind": "client_download", "remote": "/bench/src-sweep.bin",
                "local": str(work / "down" / "sweep.bin"), "parallelism": p, "part_size": part}
            for p in cfg.sweep_part_parallelism for part in cfg.sweep_parts
        }  # fmt: skip
        table = res.interleave(emu, "chunks", tasks) if tasks else {}
        for name, s in table.items():
            sweep["download"][name] = s.get("mib_s")
    emu.latency(0)
    emu.client.delete("/bench/src-sweep.bin")
    src.unlink()
    res.notes["sweep_mib_s"] = sweep
    best_chunk = _best(sweep["upload"], "-c", cfg.sweep_chunks)
    best_part = _best(sweep["download"], "-part", cfg.sweep_parts)
    res.notes["recommended_chunk_mib"] = best_chunk
    res.notes["recommended_part_mib"] = best_part
    res.compare(
        "chunks", "recommended upload chunk size, MiB (best mean speed relative to the best per condition)",
        best_chunk, "measured", None, _sweep_text(sweep["upload"]),
    )  # fmt: skip
    res.compare(
        "chunks", "recommended download part size, MiB (same scoring)",
        best_part, "measured", None, _sweep_text(sweep["download"]),
    )  # fmt: skip


def _best(speeds: dict[str, float | None], marker: str, sizes: list[int]) -> int | None:
    """The size whose speed, relative to the best size in the same condition, averages highest."""
    conditions: dict[str, dict[int, float]] = {}
    for name, mib_s in speeds.items():
        if mib_s is None:
            continue
        head, tail = name.split(marker)
        size, p = tail.split("-p")
        conditions.setdefault(f"{head}-p{p}", {})[int(size)] = mib_s
    score: dict[int, list[float]] = {}
    for by_size in conditions.values():
        top = max(by_size.values())
        for size, v in by_size.items():
            score.setdefault(size, []).append(v / top)
    full = {s: statistics.mean(v) for s, v in score.items() if len(v) == len(conditions)}
    return max(full, key=lambda s: full[s]) if full else None


def _sweep_text(speeds: dict[str, float | None]) -> str:
    return ", ".join(f"{k}: {v:.0f} MiB/s" if v else f"{k}: error" for k, v in speeds.items())


def suite_longpoll(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    emu = emus.get("plain")
    small = work / "lp.txt"
    small.write_bytes(b"x" * 100)
    emu.client.create_folder("/lp")
    for lat in (0.0, float(cfg.latency_ms)):
        emu.latency(lat)
        from_start, from_done = [], []
        for i in range(cfg.longpoll_repeats):
            cursor = emu.client.get_latest_cursor("/lp")
            returned: list[float] = []
            answer: list[dict[str, Any]] = []

            def wait(
                c: str = cursor, out: list[float] = returned, ans: list[dict[str, Any]] = answer
            ) -> None:
                ans.append(emu.client.longpoll(c, timeout=30))
                out.append(time.perf_counter())

            t = threading.Thread(target=wait, daemon=True)
            t.start()
            time.sleep(1.0 + lat / 1000)  # the longpoll is parked on the server
            small.write_bytes(os.urandom(100))
            t0 = time.perf_counter()
            emu.client.upload_file(small, f"/lp/lat{lat:g}-{i}.txt", skip_if_identical=False)
            t1 = time.perf_counter()
            t.join(60)
            if not returned or not answer[0]["changes"]:
                raise RuntimeError(f"longpoll did not report the change: {answer}")
            from_start.append(returned[0] - t0)
            from_done.append(returned[0] - t1)
            print(f"  [longpoll] latency {lat:g} ms #{i + 1}: {returned[0] - t0:.3f} s", flush=True)
        med = statistics.median(from_start)
        res.variants[f"longpoll/lat{lat:g}"] = {
            "from_change_start_s": from_start,
            "from_change_committed_s": from_done,
            "median_s": med,
        }
        res.compare(
            "longpoll",
            f"change -> longpoll returns ({lat:g} ms latency), s (median, from the upload's start)",
            med,
            "< 2 s",
            med < 2,
            f"max {max(from_start):.3f} s; after the upload returned: median "
            f"{statistics.median(from_done):.3f} s",
        )
    emu.latency(0)


def suite_diagnose(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    """Where the client's download time goes: the same download with verification and/or fsync patched out
    in the child (diagnostic only; the product always verifies and fsyncs)."""
    emu = emus.get("plain")
    src = make_file(work / "src-diag.bin", cfg.big)
    emu.client.upload_file(src, "/bench/src-diag.bin", mode="overwrite", parallelism=8)
    src.unlink()
    local = str(work / "down" / "diag.bin")
    base = {"kind": "client_download", "remote": "/bench/src-diag.bin", "local": local, "parallelism": 1}
    table = res.interleave(
        emu,
        "diagnose",
        {
            "raw-download": {"kind": "raw_download", "remote": "/bench/src-diag.bin", "local": local},
            "client-download-p1": base,
            "client-download-p1-no-verify": {**base, "no_verify": True},
            "client-download-p1-no-verify-no-fsync": {**base, "no_verify": True, "no_fsync": True},
            f"client-download-p{cfg.parallelism}-no-verify-no-fsync": {
                **base, "parallelism": cfg.parallelism, "no_verify": True, "no_fsync": True},
        },
    )  # fmt: skip
    emu.client.delete("/bench/src-diag.bin")
    raw = table["raw-download"]
    for name, s in table.items():
        if name == "raw-download":
            continue
        r = ratio(raw, s)
        res.compare(
            "diagnose",
            f"{_size(cfg.big)} download, {name} vs raw requests (x raw speed)",
            r,
            "diagnostic",
            None,
            f"{_speed(s)}, CPU {s.get('cpu_s_median', float('nan')):.1f} s; raw {_speed(raw)}, "
            f"CPU {raw.get('cpu_s_median', float('nan')):.1f} s",
        )


def suite_wan(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    """``parallel`` again with a per-request bandwidth cap on top of the latency (a WAN path, where one
    connection cannot fill the pipe): not a goal of its own, it shows what parallelism buys when the
    emulator's CPU is not the only limit. Smaller file, so the sequential baselines finish in time."""
    p = cfg.parallelism
    emu = emus.get("tls")
    size = cfg.wan_size
    src = make_file(work / "src-wan.bin", size)
    emu.client.upload_file(src, "/bench/src-wan.bin", mode="overwrite", parallelism=8)
    emu.proc.set_faults(latency_ms=cfg.latency_ms, bandwidth_mbps=cfg.wan_mbps)
    chunk = cfg.chunk or _client_default_chunk()
    common = {"local": str(src), "single_request_limit": cfg.single_request_limit}
    local = str(work / "down" / "wan.bin")
    try:
        table = res.interleave(
            emu,
            "wan",
            {
                f"client-upload-p{p}": {"kind": "client_upload", "remote": "/bench/wc.bin", "parallelism": p,
                                        "chunk_size": cfg.chunk, **common},
                "sdk-upload-session-seq": {"kind": "sdk_upload_seq", "remote": "/bench/ws.bin",
                                           "chunk_size": chunk, **common},
                f"sdk-file_transfer-upload-p{p}": {"kind": "sdk_upload_ft", "remote": "/bench/wf.bin",
                                                   "parallelism": p, **common},
                f"client-download-p{p}": {"kind": "client_download", "remote": "/bench/src-wan.bin",
                                          "local": local, "parallelism": p},
                "sdk-download-seq": {"kind": "sdk_download_seq", "remote": "/bench/src-wan.bin",
                                     "local": local},
                f"sdk-file_transfer-download-p{p}": {"kind": "sdk_download_ft", "local": local,
                                                     "remote": "/bench/src-wan.bin", "parallelism": p},
            },
        )  # fmt: skip
    finally:
        emu.proc.set_faults(latency_ms=0, bandwidth_mbps=None)
    emu.client.delete("/bench/src-wan.bin")
    src.unlink()
    cond = f"{_size(size)}, {cfg.latency_ms:g} ms + {cfg.wan_mbps:g} Mbit/s per request"
    for direction, seq in (("upload", "sdk-upload-session-seq"), ("download", "sdk-download-seq")):
        mine = table[f"client-{direction}-p{p}"]
        ft = table[f"sdk-file_transfer-{direction}-p{p}"]
        for other, label in ((table[seq], "SDK sequential"), (ft, f"SDK file_transfer p={p}")):
            r = ratio(other, mine)
            res.compare(
                "wan",
                f"{cond} {direction}: client p={p} vs {label} (x faster)",
                r,
                "info (3x / 1.2x at 50 ms alone)",
                None,
                f"client {_speed(mine)}, {label} {_speed(other)}",
            )


def suite_profile(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    """One sampled run each of the client and file_transfer, up and down, at the ``parallel`` setting (RTT
    + window); the hottest lines of all threads go to the notes (``profile``)."""
    p = cfg.parallelism
    emu = emus.get("tls")
    src = make_file(work / "src-prof.bin", cfg.big)
    emu.client.upload_file(src, "/bench/src-prof.bin", mode="overwrite", parallelism=8)
    emu.latency(cfg.latency_ms, cfg.window_bytes)  # the parallel suite's path: 50 ms RTT + TCP window
    common = {"local": str(src), "single_request_limit": cfg.single_request_limit, "sample": True}
    local = str(work / "down" / "prof.bin")
    try:
        table = res.interleave(
            emu,
            "profile",
            {
                f"client-upload-p{p}": {"kind": "client_upload", "remote": "/bench/fc.bin", "parallelism": p,
                                        "chunk_size": cfg.chunk, **common},
                f"sdk-file_transfer-upload-p{p}": {"kind": "sdk_upload_ft", "remote": "/bench/ff.bin",
                                                   "parallelism": p, **common},
                f"client-download-p{p}": {"kind": "client_download", "remote": "/bench/src-prof.bin",
                                          "local": local, "parallelism": p, "sample": True},
                f"sdk-file_transfer-download-p{p}": {"kind": "sdk_download_ft", "local": local,
                                                     "remote": "/bench/src-prof.bin", "parallelism": p,
                                                     "sample": True},
            },
            repeats=1,
        )  # fmt: skip
    finally:
        emu.latency(0)
    emu.client.delete("/bench/src-prof.bin")
    src.unlink()
    # and the mirror, on a smaller tree at the mirror suite's latency
    count = max(1, cfg.mirror_files // 10)
    _seed_tree(emu.client, work / "seed-prof", "/prof-mirror", count, cfg.mirror_file_size)
    emu.latency(cfg.mirror_latency_ms)
    try:
        table.update(
            res.interleave(
                emu,
                "profile",
                {
                    f"client-mirror-{count}-files-p{p}": {
                        "kind": "client_mirror", "remote": "/prof-mirror", "parallelism": p,
                        "local": str(work / "prof-mc"), "sample": True},
                    f"sdk-thread-pool-{count}-files-p{p}": {
                        "kind": "sdk_mirror_pool", "remote": "/prof-mirror", "parallelism": p,
                        "local": str(work / "prof-mp"), "sample": True},
                },
                repeats=1,
            )
        )  # fmt: skip
    finally:
        emu.latency(0)
    res.notes["profile"] = {
        name: {"seconds": s["runs"][0].get("seconds"), "stacks": s["runs"][0].get("stacks")}
        for name, s in table.items()
    }
    for name, s in table.items():
        stacks = s["runs"][0].get("stacks") or []
        top = "; ".join(f"{where} x{n}" for where, n in stacks[:6])
        res.compare("profile", f"{name}: hottest lines (thread samples)", s.get("median_s"), "-", None, top)


# ---------------------------------------------------------------------------------------------- output


def _client_default_chunk() -> int:
    from airflow_provider_dropbox.client.upload import DEFAULT_CHUNK_SIZE

    return DEFAULT_CHUNK_SIZE


def _size(n: int) -> str:
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n / MiB:.1f} MiB"


def _speed(s: dict[str, Any]) -> str:
    if "mib_s" not in s:
        return "error" if s.get("errors") else "n/a"
    return f"{s['mib_s']:.0f} MiB/s ({s['median_s']:.2f} s, {s['rss_growth_mib_max']:.0f} MiB RSS)"


def _emu_cpu(s: dict[str, Any]) -> str:
    """The emulator's CPU during the trial (median) and per wall-clock second: its event loop is one thread
    (hashing and disk writes go to helper threads), so about 1 s/s or more means the server is the limit."""
    if "emu_cpu_s_median" not in s or "median_s" not in s:
        return "n/a"
    return f"{s['emu_cpu_s_median']:.1f} s ({s['emu_cpu_s_median'] / s['median_s']:.2f} s/s)"


def _secs(s: dict[str, Any]) -> str:
    return f"{s['median_s']:.1f} s" if "median_s" in s else "error"


def _files(s: dict[str, Any]) -> str:
    ok = [r for r in s.get("runs", []) if "files" in r]
    return f"{ok[0]['files']} files" if ok else "?"


def product_version() -> dict[str, Any]:
    """The commit measured, and which product files differed from it (others edit the tree meanwhile)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "airflow_provider_dropbox").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "dirty_product_files": dirty}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {
        **product_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **page_reporting(),
    }


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/min_free_ms")


def page_reporting() -> dict[str, Any]:
    """This VM's free page reporting, when it has one (see BENCHMARKS.md, "Reproduce").

    With ``min_free_ms`` 0 the guest hands freed pages back to the host at once, and the next process to
    write 1 GiB pays a host fault per page as system CPU: a trial then takes 2-4x as long, at random. Every
    trial writes a fresh 1 GiB file, so the results are only comparable with the value recorded here."""
    try:
        return {"page_reporting_min_free_ms": int(PAGE_REPORTING.read_text())}
    except (OSError, ValueError):
        return {}


def print_table(res: Results) -> None:
    print()
    print(f"{'suite':<11} {'metric':<84} {'value':>9}  {'goal':<24} met")
    for row in res.rows:
        v = row["value"]
        value = "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"{row['suite']:<11} {row['metric']:<84} {value:>9}  {row['goal']:<24} {met}")
        if row["detail"]:
            print(f"{'':<11}   {row['detail']}")


def suite_emulator(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    from benchmarks import emulator_scale

    sizes = [1_000, 10_000] if cfg.quick else [10_000, 100_000]
    out = emulator_scale.run(sizes, 100_000 if cfg.quick else 1_000_000, cfg.repeats, work)
    res.notes["emulator_scale"] = out
    for row in out["listing"]:
        goal = emulator_scale.LIST_GOAL_S * row["files"] / 100_000
        res.compare(
            "emulator",
            f"full recursive list_folder of {row['files']:,} files, median s",
            row["list_median_s"],
            f"<= {goal:g} s",
            row["list_median_s"] <= goal,
            f"{row['per_entry_vs_smallest']:.2f}x the smallest size's time per entry",
        )
    mem = out["memory"]
    res.compare(
        "emulator",
        f"emulator RSS holding {mem['files']:,} files (after a restart), MiB",
        mem["rss_after_restart_bytes"] / MiB,
        "< 1024 MiB",
        mem["rss_after_restart_bytes"] < emulator_scale.MEMORY_GOAL,
        f"after populate {mem['rss_after_populate_bytes'] / MiB:.0f} MiB",
    )


def suite_scale(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    from benchmarks import scale

    scale.suite(res, work, cfg.quick)


SUITE_FUNCS: dict[str, Callable[[Results, Path, Config, Emulators], None]] = {
    "throughput": suite_throughput,
    "memory": suite_memory,
    "parallel": suite_parallel,
    "chunks": suite_chunks,
    "longpoll": suite_longpoll,
    "mirror": suite_mirror,
    "diagnose": suite_diagnose,
    "wan": suite_wan,
    "profile": suite_profile,
    "emulator": suite_emulator,
    "scale": suite_scale,
    "many_files": many_files.suite_many_files,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (the smoke test)")
    ap.add_argument("--only", action="append", choices=SUITES, help="run only this suite (repeatable)")
    ap.add_argument("--out", type=Path, help="write the JSON results here")
    ap.add_argument("--repeats", type=int, help="repeats per comparison (default 3; 1 with --quick)")
    ap.add_argument("--workdir", type=Path, help="parent folder for temp files (default: system temp)")
    ap.add_argument(
        "--no-sequential-mirror",
        action="store_true",
        help="mirror: skip the sequential SDK baseline (about 11 min a round at 10,000 files)",
    )
    ap.add_argument("--many-files", type=int, help="many_files: files per upload (default 10,000; 40 quick)")
    ap.add_argument(
        "--many-files-parts",
        help="many_files: comma-separated conditions to run, of light,default,heavy,off,big (default: all)",
    )
    sweep = ap.add_argument_group("chunks suite overrides (comma-separated lists)")
    sweep.add_argument("--sweep-chunks-mib", help="upload chunk sizes, e.g. 32,48")
    sweep.add_argument("--sweep-parallelism", help="upload parallelism values, e.g. 8")
    sweep.add_argument("--sweep-parts-mib", help="download part sizes ('' skips the download sweep)")
    sweep.add_argument("--sweep-latencies-ms", help="latencies, e.g. 0,50")
    sweep.add_argument("--sweep-size-mib", type=int, help="file size")
    ns = ap.parse_args(argv)
    cfg = Config.make(ns.quick, ns.repeats)
    if ns.sweep_chunks_mib:
        cfg.sweep_chunks = [int(x) * MiB for x in ns.sweep_chunks_mib.split(",")]
    if ns.sweep_parallelism:
        cfg.sweep_parallelism = [int(x) for x in ns.sweep_parallelism.split(",")]
    if ns.sweep_parts_mib is not None:
        cfg.sweep_parts = [int(x) * MiB for x in ns.sweep_parts_mib.split(",") if x]
    if ns.sweep_latencies_ms:
        cfg.sweep_latencies = [float(x) for x in ns.sweep_latencies_ms.split(",")]
    if ns.sweep_size_mib:
        cfg.sweep_size = ns.sweep_size_mib * MiB
    cfg.mirror_sequential = not ns.no_sequential_mirror
    if ns.many_files:
        cfg.many_files = ns.many_files
    if ns.many_files_parts:
        cfg.many_files_parts = tuple(x.strip() for x in ns.many_files_parts.split(",") if x.strip())
    suites = ns.only or list(SUITES)
    res = Results(cfg)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dropbox-bench-", dir=ns.workdir))
    failed: list[str] = []
    emus = Emulators(work)
    args = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python -m benchmarks.run", shlex.join(args)]).rstrip()

    def save() -> None:  # after every suite, so a long run keeps what it measured so far
        if ns.out:
            out = {
                "command": command,
                "machine": machine(),
                "config": dict(vars(cfg)),
                "suites": suites,
                "seconds": round(time.monotonic() - started, 1),
                "comparisons": res.rows,
                "variants": res.variants,
                "notes": res.notes,
            }
            ns.out.write_text(json.dumps(out, indent=2, default=str) + "\n")

    try:
        for name in suites:
            print(f"== {name}", flush=True)
            res.notes.setdefault("product_at_start", {})[name] = product_version()
            res.notes.setdefault("load_average_at_start", {})[name] = [round(x, 2) for x in os.getloadavg()]
            t0 = time.monotonic()
            try:
                SUITE_FUNCS[name](res, work, cfg, emus)
            except Exception as exc:  # keep going: one broken suite should not hide the others' numbers
                failed.append(name)
                res.notes.setdefault("suite_errors", {})[name] = repr(exc)
                print(f"  suite {name} failed: {exc!r}", flush=True)
            res.notes.setdefault("suite_seconds", {})[name] = round(time.monotonic() - t0, 1)
            res.notes.setdefault("load_average_at_end", {})[name] = [round(x, 2) for x in os.getloadavg()]
            save()
    finally:
        emus.close()
        shutil.rmtree(work, ignore_errors=True)
    print_table(res)
    if ns.out:
        print(f"\nresults written to {ns.out}")
    errors = sum(s.get("errors", 0) for s in res.variants.values() if isinstance(s.get("errors"), int))
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
