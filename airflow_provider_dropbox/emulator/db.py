"""sqlite persistence for the store and auth: items, deleted paths, the journal, and a small key-value table.

One connection shared by threads; callers serialise access with the store lock. WAL + synchronous=NORMAL:
a killed emulator loses nothing that was committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .model import Node

_TABLES = (
    ("nodes", "key TEXT PRIMARY KEY, data TEXT"),
    ("deleted", "key TEXT PRIMARY KEY, display TEXT"),
    ("journal", "seq INTEGER PRIMARY KEY, op TEXT, display TEXT"),
    ("kv", "tbl TEXT, key TEXT, data TEXT, PRIMARY KEY (tbl, key)"),
)


class Db:
    """Thin typed wrapper over ``emulator.sqlite3``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for table, cols in _TABLES:
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def nodes(self) -> Iterator[Node]:
        for (data,) in self.conn.execute("SELECT data FROM nodes"):
            yield Node(**json.loads(data))

    def deleted(self) -> Iterator[tuple[str, str]]:
        yield from self.conn.execute("SELECT key, display FROM deleted")

    def journal(self) -> Iterator[tuple[str, str]]:
        yield from self.conn.execute("SELECT op, display FROM journal ORDER BY seq")

    def put_node(self, node: Node) -> None:
        self.conn.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?)", (node.key, json.dumps(asdict(node))))
        self.conn.execute("DELETE FROM deleted WHERE key=?", (node.key,))

    def remove_node(self, node: Node) -> None:
        self.conn.execute("DELETE FROM nodes WHERE key=?", (node.key,))
        self.conn.execute("INSERT OR REPLACE INTO deleted VALUES (?, ?)", (node.key, node.display))

    def append_journal(self, seq: int, op: str, display: str) -> None:
        self.conn.execute("INSERT INTO journal VALUES (?, ?, ?)", (seq, op, display))

    def kv_get(self, tbl: str, key: str) -> Any:
        row = self.conn.execute("SELECT data FROM kv WHERE tbl=? AND key=?", (tbl, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_all(self, tbl: str) -> dict[str, Any]:
        rows = self.conn.execute("SELECT key, data FROM kv WHERE tbl=?", (tbl,)).fetchall()
        return {k: json.loads(d) for k, d in rows}

    def kv_put(self, tbl: str, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (tbl, key, json.dumps(value)))

    def kv_del(self, tbl: str, key: str) -> None:
        self.conn.execute("DELETE FROM kv WHERE tbl=? AND key=?", (tbl, key))
