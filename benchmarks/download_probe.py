"""Download A/B probe: ``.venv/bin/python -m benchmarks.download_probe [--size-mib N] [--repeats N]``.

Compares variants of the client's download (module constants overridden in the child, or the download
module of another git commit loaded in its place) with the raw ``requests`` baseline, interleaved on one
emulator, every trial in a fresh child process measured by ``benchmarks.trial.Meter`` (same clock, CPU and
RSS as ``benchmarks.run``). For tuning ``client/download.py``; the goals are judged by ``benchmarks.run``.

Conditions (``--condition``): ``plain`` (loopback HTTP, no latency: the ``throughput`` setting), ``tls``
(loopback HTTPS, no latency), ``tls50`` (HTTPS + 50 ms per request), ``window`` (HTTPS + 50 ms +
4 MiB TCP window: ``parallel``), ``wan`` (HTTPS + 50 ms + 200 Mbit/s per request: ``wan``);
``--bandwidth-mbps`` caps every request on top of any of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent

VARIANTS: dict[str, dict[str, Any]] = {
    "raw": {"kind": "raw_download"},
    "raw-again": {"kind": "raw_download"},
    "raw-readinto": {"kind": "raw_download_readinto"},
    "old-p1": {"parallelism": 1, "commit": "5eab6cf"},
    "old-p8": {"parallelism": 8, "commit": "5eab6cf"},
    "new-p1": {"parallelism": 1},
    "new-p8": {"parallelism": 8},
    "new-p8-split": {"parallelism": 8, "set": {"FAST_STREAM": 1 << 62}},
    "new-p1-inline-hash": {"parallelism": 1, "set": {"HASH_BEHIND_MIN": 1 << 62}},
    "new-p8-inline-hash": {"parallelism": 8, "set": {"HASH_BEHIND_MIN": 1 << 62}},
    "new-p1-hash2": {"parallelism": 1, "set_hash": {"HASH_BEHIND_THREADS": 2}},
    "new-p1-no-writebehind": {"parallelism": 1, "set": {"start_writeback": None}},
    # 8877c9a hashed single streams on a helper thread (a "pipe" of 256 KiB buffers); since then inline.
    "pipe-p1": {"parallelism": 1, "commit": "8877c9a"},
    "pipe-p8": {"parallelism": 8, "commit": "8877c9a"},
    "new-p1-chunk1m": {"parallelism": 1, "set": {"READ_CHUNK": MiB}},
    "new-p1-chunk128k": {"parallelism": 1, "set": {"READ_CHUNK": 128 * 1024}},
    "new-p1-chunk64k": {"parallelism": 1, "set": {"READ_CHUNK": 64 * 1024}},
    "new-p1-no-fsync": {"parallelism": 1, "no_fsync": True},
    "new-p1-no-verify": {"parallelism": 1, "no_verify": True},
    "new-p1-no-verify-no-fsync": {"parallelism": 1, "no_verify": True, "no_fsync": True},
    "new-p1-bare": {"parallelism": 1, "no_verify": True, "no_fsync": True, "set": {"start_writeback": None}},
    "new-p1-chunk1m-behind": {"parallelism": 1, "set": {"READ_CHUNK": MiB}},
    "sdk-seq": {"kind": "sdk_download_seq"},
    "sdk-ft-p8": {"kind": "sdk_download_ft", "parallelism": 8},
}


def child(task: dict[str, Any]) -> None:
    """Apply the variant's overrides to the download module, then run the trial the suites use."""
    from benchmarks import trial

    trial.EMULATOR_PID = task.get("emulator_pid")
    if task.get("commit"):
        import importlib.util

        from airflow_provider_dropbox.client import api

        source = subprocess.run(
            ["git", "show", f"{task['commit']}:airflow_provider_dropbox/client/download.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        spec = importlib.util.spec_from_loader("old_download", loader=None)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["old_download"] = module
        exec(compile(source, "old_download.py", "exec"), module.__dict__)
        api._download = module  # type: ignore[attr-defined]
    if task.get("set"):
        from airflow_provider_dropbox.client import download

        for name, value in task["set"].items():
            setattr(download, name, value)
    if task.get("set_hash"):
        from airflow_provider_dropbox.client import content_hash

        for name, value in task["set_hash"].items():
            setattr(content_hash, name, value)
    kind = task.get("kind", "client_download")
    try:
        result = trial.KINDS[kind](task)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
    print("RESULT " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    first_line = (__doc__ or "").split("\n")[0]
    ap = argparse.ArgumentParser(prog="python -m benchmarks.download_probe", description=first_line)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--condition", choices=("plain", "tls", "tls50", "wan", "window"), default="plain")
    ap.add_argument("--bandwidth-mbps", type=float, help="also cap each request at this many Mbit/s")
    ap.add_argument("--variants", default="raw,old-p1,old-p8,new-p1,new-p8", help="comma-separated")
    ap.add_argument("--out", type=Path)
    ns = ap.parse_args(argv)
    if ns.child:
        child(json.loads(ns.child))
        return 0

    from benchmarks.run import Emulators, machine, make_file

    names = ns.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    work = Path(tempfile.mkdtemp(prefix="dropbox-probe-"))
    emus = Emulators(work)
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        emu = emus.get("plain" if ns.condition == "plain" else "tls")
        src = make_file(work / "src.bin", ns.size_mib * MiB)
        emu.client.upload_file(src, "/probe/src.bin", mode="overwrite", parallelism=8)
        src.unlink()
        if ns.condition == "tls50":
            emu.proc.set_faults(latency_ms=50)
        elif ns.condition == "window":
            emu.proc.set_faults(latency_ms=50, window_bytes=4 * MiB)
        elif ns.condition == "wan":
            emu.proc.set_faults(latency_ms=50, bandwidth_mbps=200)
        if ns.bandwidth_mbps:
            emu.proc.set_faults(bandwidth_mbps=ns.bandwidth_mbps)
        local = str(work / "down" / "probe.bin")
        (work / "down").mkdir()
        env = {**os.environ, **emu.env, "PYTHONUNBUFFERED": "1"}
        for r in range(ns.repeats):
            for name in names:
                task = {"base_url": emu.base_url, "cafile": emu.cafile, "remote": "/probe/src.bin",
                        "emulator_pid": emu.proc.process.pid,
                        "local": local, "kind": "client_download", **VARIANTS[name]}  # fmt: skip
                proc = subprocess.run(
                    [sys.executable, "-m", "benchmarks.download_probe", "--child", json.dumps(task)],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
                )  # fmt: skip
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                res = json.loads(lines[-1][7:]) if lines else {"error": proc.stderr[-2000:]}
                runs[name].append(res)
                shown = (
                    f"{res.get('seconds', 0):.2f} s cpu {res.get('cpu_s')} (sys {res.get('sys_s')}) "
                    f"faults {res.get('minor_faults')} steal {res.get('steal_s')} "
                    f"emu {res.get('emu_cpu_s')} rss {res.get('rss_growth_mib')}"
                )
                print(f"  #{r + 1} {name}: {shown if 'seconds' in res else res['error'][-300:]}", flush=True)
        emu.proc.set_faults(latency_ms=0, bandwidth_mbps=None, window_bytes=None)
    finally:
        emus.close()
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    base = None
    for name, rs in runs.items():
        ok = [r for r in rs if "seconds" in r]
        if not ok:
            summary[name] = {"errors": len(rs)}
            continue
        med = statistics.median(r["seconds"] for r in ok)
        summary[name] = {
            "median_s": med,
            "min_s": min(r["seconds"] for r in ok),
            "max_s": max(r["seconds"] for r in ok),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in ok),
            "rss_growth_mib_max": max(r["rss_growth_mib"] for r in ok),
            "errors": len(rs) - len(ok),
        }
        if name == "raw":
            base = med
    print()
    for name, s in summary.items():
        if "median_s" not in s:
            print(f"{name:<26} errors {s['errors']}")
            continue
        x = f"{base / s['median_s']:.2f}x raw" if base else ""
        print(
            f"{name:<26} median {s['median_s']:.2f} s (min {s['min_s']:.2f}, max {s['max_s']:.2f}) "
            f"cpu {s['cpu_s_median']:.2f} s  rss max {s['rss_growth_mib_max']:.1f} MiB  {x}"
        )
    if ns.out:
        command = ".venv/bin/python -m benchmarks.download_probe " + " ".join(sys.argv[1:])
        ns.out.write_text(
            json.dumps(
                {"command": command, "machine": machine(), "seconds": round(time.monotonic() - started, 1),
                 "summary": summary, "runs": runs},
                indent=2,
            ) + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
