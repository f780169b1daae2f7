"""Make a batch of placed files durable at once, before the state that records them is written.

The client's per-file ``fsync`` was the mirror's hottest line after waiting for answers (BENCHMARKS.md,
"Mirror vs the SDK thread pool"): each one waits for its own journal commit. The mirror downloads with
``fsync=False`` and calls :func:`make_durable` once per checkpoint instead, on the files placed since the
last one. The files are fsynced concurrently (ext4 and xfs fold concurrent fsyncs into shared journal
commits), then their folders, so the new names are durable too. Only this run's files are flushed, not the
whole file system (``syncfs``/``sync`` would also wait for other jobs' writes on a shared volume).

The promise kept: the state never points past data on disk. A failed fsync is not retried (Linux reports a
write-back error once, so a second fsync can succeed after the data was lost); the run stops without
writing the state that would record those files.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_dropbox.sync.errors import DestinationError

MAX_WIDTH = 16  # concurrent fsyncs; more does not shorten a journal commit
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EROFS}
_GONE = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP}  # removed or replaced (by a link) since it was placed
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def fsync_path(path: str, *, is_dir: bool = False) -> None:
    """fsync one file or folder; a path gone since it was placed, or a file system without fsync, is fine.

    ``O_NOFOLLOW`` and ``O_NONBLOCK``: the name may have been replaced by a link or a FIFO meanwhile."""
    flags = _OPEN_FLAGS | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in _GONE or exc.errno in _NOT_SUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NOT_SUPPORTED:
            raise OSError(exc.errno, exc.strerror, path) from exc
    finally:
        os.close(fd)


def make_durable(files: Sequence[str], folders: Sequence[str], width: int = 8) -> None:
    """fsync ``files`` (concurrently), then ``folders``; raise :class:`DestinationError` if one fails."""
    if not files and not folders:
        return
    try:
        if len(files) + len(folders) < 4 or width <= 1:
            for f in files:
                fsync_path(f)
            for d in folders:
                fsync_path(d, is_dir=True)
            return
        with ThreadPoolExecutor(
            max_workers=max(1, min(width, MAX_WIDTH)), thread_name_prefix="mirror-fsync"
        ) as pool:
            list(pool.map(fsync_path, files))
            list(pool.map(lambda d: fsync_path(d, is_dir=True), folders))
    except OSError as exc:
        raise DestinationError(
            f"Cannot make the downloaded files durable on disk: fsync of {exc.filename or '?'} failed "
            f"({exc.strerror or exc}); the mirror state was not written, so the next run re-checks those "
            "files. Check the destination's disk and file system"
        ) from exc
