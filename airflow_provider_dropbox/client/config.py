"""Plain settings objects: where Dropbox lives and which credentials to use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dropbox.client.errors import InvalidArgumentError

MAX_PARALLELISM = 64
"""Most parallel requests one transfer (or one client's connection pool) may use. Beyond a few dozen the
shared link and Dropbox's per-user rate limits, not the client, set the pace, while every slot costs a thread
and a pooled connection (``parallelism=10**6`` would build a pool of two million slots)."""


def check_parallelism(value: Any, *, name: str = "parallelism", allow_none: bool = False) -> int | None:
    """``value`` as a whole number from 1 to ``MAX_PARALLELISM``; else ``InvalidArgumentError`` saying so."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(
            f"{name} must be a whole number from 1 to {MAX_PARALLELISM}, got {type(value).__name__} "
            f"{value!r:.40}"
        )
    if not 1 <= value <= MAX_PARALLELISM:
        raise InvalidArgumentError(
            f"{name} must be from 1 to {MAX_PARALLELISM} (the documented maximum), got {value}; "
            f"more parallel requests than that only add threads and connections"
            if value > MAX_PARALLELISM
            else f"{name} must be from 1 to {MAX_PARALLELISM}, got {value}"
        )
    return value


MAX_SECONDS = 86400.0
"""Upper bound for timeouts and retry deadlines (one day): beyond it a number is a typo, and past about
1e9 the socket layer cannot represent it."""


def check_seconds(value: Any, *, name: str, maximum: float = MAX_SECONDS) -> float:
    """A finite, positive number of seconds up to ``maximum``; ``nan``, ``inf`` and ``1e400`` are refused."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {value!r:.60}") from None
    if not math.isfinite(seconds):
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds, got {value!r:.60} (which is {seconds}); "
            "give e.g. 100"
        )
    if not 0 < seconds <= maximum:
        raise InvalidArgumentError(
            f"{name} must be more than 0 and at most {maximum:g} seconds, got {seconds:g}"
        )
    return seconds


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot travel in an HTTP header (and so is not a usable token or id), or None.

    Tokens and ids are printable ASCII without spaces; anything else is a paste accident (a line break, a
    tab, a smart quote, a zero-width space). The answer says where, never what the value is, because the
    value may be a secret."""
    for i, ch in enumerate(value):
        code = ord(ch)
        if 0x21 <= code <= 0x7E:
            continue
        if ch in "\r\n":
            kind = "a line break"
        elif ch.isspace():
            kind = "whitespace"
        elif code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
            kind = "a control character"
        else:
            kind = f"a non-ASCII character (U+{code:04X})"
        return f"holds {kind} at position {i + 1} of {len(value)}"
    if not value:
        return "is empty"
    return None


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the Dropbox hosts; ``single_host`` points every route at one server (the emulator)."""

    api: str = "https://api.dropboxapi.com"
    content: str = "https://content.dropboxapi.com"
    notify: str = "https://notify.dropboxapi.com"
    authorize: str = "https://www.dropbox.com/oauth2/authorize"
    token: str = "https://api.dropboxapi.com/oauth2/token"

    @classmethod
    def single_host(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(
            api=base,
            content=base,
            notify=base,
            authorize=f"{base}/oauth2/authorize",
            token=f"{base}/oauth2/token",
        )


@dataclass(frozen=True)
class Credentials:
    """App key/secret + refresh token (long-lived), or just an access token (4 h). ``repr`` hides secrets.

    PKCE apps have no secret: give ``app_key`` and ``refresh_token`` only."""

    app_key: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        def shown(value: str | None) -> str:
            return "None" if value is None else "'***'"

        return (
            f"Credentials(app_key={self.app_key!r}, app_secret={shown(self.app_secret)}, "
            f"refresh_token={shown(self.refresh_token)}, access_token={shown(self.access_token)})"
        )
