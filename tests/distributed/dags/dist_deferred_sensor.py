"""A deferrable change sensor: defers on one worker; the suite stops that worker, so the task resumes on the
other one."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["dist"])
def dist_deferred_sensor() -> None:
    DropboxChangeSensor(task_id="wait", path="/dist/watch", deferrable=True, timeout=600)


dist_deferred_sensor()
