"""Event-driven: a DAG scheduled on Dropbox changes through an AssetWatcher (no worker slot while waiting).

Used by ``tests/triggers/test_asset_watcher.py``: parsed and serialized in the default suite, and run by
a real triggerer + scheduler in the slow suite. The connection ``dropbox_watch`` points at the emulator.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger

inbox = Asset(
    name="ops_dropbox_inbox",
    uri="dropbox://dropbox_watch/ops-watch/Inbox",
    watchers=[
        AssetWatcher(
            name="ops_inbox_watcher",
            trigger=DropboxChangeEventTrigger(
                path="/ops-watch/Inbox", dropbox_conn_id="dropbox_watch", file_pattern="*.csv"
            ),
        )
    ],
)

with DAG(
    dag_id="ops_on_dropbox_change",
    schedule=[inbox],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
) as ops_on_dropbox_change:

    @task
    def changed_files(triggering_asset_events=None) -> list[str]:  # type: ignore[no-untyped-def]
        paths: list[str] = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                paths += [c["path"] for c in event.extra.get("payload", {}).get("changes", [])]
        return paths

    changed_files()
