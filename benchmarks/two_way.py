"""The two-way sync's engine at scale: what a run costs at 1k and 100k synced files (issue 17).

Engine-side costs only, like the ``scale`` suite: the remote is the in-memory fake of
``tests/sync/fakes.py`` (no HTTP). Each size runs in one fresh child process: seed the fake (100-byte
files in folders of 100), a first two-way run into a real folder (which downloads everything), ``os.sync()``,
then, timed in-process: local change detection alone over the unchanged tree (the stat walk and the
comparison with the index, CPU time), a run with no change on either side (wall and CPU time, files hashed),
a run after one change on each side, and (median of 5) a focused run after one change on each side, told
the local path that changed (``local_changes``, as the local-folder watcher's events tell the operator).

``.venv/bin/python -m benchmarks.two_way [--sizes 1000,100000] [--out FILE]``
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

REPO = Path(__file__).resolve().parent.parent


def child(n: int, work: Path) -> dict[str, Any]:
    from airflow_provider_dropbox.sync import hashing
    from airflow_provider_dropbox.sync.two_way import decide, sync_two_way
    from tests.sync.fakes import FakeClient, lower

    class Fake(FakeClient):
        def upload_file(self, local_path: str, remote_path: str, **_kw: Any) -> dict[str, Any]:  # type: ignore[override]
            return super().upload_file(local_path, remote_path)

        def move(self, src: str, dst: str, autorename: bool = False) -> dict[str, Any]:  # type: ignore[override]
            super().move(src, dst)
            return self._meta(lower(dst))

        def create_folder(self, display: str, exist_ok: bool = True) -> dict[str, Any]:  # type: ignore[override]
            super().create_folder(display)
            return self._meta(lower(display))

    fake = Fake()
    for i in range(n):
        fake.put(f"/Root/d{i // 100:04d}/f{i:07d}.txt", os.urandom(50).hex().encode())
    dest = work / "local"
    dest.mkdir()
    t0 = time.monotonic()
    first = sync_two_way(fake, "/Root", dest)
    initial = time.monotonic() - t0
    assert first.ok and first.done.get("download") == n, first.done
    os.sync()
    hashed = {"n": 0}
    real_hash = hashing.file_content_hash

    def counting(path: Any) -> str:
        hashed["n"] += 1
        return real_hash(path)

    decide.file_content_hash = counting  # type: ignore[attr-defined]

    def timed() -> tuple[float, float, Any]:
        w0, c0 = time.monotonic(), time.process_time()
        report = sync_two_way(fake, "/Root", dest)
        return time.monotonic() - w0, time.process_time() - c0, report

    from airflow_provider_dropbox.client.folders import exclude_matcher
    from airflow_provider_dropbox.sync.two_way.index import SyncIndex
    from airflow_provider_dropbox.sync.two_way.scan import scan_local

    index = SyncIndex.open(str(dest / ".dropbox-sync"))
    synced = index.entries()
    index.close()
    c0 = time.process_time()
    scan = scan_local(str(dest.resolve()), exclude_matcher(()))
    acts = decide.decide(synced, {}, scan, str(dest.resolve()), exclude_matcher(()), "keep_both", first=False)
    detect_cpu = time.process_time() - c0
    assert acts == [], acts[:3]
    idle_wall, idle_cpu, idle = timed()
    assert idle.ok and idle.done == {}, idle.done
    idle_hashed = hashed["n"]
    (dest / "d0000" / "f0000000.txt").write_bytes(b"local change")
    fake.put("/Root/d0001/f0000100.txt", b"remote change")
    one_wall, one_cpu, one = timed()
    assert one.ok and one.done == {"upload": 1, "download": 1}, one.done
    focused: list[tuple[float, float]] = []
    for k in range(5):  # told the local change, as the local-folder watcher's events tell the operator
        (dest / "d0002" / "f0000200.txt").write_bytes(f"local change {k}".encode())
        fake.put("/Root/d0003/f0000300.txt", f"remote change {k}".encode())
        w0, c0 = time.monotonic(), time.process_time()
        told = sync_two_way(fake, "/Root", dest, local_changes=["d0002/f0000200.txt"])
        focused.append((time.monotonic() - w0, time.process_time() - c0))
        assert told.ok and told.focused and told.done == {"upload": 1, "download": 1}, told.done
    return {
        "initial_s": round(initial, 2),
        "no_change_wall_s": round(idle_wall, 4),
        "no_change_cpu_s": round(idle_cpu, 4),
        "no_change_files_hashed": idle_hashed,
        "local_detection_cpu_s": round(detect_cpu, 4),
        "one_change_each_side_wall_s": round(one_wall, 4),
        "one_change_each_side_cpu_s": round(one_cpu, 4),
        "focused_one_change_each_side_wall_s": round(statistics.median(w for w, _ in focused), 4),
        "focused_one_change_each_side_cpu_s": round(statistics.median(c for _, c in focused), 4),
    }


def measure(sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"two-way-{n}-"))
        try:
            run = subprocess.run(
                [sys.executable, "-m", "benchmarks.two_way", "--child", str(n), "--work", str(work)],
                cwd=REPO, capture_output=True, text=True, timeout=3600, check=False,
            )  # fmt: skip
            if run.returncode:
                raise RuntimeError(run.stderr[-3000:])
            out[str(n)] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"  {n:>7} files: {json.dumps(out[str(n)])}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.two_way", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", type=int)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.work)))
        return 0
    results = measure([int(s) for s in args.sizes.split(",")])
    sizes = sorted(results, key=int)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        for key in ("one_change_each_side_wall_s", "focused_one_change_each_side_wall_s"):
            ratio = large[key] / small[key]
            results[f"ratio_{sizes[-1]}_vs_{sizes[0]}_{key}"] = round(ratio, 2)
            print(f"  {key}: {sizes[-1]} files / {sizes[0]} files = {ratio:.2f}x", flush=True)
    if args.out:
        cmd = "python -m benchmarks.two_way " + " ".join(argv if argv is not None else sys.argv[1:])
        args.out.write_text(json.dumps({"command": cmd, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
