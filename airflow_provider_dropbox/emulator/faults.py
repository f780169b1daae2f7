"""Fault injection settings and the seeded dice that decide which request gets which fault.

Latency and bandwidth model a network path. ``latency_ms`` is paid once per request (one round trip). On
its own it models a path with an infinite TCP window, where a connection moves bytes at loopback speed
however far away the server is. ``window_bytes`` adds what a real TCP connection is limited by: at most one
window of unacknowledged bytes in flight per round trip, so each request's body moves at most
``window_bytes / latency`` per second in each direction. HTTP/1.1 sends one request at a time per
keep-alive connection, so a per-request cap is a per-connection cap. ``bandwidth_mbps`` is a plain
per-request cap; when both are set the lower one applies.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import write_lock

FRACTIONS = (
    "rate_limit",
    "server_error",
    "lock_contention",
    "drop_after_commit",
    "truncate_download",
    "corrupt_download",
)

SWITCHES = {
    "resent_piece": ("incorrect_offset", "accept"),
    "deleted_folder_cursor": ("reset", "not_found"),
}


@dataclass
class FaultSettings:
    latency_ms: float = 0
    bandwidth_mbps: float | None = None  # megabits per second, per request and direction
    window_bytes: int | None = (
        None  # TCP window: with latency_ms, caps a request at window/latency per direction
    )
    rate_limit: float = 0
    server_error: float = 0
    lock_contention: float = 0
    drop_after_commit: float = 0
    truncate_download: float = 0  # downloads cut off half way (connection aborted)
    corrupt_download: float = 0  # downloads with one flipped byte (content_hash no longer matches)
    retry_after_s: int = 1
    rate_limit_text: bool = False  # answer 429s with a plain-text body instead of JSON
    longpoll_max_s: float | None = None  # cap a longpoll's wait (tests; real minimum is 30 s)
    longpoll_backoff_s: int | None = None  # add ``backoff`` to every longpoll result
    token_lifetime: int | None = None  # lifetime of tokens issued from now on
    quota_bytes: int | None = None  # account size: writes beyond it fail with insufficient_space
    seed: int | None = None
    # Switches between answers the spec allows (the defaults are what the emulator always did):
    resent_piece: str = "incorrect_offset"  # a concurrent session's piece sent again: or "accept" it again
    deleted_folder_cursor: str = "reset"  # continue on a cursor whose folder is gone: or "not_found"
    repeat_paths: bool = False  # continue pages carry every change of a path in order (not one per path)
    write_lock: bool = False  # namespace write-lock model (write_lock.py)
    write_lock_commit_ms: float = 20  # lock held per commit ...
    write_lock_entry_ms: float = 1  # ... plus per entry of a batch
    write_lock_wait_ms: float = 100  # a commit waits this long for a busy lock, then gets 429


class Faults:
    """Current settings plus one RNG, so a given seed gives a reproducible fault sequence."""

    def __init__(self, settings: FaultSettings) -> None:
        self.lock = threading.Lock()
        self.settings = settings
        self.rng = random.Random(settings.seed)

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update; unknown keys or bad values raise ValueError."""
        names = {f.name for f in fields(FaultSettings)}
        unknown = set(body) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        with self.lock:
            merged = {**asdict(self.settings), **body}
            for name in FRACTIONS:
                v = merged[name]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                    raise ValueError(f"{name} must be a number in [0, 1]")
            for name in ("latency_ms", "retry_after_s"):
                v = merged[name]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{name} must be a non-negative number")
            for name in (
                "bandwidth_mbps",
                "window_bytes",
                "longpoll_max_s",
                "longpoll_backoff_s",
                "token_lifetime",
                "quota_bytes",
            ):
                v = merged[name]
                if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
                    raise ValueError(f"{name} must be a positive number or null")
            for name in ("rate_limit_text", "repeat_paths"):
                if not isinstance(merged[name], bool):
                    raise ValueError(f"{name} must be a boolean")
            for name, choices in SWITCHES.items():
                if merged[name] not in choices:
                    raise ValueError(f"{name} must be one of {list(choices)}")
            write_lock.validate(merged)
            merged["retry_after_s"] = int(merged["retry_after_s"])
            for name in ("quota_bytes", "window_bytes"):
                if merged[name] is not None:
                    merged[name] = int(merged[name])
            self.settings = FaultSettings(**merged)
            if "seed" in body:
                self.rng = random.Random(self.settings.seed)
            return asdict(self.settings)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return asdict(self.settings)

    def roll(self, name: str) -> bool:
        """True with the probability configured for ``name``."""
        with self.lock:
            p = float(getattr(self.settings, name))
            return p > 0 and self.rng.random() < p

    def choice(self, options: list[Any]) -> Any:
        with self.lock:
            return self.rng.choice(options)

    @property
    def bytes_per_s(self) -> float | None:
        """Per-request cap in each direction: the bandwidth cap or window / round trip, whichever is lower.

        None when neither applies (a window without latency is no limit: the round trip is zero)."""
        s = self.settings
        caps = []
        if s.bandwidth_mbps:
            caps.append(s.bandwidth_mbps * 1_000_000 / 8)
        if s.window_bytes and s.latency_ms:
            caps.append(s.window_bytes / (s.latency_ms / 1000))
        return min(caps) if caps else None
