"""Dynamically mapped upload: one task instance per local folder (20), spread over the Celery workers."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from airflow_provider_dropbox.operators.dropbox import DropboxUploadOperator

SOURCE = os.environ.get("DIST_SOURCE_DIR", "/nonexistent")


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["dist"])
def dist_mapped_upload() -> None:
    DropboxUploadOperator.partial(task_id="upload", mode="overwrite", recursive=True).expand_kwargs(
        [{"local_path": f"{SOURCE}/f{i:02d}", "remote_path": f"/dist/mapped/f{i:02d}"} for i in range(20)]
    )


dist_mapped_upload()
