"""Run one two-way sync in a child process so a test can SIGKILL it mid-run
(``python -m tests.sync.two_way.sync_child BASE_URL REMOTE LOCAL``)."""

from __future__ import annotations

import sys

from airflow_provider_dropbox.sync import MirrorError
from airflow_provider_dropbox.sync.two_way import sync_two_way
from tests.emulator_process import EmulatorProcess
from tests.sync.conftest import make_client


def main() -> int:
    base_url, remote, local = sys.argv[1:4]
    emu = EmulatorProcess(base_url=base_url, data_dir=None, process=None)  # type: ignore[arg-type]
    client = make_client(emu)
    print("ready", flush=True)
    try:
        sync_two_way(client, remote, local, allow_empty=True)
    except MirrorError as exc:
        print(f"sync error: {exc}", flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
