"""The two-way sync's index: ``<local_dir>/.dropbox-sync/index.sqlite3`` (stdlib ``sqlite3``, WAL,
``synchronous=FULL``), the same conventions as the mirror's index.

One row per path as both sides last agreed on it: the remote rev and content hash, and the local stat
(size, mtime_ns, inode, ctime_ns) right after the sync wrote or read it. A change on either side is a
difference from this row; what the sync itself wrote matches it, so it never comes back as a change.
Rows are written one action at a time, so a crash loses at most the action in flight, which the next run
recognises (same content on both sides is recorded, not transferred again).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from airflow_provider_dropbox.sync.errors import DestinationError, StateError

SCHEMA_VERSION = 1
STATE_DIR_NAME = ".dropbox-sync"
INDEX_FILE = "index.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, path TEXT NOT NULL, is_dir INTEGER NOT NULL, rev TEXT, content_hash TEXT,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = "key, path, is_dir, rev, content_hash, size, mtime_ns, inode, ctime_ns"
_WAY_OUT = (
    "Nothing was changed on either side. Move the index away (or delete it) and re-run: the next run is a "
    "first run again, which only merges (identical files recorded, different ones kept as conflicted "
    "copies, nothing deleted)"
)


class SyncIndexVersionError(StateError):
    """The index was written by a newer schema version; it is refused, never rewritten."""


@dataclass(frozen=True, slots=True)
class Synced:
    """A path as both sides last agreed on it."""

    path: str  # local relative path, with the case the sync last wrote
    is_dir: bool
    rev: str | None
    content_hash: str | None
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    ctime_ns: int = 0


class SyncIndex:
    """One open index; not thread-safe (the engine's thread only)."""

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path, self.conn = path, conn

    @classmethod
    def open(cls, folder: str) -> SyncIndex:
        path = os.path.join(folder, INDEX_FILE)
        fresh = not os.path.exists(path)
        try:
            conn = sqlite3.connect(path, timeout=0.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(
                f"The two-way sync index {path!r} cannot be opened ({exc}). " + _WAY_OUT
            ) from exc
        index = cls(path, conn)
        try:
            if str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                if not fresh and tables:
                    raise sqlite3.DatabaseError("not a two-way sync index (no schema version)")
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            row = conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise SyncIndexVersionError(
                    f"The two-way sync index {path!r} was written by a newer version of the provider (schema "
                    f"{version}; this one reads {SCHEMA_VERSION}) and is left as it is. Upgrade the provider "
                    "on this worker"
                )
            conn.execute("SELECT key FROM entries LIMIT 1").fetchone()
        except StateError:
            conn.close()
            raise
        except (sqlite3.Error, ValueError) as exc:
            conn.close()
            raise StateError(f"The two-way sync index {path!r} is unreadable ({exc}). " + _WAY_OUT) from exc
        return index

    def close(self) -> None:
        self.conn.close()

    def _read(self, sql: str, args: Iterable[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self.conn.execute(sql, tuple(args)))
        except sqlite3.Error as exc:
            raise StateError(
                f"The two-way sync index {self.path!r} is unreadable ({exc}). " + _WAY_OUT
            ) from exc

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._read("SELECT k, v FROM meta")}

    def entries(self) -> dict[str, Synced]:
        return self._rows(self._read(f"SELECT {_COLUMNS} FROM entries"))

    def subtrees(self, keys: Iterable[str]) -> dict[str, Synced]:
        """The rows of ``keys`` and of everything below them (a range on the primary key each: a focused
        run reads what it looks at, not the whole index)."""
        out: dict[str, Synced] = {}
        for k in keys:
            sql = f"SELECT {_COLUMNS} FROM entries WHERE key = ? OR (key >= ? AND key < ?)"
            out.update(self._rows(self._read(sql, (k, k + "/", k + "0"))))  # "0" sorts right after "/"
        return out

    def get(self, key: str) -> Synced | None:
        return self._rows(self._read(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,))).get(key)

    def file_count(self) -> int:
        (count,) = self._read("SELECT count(*) FROM entries WHERE is_dir = 0")[0]
        return count if isinstance(count, int) else 0

    def _rows(self, rows: list[tuple[object, ...]]) -> dict[str, Synced]:
        try:
            return {r[0]: Synced(r[1], bool(r[2]), *r[3:]) for r in rows}  # type: ignore[arg-type,misc]
        except TypeError as exc:
            raise StateError(
                f"The two-way sync index {self.path!r} holds a malformed row ({exc}). " + _WAY_OUT
            ) from exc

    def write(self, rows: Mapping[str, Synced | None] = {}, meta: Mapping[str, str] | None = None) -> None:
        """One transaction: rows (``None`` deletes) and meta values."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                gone = [(k,) for k, v in rows.items() if v is None]
                if gone:
                    self.conn.executemany("DELETE FROM entries WHERE key=?", gone)
                self.conn.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (k, v.path, 1 if v.is_dir else 0, v.rev, v.content_hash, v.size, v.mtime_ns, v.inode,
                         v.ctime_ns)
                        for k, v in rows.items()
                        if v is not None
                    ],
                )  # fmt: skip
                if meta:
                    self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DestinationError(
                f"Cannot write the two-way sync index {self.path!r} ({exc}). Nothing of this step was "
                "recorded; the next run recognises what was already transferred. Fix the local file system "
                "and re-run"
            ) from exc
