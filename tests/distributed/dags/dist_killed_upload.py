"""One large upload with a retry: the suite kills its worker with kill -9 mid-upload; the retry runs on the
other worker and must leave the right bytes (never a partial file)."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_provider_dropbox.operators.dropbox import DropboxUploadOperator

SOURCE = os.environ.get("DIST_SOURCE_DIR", "/nonexistent")


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["dist"])
def dist_killed_upload() -> None:
    DropboxUploadOperator(
        task_id="upload",
        local_path=f"{SOURCE}/big.bin",
        remote_path="/dist/killed/big.bin",
        mode="overwrite",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )


dist_killed_upload()
