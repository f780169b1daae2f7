"""Run one mirror in a child process so a test can SIGKILL it mid-run (``-m tests.sync.mirror_child``)."""

from __future__ import annotations

import sys

from airflow_provider_dropbox.sync import MirrorError, mirror
from tests.emulator_process import EmulatorProcess
from tests.sync.conftest import make_client


def main() -> int:
    base_url, remote, local = sys.argv[1:4]
    emu = EmulatorProcess(base_url=base_url, data_dir=None, process=None)  # type: ignore[arg-type]
    client = make_client(emu)
    print("ready", flush=True)
    try:
        mirror(client, remote, local, parallelism=4, stale_lock_after=30)
    except MirrorError as exc:
        print(f"mirror error: {exc}", flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
