"""One DAG per operator, every path and the connection id templated from ``params``.

The bad-input suite (``tests/hardening/test_bad_input.py``) runs them through ``dag.test(run_conf=...)``,
so a bad value reaches the operator the way a user's would: through Jinja rendering of its template fields.
Airflow renders once, so a conf value such as ``/reports/{{ ds }}.csv`` arrives at ``execute`` still holding
``{{ ds }}``: the "unrendered template" case.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.operators.dropbox import (
    DropboxCreateFolderOperator,
    DropboxDeleteOperator,
    DropboxDownloadOperator,
    DropboxUploadOperator,
)
from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
CONN = "{{ params.conn }}"
REMOTE = "{{ params.remote }}"
LOCAL = "{{ params.local }}"
DEFAULTS = {"conn": "dropbox_default", "remote": "/x", "local": "/nonexistent"}

with DAG("hardening_upload", schedule=None, start_date=START, catchup=False, params=DEFAULTS) as upload_dag:
    DropboxUploadOperator(
        task_id="upload",
        local_path=LOCAL,
        remote_path=REMOTE,
        dropbox_conn_id=CONN,
        retries=0,
    )

with DAG(
    "hardening_download", schedule=None, start_date=START, catchup=False, params=DEFAULTS
) as download_dag:
    DropboxDownloadOperator(
        task_id="download",
        remote_path=REMOTE,
        local_path=LOCAL,
        dropbox_conn_id=CONN,
        retries=0,
    )

with DAG("hardening_delete", schedule=None, start_date=START, catchup=False, params=DEFAULTS) as delete_dag:
    DropboxDeleteOperator(task_id="delete", path=REMOTE, dropbox_conn_id=CONN, retries=0)

with DAG("hardening_mkdir", schedule=None, start_date=START, catchup=False, params=DEFAULTS) as mkdir_dag:
    DropboxCreateFolderOperator(task_id="create_folder", path=REMOTE, dropbox_conn_id=CONN, retries=0)

with DAG("hardening_mirror", schedule=None, start_date=START, catchup=False, params=DEFAULTS) as mirror_dag:
    DropboxMirrorOperator(
        task_id="mirror",
        dropbox_path=REMOTE,
        local_path=LOCAL,
        dropbox_conn_id=CONN,
        parallelism=2,
        retries=0,
    )

with DAG(
    "hardening_sensor",
    schedule=None,
    start_date=START,
    catchup=False,
    params={**DEFAULTS, "cursor": ""},
) as sensor_dag:
    from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor

    DropboxChangeSensor(
        task_id="sensor",
        path=REMOTE,
        cursor="{{ params.cursor }}",
        dropbox_conn_id=CONN,
        mode="poke",
        poke_interval=1,
        timeout=6,
        deferrable=False,
        retries=0,
    )
