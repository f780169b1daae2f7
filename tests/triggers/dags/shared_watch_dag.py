"""Watchers that share state-store storage (``tests/triggers/test_shared_watchers.py``).

* ``shared_one`` and ``shared_two`` are given the same trigger: DAG processing stores one trigger row
  watching both assets, so the triggerer hands it an accessor over two assets.
* ``two_folders`` has two watchers on different folders: two triggers writing to one asset's store.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_dropbox.triggers.dropbox import DropboxChangeEventTrigger


def _watch(path: str) -> DropboxChangeEventTrigger:
    return DropboxChangeEventTrigger(path=path, dropbox_conn_id="dropbox_watch", file_pattern="*.csv")


shared_one = Asset(
    name="shared_one",
    uri="dropbox://dropbox_watch/w/shared/one",
    watchers=[AssetWatcher(name="shared_watcher_one", trigger=_watch("/w/shared"))],
)
shared_two = Asset(
    name="shared_two",
    uri="dropbox://dropbox_watch/w/shared/two",
    watchers=[AssetWatcher(name="shared_watcher_two", trigger=_watch("/w/shared"))],
)
two_folders = Asset(
    name="two_folders",
    uri="dropbox://dropbox_watch/w/two",
    watchers=[
        AssetWatcher(name="folder_a_watcher", trigger=_watch("/w/A")),
        AssetWatcher(name="folder_b_watcher", trigger=_watch("/w/B")),
    ],
)

with DAG(
    dag_id="shared_watchers",
    schedule=(shared_one | shared_two | two_folders),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):

    @task
    def noop() -> None:
        return None

    noop()
