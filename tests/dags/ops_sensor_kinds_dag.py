"""Change sensors filtering on one kind (``added`` or ``modified``), in each mode, for tests/sensors."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor


def _kinds_dag(dag_id: str, kinds: list[str], **sensor_kwargs: object) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={"root": "/ops-kinds"},
        tags=["test"],
    ) as dag:
        DropboxChangeSensor(
            task_id="wait_for_change",
            path="{{ params.root }}",
            kinds=kinds,
            poke_interval=1,
            timeout=120,
            **sensor_kwargs,  # type: ignore[arg-type]
        )
    return dag


ops_kinds_added_poke = _kinds_dag("ops_kinds_added_poke", ["added"], mode="poke")
ops_kinds_added_reschedule = _kinds_dag("ops_kinds_added_reschedule", ["added"], mode="reschedule")
ops_kinds_added_deferrable = _kinds_dag("ops_kinds_added_deferrable", ["added"], deferrable=True)
ops_kinds_modified_poke = _kinds_dag("ops_kinds_modified_poke", ["modified"], mode="poke")
