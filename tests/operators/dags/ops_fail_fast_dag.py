"""Tasks with ``retries=2`` that meet an error: permanent ones must run once, transient ones three times.

Run by ``tests/operators/test_fail_fast.py``; paths come from ``params`` (rendered like a user's would be).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.operators.dropbox import (
    DropboxCreateFolderOperator,
    DropboxDeleteOperator,
    DropboxDownloadOperator,
    DropboxUploadOperator,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"remote": "/ff", "local": "/nonexistent", "conn": "dropbox_default"}
RETRY = {"retries": 2, "retry_delay": timedelta(0), "dropbox_conn_id": "{{ params.conn }}"}

with DAG("ff_delete", schedule=None, start_date=START, catchup=False, params=PARAMS) as delete_dag:
    DropboxDeleteOperator(task_id="t", path="{{ params.remote }}", **RETRY)

with DAG("ff_mkdir", schedule=None, start_date=START, catchup=False, params=PARAMS) as mkdir_dag:
    DropboxCreateFolderOperator(task_id="t", path="{{ params.remote }}", **RETRY)

with DAG("ff_upload", schedule=None, start_date=START, catchup=False, params=PARAMS) as upload_dag:
    DropboxUploadOperator(
        task_id="t", local_path="{{ params.local }}", remote_path="{{ params.remote }}", **RETRY
    )

with DAG("ff_download", schedule=None, start_date=START, catchup=False, params=PARAMS) as download_dag:
    DropboxDownloadOperator(
        task_id="t", remote_path="{{ params.remote }}", local_path="{{ params.local }}", **RETRY
    )

with DAG("ff_update_folder", schedule=None, start_date=START, catchup=False, params=PARAMS) as update_dag:
    DropboxUploadOperator(
        task_id="t",
        local_path="{{ params.local }}",
        remote_path="{{ params.remote }}",
        mode="update",
        rev="0123456789abcdef",
        **RETRY,
    )
