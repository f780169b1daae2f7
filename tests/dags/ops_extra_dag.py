"""Restore an old revision, then hand its temporary link to a downstream task that fetches it.

Run by ``tests/operators/test_operators_extra.py`` through ``dag.test()`` against the emulator.
"""

from __future__ import annotations

import urllib.request

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_dropbox.operators.dropbox_extra import (
    DropboxGetTemporaryLinkOperator,
    DropboxRestoreOperator,
)

with DAG(
    dag_id="ops_extra",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"path": "/ops/file.txt", "rev": "000000000"},
    tags=["test"],
) as ops_extra:
    restore = DropboxRestoreOperator(task_id="restore", path="{{ params.path }}", rev="{{ params.rev }}")
    link = DropboxGetTemporaryLinkOperator(task_id="temp_link", path="{{ params.path }}")

    @task
    def fetch(url: str) -> str:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return str(resp.read().decode())

    restore >> link
    fetch(link.output)
