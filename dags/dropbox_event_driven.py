"""Event-driven: run when Dropbox changes, with no worker slot held while waiting.

An ``AssetWatcher`` on ``dropbox://dropbox_default/Inbox`` long-polls Dropbox in the triggerer and emits
an asset event for each batch of real changes (never on a quiet timeout). Each event schedules this DAG,
which logs what changed and brings the local mirror of the folder up to date.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger

WATCH_PATH = os.environ.get("DROPBOX_WATCH_PATH", "/Inbox")
_AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
_MIRROR_ROOT = os.environ.get("DROPBOX_MIRROR_LOCAL_PATH", os.path.join(_AIRFLOW_HOME, "dropbox-mirror"))
LOCAL_PATH = os.path.join(_MIRROR_ROOT, "_events")

dropbox_inbox = Asset(
    name="dropbox_inbox",
    uri=f"dropbox://dropbox_default{WATCH_PATH}",
    watchers=[
        AssetWatcher(
            name="dropbox_inbox_watcher",
            trigger=DropboxChangeEventTrigger(path=WATCH_PATH, dropbox_conn_id="dropbox_default"),
        )
    ],
)

with DAG(
    dag_id="dropbox_event_driven",
    schedule=[dropbox_inbox],
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "example"],
    doc_md=__doc__,
):

    @task
    def log_changes(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """What the watcher saw: one entry per changed path (kind, path, rev, size, content_hash)."""
        changes: list[dict[str, Any]] = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                changes.extend(event.extra.get("payload", {}).get("changes", []))
        for change in changes:
            print(f"{change.get('kind')}: {change.get('path')}")
        return changes

    # The watched asset is the inlet: an operator-made asset with the same URI but another name would be
    # inactive (Airflow keeps one active asset per URI) and fail the task before it runs.
    mirror = DropboxMirrorOperator(
        task_id="mirror_inbox", dropbox_path=WATCH_PATH, local_path=LOCAL_PATH, inlets=[dropbox_inbox]
    )
    log_changes() >> mirror
