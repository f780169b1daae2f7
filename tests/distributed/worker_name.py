"""``AIRFLOW__CORE__HOSTNAME_CALLABLE`` for the distributed suite: both Celery workers run on one machine,
so each reports the name in ``DIST_WORKER_NAME`` as its task instances' hostname (which worker ran what)."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("DIST_WORKER_NAME") or socket.getfqdn()
