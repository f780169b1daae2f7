"""Hash local files for the mirror with the client's Dropbox content hash, never following a final symlink."""

from __future__ import annotations

import os

from airflow_provider_dropbox.client.content_hash import READ_SIZE, ContentHasher

__all__ = ["ContentHasher", "file_content_hash", "hash_under"]


def file_content_hash(path: str | os.PathLike[str]) -> str:
    """Hash a regular file without following a final symlink (a swapped-in link must not be read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    hasher = ContentHasher()
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(READ_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


def hash_under(root: str, rel: str) -> str | None:
    """The content hash of ``root``/``rel`` (``/``-separated); ``None`` if it cannot be read."""
    try:
        return file_content_hash(os.path.join(root, *rel.split("/")))
    except OSError:
        return None
