"""A folder upload and download whose XCom results must stay bounded; run by ``test_xcom_size.py``."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.operators.dropbox import DropboxDownloadOperator, DropboxUploadOperator

PARAMS = {"remote": "/xcom", "local": "/nonexistent", "out": "/nonexistent"}

with DAG(
    "ops_xcom",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
) as dag:
    upload = DropboxUploadOperator(
        task_id="upload", local_path="{{ params.local }}", remote_path="{{ params.remote }}"
    )
    download = DropboxDownloadOperator(
        task_id="download", remote_path="{{ params.remote }}", local_path="{{ params.out }}"
    )
    full = DropboxUploadOperator(
        task_id="upload_full",
        local_path="{{ params.local }}",
        remote_path="{{ params.remote }}",
        full_list=True,
    )
    upload >> download >> full
