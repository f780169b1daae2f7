"""Faults on the emulator: every fault kind at 10% and 50%, alone and mixed, for uploads (single request,
sequential and concurrent sessions, batch), downloads, listings and the mirror; a server that hangs mid-body;
the emulator restarted mid-transfer.

Each case records a row for RELIABILITY.md (``RELIABILITY_REPORT=RELIABILITY.md``): completed, requests the
emulator counted against the fault-free minimum for the same operation, and whether the bytes are correct.
Run time is kept low with small files, ``retry_after_s=0`` and shrunk client waits; bigger variants are
``slow``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import DropboxClient, Endpoints, RetryPolicy, content_hash_file
from airflow_provider_dropbox.sync import mirror
from tests.emulator_process import EmulatorProcess, start_emulator
from tests.hardening.helpers import MiB, fast_client, free_port, local_snapshot, temp_leftovers
from tests.hardening.report import FaultRow, record_fault
from tests.hardening.stall_proxy import StallPlan, stall_proxy

KINDS = ("rate_limit", "server_error", "lock_contention", "drop_after_commit")
READ_KINDS = ("rate_limit", "server_error")  # the emulator applies lock/drop faults to writes only

Verify = Callable[[], bool]


@dataclass
class Op:
    name: str
    run: Callable[[DropboxClient, Path, str], Verify]
    writes: bool
    setup: Callable[[DropboxClient, str], Any] | None = None  # runs before the faults are switched on


_SETUP: dict[str, Any] = {}


def _blob(path: Path, size: int, seed: str) -> Path:
    """Deterministic pseudo-random bytes (cheap, incompressible enough)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest() * 128
        counter += 1
    path.write_bytes(bytes(out[:size]))
    return path


def _only(client: DropboxClient, tag: str, names: set[str]) -> bool:
    """The case's folder holds exactly these files: no autorenamed duplicate ('x (1).bin') from a retry."""
    files = {e["name"] for e in client.list_folder(f"/faults/{tag}", recursive=True) if e[".tag"] == "file"}
    return files == names


def _remote_matches(client: DropboxClient, remote: str, local: Path) -> bool:
    meta = client.get_metadata(remote)
    return bool(meta.get("content_hash") == content_hash_file(local) and meta["size"] == local.stat().st_size)


def op_upload_single(client: DropboxClient, work: Path, tag: str) -> Verify:
    """Four one-request uploads (1 MiB each), so each fault rate gets a few dozen dice rolls per case."""
    done = []
    for i in range(4):
        src = _blob(work / f"single{i}.bin", 1 * MiB + 3 + i, f"{tag}{i}")
        meta = client.upload_file(src, f"/faults/{tag}/single{i}.bin", parallelism=1)
        done.append((meta, src))
    return lambda: (
        all(meta["content_hash"] == content_hash_file(src) for meta, src in done)
        and _only(client, tag, {f"single{i}.bin" for i in range(4)})
    )


def op_upload_session(client: DropboxClient, work: Path, tag: str) -> Verify:
    src = _blob(work / "session.bin", 9 * MiB + 5, tag)
    remote = f"/faults/{tag}/session.bin"
    client.upload_file(src, remote, parallelism=1, single_request_limit=4 * MiB, chunk_size=4 * MiB)
    return lambda: _remote_matches(client, remote, src) and _only(client, tag, {"session.bin"})


def op_upload_concurrent(client: DropboxClient, work: Path, tag: str) -> Verify:
    src = _blob(work / "conc.bin", 13 * MiB + 7, tag)
    remote = f"/faults/{tag}/conc.bin"
    client.upload_file(src, remote, parallelism=3, single_request_limit=4 * MiB, chunk_size=4 * MiB)
    return lambda: _remote_matches(client, remote, src) and _only(client, tag, {"conc.bin"})


def op_upload_batch(client: DropboxClient, work: Path, tag: str) -> Verify:
    pairs = [
        (_blob(work / f"b{i}.bin", 1000 * i + 11, f"{tag}{i}"), f"/faults/{tag}/batch/{i}.bin")
        for i in range(6)
    ]
    client.upload_files([(str(p), r) for p, r in pairs], parallelism=3)
    return lambda: (
        all(_remote_matches(client, r, p) for p, r in pairs)
        and _only(client, tag, {f"{i}.bin" for i in range(6)})
    )


SEED_DIR = "/seed"


def op_download(client: DropboxClient, work: Path, tag: str) -> Verify:
    out = work / "dl" / "big.bin"
    client.download_file(f"{SEED_DIR}/big.bin", out, parallelism=3)
    expected = work.parent / "seed-src" / "big.bin"
    return lambda: out.read_bytes() == expected.read_bytes() and temp_leftovers(out.parent) == []


def op_list(client: DropboxClient, work: Path, tag: str) -> Verify:
    names = sorted(e["name"] for e in client.list_folder(f"{SEED_DIR}/many", limit=10))
    return lambda: names == sorted(f"f{i:03d}.txt" for i in range(45))


def op_mirror(client: DropboxClient, work: Path, tag: str) -> Verify:
    dest = work / "mirror"
    mirror(client, f"{SEED_DIR}/tree", dest, parallelism=3)
    expected = work.parent / "seed-src" / "tree"

    def verify() -> bool:
        got = {k: v for k, v in local_snapshot(dest).items() if not k.startswith(".dropbox-mirror")}
        return got == local_snapshot(expected)

    return verify


def setup_changes(client: DropboxClient, tag: str) -> str:
    folder = f"/changes/{tag}"
    client.create_folder(folder)
    cursor = client.get_latest_cursor(folder)
    for i in range(3):
        client.rpc("files/create_folder_v2", {"path": f"{folder}/new{i}"})
    return cursor


def op_changes(client: DropboxClient, work: Path, tag: str) -> Verify:
    """What the change sensor and trigger do: longpoll on a cursor, then list_folder/continue."""
    cursor = _SETUP[tag]
    poll = client.longpoll(cursor, timeout=30)
    entries, _ = client.list_changes(cursor)
    names = sorted(e["name"] for e in entries)
    return lambda: poll["changes"] is True and names == ["new0", "new1", "new2"]


OPS = {
    op.name: op
    for op in (
        Op("upload single x4", op_upload_single, True),
        Op("upload session", op_upload_session, True),
        Op("upload concurrent", op_upload_concurrent, True),
        Op("upload batch", op_upload_batch, True),
        Op("download", op_download, False),
        Op("list (paged)", op_list, False),
        Op("changes (longpoll + continue)", op_changes, False, setup_changes),
        Op("mirror", op_mirror, False),
    )
}


def _fault_sets(writes: bool) -> list[tuple[str, dict[str, Any]]]:
    kinds = KINDS if writes else READ_KINDS
    sets: list[tuple[str, dict[str, Any]]] = []
    for rate in (0.1, 0.5):
        sets += [(f"{k}@{rate:g}", {k: rate}) for k in kinds]
    sets.append(("latency_ms=50", {"latency_ms": 50}))
    for rate in (0.1, 0.5):
        sets.append((f"mixed@{rate:g}", {k: rate / len(KINDS) for k in KINDS}))
    sets.append(("mixed@0.5+latency", {**{k: 0.5 / len(KINDS) for k in KINDS}, "latency_ms": 20}))
    return sets


# Concurrent and batch uploads run the mixed sets by default and every kind alone under -m slow.
_QUICK_ONLY_MIXED = {"upload concurrent", "upload batch"}


def _cases() -> Iterator[Any]:
    for op in OPS.values():
        for label, faults in _fault_sets(op.writes):
            marks = (
                [pytest.mark.slow] if op.name in _QUICK_ONLY_MIXED and not label.startswith("mixed") else []
            )
            yield pytest.param(op.name, label, faults, id=f"{op.name.replace(' ', '-')}-{label}", marks=marks)


@pytest.fixture(scope="module")
def seeded(hemu: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> EmulatorProcess:
    """Remote material for the read cases, and its local original (``<tmp>/seed-src``) to compare with."""
    base = tmp_path_factory.getbasetemp() / "seed-src"
    with fast_client(hemu) as c:
        big = _blob(base / "big.bin", 9 * MiB + 1, "big")
        c.upload_file(big, f"{SEED_DIR}/big.bin")
        many = []
        for i in range(45):
            p = base / "many" / f"f{i:03d}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(str(i))
            many.append((str(p), f"{SEED_DIR}/many/{p.name}"))
        tree = base / "tree"
        for i in range(16):
            rel = f"d{i % 4}/sub{i % 2}/file{i}.txt"
            p = tree / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(100 + 997 * i))
            many.append((str(p), f"{SEED_DIR}/tree/{rel}"))
        _blob(tree / "big" / "blob.bin", 2 * MiB + 9, "tree")
        many.append((str(tree / "big" / "blob.bin"), f"{SEED_DIR}/tree/big/blob.bin"))
        c.upload_files(many, parallelism=4)
    return hemu


_MINIMUM: dict[str, int] = {}


def _requests(emu: EmulatorProcess) -> int:
    return sum(emu.stats().values())


def _run_op(
    emu: EmulatorProcess, op: Op, work: Path, tag: str, faults: dict[str, Any]
) -> tuple[bool, bool, int, str]:
    emu.clear_faults()
    if op.setup is not None:
        with fast_client(emu) as c:
            _SETUP[tag] = op.setup(c, tag)
    emu.reset_stats()
    if faults:
        emu.set_faults(**faults, retry_after_s=0, seed=zlib.crc32(tag.encode()))
    note = ""
    completed = False
    verify: Verify | None = None
    client = fast_client(emu)
    try:
        verify = op.run(client, work, tag)
        completed = True
    except Exception as exc:
        note = f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        count = _requests(emu)
        emu.clear_faults()
    bytes_ok = bool(verify()) if verify is not None else False
    client.close()
    return completed, bytes_ok, count, note


def _minimum(emu: EmulatorProcess, op: Op, tmp_path_factory: pytest.TempPathFactory) -> int:
    if op.name not in _MINIMUM:
        work = tmp_path_factory.mktemp("baseline")
        completed, ok, count, note = _run_op(emu, op, work, f"baseline-{op.name.replace(' ', '-')}", {})
        assert completed and ok, note
        _MINIMUM[op.name] = count
    return _MINIMUM[op.name]


@pytest.mark.parametrize(("op_name", "label", "faults"), list(_cases()))
def test_fault_case(
    seeded: EmulatorProcess,
    op_name: str,
    label: str,
    faults: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    op = OPS[op_name]
    minimum = _minimum(seeded, op, tmp_path_factory)
    work = tmp_path_factory.mktemp("case")
    tag = f"{op_name.replace(' ', '-')}-{label}"
    t0 = time.monotonic()
    completed, bytes_ok, count, note = _run_op(seeded, op, work, tag, faults)
    record_fault(
        FaultRow(
            case=tag,
            op=op_name,
            faults=label,
            completed=completed,
            requests=count,
            minimum=minimum,
            bytes_ok=bytes_ok,
            seconds=time.monotonic() - t0,
            note=note,
        )
    )
    assert completed, note
    assert bytes_ok
    assert temp_leftovers(work) == []


def test_each_fault_kind_forced_retries() -> None:
    """Across the operations, every fault kind at 50% (and the mixes) must actually have cost retries, or the
    matrix above proves nothing. Runs after the matrix (file order); skipped when it was filtered."""
    from tests.hardening.report import FAULT_ROWS

    rows = [r for r in FAULT_ROWS if "@0.5" in r.faults]
    if len(rows) < 20:
        pytest.skip("the fault matrix did not run in full (filtered with -k/-m)")
    for kind in (*KINDS, "mixed"):
        hit = sum(r.retries or 0 for r in rows if r.faults.startswith(kind))
        assert hit > 0, f"{kind}@0.5 never caused a retry"


# ---------------------------------------------------------------------- a server that hangs mid-body


def test_download_hanging_mid_body_times_out_and_resumes(
    seeded: EmulatorProcess, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The response stops after 2 MiB but the socket stays open: the read timeout fires, and the retry asks
    for the rest with ``Range`` instead of starting over."""
    plan = StallPlan(stall_after=2 * MiB + 100, stalls=1, direction="down")
    with stall_proxy(seeded.base_url, plan) as proxy:
        client = fast_client(seeded, endpoints=Endpoints.single_host(proxy.base_url), timeout=1.5)
        t0 = time.monotonic()
        out = tmp_path / "big.bin"
        completed, note = True, "resumed with Range after a read timeout"
        try:
            client.download_file(f"{SEED_DIR}/big.bin", out, parallelism=1)
        except Exception as exc:
            completed, note = False, f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
    downloads = [r for r in plan.requests if "files/download" in r]
    expected = tmp_path_factory.getbasetemp() / "seed-src" / "big.bin"
    bytes_ok = completed and out.read_bytes() == expected.read_bytes()
    record_fault(
        FaultRow(
            "download-hang-mid-body",
            "download",
            "stall after 2 MiB, read timeout 1.5 s",
            completed,
            len(downloads),
            1,
            bytes_ok,
            time.monotonic() - t0,
            note + f"; requests: {downloads}",
        )
    )
    assert completed, note
    assert plan.stalled == 1
    assert bytes_ok
    assert len(downloads) == 2, downloads
    assert "Range: bytes=" in downloads[1] and "bytes=0-" not in downloads[1], downloads
    assert temp_leftovers(tmp_path) == []


def test_upload_hanging_mid_body_times_out_and_retries(seeded: EmulatorProcess, tmp_path: Path) -> None:
    """The request body stops reaching the server after 1 MiB: the client times out and sends it again."""
    src = _blob(tmp_path / "up.bin", 3 * MiB + 1, "hang-up")
    plan = StallPlan(stall_after=1 * MiB, stalls=1, direction="up")
    remote = "/faults/hang/up.bin"
    with stall_proxy(seeded.base_url, plan) as proxy:
        client = fast_client(seeded, endpoints=Endpoints.single_host(proxy.base_url), timeout=1.5)
        t0 = time.monotonic()
        completed, note = True, "re-sent after the stalled request timed out"
        try:
            client.upload_file(src, remote, parallelism=1)
        except Exception as exc:
            completed, note = False, f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
    uploads = [r for r in plan.requests if "files/upload" in r]
    with fast_client(seeded) as check:
        bytes_ok = completed and _remote_matches(check, remote, src)
    record_fault(
        FaultRow(
            "upload-hang-mid-body",
            "upload single",
            "request body stalls after 1 MiB, timeout 1.5 s",
            completed,
            len(uploads),
            1,
            bytes_ok,
            time.monotonic() - t0,
            note,
        )
    )
    assert completed, note
    assert plan.stalled == 1
    assert bytes_ok
    assert len(uploads) >= 2, uploads


# ---------------------------------------------------------------------- emulator restarted mid-transfer


def patient() -> tuple[RetryPolicy, list[float]]:
    """A retry policy that outlasts a restart, and the list of its sleeps (one per retry, client-side: the
    stopped server's request counters die with it)."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return RetryPolicy(initial_wait=0.2, max_wait=1.0, deadline=90.0, max_attempts=60, sleep=sleep), sleeps


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An emulator on a fixed port that the test may stop and start again on the same data dir."""
    port = free_port()
    data = tmp_path / "emu-data"
    holder: dict[str, Any] = {"port": port, "data": data}
    holder["emu"] = start_emulator(data, "--port", str(port))
    try:
        yield holder
    finally:
        holder["emu"].stop()


def _restart_during(holder: dict[str, Any], after_s: float, down_s: float = 0.5) -> threading.Thread:
    def restart() -> None:
        time.sleep(after_s)
        holder["emu"].stop()
        time.sleep(down_s)
        holder["emu"] = start_emulator(holder["data"], "--port", str(holder["port"]))
        holder["restarted_at"] = time.monotonic()

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    return t


def test_emulator_restart_mid_download(restartable: dict[str, Any], tmp_path: Path) -> None:
    emu: EmulatorProcess = restartable["emu"]
    src = _blob(tmp_path / "src.bin", 8 * MiB + 3, "restart-dl")
    with fast_client(emu) as c:
        c.upload_file(src, "/restart/dl.bin")
    emu.set_faults(bandwidth_mbps=24)  # ~3 MB/s: the download takes ~3 s, long enough to be cut
    policy, sleeps = patient()
    client = fast_client(emu, retry_policy=policy, timeout=10.0)
    out = tmp_path / "out" / "dl.bin"
    t0 = time.monotonic()
    restarter = _restart_during(restartable, after_s=1.0)
    completed, note = True, "resumed after the server came back"
    try:
        client.download_file("/restart/dl.bin", out, parallelism=1)
    except Exception as exc:
        completed, note = False, f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
        restarter.join(timeout=60)
    after = restartable["emu"].stats()
    bytes_ok = completed and out.read_bytes() == src.read_bytes()
    record_fault(
        FaultRow(
            "download-emulator-restart",
            "download",
            "emulator stopped 1 s in, restarted on the same data dir",
            completed,
            1 + len(sleeps),
            1,
            bytes_ok,
            time.monotonic() - t0,
            note + f"; {len(sleeps)} retries counted client-side, "
            f"{after.get('/2/files/download', 0)} download request(s) reached the new server",
        )
    )
    assert "restarted_at" in restartable, "the restart did not happen"
    assert completed, note
    assert bytes_ok
    assert sleeps, "the restart should have cost at least one retry"
    assert after.get("/2/files/download", 0) >= 1  # the rest came from the new process
    assert temp_leftovers(out.parent) == []


def test_emulator_restart_mid_upload_session(restartable: dict[str, Any], tmp_path: Path) -> None:
    emu: EmulatorProcess = restartable["emu"]
    src = _blob(tmp_path / "src.bin", 12 * MiB + 5, "restart-up")
    emu.set_faults(bandwidth_mbps=32)  # ~4 MB/s: each 4 MiB chunk takes ~1 s
    policy, sleeps = patient()
    client = fast_client(emu, retry_policy=policy, timeout=10.0)
    t0 = time.monotonic()
    restarter = _restart_during(restartable, after_s=1.5)
    completed, note = True, "session continued on the restarted server"
    try:
        client.upload_file(
            src, "/restart/up.bin", parallelism=1, single_request_limit=4 * MiB, chunk_size=4 * MiB
        )
    except Exception as exc:
        completed, note = False, f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
        restarter.join(timeout=60)
    after = restartable["emu"].stats()
    with fast_client(restartable["emu"]) as check:
        bytes_ok = completed and _remote_matches(check, "/restart/up.bin", src)
    record_fault(
        FaultRow(
            "upload-session-emulator-restart",
            "upload session",
            "emulator stopped 1.5 s in, restarted on the same data dir",
            completed,
            3 + len(sleeps),
            3,
            bytes_ok,
            time.monotonic() - t0,
            note + f"; {len(sleeps)} retries counted client-side, "
            f"{sum(v for k, v in after.items() if 'upload' in k)} upload request(s) reached the new server",
        )
    )
    assert "restarted_at" in restartable, "the restart did not happen"
    assert completed, note
    assert bytes_ok
    assert sleeps, "the restart should have cost at least one retry"


@pytest.mark.slow
@pytest.mark.parametrize("label", ["mixed@0.1", "mixed@0.5"])
def test_large_transfers_under_faults(seeded: EmulatorProcess, tmp_path: Path, label: str) -> None:
    """The larger variant: 64 MiB up (concurrent session) and down (ranged parts) under mixed faults."""
    rate = float(label.split("@")[1])
    src = _blob(tmp_path / "large.bin", 64 * MiB + 123, f"large-{label}")
    remote = f"/faults/large/{label}.bin"
    seeded.clear_faults()
    seeded.reset_stats()
    seeded.set_faults(**{k: rate / len(KINDS) for k in KINDS}, retry_after_s=0, seed=7)
    t0 = time.monotonic()
    try:
        with fast_client(seeded) as client:
            client.upload_file(src, remote, parallelism=4, single_request_limit=8 * MiB, chunk_size=8 * MiB)
            out = tmp_path / "back.bin"
            client.download_file(remote, out, parallelism=4)
    finally:
        count = _requests(seeded)
        seeded.clear_faults()
    ok = out.read_bytes() == src.read_bytes()
    record_fault(
        FaultRow(
            f"large-64MiB-{label}",
            "upload+download 64 MiB",
            label,
            True,
            count,
            -1,
            ok,
            time.monotonic() - t0,
            "no fault-free baseline run (minimum n/a)",
        )
    )
    assert ok


def test_access_token_expiring_mid_transfer(seeded: EmulatorProcess, tmp_path: Path) -> None:
    """Access tokens that live 2 s while a throttled session upload and download take several seconds: the
    client refreshes (ahead of expiry, or after a 401 ``expired_access_token``) and the bytes still match."""
    src = _blob(tmp_path / "tok.bin", 12 * MiB + 1, "token-expiry")
    remote = "/faults/token-expiry/tok.bin"
    seeded.clear_faults()
    seeded.set_faults(token_lifetime=2, bandwidth_mbps=40)  # ~5 MB/s: about 2.5 s each way
    seeded.reset_stats()
    t0 = time.monotonic()
    client = fast_client(seeded)
    completed, note = True, ""
    try:
        client.upload_file(src, remote, parallelism=1, single_request_limit=4 * MiB, chunk_size=4 * MiB)
        out = tmp_path / "back.bin"
        client.download_file(remote, out, parallelism=1)
    except Exception as exc:
        completed, note = False, f"{type(exc).__name__}: {exc}"
    finally:
        stats = seeded.stats()
        seeded.clear_faults()
        seeded.set_faults(token_lifetime=14400)
        refreshes = client.auth.refresh_count
        client.close()
    bytes_ok = completed and out.read_bytes() == src.read_bytes()
    record_fault(
        FaultRow(
            "token-expiry-mid-transfer",
            "upload session + download",
            "token_lifetime=2 s, bandwidth 40 Mbit/s",
            completed,
            sum(stats.values()),
            5,
            bytes_ok,
            time.monotonic() - t0,
            (note or "completed")
            + f"; {refreshes} token refreshes, {stats.get('/oauth2/token', 0)} token calls",
        )
    )
    assert completed, note
    assert bytes_ok
    assert refreshes >= 2, "a 2 s token lifetime over a multi-second transfer needs more than one token"
