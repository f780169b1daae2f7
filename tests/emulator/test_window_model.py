"""The emulator's TCP-window model: with latency L and window W each request moves at most W/L per second.

Behaviour tests of the throttle with generous bounds (the box is shared), not speed claims: the lower bounds
show the cap is applied, the upper bounds that it is per request (parallel requests each get their own) and
not wildly over-slept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.emulator.helpers import Api
from tests.emulator_process import EmulatorProcess, start_emulator

KiB = 1024
MiB = 1024 * KiB
WINDOW = 256 * KiB
LATENCY_MS = 50
RATE = WINDOW / (LATENCY_MS / 1000)  # 5 MiB/s per request and direction
SIZE = 2 * MiB  # 0.4 s at RATE
EXPECTED = LATENCY_MS / 1000 + SIZE / RATE  # 0.45 s


@pytest.fixture
def windowed(faulty_api: Api) -> Iterator[Api]:
    yield faulty_api
    faulty_api.emu.set_faults(window_bytes=None)  # clear_faults does not know this knob


def _timed(fn: object) -> float:
    assert callable(fn)
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def test_settings_roundtrip_and_validation(windowed: Api) -> None:
    emu = windowed.emu
    assert emu.admin("faults", method="GET")["window_bytes"] is None
    assert emu.set_faults(window_bytes=4 * MiB)["window_bytes"] == 4 * MiB
    for bad in (0, -1, "big", True):
        r = requests.post(f"{emu.base_url}/_emulator/faults", json={"window_bytes": bad}, timeout=10)
        assert r.status_code == 400, bad
    assert emu.admin("faults", method="GET")["window_bytes"] == 4 * MiB


def test_window_is_settable_at_start_up(tmp_path: Path) -> None:
    """``--window-bytes`` on the command line, like the other network knobs, for set-ups where nothing POSTs
    to the admin API (docker-compose, the demo)."""
    proc = start_emulator(tmp_path / "data", "--latency-ms", "50", "--window-bytes", str(4 * MiB))
    try:
        faults = requests.get(f"{proc.base_url}/_emulator/faults", timeout=10).json()
        assert (faults["latency_ms"], faults["window_bytes"]) == (50, 4 * MiB)
    finally:
        proc.stop()


def test_one_download_and_one_upload_move_at_window_per_latency(windowed: Api) -> None:
    api = windowed
    data = bytes(range(256)) * (SIZE // 256)
    api.upload("/win.bin", data)
    api.emu.set_faults(latency_ms=LATENCY_MS, window_bytes=WINDOW)

    def down() -> None:
        assert api.download("/win.bin").content == data

    took = _timed(down)
    assert 0.9 * EXPECTED <= took < 3 * EXPECTED, took
    took = _timed(lambda: api.upload("/win-up.bin", data))
    assert 0.9 * EXPECTED <= took < 3 * EXPECTED, took


def test_parallel_requests_each_get_their_own_window(windowed: Api, faulty_emulator: EmulatorProcess) -> None:
    """Four requests on four connections take about as long as one: the cap is per connection, so the
    aggregate rate grows with the number of connections (what parallel transfers exist for)."""
    api = windowed
    data = b"w" * SIZE
    api.upload("/win-par.bin", data)
    api.emu.set_faults(latency_ms=LATENCY_MS, window_bytes=WINDOW)
    apis = [Api(faulty_emulator, token=api.token) for _ in range(4)]
    try:

        def one(a: Api) -> None:
            assert a.download("/win-par.bin").content == data

        with ThreadPoolExecutor(4) as pool:
            took = _timed(lambda: list(pool.map(one, apis)))
    finally:
        for a in apis:
            a.http.close()
    # serialised through one shared cap it would take 4 x EXPECTED
    assert 0.9 * EXPECTED <= took < 2.5 * EXPECTED, took


def test_window_without_latency_is_no_cap_and_bandwidth_cap_still_applies(windowed: Api) -> None:
    api = windowed
    data = b"x" * SIZE
    api.upload("/win-free.bin", data)
    api.emu.set_faults(latency_ms=0, window_bytes=WINDOW)
    took = _timed(lambda: api.download("/win-free.bin"))
    assert took < SIZE / RATE, took  # a zero round trip puts no bound on a window's rate
    # the lower of the two caps wins: 8 Mbit/s (1 MB/s) is below 256 KiB / 50 ms
    api.emu.set_faults(latency_ms=LATENCY_MS, window_bytes=WINDOW, bandwidth_mbps=8)
    took = _timed(lambda: api.download("/win-free.bin"))
    assert took >= SIZE / 1_000_000, took
