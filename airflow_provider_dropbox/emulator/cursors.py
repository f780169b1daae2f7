"""list_folder cursors: base64url(JSON state) + HMAC, so clients can't forge or edit them.

State keys: ``p`` root key, ``r`` recursive, ``d`` include_deleted, ``e`` reset epoch, ``s`` journal
position; while paging a listing ``a`` (last key sent); while paging changes ``w`` (window end)
and ``o`` (items consumed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class BadCursor(Exception):
    """The cursor could not be decoded at all (400), as opposed to a stale one (409 reset)."""


class ForeignCursor(Exception):
    """Decodes, but its signature doesn't match this emulator's secret: treat as reset."""


def encode(state: dict[str, Any], secret: bytes) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    sig = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:12]
    return body + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")


def decode(cursor: str, secret: bytes) -> dict[str, Any]:
    body, sep, sig = cursor.partition(".")
    if not sep or not body:
        raise BadCursor(cursor)
    try:
        state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        given = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except ValueError:
        raise BadCursor(cursor) from None
    if not isinstance(state, dict):
        raise BadCursor(cursor)
    expected = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:12]
    if not hmac.compare_digest(given, expected):
        raise ForeignCursor(cursor)
    return state
