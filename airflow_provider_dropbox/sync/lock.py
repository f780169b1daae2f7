"""One mirror run per destination, also across hosts sharing the volume.

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+), holding
owner (host, pid, random token) and a heartbeat timestamp refreshed by a background thread. Another run
takes over only when the heartbeat is older than ``stale_after`` seconds (default 120 s, with a 10 s
heartbeat) or, on the same host, when the owner's pid is gone (a killed run does not block the next one).
Takeover is serialised by a second ``O_EXCL`` file and replaces the lock atomically, so of several
runs racing for a stale lock exactly one wins. The
holder re-reads the file at every heartbeat and before committing state; if someone else's token is
there it stops (``LockLostError``) instead of racing the new owner.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from types import TracebackType
from typing import Any

from airflow_provider_dropbox.sync.errors import LockHeldError, LockLostError
from airflow_provider_dropbox.sync.state import atomic_write_bytes

LOCK_FILE = "lock"
DEFAULT_STALE_AFTER = 120.0
DEFAULT_HEARTBEAT = 10.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


class MirrorLock:
    def __init__(
        self,
        folder: str,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        heartbeat: float = DEFAULT_HEARTBEAT,
        timeout: float = 0.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = os.path.join(folder, LOCK_FILE)
        self.stale_after = stale_after
        self.heartbeat_interval = min(heartbeat, max(stale_after / 4, 0.05))
        self.timeout = timeout
        self.log = logger or logging.getLogger(__name__)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.token = secrets.token_hex(8)
        self.acquired_at = time.time()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    # -- content ------------------------------------------------------------------------------------
    def _payload(self) -> bytes:
        return json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "token": self.token,
                "heartbeat": time.time(),
                "acquired": self.acquired_at,
            }
        ).encode()

    def _read(self) -> dict[str, Any] | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written or garbage: judged by the file's mtime below
        return data if isinstance(data, dict) else {}

    def _age(self, info: dict[str, Any]) -> float:
        beat = info.get("heartbeat")
        if not isinstance(beat, int | float):
            try:
                beat = os.stat(self.path).st_mtime
            except OSError:
                return 0.0
        return time.time() - float(beat)

    def _is_stale(self, info: dict[str, Any]) -> tuple[bool, str]:
        age = self._age(info)
        owner = f"{info.get('host', '?')}:{info.get('pid', '?')}"
        if info.get("host") == self.host and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]):
            return True, f"owner {owner} is no longer running"
        if age > self.stale_after:
            return True, f"owner {owner} last heartbeat {age:.0f}s ago (stale after {self.stale_after:.0f}s)"
        return False, f"owner {owner}, last heartbeat {age:.0f}s ago"

    # -- acquire / release ----------------------------------------------------------------------------
    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._payload())
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + self.timeout
        while True:
            if self._try_create():
                break
            info = self._read()
            if info is None:
                continue  # released between our attempts
            stale, why = self._is_stale(info)
            if stale and self._take_over(info):
                self.log.warning("Took over stale mirror lock %s: %s", self.path, why)
                break
            if time.monotonic() >= deadline:
                raise LockHeldError(
                    f"Another mirror run holds {self.path} ({why}). Wait for it to finish; if that run "
                    "is dead the lock is taken over automatically once its heartbeat is "
                    f"{self.stale_after:.0f}s old, or delete the lock file by hand."
                )
            time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
        self._held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="dropbox-mirror-lock", daemon=True)
        self._thread.start()

    def _take_over(self, judged: dict[str, Any]) -> bool:
        """Replace a stale lock, serialised by a second O_EXCL file so that exactly one racer wins.

        The lock file itself never disappears during a takeover (it is replaced atomically), so a run
        that just tries ``O_EXCL`` on it cannot slip in between.
        """
        guard = f"{self.path}.takeover"
        try:
            os.close(os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            try:  # a racer that died inside its takeover leaves the guard: it goes stale too
                if time.time() - os.stat(guard).st_mtime > self.stale_after:
                    os.unlink(guard)
            except OSError:
                pass
            return False
        try:
            if self._read() != judged:  # refreshed, released or taken over since we judged it
                return False
            atomic_write_bytes(self.path, self._payload())
            return True
        finally:
            try:
                os.unlink(guard)
            except FileNotFoundError:
                pass

    @staticmethod
    def _read_file(path: str) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def still_owned(self) -> bool:
        info = self._read()
        return bool(info) and info.get("token") == self.token if info is not None else False

    def check(self) -> None:
        """Raise ``LockLostError`` if another run took the lock over; called before every state commit."""
        if self.lost.is_set() or not self.still_owned():
            self.lost.set()
            raise LockLostError(
                f"The mirror lock {self.path} was taken over by another run (this run's heartbeat looked "
                "stale); stopping without committing state. Raise stale_lock_after if runs pause this long."
            )

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            info = self._read()
            if info and info.get("token") != self.token:
                self.log.error("Mirror lock %s was taken over by %s; stopping", self.path, info.get("host"))
                self.lost.set()
                return
            try:
                atomic_write_bytes(self.path, self._payload())
            except OSError as exc:
                self.log.warning("Could not refresh mirror lock heartbeat %s: %s", self.path, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._held and not self.lost.is_set() and self.still_owned():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._held = False

    def __enter__(self) -> MirrorLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
