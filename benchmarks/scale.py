"""The mirror engine at scale: what an incremental run costs at 1k, 10k, 100k files (issue 12).

Engine-side costs only: the remote is the in-memory fake of ``tests/sync/fakes.py`` (no HTTP), so the
numbers are the index, layout, plan, guards, apply and commit, not the network. Every size runs in two
fresh child processes: the first seeds the fake (100-byte files in folders of 100, listed in pages of
2,000 built as they are read), runs the initial mirror into a real folder (wall time, peak RSS growth over
the seeded process) and pickles the fake; the second loads it and times, in-process:

- an incremental run after one changed file (wall time, peak RSS growth over the loaded process);
- a run with no change (wall time, bytes the process wrote: ``wchar`` of ``/proc/self/io``);
- a ``full_rescan`` with nothing changed (wall time, peak RSS growth: the streamed reconcile).

Standalone: ``.venv/bin/python -m benchmarks.scale [--sizes 1000,10000,100000] [--out FILE]``; also the
``scale`` suite of ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 2_000)


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _wchar() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


PAGE_SIZE = 2_000  # entries per listing page: Dropbox's largest ``limit``


def _paged(dbx: Any) -> Any:
    """Give the fake listing pages built as they are read, as a server sends them (the listing's memory is
    then the engine's, not the fake's); ``_plain`` takes it back off before pickling."""
    from tests.sync.fakes import FakeDropbox

    class PagedFake(FakeDropbox):
        def list_folder_pages(self, path: str, recursive: bool = True) -> Any:
            self._count("list_folder")
            keys = self.listing_keys
            last = f"{self.epoch}|/root|{len(self.journal)}"
            for start in range(0, len(keys), self.page_size):
                chunk = keys[start : start + self.page_size]
                more = start + self.page_size < len(keys)
                k = chunk[-1]
                yield [self._meta(k) for k in chunk], f"{last}|{k.count('/')}|{k}" if more else last

    dbx.__class__ = PagedFake
    dbx.page_size = PAGE_SIZE
    dbx.listing_keys = sorted(dbx.nodes, key=lambda k: (k.count("/"), k))  # the server's own order
    return dbx


def _plain(dbx: Any) -> Any:
    from tests.sync.fakes import FakeDropbox

    del dbx.listing_keys
    dbx.__class__ = FakeDropbox
    return dbx


def child_seed(n: int, work: Path) -> dict[str, Any]:
    from airflow_provider_dropbox.sync import mirror
    from tests.sync.fakes import FakeDropbox

    dbx = FakeDropbox()
    for i in range(n):
        dbx.put(f"/Root/d{i // 100:04d}/f{i:07d}.txt", os.urandom(50).hex().encode())
    _paged(dbx)
    base = _rss_kib()
    reset = _reset_peak()
    t0 = time.monotonic()
    report = mirror(dbx, "/Root", work / "m", parallelism=8)
    wall = time.monotonic() - t0
    growth = _peak_kib() - base if reset else None
    assert report.ok, report.errors
    _plain(dbx)  # the incremental child loads it without the local subclass
    with open(work / "fake.pkl", "wb") as fh:
        pickle.dump(dbx, fh)
    os.sync()  # the initial run's dirty pages are written back here, not inside the timed runs' fsyncs
    folder = work / "m" / ".dropbox-mirror"
    state_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name != "lock")
    return {
        "initial_s": round(wall, 3),
        "initial_peak_mib": round(_peak_kib() / 1024, 1),
        "initial_rss_growth_mib": None if growth is None else round(growth / 1024, 1),
        "state_bytes": state_bytes,
    }


def child_incremental(work: Path) -> dict[str, Any]:
    from airflow_provider_dropbox.sync import mirror

    with open(work / "fake.pkl", "rb") as fh:
        dbx = pickle.load(fh)  # our own file, written by the seeding child
    dest = work / "m"
    dbx.put("/Root/d0000/f0000000.txt", b"changed " + os.urandom(8).hex().encode())
    base = _rss_kib()
    reset = _reset_peak()
    t0 = time.monotonic()
    report = mirror(dbx, "/Root", dest, parallelism=8)
    one_change_s = time.monotonic() - t0
    growth = _peak_kib() - base if reset else None
    assert report.ok and report.mode == "incremental" and report.done == {"download": 1}, report.done
    w0 = _wchar()
    t0 = time.monotonic()
    report = mirror(dbx, "/Root", dest, parallelism=8)
    no_change_s = time.monotonic() - t0
    written = _wchar() - w0
    assert report.ok and not report.plan
    _paged(dbx)
    base_rescan = _rss_kib()
    reset = _reset_peak()
    t0 = time.monotonic()
    report = mirror(dbx, "/Root", dest, parallelism=8, full_rescan=True)
    rescan_s = time.monotonic() - t0
    rescan_growth = _peak_kib() - base_rescan if reset else None
    assert report.ok and report.mode == "full" and not report.plan, report.plan[:3]
    return {
        "one_change_s": round(one_change_s, 4),
        "one_change_rss_growth_mib": None if growth is None else round(growth / 1024, 1),
        "no_change_s": round(no_change_s, 4),
        "no_change_bytes_written": written,
        "loaded_rss_mib": round(base / 1024, 1),
        "full_rescan_s": round(rescan_s, 3),
        "full_rescan_rss_growth_mib": None if rescan_growth is None else round(rescan_growth / 1024, 1),
    }


def _child(args: list[str], timeout: float, repo: Path = REPO) -> dict[str, Any]:
    """One child process; ``repo`` is the checkout whose engine it imports (a baseline, or this one)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"scale child {args} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(
    sizes: tuple[int, ...], workdir: Path | None = None, timeout: float = 3600, repo: Path = REPO
) -> dict[int, Any]:
    results: dict[int, Any] = {}
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=workdir))
        try:
            seed = _child(["--child-seed", str(n), "--work", str(work)], timeout, repo)
            inc = _child(["--child-incremental", "--work", str(work)], timeout, repo)
            results[n] = {**seed, **inc}
            print(f"  {repo.name} {n:>8} files: {json.dumps(results[n])}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return results


def suite(res: Any, work: Path, quick: bool) -> None:
    """The ``scale`` suite of ``benchmarks.run``: rows against the issue-12 bars."""
    sizes = QUICK_SIZES if quick else SIZES
    results = measure(sizes, work)
    res.notes["scale"] = {str(n): r for n, r in results.items()}
    small, big = results[sizes[0]], results[sizes[-1]]
    r = big["one_change_s"] / small["one_change_s"]
    res.compare(
        "scale",
        f"incremental run after one change (engine, fake remote): {sizes[-1]} vs {sizes[0]} files (x slower)",
        round(r, 1),
        "<= 2x",
        r <= 2.0,
        ", ".join(f"{n}: {v['one_change_s']:.3f} s" for n, v in results.items()),
    )
    growth = big["one_change_rss_growth_mib"]
    res.compare(
        "scale",
        f"peak RSS growth of that run at {sizes[-1]} files (MiB)",
        growth,
        "<= 64 MiB",
        None if growth is None else growth <= 64,
        ", ".join(f"{n}: {v['one_change_rss_growth_mib']} MiB" for n, v in results.items()),
    )
    worst = max(v["no_change_bytes_written"] for v in results.values())
    res.compare(
        "scale",
        "bytes written by a run with no change (any size)",
        worst,
        "<= 64 KiB",
        worst <= 64 * 1024,
        ", ".join(f"{n}: {v['no_change_bytes_written']} B" for n, v in results.items()),
    )
    for key, what in (("initial", "the initial mirror"), ("full_rescan", "a full_rescan, nothing changed")):
        grown = big.get(f"{key}_rss_growth_mib")  # over the process right before the call
        res.compare(
            "scale",
            f"peak RSS growth of {what} at {sizes[-1]} files (MiB)",
            grown,
            "<= 200 MiB",
            None if grown is None else grown <= 200,
            ", ".join(
                f"{n}: {v.get(key + '_s')} s, {v.get(key + '_rss_growth_mib')} MiB"
                for n, v in results.items()
            ),
        )
    per_small = results[sizes[-2]]["initial_s"] / sizes[-2]
    per_big = big["initial_s"] / sizes[-1]
    res.compare(
        "scale",
        f"initial mirror, time per file at {sizes[-1]} vs {sizes[-2]} files (x)",
        round(per_big / per_small, 2),
        "<= 1.5x",
        per_big / per_small <= 1.5,
        ", ".join(
            f"{n}: {v['initial_s']:.1f} s, peak {v['initial_peak_mib']} MiB" for n, v in results.items()
        ),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", help="comma-separated file counts (default 1000,10000,100000)")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--baseline-repo", type=Path, help="also measure the engine of this checkout (e.g. a git worktree)"
    )
    ap.add_argument("--work", type=Path)
    ap.add_argument("--child-seed", type=int)
    ap.add_argument("--child-incremental", action="store_true")
    ns = ap.parse_args(argv)
    if ns.child_seed is not None:
        print(json.dumps(child_seed(ns.child_seed, ns.work)))
        return 0
    if ns.child_incremental:
        print(json.dumps(child_incremental(ns.work)))
        return 0
    sizes = tuple(int(x) for x in ns.sizes.split(",")) if ns.sizes else SIZES
    out: dict[str, Any] = {"command": " ".join(sys.argv)}
    if ns.baseline_repo:
        out["baseline"] = measure(sizes, ns.work, repo=ns.baseline_repo.resolve())
    out["results"] = measure(sizes, ns.work)
    if ns.out:
        ns.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(REPO)).split(os.pathsep)[0])
    sys.exit(main())
