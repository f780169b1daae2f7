"""Change sensors whose batch is larger than the listed bound (``tests/sensors/test_sensor_xcom.py``)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor

with DAG(
    dag_id="sensor_xcom",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": "/sensor-xcom"},
    tags=["test"],
) as sensor_xcom:
    DropboxChangeSensor(
        task_id="bounded",
        path="{{ params.root }}",
        start_from="beginning",
        use_previous_cursor=False,
        mode="poke",
        poke_interval=1,
        timeout=60,
    )
    DropboxChangeSensor(
        task_id="every",
        path="{{ params.root }}",
        start_from="beginning",
        use_previous_cursor=False,
        full_list=True,
        mode="poke",
        poke_interval=1,
        timeout=60,
    )

with DAG(
    dag_id="sensor_xcom_deferred",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": "/sensor-xcom"},
    tags=["test"],
) as sensor_xcom_deferred:
    DropboxChangeSensor(
        task_id="wait_for_change",
        path="{{ params.root }}",
        use_previous_cursor=False,
        deferrable=True,
        poke_interval=1,
        timeout=120,
    )
