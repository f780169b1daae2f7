"""Mirror state in the destination: cursor, remote tree, manifest of what the mirror wrote, pending intents.

Lives in ``<local_dir>/.dropbox-mirror/state.json`` so it travels with the data (shared volumes, other
workers). Written atomically: temp file in the same folder, fsync, ``os.replace``, fsync of the folder.

``pending`` is a write-ahead list of the paths a run is about to create or delete, written to its own
small file (``pending.json``, tagged with the run id) before the run touches anything, so an incremental
run does not rewrite the whole state twice. After a crash, the next run verifies those paths on disk
first: files it finds there with the intended content hash are claimed as managed (otherwise they would
look like the user's files and be left behind forever), and every pending path is re-checked rather than
trusted. The state committed at the end names the run (``last_run``), which retires its pending file.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dropbox.sync.errors import DestinationError, StateError
from airflow_provider_dropbox.sync.index import MirrorIndex, migrate_json, state_meta
from airflow_provider_dropbox.sync.paths import STATE_DIR_NAME, check_private_dirs
from airflow_provider_dropbox.sync.remote import RemoteTree

STATE_VERSION = 1
STATE_FILE = "state.json"
PENDING_FILE = "pending.json"


@dataclass(slots=True)
class Managed:
    """A local path the mirror wrote (or adopted), with what it looked like right after."""

    is_dir: bool
    key: str
    content_hash: str | None = None
    size: int = 0
    mtime_ns: int = 0
    rev: str | None = None

    def to_json(self) -> list[Any]:
        return [1 if self.is_dir else 0, self.key, self.content_hash, self.size, self.mtime_ns, self.rev]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Managed:
        is_dir, key, content_hash, size, mtime_ns, rev = raw
        return cls(bool(is_dir), key, content_hash, int(size), int(mtime_ns), rev)


@dataclass(slots=True)
class Pending:
    """An intent recorded before applying: ``create`` (what it will hold) or ``touch`` (rename, delete)."""

    op: str
    is_dir: bool
    key: str = ""
    content_hash: str | None = None
    rev: str | None = None

    def to_json(self) -> list[Any]:
        return [self.op, 1 if self.is_dir else 0, self.key, self.content_hash, self.rev]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Pending:
        op, is_dir, key, content_hash, rev = raw
        return cls(op, bool(is_dir), key, content_hash, rev)


@dataclass
class MirrorState:
    remote_path: str = ""
    root_lower: str | None = None
    cursor: str | None = None
    remote: RemoteTree = field(default_factory=RemoteTree)
    manifest: dict[str, Managed] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)  # persisted in pending.json
    last_run: str | None = None  # id of the run that committed this state (its pending.json is stale)
    updated_at: float = 0.0
    uncommitted: bool = False  # only the intents of a first run that never committed

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "remote_path": self.remote_path,
            "root_lower": self.root_lower,
            "cursor": self.cursor,
            "updated_at": time.time(),
            "remote": self.remote.to_json(),
            "manifest": {p: m.to_json() for p, m in self.manifest.items()},
            "last_run": self.last_run,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MirrorState:
        if raw.get("version") != STATE_VERSION:
            raise StateError(
                f"unknown state format version {raw.get('version')!r} (this engine reads {STATE_VERSION})"
            )
        return cls(
            remote_path=raw["remote_path"],
            root_lower=raw["root_lower"],
            cursor=raw["cursor"],
            remote=RemoteTree.from_json(raw["remote"]),
            manifest={p: Managed.from_json(v) for p, v in raw["manifest"].items()},
            last_run=raw.get("last_run"),
            updated_at=float(raw.get("updated_at") or 0.0),
        )


def state_dir(root: str) -> str:
    return os.path.join(root, STATE_DIR_NAME)


def staging_dir(root: str) -> str:
    """Downloads land here first (same file system), so a partial file never has a real name."""
    return os.path.join(root, STATE_DIR_NAME, "staging")


def state_path(root: str) -> str:
    return os.path.join(state_dir(root), STATE_FILE)


def pending_path(root: str) -> str:
    return os.path.join(state_dir(root), PENDING_FILE)


def load_json_pending(root: str, last_run: str | None) -> dict[str, Pending]:
    """Intents of a run that did not commit (empty if the last committed run wrote them)."""
    try:
        with open(pending_path(root), encoding="utf-8") as fh:
            raw = json.load(fh)
        if raw.get("run") == last_run:  # that run committed; its intents are done
            return {}
        return {p: Pending.from_json(v) for p, v in raw["pending"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(
            f"cannot read {pending_path(root)!r} ({exc!r}); delete it and re-run with full_rescan=True"
        ) from exc


def load_json_state(root: str) -> MirrorState | None:
    path = state_path(root)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        pending = load_json_pending(root, None)
        return MirrorState(pending=pending, uncommitted=True) if pending else None
    except (OSError, ValueError) as exc:
        raise StateError(
            f"cannot read mirror state {path!r}: {exc}. Move it away to rebuild it: the next run re-lists "
            "the remote folder and adopts local files whose content already matches (nothing is deleted)."
        ) from exc
    try:
        state = MirrorState.from_json(raw)
    except StateError as exc:
        raise StateError(f"{path!r}: {exc}; move it away to rebuild the state with a full re-list") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(
            f"mirror state {path!r} is malformed ({exc!r}); move it away to rebuild it with a full re-list"
        ) from exc
    state.pending = load_json_pending(root, state.last_run)
    return state


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse directory fsync; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Temp file next to ``path``, fsync, ``os.replace``, fsync the folder: readers see old or new."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def open_index(root: str, *, create: bool = True) -> MirrorIndex | None:
    """The destination's index: migrated from ``state.json`` first if that is what the folder holds."""
    folder = state_dir(root)
    check_private_dirs(root, folder)
    if not create and not MirrorIndex.exists(folder):
        return None
    try:
        os.makedirs(folder, exist_ok=True)
        migrate_json(root, folder, load_json_state)
    except OSError as exc:
        raise DestinationError(
            f"Cannot write the mirror index in {folder!r}: {exc.strerror or exc}. Nothing was committed; "
            "fix the destination's file system and re-run"
        ) from exc
    return MirrorIndex.open(folder)


def load_state(root: str) -> MirrorState | None:
    """The last committed state (``None`` if no run committed; a dry run's view: nothing is created)."""
    index = open_index(root, create=False)
    if index is None:
        state = load_json_state(root)
        return None if state is None or state.uncommitted else state
    try:
        state = index.load()
    finally:
        index.close()
    return None if state is None or state.uncommitted else state


def load_pending(root: str, last_run: str | None = None) -> dict[str, Pending]:
    """Intents of a run that did not commit."""
    index = open_index(root, create=False)
    if index is None:
        return load_json_pending(root, last_run)
    try:
        state = index.load()
    finally:
        index.close()
    return {} if state is None else state.pending


def save_state(root: str, state: MirrorState) -> None:
    """Write a whole state (tests, tools); the engine writes changed rows through :class:`MirrorIndex`."""
    index = open_index(root)
    assert index is not None
    try:
        index.write(
            replace_manifest=state.manifest,
            remote=state.remote,
            meta={**state_meta(state), "updated_at": str(time.time())},
        )
    finally:
        index.close()


def save_pending(root: str, run_id: str, pending: dict[str, Pending]) -> None:
    index = open_index(root)
    assert index is not None
    try:
        index.write(pending=pending, meta={"pending_run": run_id})
    finally:
        index.close()
