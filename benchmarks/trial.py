"""One timed trial in its own process: ``python -m benchmarks.trial '<json task>'`` prints one JSON line.

The task names a ``kind`` (see ``KINDS``) plus its inputs. The child measures wall time around the
transfer only (imports, token refresh and connection set-up happen before the clock starts, for every
variant alike) and the peak RSS growth of the transfer: the kernel's high-water mark is reset through
``/proc/self/clear_refs`` just before the clock starts, so ``VmHWM`` after minus ``VmRSS`` before is the
growth caused by the transfer alone.

The official SDK is only imported here, in the child, whose environment (set by the parent) already points
``DROPBOX_API_HOST`` and friends at an HTTPS emulator.
"""

from __future__ import annotations

import ctypes
import gc
import http.client
import json
import os
import resource
import shutil
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

MiB = 1024 * 1024
DEV_APP_KEY = "dev-app-key"
DEV_APP_SECRET = "dev-app-secret"
DEV_REFRESH_TOKEN = "dev-refresh-token"


# ---------------------------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def settle() -> None:
    """Free what set-up left behind (garbage, glibc's free heap) so RSS cannot fall during the trial: a fall
    would hide part of the growth, which is measured from the RSS at the start."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


EMULATOR_PID: int | None = None
"""The emulator's process id (from the task), so a trial can report the server's CPU during its clock."""


def emulator_cpu_s() -> float | None:
    """User + system CPU the emulator process has used so far (all its threads), None if unreadable."""
    if EMULATOR_PID is None:
        return None
    try:
        with open(f"/proc/{EMULATOR_PID}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steal_s() -> float | None:
    """CPU time the hypervisor gave other guests instead of this VM (all CPUs, seconds), None if unknown: a
    trial that ran while a neighbour was busy shows it here, not in its own CPU time."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Meter:
    """Wall time, CPU (ours and the emulator's) and peak RSS growth of one block of work."""

    def __enter__(self) -> Meter:
        settle()
        self.peak_reset = reset_peak()
        self.rss_before = _status_kib("VmRSS")
        self.emu_cpu0 = emulator_cpu_s()
        self.steal0 = _steal_s()
        self.usage0 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = os.times()
        self.t0 = time.perf_counter()
        StackSampler.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        StackSampler.active = False
        cpu1 = os.times()
        self.cpu_s = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        self.sys_s = cpu1.system - self.cpu0.system
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        self.minor_faults = usage1.ru_minflt - self.usage0.ru_minflt
        self.steal_s = None if self.steal0 is None else (_steal_s() or 0.0) - self.steal0
        emu_cpu1 = emulator_cpu_s()
        self.emu_cpu_s = None if emu_cpu1 is None or self.emu_cpu0 is None else emu_cpu1 - self.emu_cpu0
        self.hwm_after = _status_kib("VmHWM")

    @property
    def rss_growth_mib(self) -> float:
        return max(0, self.hwm_after - self.rss_before) / 1024


IDLE = ("threading.py", "queue.py", "selectors.py", "thread.py")
"""Frames of threads parked in a pool or a lock: not where time goes."""


def _where(frame: Any) -> str:
    code = frame.f_code
    return (
        f"{Path(code.co_filename).parent.name}/{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}"
    )


class StackSampler(threading.Thread):
    """A poor man's sampling profiler (py-spy is not installed; cProfile sees only the main thread): every
    ``interval`` s, while a ``Meter`` is running, it records for every other thread the innermost Python
    frame and the innermost frame of the transfer code itself (the client or the SDK). A thread blocked in
    C code (a socket send or recv, ``sha256.update``, ``os.pwrite``) shows as the Python line that called
    it. Idle pool threads are left out."""

    active = False

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self._stop_event.wait(self.interval):
            if not StackSampler.active:
                continue
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me or Path(frame.f_code.co_filename).name in IDLE:
                    continue
                leaf = _where(frame)
                owner = frame
                while owner is not None and not any(
                    part in owner.f_code.co_filename
                    for part in ("airflow_provider_dropbox", "dropbox/", "benchmarks")
                ):
                    owner = owner.f_back
                key = leaf if owner is None or owner is frame else f"{leaf} <- {_where(owner)}"
                self.counts[key] += 1

    def stop(self, top: int = 25) -> list[tuple[str, int]]:
        self._stop_event.set()
        self.join()
        return self.counts.most_common(top)


# ---------------------------------------------------------------------------------------------- clients


def make_client(task: dict[str, Any], parallelism: int | None = None) -> Any:
    from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints

    client = DropboxClient(
        Credentials(app_key=DEV_APP_KEY, app_secret=DEV_APP_SECRET, refresh_token=DEV_REFRESH_TOKEN),
        endpoints=Endpoints.single_host(task["base_url"]),
        parallelism=parallelism or int(task.get("parallelism", 8)),
        ca_bundle=task.get("cafile"),
    )
    client.get_current_account()  # token refresh + warm connection, outside the timed part
    return client


def make_sdk(task: dict[str, Any], width: int = 8) -> Any:
    import dropbox

    session = dropbox.create_session(max_connections=max(8, width), ca_certs=task.get("cafile"))
    dbx = dropbox.Dropbox(
        oauth2_refresh_token=DEV_REFRESH_TOKEN,
        app_key=DEV_APP_KEY,
        app_secret=DEV_APP_SECRET,
        session=session,
        ca_certs=task.get("cafile"),
    )
    dbx.users_get_current_account()
    return dbx


class Raw:
    """A plain ``requests`` client: one token refresh, then bare HTTP calls (the throughput baseline)."""

    def __init__(self, task: dict[str, Any]) -> None:
        self.base = task["base_url"].rstrip("/")
        self.session = requests.Session()
        self.session.verify = task.get("cafile") or True
        resp = self.session.post(
            f"{self.base}/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": DEV_REFRESH_TOKEN,
                "client_id": DEV_APP_KEY,
                "client_secret": DEV_APP_SECRET,
            },
            timeout=30,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = "Bearer " + resp.json()["access_token"]

    def content(self, route: str, arg: Any, data: bytes = b"") -> Any:
        resp = self.session.post(
            f"{self.base}/2/{route}",
            data=data,
            headers={"Content-Type": "application/octet-stream", "Dropbox-API-Arg": json.dumps(arg)},
            timeout=300,
        )
        if resp.status_code != 200:
            raise RuntimeError(f"{route}: {resp.status_code} {resp.text[:300]}")
        return resp.json()


# ---------------------------------------------------------------------------------------------- trials


def _record_timeline(client: Any) -> list[tuple[str, str, float, float]]:
    """Wrap the client's upload requests and chunk hashing to record (thread, what, start, end), seconds from
    the first event: where a parallel upload's wall time goes (diagnostic, ``timeline`` tasks only)."""
    from airflow_provider_dropbox.client import upload

    events: list[tuple[str, str, float, float]] = []
    send, hash_ = client.upload_call, upload._LocalFile.request_hash

    def timed(what: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            events.append((threading.current_thread().name, what, t0, time.perf_counter()))

    def upload_call(route: str, arg: Any, body: Any, **kw: Any) -> Any:
        at = arg.get("cursor", {}).get("offset", 0) if isinstance(arg, dict) else 0
        return timed(f"{route.rsplit('/', 1)[-1]} @{at // MiB}M", send, route, arg, body, **kw)

    def request_hash(self: Any, offset: int, length: int, workers: int = 1) -> str:
        return str(timed(f"hash @{offset // MiB}M", hash_, self, offset, length, workers))

    client.upload_call = upload_call
    upload._LocalFile.request_hash = request_hash  # type: ignore[method-assign]
    return events


def client_upload(task: dict[str, Any]) -> dict[str, Any]:
    client = make_client(task)
    events = _record_timeline(client) if task.get("timeline") else None
    with Meter() as m:
        meta = client.upload_file(
            task["local"],
            task["remote"],
            mode="overwrite",
            chunk_size=task.get("chunk_size"),
            parallelism=int(task["parallelism"]),
            single_request_limit=int(task.get("single_request_limit", 150 * MiB)),
            skip_if_identical=False,
        )
    client.delete(task["remote"])
    client.close()
    extra: dict[str, Any] = {}
    if events is not None:
        t0 = m.t0
        extra["timeline"] = [(who, what, round(a - t0, 4), round(b - t0, 4)) for who, what, a, b in events]
    return _result(m, int(meta["size"]), **extra)


def raw_upload(task: dict[str, Any]) -> dict[str, Any]:
    """The same bytes through a bare upload session (or one files/upload), chunk by chunk, no hashing."""
    raw = Raw(task)
    chunk = int(task["chunk_size"])
    limit = int(task.get("single_request_limit", 150 * MiB))
    size = os.path.getsize(task["local"])
    commit = {"path": task["remote"], "mode": "overwrite"}
    with Meter() as m, open(task["local"], "rb") as fh:
        if size <= limit:
            meta = raw.content("files/upload", commit, fh.read())
        else:
            first = fh.read(chunk)
            sid = raw.content("files/upload_session/start", {"close": False}, first)["session_id"]
            offset = len(first)
            while size - offset > chunk:
                data = fh.read(chunk)
                raw.content(
                    "files/upload_session/append_v2", {"cursor": {"session_id": sid, "offset": offset}}, data
                )
                offset += len(data)
            data = fh.read()
            cursor = {"session_id": sid, "offset": offset}
            meta = raw.content("files/upload_session/finish", {"cursor": cursor, "commit": commit}, data)
    _rpc_delete(raw, task)
    return _result(m, int(meta["size"]))


def _rpc_delete(raw: Raw, task: dict[str, Any]) -> None:
    raw.session.post(f"{raw.base}/2/files/delete_v2", json={"path": task["remote"]}, timeout=60)


def client_download(task: dict[str, Any]) -> dict[str, Any]:
    """``client.download_file``; ``part_size`` (sweep only) pins the ranged-part size the client computes."""
    if task.get("part_size"):
        from airflow_provider_dropbox.client import download

        part = int(task["part_size"])
        download.part_size_for = lambda size, parallelism: part  # type: ignore[assignment]
    if task.get("no_verify"):  # diagnostic only: what hashing + verification cost
        from airflow_provider_dropbox.client import download

        download.ContentHasher.update = lambda self, data: None  # type: ignore[method-assign]
        download.HASH_BEHIND_MIN = 1 << 62  # no hash-behind thread either: every file takes the path above
        download._Download._verify = lambda self, parts, size, meta: None  # type: ignore[method-assign]
    if task.get("no_fsync"):  # diagnostic only: what the fsync before the rename costs
        os.fsync = lambda fd: None
    client = make_client(task)
    with Meter() as m:
        meta = client.download_file(task["remote"], task["local"], parallelism=int(task["parallelism"]))
    client.close()
    size = os.path.getsize(task["local"])
    os.unlink(task["local"])
    return _result(m, size, remote_size=int(meta["size"]))


def raw_download(task: dict[str, Any]) -> dict[str, Any]:
    """A plain streaming POST /2/files/download into a file, 1 MiB reads, no verification."""
    raw = Raw(task)
    with Meter() as m:
        resp = raw.session.post(
            f"{raw.base}/2/files/download",
            headers={"Dropbox-API-Arg": json.dumps({"path": task["remote"]})},
            stream=True,
            timeout=300,
        )
        resp.raise_for_status()
        with open(task["local"], "wb") as out:
            for piece in resp.iter_content(MiB):
                out.write(piece)
        resp.close()
    size = os.path.getsize(task["local"])
    fsync_s = _fsync_seconds(task["local"])
    os.unlink(task["local"])
    return _result(m, size, fsync_s_untimed=fsync_s)


def raw_download_readinto(task: dict[str, Any]) -> dict[str, Any]:
    """The leanest raw download: ``http.client`` directly, ``readinto`` one reused 1 MiB buffer, unbuffered
    writes, no verification. Unlike ``raw_download`` it allocates nothing per piece, so its speed does not
    depend on how the allocator treats a fresh 1 MiB bytes object each time (the bimodal baseline)."""
    raw = Raw(task)
    url = urlparse(raw.base)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=task.get("cafile"))
        conn = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=300, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=300)
    headers = {
        "Authorization": str(raw.session.headers["Authorization"]),
        "Dropbox-API-Arg": json.dumps({"path": task["remote"]}),
    }
    with Meter() as m:
        conn.request("POST", "/2/files/download", headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"files/download: {resp.status} {resp.read()[:300]!r}")
        buf = memoryview(bytearray(MiB))
        with open(task["local"], "wb", buffering=0) as out:
            while n := resp.readinto(buf):
                out.write(buf[:n])
        conn.close()
    size = os.path.getsize(task["local"])
    fsync_s = _fsync_seconds(task["local"])
    os.unlink(task["local"])
    return _result(m, size, fsync_s_untimed=fsync_s)


def _fsync_seconds(path: str) -> float:
    """What an fsync of the downloaded file would add (the client fsyncs; the raw baseline does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        os.fsync(fd)
        return round(time.perf_counter() - t0, 3)
    finally:
        os.close(fd)


def sdk_upload_seq(task: dict[str, Any]) -> dict[str, Any]:
    """The classic SDK upload-session loop (start / append_v2 / finish), same chunk size as the client."""
    import dropbox

    dbx = make_sdk(task)
    files = dropbox.files
    chunk = int(task["chunk_size"])
    size = os.path.getsize(task["local"])
    with Meter() as m, open(task["local"], "rb") as fh:
        start = dbx.files_upload_session_start(fh.read(chunk))
        cursor = files.UploadSessionCursor(session_id=start.session_id, offset=fh.tell())
        commit = files.CommitInfo(path=task["remote"], mode=files.WriteMode.overwrite)
        while size - fh.tell() > chunk:
            dbx.files_upload_session_append_v2(fh.read(chunk), cursor)
            cursor.offset = fh.tell()
        meta = dbx.files_upload_session_finish(fh.read(), cursor, commit)
    dbx.files_delete_v2(task["remote"])
    return _result(m, int(meta.size))


def sdk_upload_ft(task: dict[str, Any]) -> dict[str, Any]:
    """The SDK's own parallel helper: dropbox.file_transfer.Uploader with parallel_uploads=N."""
    import dropbox
    from dropbox import file_transfer as ft

    p = int(task["parallelism"])
    dbx = make_sdk(task, p)
    commit = dropbox.files.CommitInfo(path=task["remote"], mode=dropbox.files.WriteMode.overwrite)
    with Meter() as m:
        res = ft.Uploader(dbx).upload(
            ft.FileUpload(task["local"]), commit, ft.UploadOptions(parallel_uploads=p)
        )
    dbx.files_delete_v2(task["remote"])
    return _result(m, int(res.metadata.size), sdk_chunk_mib=ft.UPLOAD_CHUNK_SIZE / MiB)


def sdk_download_seq(task: dict[str, Any]) -> dict[str, Any]:
    dbx = make_sdk(task)
    with Meter() as m:
        dbx.files_download_to_file(task["local"], task["remote"])
    size = os.path.getsize(task["local"])
    os.unlink(task["local"])
    return _result(m, size)


def sdk_download_ft(task: dict[str, Any]) -> dict[str, Any]:
    """dropbox.file_transfer.Downloader with parallel_downloads=N into a File target."""
    from dropbox import file_transfer as ft

    p = int(task["parallelism"])
    dbx = make_sdk(task, p)
    with Meter() as m:
        ft.Downloader(dbx).download(
            task["remote"], ft.File(task["local"]), ft.DownloadOptions(parallel_downloads=p)
        )
    size = os.path.getsize(task["local"])
    os.unlink(task["local"])
    return _result(m, size)


# ---------------------------------------------------------------------------------------------- mirror


def client_mirror(task: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_dropbox.sync import mirror

    p = int(task["parallelism"])
    client = make_client(task, p)
    with Meter() as m:
        report = mirror(
            client, task["remote"], task["local"], parallelism=p, zip_small_files=task.get("zip", True)
        )
    client.close()
    summary = report.to_dict()
    files = _count_files(task["local"])
    if not task.get("keep"):
        shutil.rmtree(task["local"], ignore_errors=True)
    kept = ("downloaded", "downloaded_in_zips", "deleted", "errors")
    return _result(m, 0, files=files, report={k: summary.get(k) for k in kept})


def _sdk_listing(dbx: Any, root: str) -> list[Any]:
    import dropbox

    res = dbx.files_list_folder(root, recursive=True)
    entries = list(res.entries)
    while res.has_more:
        res = dbx.files_list_folder_continue(res.cursor)
        entries.extend(res.entries)
    return [e for e in entries if isinstance(e, dropbox.files.FileMetadata)]


def _sdk_fetch(dbx: Any, root: str, local: str) -> Callable[[Any], None]:
    prefix = len(root.rstrip("/")) + 1

    def fetch(entry: Any) -> None:
        dest = os.path.join(local, entry.path_display[prefix:])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        dbx.files_download_to_file(dest, entry.path_lower)

    return fetch


def sdk_mirror_seq(task: dict[str, Any]) -> dict[str, Any]:
    """A straightforward SDK script: list recursively, then download each file in turn."""
    dbx = make_sdk(task)
    with Meter() as m:
        fetch = _sdk_fetch(dbx, task["remote"], task["local"])
        for entry in _sdk_listing(dbx, task["remote"]):
            fetch(entry)
    files = _count_files(task["local"])
    shutil.rmtree(task["local"], ignore_errors=True)
    return _result(m, 0, files=files)


def sdk_mirror_pool(task: dict[str, Any]) -> dict[str, Any]:
    """The same script with the downloads in a thread pool of the client's width."""
    p = int(task["parallelism"])
    dbx = make_sdk(task, p)
    with Meter() as m:
        fetch = _sdk_fetch(dbx, task["remote"], task["local"])
        with ThreadPoolExecutor(max_workers=p) as pool:
            list(pool.map(fetch, _sdk_listing(dbx, task["remote"])))
    files = _count_files(task["local"])
    shutil.rmtree(task["local"], ignore_errors=True)
    return _result(m, 0, files=files)


def _count_files(root: str) -> int:
    n = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        n += sum(1 for f in filenames if not f.startswith("."))
    return n


def _result(m: Meter, nbytes: int, **extra: Any) -> dict[str, Any]:
    return {
        "seconds": m.seconds,
        "cpu_s": round(m.cpu_s, 3),  # this process's user + system CPU (all threads) during the trial
        "sys_s": round(m.sys_s, 3),  # the system (kernel) part of it
        "minor_faults": m.minor_faults,  # pages the kernel had to map in for us (fresh allocations)
        **({} if m.steal_s is None else {"steal_s": round(m.steal_s, 2)}),
        "bytes": nbytes,
        "rss_growth_mib": round(m.rss_growth_mib, 1),
        "peak_reset": m.peak_reset,
        **({} if m.emu_cpu_s is None else {"emu_cpu_s": round(m.emu_cpu_s, 2)}),  # the server's CPU meanwhile
        **extra,
    }


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    f.__name__: f
    for f in (
        client_upload,
        raw_upload,
        client_download,
        raw_download,
        raw_download_readinto,
        sdk_upload_seq,
        sdk_upload_ft,
        sdk_download_seq,
        sdk_download_ft,
        client_mirror,
        sdk_mirror_seq,
        sdk_mirror_pool,
    )
}


def main(argv: list[str]) -> None:
    """One task (a JSON object), or several run one after the other (a JSON list: ``--quick`` batches them
    to save process start-ups; memory numbers are then only indicative). One ``RESULT`` line per task."""
    global EMULATOR_PID
    from benchmarks import many_files

    KINDS.update(many_files.KINDS)
    loaded = json.loads(argv[0])
    for task in loaded if isinstance(loaded, list) else [loaded]:
        EMULATOR_PID = task.get("emulator_pid")
        Path(task.get("local", ".")).parent.mkdir(parents=True, exist_ok=True)
        sampler = StackSampler() if task.get("sample") else None
        if sampler is not None:
            sampler.start()
        try:
            result = KINDS[task["kind"]](task)
            if sampler is not None:
                result["samples"] = sampler.samples
                result["stacks"] = sampler.stop()
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
