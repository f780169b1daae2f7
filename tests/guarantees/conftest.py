"""Fixtures for the guarantee tests: the client fixtures (emulator, client factory, unique remote folder)
and the Airflow-connection ones the async hook and triggers need."""

from __future__ import annotations

from tests.client.conftest import client, make_client, remote_dir  # noqa: F401
from tests.hooks.conftest import make_conn  # noqa: F401
