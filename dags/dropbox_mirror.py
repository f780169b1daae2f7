"""Scheduled mirror: keep a local directory a verified copy of a Dropbox folder, every 5 minutes.

The first run downloads everything; later runs continue from the cursor stored in the destination and
touch only what changed. Runs never overlap (``max_active_runs=1`` plus the mirror's own lock).
Params: ``dropbox_path``, ``local_path`` (default ``$DROPBOX_MIRROR_LOCAL_PATH``), ``dropbox_conn_id``,
``max_deletes``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

_AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
_DEFAULT_LOCAL_PATH = os.environ.get(
    "DROPBOX_MIRROR_LOCAL_PATH", os.path.join(_AIRFLOW_HOME, "dropbox-mirror")
)

with DAG(
    dag_id="dropbox_mirror",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "example"],
    doc_md=__doc__,
    params={
        "dropbox_path": Param("/", type="string", description="Dropbox folder to mirror"),
        "local_path": Param(
            _DEFAULT_LOCAL_PATH,
            type="string",
            description="Local destination directory",
        ),
        "dropbox_conn_id": Param("dropbox_default", type="string"),
        "max_deletes": Param("50%", type=["string", "integer"], description="Abort above this many deletes"),
    },
):
    mirror = DropboxMirrorOperator(
        task_id="mirror",
        dropbox_path="{{ params.dropbox_path }}",
        local_path="{{ params.local_path }}",
        dropbox_conn_id="{{ params.dropbox_conn_id }}",
        max_deletes="{{ params.max_deletes }}",
        retries=2,
        retry_delay=timedelta(seconds=30),
    )

    @task
    def report(run: dict[str, Any]) -> str:
        """One line for the grid view; the full report stays in the mirror task's XCom."""
        print(run["summary"])
        return str(run["summary"])

    report(mirror.output)
