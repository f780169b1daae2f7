"""sqlite persistence for the store and auth: items, deleted paths, the journal, file revision history
and a small key-value table.

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
    # One row per file revision ("u", data = its FileMetadata) or file removal ("d", data = {"ts": ...}) at a
    # path; ``kept`` = the revision's bytes are hard-linked under revblobs/<rev>.
    ("revisions", "seq INTEGER PRIMARY KEY, key TEXT, fid TEXT, op TEXT, rev TEXT, kept INTEGER, data TEXT"),
)
_INDEXES = ("CREATE INDEX IF NOT EXISTS revisions_key ON revisions (key, seq)",)

RevRow = tuple[int, str, str, bool, dict[str, Any]]  # seq, fid, op, kept, data


class Db:
    """Thin typed wrapper over ``emulator.sqlite3``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for table, cols in _TABLES:
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        for index in _INDEXES:
            self.conn.execute(index)

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
        """Every item; equal timestamps, hashes and blob names share one string (bulk-created trees repeat
        them), which keeps a million items well under 1 GiB."""
        shared: dict[str, str] = {}
        for (data,) in self.conn.execute("SELECT data FROM nodes"):
            d = json.loads(data)
            for f in ("client_modified", "server_modified", "content_hash", "blob"):
                d[f] = shared.setdefault(d[f], d[f])
            yield Node(**d)

    def deleted(self) -> Iterator[tuple[str, str]]:
        yield from self.conn.execute("SELECT key, display FROM deleted")

    def journal(self) -> Iterator[tuple[str, str]]:
        yield from self.conn.execute("SELECT op, display FROM journal ORDER BY seq")

    def put_node(self, node: Node) -> None:
        self.conn.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?)", (node.key, json.dumps(asdict(node))))
        self.conn.execute("DELETE FROM deleted WHERE key=?", (node.key,))

    def put_nodes(self, nodes: list[Node]) -> None:
        """Many new items at once (bulk creation): one statement, no ``deleted`` bookkeeping per row."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO nodes VALUES (?, ?)", ((n.key, json.dumps(asdict(n))) for n in nodes)
        )
        self.conn.executemany("DELETE FROM deleted WHERE key=?", ((n.key,) for n in nodes))

    def remove_node(self, node: Node) -> None:
        self.conn.execute("DELETE FROM nodes WHERE key=?", (node.key,))
        self.conn.execute("INSERT OR REPLACE INTO deleted VALUES (?, ?)", (node.key, node.display))

    def append_journal(self, seq: int, op: str, display: str) -> None:
        self.conn.execute("INSERT INTO journal VALUES (?, ?, ?)", (seq, op, display))

    def append_journal_many(self, first_seq: int, items: list[tuple[str, str]]) -> None:
        rows = ((first_seq + i, op, display) for i, (op, display) in enumerate(items))
        self.conn.executemany("INSERT INTO journal VALUES (?, ?, ?)", rows)

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

    # ---------------------------------------------------------------- revision history

    def add_revision(
        self, key: str, fid: str, op: str, rev: str, data: dict[str, Any], kept: bool = False
    ) -> None:
        self.conn.execute(
            "INSERT INTO revisions (key, fid, op, rev, kept, data) VALUES (?, ?, ?, ?, ?, ?)",
            (key, fid, op, rev, int(kept), json.dumps(data)),
        )

    def set_kept(self, seq: int, kept: bool) -> None:
        self.conn.execute("UPDATE revisions SET kept=? WHERE seq=?", (int(kept), seq))

    def drop_history(self, key: str, seq: int) -> None:
        """Forget the row ``seq`` and every older row at ``key``."""
        self.conn.execute("DELETE FROM revisions WHERE key=? AND seq<=?", (key, seq))

    @staticmethod
    def _rows(cur: sqlite3.Cursor) -> list[RevRow]:
        return [(seq, fid, op, bool(kept), json.loads(data)) for seq, fid, op, kept, data in cur]

    def revisions_at(self, key: str) -> list[RevRow]:
        """History at one path, newest first."""
        cur = self.conn.execute(
            "SELECT seq, fid, op, kept, data FROM revisions WHERE key=? ORDER BY seq DESC", (key,)
        )
        return self._rows(cur)

    def revisions_of(self, fid: str) -> list[RevRow]:
        """History of one file id across paths, newest first (a scan: mode=id is rare)."""
        cur = self.conn.execute(
            "SELECT seq, fid, op, kept, data FROM revisions WHERE fid=? ORDER BY seq DESC", (fid,)
        )
        return self._rows(cur)

    def older_revisions(self, key: str, skip: int) -> list[tuple[int, str, bool]]:
        """(seq, rev, kept) of the revisions at ``key`` after the ``skip`` newest, newest first."""
        sql = (
            "SELECT seq, rev, kept FROM revisions WHERE key=? AND op='u' ORDER BY seq DESC LIMIT -1 OFFSET ?"
        )
        return [(seq, rev, bool(kept)) for seq, rev, kept in self.conn.execute(sql, (key, skip))]

    def kept_revision(self, rev: str) -> dict[str, Any] | None:
        """The metadata of ``rev`` if its bytes are kept (a scan: old-rev downloads are rare)."""
        row = self.conn.execute(
            "SELECT data FROM revisions WHERE rev=? AND op='u' AND kept=1 ORDER BY seq DESC LIMIT 1", (rev,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def kept_revs(self) -> set[str]:
        return {rev for (rev,) in self.conn.execute("SELECT rev FROM revisions WHERE kept=1")}
