"""The ``many_files`` suite: thousands of small files the way Dropbox behaves, and big files on a capped link.

1. ``upload_folder`` of N files of 10 KiB at 30 ms RTT with the emulator's namespace write-lock model on
   (docs/emulator.md), against an official-SDK ``ThreadPoolExecutor(8)`` calling ``files_upload`` with the
   SDK's own retry behaviour (it retries 429s forever, sleeping ``Retry-After``). Each side's files are
   counted afterwards: lost (expected, not there) and duplicated (there, not expected, e.g. ``f (1).bin``).
   Run at three settings of the model's parameters, then once with the model off.
2. 1 GiB upload and download with a per-connection cap (``bandwidth_mbps``) and 50 ms RTT, against the SDK's
   ``file_transfer`` at the same parallelism, plus the same at loopback (no cap, no latency).

The trial functions run in ``benchmarks.trial`` children like every other suite's.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import Config, Emulators, Results

KiB = 1024
MiB = 1024 * KiB

FILE_SIZE = 10 * KiB
RTT_MS = 30.0
LOCK_SETTINGS: list[tuple[str, dict[str, float]]] = [
    ("light", {"write_lock_commit_ms": 10, "write_lock_entry_ms": 0.5, "write_lock_wait_ms": 200}),
    ("default", {"write_lock_commit_ms": 20, "write_lock_entry_ms": 1, "write_lock_wait_ms": 100}),
    ("heavy", {"write_lock_commit_ms": 50, "write_lock_entry_ms": 2, "write_lock_wait_ms": 50}),
]
"""Three guesses at Dropbox's unpublished service times (docs/emulator.md explains the range)."""
CAP_MBPS = 200.0
CAP_RTT_MS = 50.0


# ---------------------------------------------------------------------------------------------- trials


def _expected(local: str) -> set[str]:
    base = Path(local)
    return {p.relative_to(base).as_posix().lower() for p in base.rglob("*") if p.is_file()}


def _count(client: Any, remote: str, expected: set[str]) -> dict[str, int]:
    """Lost and duplicated files under ``remote`` (listed through our client, outside the timed part)."""
    prefix = len(remote) + 1
    files = [
        e["path_lower"][prefix:] for e in client.list_folder(remote, recursive=True) if e[".tag"] == "file"
    ]
    present = set(files)
    return {
        "files": len(files),
        "lost": len(expected - present),
        "duplicated": len(files) - len(present & expected),
    }


def _trial_module(task: dict[str, Any]) -> Any:
    """``benchmarks.trial`` as imported here (the child runs it as ``__main__``, a separate module object),
    told the emulator's pid so its Meter reports the server's CPU too."""
    from benchmarks import trial

    trial.EMULATOR_PID = task.get("emulator_pid")
    return trial


def client_many_upload(task: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_dropbox.client.folders import upload_folder

    t = _trial_module(task)
    Meter, _result, make_client = t.Meter, t._result, t.make_client

    p = int(task["parallelism"])
    client = make_client(task, p)
    expected = _expected(task["local"])
    remote = _own(task["remote"])
    with Meter() as m:
        upload_folder(client, task["local"], remote, parallelism=p)
    counts = _count(client, remote, expected)
    client.delete(remote)
    client.close()
    return _result(m, len(expected) * FILE_SIZE, **counts)


def sdk_many_upload(task: dict[str, Any]) -> dict[str, Any]:
    """ThreadPoolExecutor(p) calling files_upload; the SDK retries 429 itself (Retry-After)."""
    t = _trial_module(task)
    Meter, _result, make_client, make_sdk = t.Meter, t._result, t.make_client, t.make_sdk

    p = int(task["parallelism"])
    dbx = make_sdk(task, p)
    base = Path(task["local"])
    paths = sorted(q for q in base.rglob("*") if q.is_file())
    failed: list[str] = []
    remote = _own(task["remote"])

    def one(path: Path) -> None:
        try:
            dbx.files_upload(path.read_bytes(), f"{remote}/{path.relative_to(base).as_posix()}")
        except Exception as exc:  # counted, as a user of the pool would see it
            failed.append(f"{path.name}: {type(exc).__name__}")

    with Meter() as m, ThreadPoolExecutor(max_workers=p) as pool:
        list(pool.map(one, paths))
    client = make_client(task, 8)
    counts = _count(client, remote, _expected(task["local"]))
    client.delete(remote)
    client.close()
    return _result(m, len(paths) * FILE_SIZE, failed=len(failed), failed_sample=failed[:3], **counts)


def _own(remote: str) -> str:
    """A remote folder of this trial's own (a repeat never sees an earlier one's files)."""
    return f"{remote}-{time.time_ns()}"


KINDS = {f.__name__: f for f in (client_many_upload, sdk_many_upload)}


# ---------------------------------------------------------------------------------------------- suite


def _make_tree(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per_dir = 100
    for i in range(count):
        d = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(FILE_SIZE))


def suite_many_files(res: Results, work: Path, cfg: Config, emus: Emulators) -> None:
    from benchmarks.run import _emu_cpu, _secs, _size, _speed, at_least, ratio

    p = cfg.parallelism
    n = cfg.many_files
    emu = emus.get("tls")
    tree = work / "many"
    _make_tree(tree, n)
    rtt = 2.0 if cfg.quick else RTT_MS
    parts = set(cfg.many_files_parts)
    settings = LOCK_SETTINGS[1:2] if cfg.quick else LOCK_SETTINGS
    settings = [(name, lock) for name, lock in settings if name in parts]

    def compare(label: str, lock: dict[str, Any], goal: float) -> None:
        emu.proc.set_faults(latency_ms=rtt, **lock)
        tasks = {
            f"{label}/client-upload_folder-p{p}": {"kind": "client_many_upload", "local": str(tree),
                                                   "remote": "/many/client", "parallelism": p},
            f"{label}/sdk-pool-files_upload-p{p}": {"kind": "sdk_many_upload", "local": str(tree),
                                                    "remote": "/many/sdk", "parallelism": p},
        }  # fmt: skip
        table = res.interleave(emu, "many_files", tasks)
        mine, sdk = table[f"{label}/client-upload_folder-p{p}"], table[f"{label}/sdk-pool-files_upload-p{p}"]
        r = ratio(sdk, mine)
        res.compare(
            "many_files",
            f"{n} files of {FILE_SIZE // KiB} KiB, {rtt:g} ms RTT, {label}: client upload_folder p={p} vs "
            f"SDK pool of {p} files_upload (x faster)",
            r,
            f">= {goal:g}x",
            at_least(r, goal),
            f"client {_secs(mine)}, SDK pool {_secs(sdk)}; lost/duplicated client {_lost(mine)}, SDK "
            f"{_lost(sdk)}; emulator CPU {_emu_cpu(mine)} / {_emu_cpu(sdk)}",
        )
        bad = []
        for who, s in (("client", mine), ("SDK pool", sdk)):
            res.compare(
                "many_files",
                f"{label}: {who} files lost / duplicated",
                None,
                "0 / 0",
                _lost(s) == "0/0",
                f"{_lost(s)} (per run: {[_lost_run(x) for x in s['runs']]})",
            )
            if _lost(s) != "0/0":
                bad.append(f"{who} {_lost(s)}")
        # Rows first (the results file keeps them), then fail the suite: a lost or duplicated file is a bug.
        assert not bad, f"{label}: files lost/duplicated (or a trial failed): {', '.join(bad)}"

    try:
        for name, lock in settings:
            compare(f"lock model {name} ({_lock_text(lock)})", {"write_lock": True, **lock}, 3.0)
        if "off" in parts:
            compare("lock model off", {"write_lock": False}, 1.0)
    finally:
        emu.proc.set_faults(latency_ms=0, write_lock=False)
    if "big" not in parts:
        return

    # Big files on a capped link (per connection) with RTT, and at loopback.
    size = cfg.big
    src = work / "many-big.bin"
    from benchmarks.run import make_file

    make_file(src, size)
    emu.client.upload_file(src, "/bench/many-big.bin", mode="overwrite", parallelism=8)
    local = str(work / "down" / "many-big.bin")
    cap, cap_rtt = (800.0, 5.0) if cfg.quick else (CAP_MBPS, CAP_RTT_MS)
    conditions = [
        (f"{cap:g} Mbit/s per connection + {cap_rtt:g} ms RTT",
         {"bandwidth_mbps": cap, "latency_ms": cap_rtt, "window_bytes": None}),
        ("loopback", {"bandwidth_mbps": None, "latency_ms": 0, "window_bytes": None}),
    ]  # fmt: skip
    common = {"local": str(src), "single_request_limit": cfg.single_request_limit}
    try:
        for label, faults in conditions:
            emu.proc.set_faults(**faults)
            up = res.interleave(
                emu,
                "many_files",
                {
                    f"{label}/client-upload-p{p}": {"kind": "client_upload", "remote": "/bench/mc.bin",
                                                    "parallelism": p, "chunk_size": cfg.chunk, **common},
                    f"{label}/sdk-file_transfer-upload-p{p}": {"kind": "sdk_upload_ft",
                                                               "remote": "/bench/mf.bin", "parallelism": p,
                                                               **common},
                },
            )  # fmt: skip
            down = res.interleave(
                emu,
                "many_files",
                {
                    f"{label}/client-download-p{p}": {"kind": "client_download",
                                                      "remote": "/bench/many-big.bin", "local": local,
                                                      "parallelism": p},
                    f"{label}/sdk-file_transfer-download-p{p}": {"kind": "sdk_download_ft",
                                                                 "remote": "/bench/many-big.bin",
                                                                 "local": local, "parallelism": p},
                },
            )  # fmt: skip
            goals = label != "loopback"
            for direction, table in (("upload", up), ("download", down)):
                mine = table[f"{label}/client-{direction}-p{p}"]
                ft = table[f"{label}/sdk-file_transfer-{direction}-p{p}"]
                r = ratio(ft, mine)
                res.compare(
                    "many_files",
                    f"{_size(size)} {direction}, {label}: client p={p} vs SDK file_transfer p={p} (x faster)",
                    r,
                    ">= 1.2x" if goals else "info",
                    at_least(r, 1.2) if goals else None,
                    f"client {_speed(mine)}, file_transfer {_speed(ft)}; "
                    f"emulator CPU {_emu_cpu(mine)} / {_emu_cpu(ft)}",
                )
                a, b = mine.get("rss_growth_mib_max"), ft.get("rss_growth_mib_max")
                res.compare(
                    "many_files",
                    f"{_size(size)} {direction}, {label}: peak RSS growth client vs file_transfer, MiB",
                    a,
                    "lower than file_transfer" if goals else "info",
                    (None if a is None or b is None else a < b) if goals else None,
                    f"client {a} MiB, file_transfer {b} MiB",
                )
    finally:
        emu.proc.set_faults(bandwidth_mbps=None, latency_ms=0, window_bytes=None)
    emu.client.delete("/bench/many-big.bin")
    src.unlink()


def _lock_text(lock: dict[str, float]) -> str:
    return (
        f"{lock['write_lock_commit_ms']:g} ms/commit + {lock['write_lock_entry_ms']:g} ms/entry, "
        f"wait {lock['write_lock_wait_ms']:g} ms"
    )


def _lost_run(run: dict[str, Any]) -> str:
    if "lost" not in run:
        return "error"
    return f"{run['lost']}/{run['duplicated']}"


def _lost(s: dict[str, Any]) -> str:
    runs = [r for r in s["runs"] if "lost" in r]
    if not runs or len(runs) != len(s["runs"]):
        return "error"
    return f"{sum(r['lost'] for r in runs)}/{sum(r['duplicated'] for r in runs)}"


# ---------------------------------------------------------------------------------------------- route cost


def route_cost(n: int, latency_ms: float) -> dict[str, Any]:
    """Emulator CPU per request of the small-file routes, measured on the emulator process (plain HTTP,
    8 threads): ``upload_session/start`` with 10 KiB and close, ``files/upload`` of 10 KiB, and
    ``finish_batch_v2`` per entry (batches of 1000). What the session path costs the server against the
    single upload, without the client's own work in the way."""
    import json
    import tempfile

    from tests.client.conftest import client_for
    from tests.emulator_process import running_emulator

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    out: dict[str, Any] = {"files": n, "latency_ms": latency_ms, "load_average": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as d, running_emulator(Path(d) / "data") as emu:
        emu.set_faults(latency_ms=latency_ms)
        c = client_for(emu, parallelism=8)
        pid = emu.process.pid
        data = [os.urandom(FILE_SIZE) for _ in range(n)]

        def start(b: bytes) -> str:
            arg = {"Dropbox-API-Arg": json.dumps({"close": True}), "Content-Type": "application/octet-stream"}
            r = c.send("files/upload_session/start", host=c.endpoints.content, data=b, headers=arg)
            return str(json.loads(r.content)["session_id"])

        def upload(i: int) -> None:
            arg = json.dumps({"path": f"/u/f{i}.bin", "mode": "add"})
            headers = {"Dropbox-API-Arg": arg, "Content-Type": "application/octet-stream"}
            c.send("files/upload", host=c.endpoints.content, data=data[i], headers=headers)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(start, data[:50]))  # warm connections
            c0, t0 = cpu(pid), time.monotonic()
            sids = list(pool.map(start, data))
            c1, t1 = cpu(pid), time.monotonic()
            list(pool.map(upload, range(n)))
            c2, t2 = cpu(pid), time.monotonic()
        finish_s = finish_cpu = 0.0
        for k in range(0, n, 1000):
            entries = [
                {"cursor": {"session_id": s, "offset": FILE_SIZE},
                 "commit": {"path": f"/s/f{k + i}.bin", "mode": {".tag": "add"}}}
                for i, s in enumerate(sids[k : k + 1000])
            ]  # fmt: skip
            c3, t3 = cpu(pid), time.monotonic()
            body = json.dumps({"entries": entries}).encode()
            c.send("files/upload_session/finish_batch_v2", host=c.endpoints.api, data=body,
                   headers={"Content-Type": "application/json"})  # fmt: skip
            finish_cpu += cpu(pid) - c3
            finish_s += time.monotonic() - t3
        c.close()
    out.update(
        start_s=round(t1 - t0, 2),
        start_cpu_ms_per_file=round((c1 - c0) / n * 1e3, 3),
        upload_s=round(t2 - t1, 2),
        upload_cpu_ms_per_file=round((c2 - c1) / n * 1e3, 3),
        finish_batch_s=round(finish_s, 2),
        finish_batch_cpu_ms_per_entry=round(finish_cpu / n * 1e3, 3),
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.many_files [benchmarks.run options]``: the suite (``--only many_files``);
    ``--route-cost N [--latency-ms L] [--out F]``: emulator CPU per small-file request instead."""
    import argparse
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if "--route-cost" in args:
        ap = argparse.ArgumentParser(prog="python -m benchmarks.many_files")
        ap.add_argument("--route-cost", type=int, required=True)
        ap.add_argument("--latency-ms", type=float, default=0)
        ap.add_argument("--out", type=Path)
        ns = ap.parse_args(args)
        res = route_cost(ns.route_cost, ns.latency_ms)
        res["command"] = "python -m benchmarks.many_files " + " ".join(args)
        text = json.dumps(res, indent=2)
        print(text)
        if ns.out:
            ns.out.write_text(text + "\n")
        return
    from benchmarks import run

    raise SystemExit(run.main(["--only", "many_files", *args]))


if __name__ == "__main__":
    main()
