"""Upload sessions: sequential (appends in order) and concurrent (4 MiB-aligned pieces in any order).

Each session owns one data file; appends ``pwrite`` straight to their final offset, so finishing
is a rename, and the content hash of a concurrent session comes from the per-piece block digests.
Session metadata is a small JSON file per session so sessions survive a restart.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hashing import BLOCK, BlockHasher, file_content_hash, hash_of_digests

SESSION_TTL_S = 7 * 24 * 3600
MAX_SESSION_BYTES = 2**41 - 2**22


class SessionFail(Exception):
    """An ``UploadSessionLookupError``-style reason (or another session error tag)."""

    def __init__(self, reason: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Session:
    id: str
    concurrent: bool
    created: float
    closed: bool = False
    finished: bool = False
    size: int = 0  # sequential: bytes received; concurrent: end of the closing piece (0 = unknown)
    pieces: dict[int, int] = field(default_factory=dict)  # concurrent: offset -> length
    digests: dict[int, list[str]] = field(default_factory=dict)  # concurrent: offset -> block digests
    hasher: BlockHasher | None = None  # sequential running hash (memory only)
    inflight: set[int] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "concurrent": self.concurrent,
            "created": self.created,
            "closed": self.closed,
            "finished": self.finished,
            "size": self.size,
            "pieces": {str(k): v for k, v in self.pieces.items()},
            "digests": {str(k): v for k, v in self.digests.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        s = cls(id=d["id"], concurrent=d["concurrent"], created=d["created"])
        s.closed, s.finished, s.size = d["closed"], d["finished"], d["size"]
        s.pieces = {int(k): v for k, v in d["pieces"].items()}
        s.digests = {int(k): v for k, v in d["digests"].items()}
        return s


def _lookup(tag: str, **extra: Any) -> SessionFail:
    return SessionFail({".tag": tag, **extra})


class Sessions:
    """All sessions of the emulator, guarded by one lock (never held during I/O)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        for meta in root.glob("*.json"):
            try:
                s = Session.from_json(json.loads(meta.read_text()))
            except (ValueError, KeyError):
                continue
            self.sessions[s.id] = s
        self.expire()

    def data_path(self, sid: str) -> Path:
        return self.root / (base64.urlsafe_b64encode(sid.encode()).decode() + ".data")

    def _save(self, s: Session) -> None:
        meta = self.root / (base64.urlsafe_b64encode(s.id.encode()).decode() + ".json")
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(s.to_json()))
        os.replace(tmp, meta)

    def _drop(self, s: Session) -> None:
        meta = self.root / (base64.urlsafe_b64encode(s.id.encode()).decode() + ".json")
        meta.unlink(missing_ok=True)
        self.data_path(s.id).unlink(missing_ok=True)

    def create(self, concurrent: bool) -> Session:
        sid = "pid_upload_session:" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        s = Session(id=sid, concurrent=concurrent, created=time.time())
        if not concurrent:
            s.hasher = BlockHasher()
        self.data_path(sid).touch()
        with self.lock:
            self.sessions[sid] = s
            self._save(s)
        return s

    def new_id(self) -> str:
        return "pid_upload_session:" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")

    def register_started(self, sid: str, size: int, close: bool, hasher: BlockHasher) -> Session:
        """Record a sequential session whose first piece (``size`` bytes) is already in its data file:
        ``start`` with data registers and saves it once, after the bytes are in (nobody can name it
        before)."""
        s = Session(id=sid, concurrent=False, created=time.time(), closed=close, size=size, hasher=hasher)
        with self.lock:
            self.sessions[sid] = s
            self._save(s)
        return s

    def adopt(self, data: Path, size: int, hasher: BlockHasher) -> str:
        """Turn already-received bytes (a failed single upload) into a closed sequential session."""
        sid = "pid_upload_session:" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        s = Session(id=sid, concurrent=False, created=time.time(), closed=True, size=size, hasher=hasher)
        os.replace(data, self.data_path(sid))
        with self.lock:
            self.sessions[sid] = s
            self._save(s)
        return sid

    def get(self, sid: str) -> Session:
        with self.lock:
            s = self.sessions.get(sid)
            if s is None or time.time() - s.created > SESSION_TTL_S:
                raise _lookup("not_found")
            return s

    def reserve(
        self, sid: str, offset: int, length: int | None, close: bool, accept_resent: bool = False
    ) -> Session:
        """Check an append (or finish data) against the session and mark ``offset`` in flight.

        ``length`` is the Content-Length when known; offset checks come before ``closed`` so a
        re-sent chunk whose first attempt was committed gets ``incorrect_offset`` (= success). With
        ``accept_resent`` a concurrent session takes a piece sent again at its start offset once more
        (the spec allows either answer).
        """
        with self.lock:
            s = self.sessions.get(sid)
            if s is None or time.time() - s.created > SESSION_TTL_S:
                raise _lookup("not_found")
            if s.concurrent:
                if offset % BLOCK:
                    raise _lookup("concurrent_session_invalid_offset")
                for off, ln in s.pieces.items():
                    if accept_resent and off == offset and not s.finished:
                        continue
                    if off <= offset < off + ln:
                        raise _lookup("incorrect_offset", correct_offset=off + ln)
                if s.finished or (s.closed and s.size and offset >= s.size):
                    raise _lookup("closed")
                if offset in s.inflight:
                    raise _lookup("incorrect_offset", correct_offset=offset)
            else:
                if offset != s.size or s.inflight:
                    raise _lookup("incorrect_offset", correct_offset=s.size)
                if s.closed or s.finished:
                    raise _lookup("closed")
            if length is not None and offset + length > MAX_SESSION_BYTES:
                raise _lookup("too_large")
            s.inflight.add(offset)
            return s

    def release(self, s: Session, offset: int) -> None:
        with self.lock:
            s.inflight.discard(offset)

    def commit_append(
        self,
        s: Session,
        offset: int,
        length: int,
        close: bool,
        digests: list[bytes],
        seq_hasher: BlockHasher | None,
    ) -> None:
        """Record received bytes once they are on disk and their hash checked."""
        with self.lock:
            s.inflight.discard(offset)
            if s.concurrent:
                if length % BLOCK and not close:
                    raise _lookup("concurrent_session_invalid_data_size")
                if length or close:
                    s.pieces[offset] = length
                    s.digests[offset] = [d.hex() for d in digests]
                if close:
                    s.closed = True
                    s.size = offset + length
            else:
                s.size = offset + length
                s.hasher = seq_hasher
                s.closed = s.closed or close
            self._save(s)

    def seq_hasher_copy(self, s: Session) -> BlockHasher | None:
        with self.lock:
            return s.hasher.copy() if s.hasher is not None else None

    def assemble(self, s: Session) -> tuple[Path, int, str]:
        """Validate a finished session and return (data file, size, content hash)."""
        path = self.data_path(s.id)
        with self.lock:
            if s.concurrent:
                if not s.closed:
                    raise _lookup("concurrent_session_not_closed")
                pos, digests = 0, list[bytes]()
                for off in sorted(s.pieces):
                    if off != pos:
                        raise _lookup("concurrent_session_missing_data")
                    pos += s.pieces[off]
                    digests.extend(bytes.fromhex(d) for d in s.digests[off])
                if pos != s.size:
                    raise _lookup("concurrent_session_missing_data")
                size, chash = s.size, hash_of_digests(digests)
            else:
                size, hasher = s.size, s.hasher
                chash = hasher.hexdigest() if hasher is not None else ""
        os.truncate(path, size)
        if not chash:
            chash = file_content_hash(str(path))
        return path, size, chash

    def mark_finished(self, s: Session, forget: bool = False) -> None:
        """After commit the data file became a blob; the session now answers ``closed``.

        ``forget`` drops sessions nobody can name (the implicit one behind a plain upload).
        """
        with self.lock:
            s.finished = True
            s.closed = True
            if forget:
                self.sessions.pop(s.id, None)
                self._drop(s)
            else:
                self._save(s)

    def expire(self) -> None:
        now = time.time()
        with self.lock:
            old = [s for s in self.sessions.values() if now - s.created > SESSION_TTL_S]
            for s in old:
                del self.sessions[s.id]
                self._drop(s)
