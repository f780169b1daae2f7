"""One task against a Dropbox connection whose port is closed: it must fail fast, naming host and port."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_dropbox.operators.dropbox import DropboxCreateFolderOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def closed_port_dag() -> None:
    DropboxCreateFolderOperator(task_id="create_folder", path="/unreachable", retries=0)


closed_port_dag()
