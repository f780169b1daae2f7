"""Run one mirror on a pickled fake remote and SIGKILL itself at the Nth index COMMIT (before or after it).

``python -m tests.sync.index_kill_child FAKE.pkl DEST N before|after``; exits 0 if the run ended first.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import sys
from typing import Any

from airflow_provider_dropbox.sync import apply as apply_mod
from airflow_provider_dropbox.sync import mirror
from airflow_provider_dropbox.sync.index import MirrorIndex


class _KillingConn:
    def __init__(self, conn: sqlite3.Connection, nth: int, when: str, seen: list[int]) -> None:
        self.conn, self.nth, self.when, self.seen = conn, nth, when, seen

    def execute(self, sql: str, *args: Any) -> Any:
        if sql != "COMMIT":
            return self.conn.execute(sql, *args)
        self.seen[0] += 1
        if self.seen[0] == self.nth and self.when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = self.conn.execute(sql, *args)
        if self.seen[0] == self.nth and self.when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def main() -> int:
    fake_path, dest, nth, when = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(fake_path, "rb") as fh:
        dbx = pickle.load(fh)  # written by the test
    seen = [0]
    real_open = MirrorIndex.open.__func__  # type: ignore[attr-defined]

    def open_killing(cls: type[MirrorIndex], folder: str) -> MirrorIndex:
        index = real_open(cls, folder)
        index.conn = _KillingConn(index.conn, nth, when, seen)  # type: ignore[assignment]
        return index

    MirrorIndex.open = classmethod(open_killing)  # type: ignore[method-assign, assignment]
    apply_mod.CHECKPOINT_EVERY = -1.0  # a checkpoint (an index commit) after every transfer
    mirror(dbx, "/Root", dest, parallelism=1, allow_empty_remote=True)
    print(f"commits {seen[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
