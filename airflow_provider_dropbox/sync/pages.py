"""Reading a paged listing one page ahead, so the next page arrives while this one is applied."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def prefetched(pages: Iterator[T]) -> Generator[T, None, None]:
    """Yield ``pages`` in order while a background thread already fetches the next one.

    Errors from the source surface where the page would have been yielded; closing this generator early
    waits for the one fetch in flight, drops it and closes ``pages``. Close it explicitly (``with
    contextlib.closing(...)``) when a caller may stop early: it owns a thread."""
    done = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dropbox-listing") as pool:
            ahead = pool.submit(next, pages, done)
            while True:
                page = ahead.result()
                if page is done:
                    return
                ahead = pool.submit(next, pages, done)
                yield page  # type: ignore[misc]
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
