"""The mirror's index: SQLite (stdlib ``sqlite3``) in ``<local_dir>/.dropbox-mirror/index.sqlite3``.

One row per remote entry (``remote``: the tree as of the cursor), one per path the mirror wrote or adopted
(``manifest``), one per intent of a run that has not committed (``pending``), and a ``meta`` table (schema
version, remote folder, cursor, last run). WAL journal, ``synchronous=FULL``: a committed transaction
survives a power cut, and a kill -9 at any point leaves the last committed transaction.

Writes touch rows, not the file: a checkpoint writes the manifest rows placed since the previous one, the
final commit writes the rows the run changed plus the cursor in one transaction (and retires the run's
intents in the same one), and a run with no change writes the cursor only if it moved. The lock file
(``lock.py``) stays the authority on who may write; SQLite's own locking only guards the file.

An existing ``state.json`` (+ ``pending.json``) from the JSON-state engine is migrated on open: converted in
one transaction, and the old files are removed only after it committed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_dropbox.sync.errors import DestinationError, StateError
from airflow_provider_dropbox.sync.remote import RemoteEntry, RemoteTree

SCHEMA_VERSION = 1
INDEX_FILE = "index.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote (
    key TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL, is_dir INTEGER NOT NULL, id TEXT,
    rev TEXT, content_hash TEXT, size INTEGER NOT NULL, downloadable INTEGER NOT NULL,
    synthetic INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS remote_parent ON remote (parent);
CREATE INDEX IF NOT EXISTS remote_hash ON remote (content_hash) WHERE content_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS manifest (
    path TEXT PRIMARY KEY, is_dir INTEGER NOT NULL, key TEXT NOT NULL, content_hash TEXT,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, rev TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_hash ON manifest (content_hash) WHERE content_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS manifest_key ON manifest (key);
CREATE TABLE IF NOT EXISTS recheck (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    path TEXT PRIMARY KEY, op TEXT NOT NULL, is_dir INTEGER NOT NULL, key TEXT NOT NULL,
    content_hash TEXT, rev TEXT
) WITHOUT ROWID;
"""

_COUNTERS = ("remote_files", "managed_files", "managed_paths")  # kept in meta as n_<name>

_WAY_OUT = (
    "Nothing in the destination was changed. Move it away (or delete it) and re-run with "
    "full_rescan=True: the index is rebuilt from the destination and the remote folder, and files whose "
    "content already matches are adopted, not downloaded again"
)


class IndexVersionError(StateError):
    """The index was written by a newer schema version; it is refused, never rewritten."""


def index_path(state_folder: str) -> str:
    return os.path.join(state_folder, INDEX_FILE)


def _read_error(path: str, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StateError(
            f"The mirror index {path!r} is locked by another process ({text}). The mirror's lock file "
            "decides who runs; if no mirror run is active, another program holds the database open (or "
            "the destination is on a network file system whose locks SQLite cannot use: see docs/mirror.md). "
            + _WAY_OUT
        )
    return StateError(f"The mirror index {path!r} is unreadable ({type(exc).__name__}: {text}). " + _WAY_OUT)


def _write_error(path: str, exc: sqlite3.Error) -> DestinationError:
    return DestinationError(
        f"Cannot write the mirror index {path!r} ({type(exc).__name__}: {exc}). Nothing was committed: the "
        "next run starts again from the last committed state. Free space on (or fix) the destination's "
        "file system and re-run"
    )


class TrackedManifest(dict[str, Any]):
    """The manifest as a dict that remembers which paths changed, so a commit writes only those rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changed: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        self.changed.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.changed.add(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.changed.add(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.changed.add(key)
        return super().setdefault(key, default)

    def mark(self, key: str) -> None:
        """A record was changed in place (e.g. a refreshed rev)."""
        self.changed.add(key)

    def take_changes(self) -> dict[str, Any]:
        """The changed rows since the last call (``None`` for a removed path); resets the change set."""
        changed, self.changed = self.changed, set()
        return {p: self.get(p) for p in changed}


class MirrorIndex:
    """One open index; every method is one transaction. Not thread-safe: the engine's thread only."""

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    # -- opening --------------------------------------------------------------------------------------
    @classmethod
    def exists(cls, state_folder: str) -> bool:
        return os.path.exists(index_path(state_folder))

    @classmethod
    def open(cls, state_folder: str) -> MirrorIndex:
        """Open (or create) the index; refuse a corrupt, locked or newer-schema one with StateError."""
        path = index_path(state_folder)
        fresh = not os.path.exists(path)
        try:
            conn = sqlite3.connect(path, timeout=0.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _read_error(path, exc) from exc
        index = cls(path, conn)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a file system without shared memory: still correct
                conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            version = index._schema_version()
            if version is not None and version > SCHEMA_VERSION:
                raise IndexVersionError(
                    f"The mirror index {path!r} was written by a newer version of the provider (schema "
                    f"{version}; this one reads {SCHEMA_VERSION}) and is left as it is. Upgrade the "
                    "provider on this worker, or move the index away and re-run with full_rescan=True"
                )
            if version is None:
                if not fresh and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise sqlite3.DatabaseError("not a mirror index (no schema version)")
                index._create()
            else:
                conn.execute("SELECT count(*) FROM meta").fetchone()
                index._add_missing_indexes()
        except StateError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise _read_error(path, exc) from exc
        return index

    def _schema_version(self) -> int | None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            return None
        row = self.conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
        return int(row[0]) if row is not None else None

    def _create(self) -> None:
        with self._tx():
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _add_missing_indexes(self) -> None:
        """Indexes and tables added within schema 1 (no row changes): created once on an older file, in one
        write (an older provider ignores them)."""
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if not {"manifest_key", "recheck"} <= have:
            with self._tx():
                self.conn.execute("CREATE INDEX IF NOT EXISTS manifest_key ON manifest (key)")
                self.conn.execute("CREATE TABLE IF NOT EXISTS recheck (key TEXT PRIMARY KEY) WITHOUT ROWID")

    def close(self) -> None:
        self.conn.close()

    # -- transactions -----------------------------------------------------------------------------------
    class _Tx:
        def __init__(self, index: MirrorIndex) -> None:
            self.index = index

        def __enter__(self) -> None:
            try:
                self.index.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _read_error(self.index.path, exc) from exc

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            conn = self.index.conn
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                    return
                except sqlite3.Error as err:
                    exc = err
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise _write_error(self.index.path, exc) from exc

    def _tx(self) -> MirrorIndex._Tx:
        return MirrorIndex._Tx(self)

    # -- reading ----------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str | None]:
        try:
            return {k: v for k, v in self.conn.execute("SELECT k, v FROM meta")}
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def is_empty(self) -> bool:
        """No cursor and no rows: nothing was ever listed, written or intended here."""
        try:
            if self.meta().get("cursor"):
                return False
            return not any(
                self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for table in ("remote", "manifest", "pending")
            )
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def load(self) -> Any:
        """The committed state as a ``MirrorState`` (``None`` if no run ever committed)."""
        from airflow_provider_dropbox.sync.state import Managed, MirrorState

        try:
            meta = self.meta()
            pending = self.pending()
            if "remote_path" not in meta:
                if not pending:
                    return None
                return MirrorState(pending=pending, uncommitted=True)
            tree = RemoteTree()
            for r in self.conn.execute(
                "SELECT key, name, is_dir, id, rev, content_hash, size, downloadable, synthetic FROM remote"
            ):
                tree._put(
                    RemoteEntry(r[0], r[1], bool(r[2]), r[3], r[4], r[5], int(r[6]), bool(r[7]), bool(r[8]))
                )
            manifest = TrackedManifest(
                (r[0], Managed(bool(r[1]), r[2], r[3], int(r[4]), int(r[5]), r[6]))
                for r in self.conn.execute(
                    "SELECT path, is_dir, key, content_hash, size, mtime_ns, rev FROM manifest"
                )
            )
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc
        except (TypeError, ValueError) as exc:
            raise StateError(
                f"The mirror index {self.path!r} holds a malformed row ({exc}). " + _WAY_OUT
            ) from exc
        manifest.changed.clear()
        return MirrorState(
            remote_path=meta.get("remote_path") or "",
            root_lower=meta.get("root_lower"),
            cursor=meta.get("cursor"),
            remote=tree,
            manifest=manifest,
            pending=pending,
            last_run=meta.get("last_run"),
            updated_at=float(meta.get("updated_at") or 0.0),
        )

    def pending(self) -> dict[str, Any]:
        """The intents of a run that did not commit (path -> ``Pending``)."""
        from airflow_provider_dropbox.sync.state import Pending

        try:
            return {
                r[0]: Pending(r[1], bool(r[2]), r[3], r[4], r[5])
                for r in self.conn.execute("SELECT path, op, is_dir, key, content_hash, rev FROM pending")
            }
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def recheck_keys(self) -> set[str]:
        """Keys a run left unsettled (a conflict left alone): an incremental run looks at them again."""
        try:
            return {r[0] for r in self.conn.execute("SELECT key FROM recheck")}
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    # -- reading by key (what an incremental run needs, without loading the tree) ------------------------
    _REMOTE_COLS = "key, name, is_dir, id, rev, content_hash, size, downloadable, synthetic"
    _MANIFEST_COLS = "path, is_dir, key, content_hash, size, mtime_ns, rev"

    def _remote_query(self, sql: str, args: Iterable[Any]) -> dict[str, RemoteEntry]:
        try:
            return {
                r[0]: RemoteEntry(r[0], r[1], bool(r[2]), r[3], r[4], r[5], int(r[6]), bool(r[7]), bool(r[8]))
                for r in self.conn.execute(f"SELECT {self._REMOTE_COLS} FROM remote {sql}", tuple(args))
            }
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def _manifest_query(self, sql: str, args: Iterable[Any]) -> dict[str, Any]:
        from airflow_provider_dropbox.sync.state import Managed

        try:
            return {
                r[0]: Managed(bool(r[1]), r[2], r[3], int(r[4]), int(r[5]), r[6])
                for r in self.conn.execute(f"SELECT {self._MANIFEST_COLS} FROM manifest {sql}", tuple(args))
            }
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def remote_rows(self, keys: Iterable[str]) -> dict[str, RemoteEntry]:
        """The stored remote entries for ``keys`` (missing keys are absent), one primary-key lookup each."""
        out: dict[str, RemoteEntry] = {}
        for k in keys:
            out.update(self._remote_query("WHERE key=?", (k,)))
        return out

    def remote_children(self, parent: str) -> dict[str, RemoteEntry]:
        """The direct children of folder ``parent`` ("" is the root), through the parent index: the rows the
        case/NFC collision layout of one folder needs."""
        return self._remote_query("WHERE parent=?", (parent,))

    def remote_subtree(self, key: str) -> dict[str, RemoteEntry]:
        """Everything strictly under folder ``key``, by a range query on the primary key ('/' sorts just
        before '0', so ``key/`` <= k < ``key0`` is exactly the subtree)."""
        if key == "":
            return self._remote_query("", ())
        return self._remote_query("WHERE key >= ? AND key < ?", (key + "/", key + "0"))

    def remote_by_hash(self, content_hash: str) -> dict[str, RemoteEntry]:
        return self._remote_query("WHERE content_hash=?", (content_hash,))

    def manifest_rows(self, paths: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in paths:
            out.update(self._manifest_query("WHERE path=?", (p,)))
        return out

    def manifest_by_key(self, key: str) -> dict[str, Any]:
        """The local paths the mirror wrote for remote ``key`` (normally one; more after a collision)."""
        return self._manifest_query("WHERE key=?", (key,))

    def manifest_subtree(self, path: str) -> dict[str, Any]:
        """Every manifest row strictly under local folder ``path``, by a range query on the primary key."""
        if path == "":
            return self._manifest_query("", ())
        return self._manifest_query("WHERE path >= ? AND path < ?", (path + "/", path + "0"))

    def manifest_by_hash(self, content_hash: str) -> dict[str, Any]:
        """Local files with this content (copy sources for a move or an identical file), by the hash index."""
        return self._manifest_query("WHERE content_hash=? AND is_dir=0", (content_hash,))

    def counts(self) -> dict[str, int]:
        """Counters for the guards (``max_deletes``, the empty-listing guard) and the report:
        ``remote_files`` (downloadable files in the stored tree), ``managed_files`` (files the mirror wrote)
        and ``managed_paths`` (files and folders). Kept in ``meta`` by every write, so reading them costs
        the same at any size; an index without them is counted once."""
        try:
            meta = self.meta()
            if all(f"n_{c}" in meta for c in _COUNTERS):
                return {c: int(meta[f"n_{c}"] or 0) for c in _COUNTERS}
            return self._count_rows()
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc
        except ValueError as exc:
            raise StateError(
                f"The mirror index {self.path!r} holds a malformed counter ({exc}). " + _WAY_OUT
            ) from exc

    def _count_rows(self) -> dict[str, int]:
        one = self.conn.execute
        return {
            "remote_files": int(
                one("SELECT count(*) FROM remote WHERE is_dir=0 AND downloadable=1").fetchone()[0]
            ),
            "managed_files": int(one("SELECT count(*) FROM manifest WHERE is_dir=0").fetchone()[0]),
            "managed_paths": int(one("SELECT count(*) FROM manifest").fetchone()[0]),
        }

    def _manifest_delta(self, rows: Mapping[str, Any]) -> tuple[int, int]:
        """How writing ``rows`` changes (managed_files, managed_paths): one lookup per written row."""
        files = paths = 0
        for p, m in rows.items():
            old = self.conn.execute("SELECT is_dir FROM manifest WHERE path=?", (p,)).fetchone()
            if old is not None:
                paths -= 1
                files -= 1 if old[0] == 0 else 0
            if m is not None:
                paths += 1
                files += 0 if m.is_dir else 1
        return files, paths

    def _remote_delta(self, tree: RemoteTree, keys: Iterable[str]) -> int:
        """How writing ``keys`` of ``tree`` changes remote_files."""
        delta = 0
        for k in keys:
            old = self.conn.execute("SELECT is_dir, downloadable FROM remote WHERE key=?", (k,)).fetchone()
            if old is not None and old[0] == 0 and old[1] == 1:
                delta -= 1
            e = tree.entries.get(k)
            if e is not None and not e.is_dir and e.downloadable:
                delta += 1
        return delta

    # -- writing ----------------------------------------------------------------------------------------
    def _put_manifest(self, rows: Mapping[str, Any]) -> None:
        gone = [(p,) for p, m in rows.items() if m is None]
        if gone:
            self.conn.executemany("DELETE FROM manifest WHERE path=?", gone)
        self.conn.executemany(
            "INSERT OR REPLACE INTO manifest VALUES (?,?,?,?,?,?,?)",
            [
                (p, 1 if m.is_dir else 0, m.key, m.content_hash, m.size, m.mtime_ns, m.rev)
                for p, m in rows.items()
                if m is not None
            ],
        )

    def _put_remote(self, tree: RemoteTree, keys: Iterable[str]) -> None:
        gone: list[tuple[str]] = []
        put: list[tuple[Any, ...]] = []
        for k in keys:
            e = tree.entries.get(k)
            if e is None:
                gone.append((k,))
            else:
                put.append(_remote_row(e))
        if gone:
            self.conn.executemany("DELETE FROM remote WHERE key=?", gone)
        self.conn.executemany("INSERT OR REPLACE INTO remote VALUES (?,?,?,?,?,?,?,?,?,?)", put)

    def write(
        self,
        *,
        manifest_rows: Mapping[str, Any] | None = None,
        replace_manifest: Mapping[str, Any] | None = None,
        remote: RemoteTree | None = None,
        remote_keys: Iterable[str] | None = None,
        meta: Mapping[str, str | None] | None = None,
        pending: Mapping[str, Any] | None = None,
        clear_pending: bool = False,
        recheck: Mapping[str, bool] | None = None,
    ) -> None:
        """One transaction: manifest rows (``None`` deletes), remote rows (``remote_keys`` of ``remote``, or
        the whole tree when no keys are given), meta values, the intents (replace or clear), and the keys to
        look at again (``recheck``: key -> keep)."""
        with self._tx():
            stored = self.meta()
            recount = not all(f"n_{c}" in stored for c in _COUNTERS) or replace_manifest is not None
            recount = recount or (remote is not None and remote_keys is None)
            delta = {"remote_files": 0, "managed_files": 0, "managed_paths": 0}
            if replace_manifest is not None:
                self.conn.execute("DELETE FROM manifest")
                self._put_manifest(replace_manifest)
            if manifest_rows:
                if not recount:
                    delta["managed_files"], delta["managed_paths"] = self._manifest_delta(manifest_rows)
                self._put_manifest(manifest_rows)
            if remote is not None:
                if remote_keys is None:
                    self.conn.execute("DELETE FROM remote")
                    self.conn.executemany(
                        "INSERT INTO remote VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (_remote_row(e) for e in remote.entries.values()),
                    )
                else:
                    remote_keys = list(remote_keys)
                    if not recount:
                        delta["remote_files"] = self._remote_delta(remote, remote_keys)
                    self._put_remote(remote, remote_keys)
            values: dict[str, str | None] = dict(meta or {})
            if recount:
                values.update({f"n_{c}": str(n) for c, n in self._count_rows().items()})
            else:
                values.update({f"n_{c}": str(int(stored[f"n_{c}"] or 0) + n) for c, n in delta.items() if n})
            changed = [(k, v) for k, v in values.items() if stored.get(k) != v]
            if changed:
                self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", changed)
            if recheck:
                self.conn.executemany(
                    "DELETE FROM recheck WHERE key=?", [(k,) for k, v in recheck.items() if not v]
                )
                self.conn.executemany(
                    "INSERT OR IGNORE INTO recheck VALUES (?)", [(k,) for k, v in recheck.items() if v]
                )
            if clear_pending:
                self.conn.execute("DELETE FROM pending")
            if pending is not None:
                self.conn.execute("DELETE FROM pending")
                self.conn.executemany(
                    "INSERT INTO pending VALUES (?,?,?,?,?,?)",
                    [
                        (p, i.op, 1 if i.is_dir else 0, i.key, i.content_hash, i.rev)
                        for p, i in pending.items()
                    ],
                )

    # -- a streamed full listing, spooled to a temporary table (on disk, not in memory) -----------------
    _UNLISTED = "key NOT IN (SELECT key FROM temp.listed)"

    def start_listing(self) -> None:
        try:
            self.conn.execute("DROP TABLE IF EXISTS temp.listed")
            self.conn.execute(
                "CREATE TEMP TABLE listed (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, entry TEXT)"
            )
            self.conn.execute("CREATE INDEX temp.listed_key ON listed (key)")
        except sqlite3.Error as exc:
            raise _write_error(self.path, exc) from exc

    def spool(self, entries: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Keep listed entries (key, metadata) in listing order, for ``spooled`` and the unlisted queries."""
        with self._tx():
            self.conn.executemany(
                "INSERT INTO temp.listed (key, entry) VALUES (?, ?)",
                ((k, json.dumps(e, separators=(",", ":"))) for k, e in entries),
            )

    def spooled(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The spooled entries in listing order, ``size`` at a time."""
        last = 0
        while True:
            try:
                rows = self.conn.execute(
                    "SELECT seq, entry FROM temp.listed WHERE seq > ? ORDER BY seq LIMIT ?", (last, size)
                ).fetchall()
            except sqlite3.Error as exc:
                raise _read_error(self.path, exc) from exc
            if not rows:
                return
            last = rows[-1][0]
            yield [json.loads(r[1]) for r in rows]

    def unlisted_tops(self) -> list[str]:
        """Keys the listing did not name: the topmost stored remote rows (a folder stands for its subtree)
        and the keys of manifest rows with no remote row at all."""
        try:
            rows = self.conn.execute(
                f"SELECT key FROM remote WHERE {self._UNLISTED} AND (parent = '' OR parent IN "
                "(SELECT key FROM temp.listed) OR parent NOT IN (SELECT key FROM remote)) "
                f"UNION SELECT DISTINCT key FROM manifest WHERE key != '' AND {self._UNLISTED} "
                "AND key NOT IN (SELECT key FROM remote)"
            )
            return [r[0] for r in rows]
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def unlisted_managed_files(self) -> int:
        """Files the mirror wrote whose key the listing did not name (what deleting the rest would delete)."""
        try:
            sql = f"SELECT count(*) FROM manifest WHERE is_dir=0 AND {self._UNLISTED}"
            return int(self.conn.execute(sql).fetchone()[0])
        except sqlite3.Error as exc:
            raise _read_error(self.path, exc) from exc

    def end_listing(self) -> None:
        try:
            self.conn.execute("DROP TABLE IF EXISTS temp.listed")
        except sqlite3.Error as exc:
            raise _write_error(self.path, exc) from exc

    def iter_manifest_paths(self) -> Iterator[str]:
        for (p,) in self.conn.execute("SELECT path FROM manifest"):
            yield p


def _remote_row(e: RemoteEntry) -> tuple[Any, ...]:
    parent = e.key.rpartition("/")[0]
    return (
        e.key, parent, e.name, 1 if e.is_dir else 0, e.id, e.rev, e.content_hash, e.size,
        1 if e.downloadable else 0, 1 if e.synthetic else 0,
    )  # fmt: skip


def state_meta(state: Any) -> dict[str, str | None]:
    return {
        "remote_path": state.remote_path,
        "root_lower": state.root_lower,
        "cursor": state.cursor,
        "last_run": state.last_run,
    }


def migrate_json(root: str, state_folder: str, load_json: Any) -> bool:
    """Convert ``state.json`` (+ ``pending.json``) into a new index; remove them only after it committed.

    ``load_json`` is the JSON engine's reader (it raises StateError for a corrupt file). Returns whether a
    migration happened."""
    json_path = os.path.join(state_folder, "state.json")
    pending_json = os.path.join(state_folder, "pending.json")
    if os.path.exists(index_path(state_folder)) or not (
        os.path.exists(json_path) or os.path.exists(pending_json)
    ):
        return False
    state = load_json(root)
    index = MirrorIndex.open(state_folder)
    try:
        if state is not None and not state.uncommitted:
            index.write(
                replace_manifest=state.manifest,
                remote=state.remote,
                meta={**state_meta(state), "updated_at": str(time.time()), "migrated_from": "state.json"},
                pending=state.pending,
            )
        elif state is not None:
            index.write(pending=state.pending)
    finally:
        index.close()
    for old in (json_path, pending_json):
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass
    return True
