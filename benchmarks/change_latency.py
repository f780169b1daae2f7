"""How fast do DAG authors' change detectors notice a Dropbox change? (goal: under 2 s)

Measured in one run against one local emulator, from the moment an upload starts (so the upload itself
is included: an upper bound) to the moment:

- ``deferred-sensor``: the deferrable ``DropboxChangeSensor``'s trigger (``DropboxChangeTrigger.run``)
  yields its event (the sensor resumes right after, on a worker);
- ``event-trigger``: the AssetWatcher's ``DropboxChangeEventTrigger`` yields its event (the asset event);
- ``poke-sensor``: a poke-mode ``DropboxChangeSensor`` at its default ``poke_interval`` (60 s) returns,
  the change landing at a random point of the poke interval, as it would in practice.

Run: ``.venv/bin/python -m benchmarks.change_latency [--trials 5] [--poke-trials 3]``; writes
``benchmarks/results/change_latency.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, start_emulator

LONGPOLL = "/2/files/list_folder/longpoll"
LATEST = "/2/files/list_folder/get_latest_cursor"
OUT = Path(__file__).parent / "results" / "change_latency.json"


class _TI:
    dag_id, task_id, run_id, map_index = "bench", "sensor", "r", -1

    def xcom_pull(self, **_: Any) -> None:
        return None

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _upload(hook: Any, local: Path, remote: str) -> float:
    """Upload; return when it *started*, so the figures are upper bounds (they include the upload)."""
    local.write_text(str(time.time()))
    started = time.monotonic()
    hook.upload_file(local, remote, mode="overwrite")
    return started


async def _wait_stat(emu: Any, route: str, before: int) -> None:
    while await asyncio.to_thread(lambda: emu.stats().get(route, 0)) <= before:
        await asyncio.sleep(0.02)


def bench_deferred_sensor(emu: Any, hook: Any, tmp: Path, trials: int) -> list[float]:
    from airflow_provider_dropbox.triggers.dropbox import DropboxChangeTrigger

    out = []
    for i in range(trials):
        cursor = hook.get_latest_cursor("/bench")
        trigger = DropboxChangeTrigger(path="/bench", cursor=cursor)

        async def once(trigger: DropboxChangeTrigger = trigger, i: int = i) -> float:
            before = emu.stats().get(LONGPOLL, 0)
            task = asyncio.ensure_future(anext(trigger.run()))  # type: ignore[arg-type]
            await _wait_stat(emu, LONGPOLL, before)
            await asyncio.sleep(0.5)  # the longpoll is parked on the server
            changed = await asyncio.to_thread(_upload, hook, tmp / "d", f"/bench/deferred-{i}.csv")
            await task
            return time.monotonic() - changed

        out.append(asyncio.run(once()))
    return out


def bench_event_trigger(emu: Any, hook: Any, tmp: Path, trials: int) -> list[float]:
    from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger

    async def run() -> list[float]:
        gen = DropboxChangeEventTrigger(path="/bench").run()
        out = []
        for i in range(trials):
            before = emu.stats().get(LONGPOLL, 0)
            task = asyncio.ensure_future(anext(gen))
            await _wait_stat(emu, LONGPOLL, before)
            await asyncio.sleep(0.5)
            changed = await asyncio.to_thread(_upload, hook, tmp / "e", f"/bench/event-{i}.csv")
            await task
            out.append(time.monotonic() - changed)
        await gen.aclose()
        return out

    return asyncio.run(run())


def bench_poke_sensor(emu: Any, hook: Any, tmp: Path, trials: int, interval: float) -> list[float]:
    from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor

    out = []
    for i in range(trials):
        sensor = DropboxChangeSensor(
            task_id=f"poke{i}", path="/bench", mode="poke", poke_interval=interval, timeout=10 * interval
        )
        before = emu.stats().get(LATEST, 0)
        done: list[float] = []

        def run(sensor: DropboxChangeSensor = sensor, done: list[float] = done) -> None:
            sensor._cursor = sensor._initial_cursor({"ti": _TI()})  # type: ignore[typeddict-item]
            while not sensor.poke({"ti": _TI()}):  # type: ignore[typeddict-item]
                time.sleep(interval)  # BaseSensorOperator's poke loop, without the task runner
            done.append(time.monotonic())

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        while emu.stats().get(LATEST, 0) <= before:
            time.sleep(0.05)
        time.sleep(random.uniform(0, interval))
        changed = _upload(hook, tmp / "p", f"/bench/poke-{i}.csv")
        thread.join()
        out.append(done[0] - changed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--poke-trials", type=int, default=3)
    parser.add_argument("--poke-interval", type=float, default=60.0, help="default BaseSensorOperator value")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="change-latency-"))
    emu = start_emulator(work / "emulator")
    os.environ["AIRFLOW_CONN_DROPBOX_DEFAULT"] = json.dumps(
        {
            "conn_type": "dropbox",
            "host": emu.base_url,
            "login": DEV_APP_KEY,
            "password": DEV_APP_SECRET,
            "extra": {"refresh_token": DEV_REFRESH_TOKEN},
        }
    )
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook()
    hook.create_folder("/bench")
    try:
        results = {
            "deferred-sensor": bench_deferred_sensor(emu, hook, work, args.trials),
            "event-trigger": bench_event_trigger(emu, hook, work, args.trials),
            "poke-sensor": bench_poke_sensor(emu, hook, work, args.poke_trials, args.poke_interval),
        }
    finally:
        hook.close()
        emu.stop()
    summary = {
        name: {
            "trials": len(values),
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
            "values_s": [round(v, 3) for v in values],
        }
        for name, values in results.items()
    }
    record = {
        "command": " ".join([".venv/bin/python -m benchmarks.change_latency", *sys.argv[1:]]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "poke_interval_s": args.poke_interval,
        # A change lands uniformly within the poke interval: on average half an interval until noticed.
        "poke_expected_mean_s": args.poke_interval / 2,
        "goal_s": 2.0,
        "results": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("| detector | trials | median (s) | max (s) |\n| --- | --- | --- | --- |")
    for name, s in summary.items():
        print(f"| {name} | {s['trials']} | {s['median_s']} | {s['max_s']} |")


if __name__ == "__main__":
    main()
