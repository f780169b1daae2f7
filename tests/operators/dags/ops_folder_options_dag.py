"""Folder-transfer options through real Airflow: ``exclude`` (templated), never-synced names, and the local
paths operators refuse (``/``, relative). Every path comes from ``params``, so a test passes its own through
``dag.test(run_conf=...)`` and the value reaches the operator the way a user's would: rendered by Jinja.

Run by ``tests/operators/test_folder_options.py``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.operators.dropbox import DropboxDownloadOperator, DropboxUploadOperator
from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
REMOTE = "{{ params.remote }}"
LOCAL = "{{ params.local }}"
PARAMS = {"remote": "/opts", "local": "/nonexistent", "exclude": "*.never"}

with DAG("ops_opts_upload", schedule=None, start_date=START, catchup=False, params=PARAMS) as upload_dag:
    DropboxUploadOperator(
        task_id="upload",
        local_path=LOCAL,
        remote_path=REMOTE,
        exclude=["{{ params.exclude }}", "*.tmp"],
        retries=0,
    )

with DAG(
    "ops_opts_upload_strict", schedule=None, start_date=START, catchup=False, params=PARAMS
) as strict_dag:
    DropboxUploadOperator(
        task_id="upload", local_path=LOCAL, remote_path=REMOTE, skip_disallowed_names=False, retries=0
    )

with DAG("ops_opts_download", schedule=None, start_date=START, catchup=False, params=PARAMS) as download_dag:
    DropboxDownloadOperator(task_id="download", remote_path=REMOTE, local_path=LOCAL, retries=0)

with DAG("ops_opts_mirror", schedule=None, start_date=START, catchup=False, params=PARAMS) as mirror_dag:
    DropboxMirrorOperator(task_id="mirror", dropbox_path=REMOTE, local_path=LOCAL, parallelism=2, retries=0)
