"""The emulator at scale: full ``list_folder`` listing time and resident memory for big trees.

Trees are made with the emulator's bulk creator (``POST /_emulator/populate``), files grouped 1,000 per
folder. For each size a fresh emulator process is started, filled, and listed fully (recursive, pages of
2,000, raw HTTP, one ``requests.Session``) ``--repeats`` times; the median is reported with the per-entry
cost relative to the smallest size in the same run (1.0 = linear). Also timed: paging
``list_folder/continue`` from a cursor taken just before the tree was filled (all N items as changes).
Resident memory is the emulator process's ``VmRSS`` after filling, and ``VmRSS`` after a restart that
loads the tree from its database.

Run: ``.venv/bin/python -m benchmarks.emulator_scale [--sizes 10000,100000] [--memory-files 1000000]``
(also ``python -m benchmarks.run --only emulator``); writes ``benchmarks/results/emulator_scale.json``.
Goals (issue 12): 100k entries listed in at most 3 s; 1,000,000 entries held in under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, start_emulator

OUT = Path(__file__).resolve().parent / "results" / "emulator_scale.json"
LIST_GOAL_S = 3.0
MEMORY_GOAL = 1 << 30


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def _token(http: requests.Session, base: str) -> str:
    r = http.post(
        f"{base}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": DEV_REFRESH_TOKEN,
            "client_id": DEV_APP_KEY,
            "client_secret": DEV_APP_SECRET,
        },
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def populate(base: str, files: int) -> float:
    """Fill ``/scale`` with ``files`` 16-byte files, 1,000 per folder; seconds taken."""
    t0 = time.perf_counter()
    body = {"path": "/scale", "files": files, "size": 16, "per_folder": 1000}
    requests.post(f"{base}/_emulator/populate", json=body, timeout=1800).raise_for_status()
    return time.perf_counter() - t0


def latest_cursor(base: str, path: str) -> str:
    with requests.Session() as http:
        headers = {"Authorization": f"Bearer {_token(http, base)}", "Content-Type": "application/json"}
        http.post(f"{base}/2/files/create_folder_v2", data=json.dumps({"path": path}), headers=headers)
        r = http.post(
            f"{base}/2/files/list_folder/get_latest_cursor",
            data=json.dumps({"path": path, "recursive": True, "limit": 2000}),
            headers=headers,
            timeout=60,
        )
        r.raise_for_status()
        return str(r.json()["cursor"])


def list_all(base: str, path: str, cursor: str | None = None) -> tuple[int, float]:
    """(entries, seconds) of a full recursive listing of ``path``, or of every change after ``cursor``."""
    with requests.Session() as http:
        headers = {"Authorization": f"Bearer {_token(http, base)}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        if cursor is None:
            route, arg = "list_folder", {"path": path, "recursive": True, "limit": 2000}
        else:
            route, arg = "list_folder/continue", {"cursor": cursor}
        r = http.post(f"{base}/2/files/{route}", data=json.dumps(arg), headers=headers, timeout=600)
        r.raise_for_status()
        body = r.json()
        n = len(body["entries"])
        while body["has_more"]:
            r = http.post(
                f"{base}/2/files/list_folder/continue",
                data=json.dumps({"cursor": body["cursor"]}),
                headers=headers,
                timeout=600,
            )
            r.raise_for_status()
            body = r.json()
            n += len(body["entries"])
        return n, time.perf_counter() - t0


def measure_listing(work: Path, files: int, repeats: int) -> dict[str, Any]:
    emu = start_emulator(work / f"list-{files}")
    try:
        cursor = latest_cursor(emu.base_url, "/scale")
        fill_s = populate(emu.base_url, files)
        changes = [list_all(emu.base_url, "/scale", cursor) for _ in range(repeats)]
        runs = [list_all(emu.base_url, "/scale") for _ in range(repeats)]
        entries = runs[0][0]
        median = statistics.median(s for _, s in runs)
        return {
            "files": files,
            "entries": entries,
            "populate_s": round(fill_s, 2),
            "list_s": [round(s, 3) for _, s in runs],
            "list_median_s": round(median, 3),
            "us_per_entry": round(median / entries * 1e6, 2),
            "continue_entries": changes[0][0],
            "continue_s": [round(s, 3) for _, s in changes],
            "continue_median_s": round(statistics.median(s for _, s in changes), 3),
            "rss_bytes": _rss(emu.process.pid),
        }
    finally:
        emu.stop()


def measure_memory(work: Path, files: int) -> dict[str, Any]:
    data = work / f"mem-{files}"
    emu = start_emulator(data)
    try:
        idle = _rss(emu.process.pid)
        fill_s = populate(emu.base_url, files)
        filled = _rss(emu.process.pid)
        filled_peak = _rss(emu.process.pid, "VmHWM")
    finally:
        emu.stop()
    t0 = time.perf_counter()
    emu = start_emulator(data, startup_timeout=600)
    try:
        load_s = time.perf_counter() - t0
        loaded = _rss(emu.process.pid)
    finally:
        emu.stop()
    return {
        "files": files,
        "populate_s": round(fill_s, 1),
        "idle_rss_bytes": idle,
        "rss_after_populate_bytes": filled,
        "peak_rss_during_populate_bytes": filled_peak,
        "restart_s": round(load_s, 1),
        "rss_after_restart_bytes": loaded,
    }


def run(sizes: list[int], memory_files: int, repeats: int, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="emu-scale-", dir=workdir) as tmp:
        work = Path(tmp)
        listing = [measure_listing(work, n, repeats) for n in sizes]
        memory = measure_memory(work, memory_files) if memory_files else None
    base = listing[0]["us_per_entry"]
    for row in listing:
        row["per_entry_vs_smallest"] = round(row["us_per_entry"] / base, 2)
    return {"listing": listing, "memory": memory}


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    ap = argparse.ArgumentParser(prog="python -m benchmarks.emulator_scale", description=description)
    ap.add_argument("--sizes", default="10000,100000", help="files per listed tree (comma-separated)")
    ap.add_argument("--memory-files", type=int, default=1_000_000, help="0 skips the memory measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    ns = ap.parse_args(argv)
    sizes = [int(x) for x in ns.sizes.split(",")]
    started = time.monotonic()
    result = run(sizes, ns.memory_files, ns.repeats)
    args = sys.argv[1:] if argv is None else argv
    result["command"] = " ".join([".venv/bin/python -m benchmarks.emulator_scale", *args])
    result["seconds"] = round(time.monotonic() - started, 1)
    ns.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| files | entries listed | full listing (median) | per entry vs smallest | continue over all |")
    print("|---|---|---|---|---|")
    for row in result["listing"]:
        print(
            f"| {row['files']:,} | {row['entries']:,} | {row['list_median_s']:.2f} s "
            f"(goal <= {LIST_GOAL_S:g} s at 100k) | {row['per_entry_vs_smallest']:.2f}x "
            f"| {row['continue_median_s']:.2f} s ({row['continue_entries']:,} entries) |"
        )
    mem = result["memory"]
    if mem:
        mib = 1024 * 1024
        print(
            f"\n{mem['files']:,} files: RSS {mem['rss_after_populate_bytes'] / mib:.0f} MiB after populate "
            f"(peak {mem['peak_rss_during_populate_bytes'] / mib:.0f} MiB), "
            f"{mem['rss_after_restart_bytes'] / mib:.0f} MiB after a restart "
            f"(goal < {MEMORY_GOAL / mib:.0f} MiB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
