"""Optional libc calls Python's ``os`` lacks (``sync_file_range``, ``syncfs``): looked up once, None where the
platform has no such function, so callers fall back to portable calls."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any


def libc_function(name: str, argtypes: Sequence[Any]) -> Callable[..., int] | None:
    """libc's ``name`` taking ``argtypes`` and returning an int (errno kept for ``ctypes.get_errno``)."""
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = list(argtypes)
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]
