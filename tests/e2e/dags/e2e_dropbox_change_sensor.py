"""E2E only: the deferrable Dropbox change sensor, waiting in the triggerer (longpoll) for a change."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor

with DAG(
    dag_id="e2e_dropbox_change_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "e2e"],
    params={"path": Param("/E2E/Sensor", type="string", description="Dropbox folder to watch")},
):
    DropboxChangeSensor(
        task_id="wait_for_change",
        path="{{ params.path }}",
        deferrable=True,
        start_from="latest",
        timeout=600,
    )
