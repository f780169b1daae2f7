"""Two-way sync, event-driven on both sides: the seed article's "full synchronization", done safely.

Two watchers schedule this DAG: one long-polls Dropbox (``DropboxChangeEventTrigger``), one watches the
local folder for files that appeared, changed or went away (``LocalFolderChangeTrigger``: inotify where
the disk has it, a file counting once it was closed after writing; else a scan every ``poll_interval``,
a file counting once it stopped changing for ``settle_seconds``). A slow cron schedule runs it anyway, as
a safety net. Each run is one ``DropboxTwoWaySyncOperator`` pass: creates, edits, deletes and renames go
both ways, an edit wins over a delete, and a file edited on both sides keeps both versions. A run made by
the watchers looks only at the local paths they named and at Dropbox's changes (``local_scan="watcher"``);
the hourly run walks the whole folder, catching what nobody named (docs/two-way-sync.md).
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_dropbox.operators.two_way import DropboxTwoWaySyncOperator
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger
from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

try:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
except ImportError:  # Airflow 3.2 exports them from the core timetables only
    from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]

DROPBOX_PATH = os.environ.get("DROPBOX_SYNC_PATH", "/Sync")
_AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
LOCAL_PATH = os.environ.get("DROPBOX_SYNC_LOCAL_PATH", os.path.join(_AIRFLOW_HOME, "dropbox-sync"))

dropbox_side = Asset(
    name="dropbox_sync_remote",
    uri=f"dropbox://dropbox_default{DROPBOX_PATH}",
    watchers=[
        AssetWatcher(
            name="dropbox_sync_remote_watcher",
            trigger=DropboxChangeEventTrigger(path=DROPBOX_PATH, dropbox_conn_id="dropbox_default"),
        )
    ],
)
local_side = Asset(
    name="dropbox_sync_local",
    uri=f"file://{LOCAL_PATH}",
    watchers=[
        AssetWatcher(
            name="dropbox_sync_local_watcher",
            trigger=LocalFolderChangeTrigger(path=LOCAL_PATH, settle_seconds=5, poll_interval=5),
        )
    ],
)

with DAG(
    dag_id="dropbox_two_way_sync",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=(dropbox_side | local_side)
    ),
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "example"],
    doc_md=__doc__,
):
    # The Dropbox asset is the sync's inlet (the same asset object as the watched one: one active asset
    # per URI). Not an outlet: an outlet on an asset that schedules this DAG would queue the next run at
    # the end of every run, back to back forever (so the operator declares none on it either).
    DropboxTwoWaySyncOperator(
        task_id="sync",
        dropbox_path=DROPBOX_PATH,
        local_path=LOCAL_PATH,
        max_deletes="25%",
        local_scan="watcher",
        inlets=[dropbox_side],
    )
