"""Dropbox content hash (reference section 4), written independently of the product client on purpose."""

from __future__ import annotations

import hashlib
from typing import Any

BLOCK = 4 * 1024 * 1024


class BlockHasher:
    """Incremental content hash: SHA-256 per 4 MiB block, then SHA-256 over the block digests."""

    def __init__(self) -> None:
        self.digests: list[bytes] = []
        self._block: Any = hashlib.sha256()
        self._fill = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            take = min(BLOCK - self._fill, len(view))
            self._block.update(view[:take])
            self._fill += take
            view = view[take:]
            if self._fill == BLOCK:
                self.digests.append(self._block.digest())
                self._block = hashlib.sha256()
                self._fill = 0

    def block_digests(self) -> list[bytes]:
        """Digests of all blocks, the trailing partial one included."""
        return self.digests + ([self._block.digest()] if self._fill else [])

    def hexdigest(self) -> str:
        return hashlib.sha256(b"".join(self.block_digests())).hexdigest()

    @property
    def at_boundary(self) -> bool:
        """True when no partial block is pending, so another hasher's blocks can simply follow."""
        return self._fill == 0

    def followed_by(self, other: BlockHasher) -> BlockHasher:
        """The hasher of our bytes then ``other``'s, without rehashing (needs ``at_boundary``)."""
        assert self.at_boundary
        out = other.copy()
        out.digests = self.digests + out.digests
        return out

    def copy(self) -> BlockHasher:
        other = BlockHasher()
        other.digests = list(self.digests)
        other._block = self._block.copy()
        other._fill = self._fill
        return other


def hash_of_digests(digests: list[bytes]) -> str:
    return hashlib.sha256(b"".join(digests)).hexdigest()


def file_content_hash(path: str) -> str:
    """Hash a file on disk without loading it whole."""
    h = BlockHasher()
    with open(path, "rb") as f:
        while chunk := f.read(BLOCK):
            h.update(chunk)
    return h.hexdigest()
