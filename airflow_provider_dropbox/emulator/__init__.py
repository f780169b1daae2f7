"""Local Dropbox HTTP API v2 emulator (Starlette + uvicorn) for tests and benchmarks.

A test double, not Dropbox: product code never imports it, and it imports no Airflow.
Run it with ``python -m airflow_provider_dropbox.emulator --port 0 --data-dir DIR``.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
