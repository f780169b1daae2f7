"""The change sensor in each mode (poke, reschedule, deferrable), watching ``params.root``.

Run by ``tests/sensors/test_sensor_dags.py`` through ``dag.test()``; the test changes Dropbox from a
background thread while the sensor waits.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor


def _sensor_dag(dag_id: str, **sensor_kwargs: object) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={"root": "/ops-sensor", "pattern": "*.csv"},
        tags=["test"],
    ) as dag:
        sensor = DropboxChangeSensor(
            task_id="wait_for_change",
            path="{{ params.root }}",
            file_pattern="{{ params.pattern }}",
            poke_interval=1,
            timeout=120,
            **sensor_kwargs,  # type: ignore[arg-type]
        )

        @task
        def changed_paths(result: dict[str, object]) -> list[str]:
            return [c["path"] for c in result["changes"]]  # type: ignore[attr-defined]

        changed_paths(sensor.output)
    return dag


ops_sensor_poke = _sensor_dag("ops_sensor_poke", mode="poke", deferrable=False)
ops_sensor_reschedule = _sensor_dag("ops_sensor_reschedule", mode="reschedule", deferrable=False)
ops_sensor_deferrable = _sensor_dag("ops_sensor_deferrable", deferrable=True)
