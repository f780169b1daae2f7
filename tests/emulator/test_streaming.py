"""Big transfers stream through the emulator: its RSS stays flat while hundreds of MiB go in and out."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.emulator.helpers import BLOCK, Api

CHUNK = 2 * BLOCK
PIECES = 64  # 512 MiB


def _rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


@pytest.mark.slow
def test_large_transfers_do_not_grow_memory(fresh_api: Api) -> None:
    api = fresh_api
    pid = api.emu.process.pid
    baseline = _rss_mib(pid)
    peak = [baseline]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib(pid))
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        piece = bytes(range(256)) * (CHUNK // 256)
        sid = api.upload_raw("files/upload_session/start", {"session_type": "concurrent"}).json()[
            "session_id"
        ]

        def put(i: int) -> int:
            client = Api(api.emu, token=api.token)
            arg = {"cursor": {"session_id": sid, "offset": i * CHUNK}, "close": i == PIECES - 1}
            return client.upload_raw("files/upload_session/append_v2", arg, piece).status_code

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(put, range(PIECES))) == {200}
        r = api.upload_raw(
            "files/upload_session/finish",
            {"cursor": {"session_id": sid, "offset": PIECES * CHUNK}, "commit": {"path": "/big.bin"}},
        )
        assert r.status_code == 200 and r.json()["size"] == PIECES * CHUNK
        assert api.upload("/single.bin", b"s" * (140 * 1024 * 1024))["size"] == 140 * 1024 * 1024
        got = 0
        with api.http.post(
            f"{api.base}/2/files/download",
            headers={**api.auth(), "Dropbox-API-Arg": json.dumps({"path": "/big.bin"})},
            stream=True,
            timeout=120,
        ) as resp:
            for chunk in resp.iter_content(1 << 20):
                got += len(chunk)
        assert got == PIECES * CHUNK
    finally:
        done.set()
        watcher.join()
    assert peak[0] - baseline < 100, (baseline, peak[0])
