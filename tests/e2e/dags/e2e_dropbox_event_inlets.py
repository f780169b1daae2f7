"""E2E only: the event-driven pattern with the watched asset passed as the operator's inlet.

Same shape as ``dags/dropbox_event_driven.py`` but on its own folder, and with ``inlets=[watched]`` so
the mirror operator does not auto-declare a second asset for the same URI (docs/notes/e2e-findings.md #1).
It shows that workaround on a real scheduler; drop it once the example DAG or the operator is fixed.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger

WATCH_PATH = "/E2E/Watched"
_MIRROR_ROOT = os.environ.get("DROPBOX_MIRROR_LOCAL_PATH", "/tmp/dropbox-mirror")

watched = Asset(
    name="e2e_watched",
    uri=f"dropbox://dropbox_default{WATCH_PATH}",
    watchers=[
        AssetWatcher(
            name="e2e_watched_watcher",
            trigger=DropboxChangeEventTrigger(path=WATCH_PATH, dropbox_conn_id="dropbox_default"),
        )
    ],
)

with DAG(
    dag_id="e2e_dropbox_event_inlets",
    schedule=[watched],
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "e2e"],
):
    DropboxMirrorOperator(
        task_id="mirror",
        dropbox_path=WATCH_PATH,
        local_path=os.path.join(_MIRROR_ROOT, "_e2e_watched"),
        inlets=[watched],
    )
