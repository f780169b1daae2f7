"""Dropbox content hash (SHA-256 of the SHA-256s of 4 MiB blocks), streaming.

The mirror keeps its own 20-line copy so it can hash local files without depending on the client's internals.
"""

from __future__ import annotations

import hashlib
import os

BLOCK_SIZE = 4 * 1024 * 1024
_READ_SIZE = 1024 * 1024


class ContentHasher:
    """Incremental Dropbox content hash; ``update`` with any chunk sizes, then ``hexdigest``."""

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._block_len = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            take = min(BLOCK_SIZE - self._block_len, len(view))
            self._block.update(view[:take])
            self._block_len += take
            view = view[take:]
            if self._block_len == BLOCK_SIZE:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._block_len = 0

    def hexdigest(self) -> str:
        overall = self._overall.copy()
        if self._block_len:
            overall.update(self._block.digest())
        return overall.hexdigest()


def file_content_hash(path: str | os.PathLike[str]) -> str:
    """Hash a regular file without following a final symlink (a swapped-in link must not be read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    hasher = ContentHasher()
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(_READ_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()
