"""A thin Linux inotify wrapper on libc through ``ctypes`` (no dependency, no Airflow): one non-blocking,
close-on-exec inotify descriptor, watches added and removed by path, and the kernel's event records parsed.

Callers poll the descriptor from their own loop (``asyncio``'s ``add_reader`` on :meth:`Inotify.fileno`);
:meth:`Inotify.read` never blocks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

from airflow_provider_dropbox.client.libc import libc_function

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000

# What a folder watcher needs: content written or closed, names coming, going or moving, the folder gone.
FOLDER_MASK = (
    IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 * 1024
_READ_MAX = 1024 * 1024  # per read() call, so a flood cannot hold the caller's loop for long

_init1 = libc_function("inotify_init1", [ctypes.c_int])
_add_watch = libc_function("inotify_add_watch", [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32])
_rm_watch = libc_function("inotify_rm_watch", [ctypes.c_int, ctypes.c_int])


class InotifyUnavailableError(OSError):
    """inotify cannot be used here (not Linux, no libc function, or the per-user instance limit
    ``fs.inotify.max_user_instances`` is reached). Fix: raise the limit, or scan instead."""


class WatchLimitError(OSError):
    """``inotify_add_watch`` failed with ENOSPC: the per-user watch limit ``fs.inotify.max_user_watches``
    is reached. Fix: raise it (``sysctl fs.inotify.max_user_watches=...``) or scan instead."""


@dataclass(frozen=True)
class InotifyEvent:
    wd: int
    mask: int
    cookie: int
    name: str  # "" for events about the watched folder itself


def available() -> bool:
    """Whether this platform's libc has the inotify calls (whether an instance can be created is only known
    by creating one)."""
    return _init1 is not None and _add_watch is not None and _rm_watch is not None


def parse_events(buf: bytes) -> list[InotifyEvent]:
    """The ``struct inotify_event`` records in ``buf`` (names are NUL-padded, decoded as the OS does)."""
    out: list[InotifyEvent] = []
    offset = 0
    while offset + _HEADER.size <= len(buf):
        wd, mask, cookie, length = _HEADER.unpack_from(buf, offset)
        offset += _HEADER.size
        raw = buf[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        out.append(InotifyEvent(wd, mask, cookie, os.fsdecode(raw)))
    return out


class Inotify:
    """One inotify instance. Close it (or use it as a context manager): each holds a descriptor and kernel
    memory for its watches."""

    def __init__(self) -> None:
        if _init1 is None or not available():
            raise InotifyUnavailableError(errno.ENOSYS, "inotify is not available on this platform")
        fd = _init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailableError(
                err, f"inotify_init1 failed: {os.strerror(err)} (limit: fs.inotify.max_user_instances)"
            )
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        return self._fd

    def add_watch(self, path: str, mask: int = FOLDER_MASK) -> int:
        """Watch descriptor for ``path`` (the same one again for a path already watched). Raises
        :class:`WatchLimitError` at the watch limit, ``OSError`` otherwise (e.g. the folder is gone)."""
        assert _add_watch is not None
        wd = _add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:
                raise WatchLimitError(err, "inotify watch limit reached (fs.inotify.max_user_watches)", path)
            raise OSError(err, os.strerror(err), path)
        return wd

    def rm_watch(self, wd: int) -> None:
        """Stop watching ``wd``; a watch the kernel already dropped (folder deleted) is not an error."""
        assert _rm_watch is not None
        if not self.closed:
            _rm_watch(self._fd, wd)

    def read(self) -> tuple[list[InotifyEvent], bool]:
        """The events queued now (never blocks) and whether more may be waiting (stopped at the size cap)."""
        if self.closed:
            return [], False
        chunks: list[bytes] = []
        total = 0
        while total < _READ_MAX:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return parse_events(b"".join(chunks)), False
            if not data:
                break
            chunks.append(data)
            total += len(data)
        return parse_events(b"".join(chunks)), total >= _READ_MAX

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
