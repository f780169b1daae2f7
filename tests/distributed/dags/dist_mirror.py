"""Two DAGs mirroring one Dropbox folder into one destination on storage both workers share, each pinned to
one worker by its queue: the suite runs them at the same time to race the mirror's lock across workers.

Two DAGs because ``max_active_runs=1`` already keeps two runs of one DAG apart; two DAGs (or a DAG and a
manual ``airflow tasks test``) aimed at one destination are what only the lock can stop."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

MIRROR_DIR = os.environ.get("DIST_MIRROR_DIR", "/nonexistent")


def mirror_dag(dag_id: str, queue: str) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["dist"],
    ) as dag:
        DropboxMirrorOperator(
            task_id="mirror",
            dropbox_path="/dist/mirror",
            local_path=MIRROR_DIR,
            parallelism=2,
            queue=queue,
            retries=0,
        )
    return dag


dist_mirror_on_a = mirror_dag("dist_mirror_on_a", "worker-a")
dist_mirror_on_b = mirror_dag("dist_mirror_on_b", "worker-b")
