"""The ``list_folder/longpoll`` limits and retry spreading, in one place for the client and the triggers.

No Airflow here: the Airflow-free client, the async hook and the change sensor all import it.
"""

from __future__ import annotations

import random

LONGPOLL_MIN = 30
LONGPOLL_MAX = 480
LONGPOLL_JITTER = 90
"""Dropbox may hold a longpoll up to ``timeout`` + 90 s of random jitter: read timeouts must exceed it."""


def clamp_longpoll_timeout(timeout: int | float) -> int:
    """Dropbox accepts 30..480 s; clamp instead of failing a long-running watcher on a typo."""
    return int(min(max(int(timeout), LONGPOLL_MIN), LONGPOLL_MAX))


def jittered(delay: float) -> float:
    """Spread retries of many watchers so they don't hit Dropbox in lockstep (0.8x to 1.2x)."""
    return delay * (0.8 + 0.4 * random.random())
