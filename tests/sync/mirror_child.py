"""Run one mirror in a child process so a test can SIGKILL it mid-run (``-m tests.sync.mirror_child``)."""

from __future__ import annotations

import logging
import sys

from airflow_provider_dropbox.sync import MirrorError, mirror
from tests.emulator_process import EmulatorProcess
from tests.sync.conftest import make_client


class _PlanSignal(logging.Handler):
    """Tell the parent the moment the plan is made, so it can aim its SIGKILL at the apply phase."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Mirror plan for"):
            print("plan", flush=True)


def main() -> int:
    base_url, remote, local = sys.argv[1:4]
    emu = EmulatorProcess(base_url=base_url, data_dir=None, process=None)  # type: ignore[arg-type]
    client = make_client(emu)
    log = logging.getLogger("mirror-child")
    log.setLevel(logging.INFO)
    log.addHandler(_PlanSignal())
    print("ready", flush=True)
    try:
        mirror(client, remote, local, parallelism=4, stale_lock_after=30, logger=log)
    except MirrorError as exc:
        print(f"mirror error: {exc}", flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
