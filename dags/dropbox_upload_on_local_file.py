"""Upload on local file: files dropped into a watched local folder go to Dropbox, then to an archive.

A ``LocalFolderChangeTrigger`` in the triggerer watches the inbox (the seed article's file-event listener)
and schedules a run once new or changed files were closed after writing (inotify) or stopped changing
for ``settle_seconds`` (scanning, on file systems without inotify); files already
there when the triggerer starts are reported once, and an hourly run is the safety net for anything a
stopped triggerer missed. The run takes only files that are not temp/partial files and still stay the
same across ``settle_seconds``, so a half-written file is never uploaded. Large files go through a
chunked, parallel upload session automatically. ``DropboxHook.upload_file`` returns only once Dropbox's
``content_hash`` and size match the bytes it read (else it raises), so the file is moved to ``archive``
when the upload returned and the file did not change since it was read; on any failure it stays where it
is for the next run. The watcher watches the default inbox (``DROPBOX_UPLOAD_ROOT``); a run triggered by
hand with another ``inbox`` param uploads from that folder once.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, Param, task

from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

try:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
except ImportError:  # Airflow 3.2 exports them from the core timetables only
    from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]

_AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
_ROOT = os.environ.get("DROPBOX_UPLOAD_ROOT", os.path.join(_AIRFLOW_HOME, "dropbox-upload"))
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".swp")

inbox_asset = Asset(
    name="dropbox_upload_inbox",
    uri=f"file://{_ROOT}/inbox",
    watchers=[
        AssetWatcher(
            name="dropbox_upload_inbox_watcher",
            trigger=LocalFolderChangeTrigger(
                path=f"{_ROOT}/inbox",
                settle_seconds=5,
                poll_interval=5,
                include_deletes=False,  # the archive step moves files away: not a reason to run
                fire_on_existing=True,  # files that arrived while the triggerer was down
            ),
        )
    ],
)


def _candidates(inbox: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every regular file that is not hidden or partial."""
    found: dict[str, tuple[int, int]] = {}
    for path in inbox.rglob("*"):
        rel = path.relative_to(inbox)
        if any(part.startswith((".", "~")) for part in rel.parts) or path.name.endswith(_PARTIAL_SUFFIXES):
            continue
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            found[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
    return found


with DAG(
    dag_id="dropbox_upload_on_local_file",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=inbox_asset
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dropbox", "example"],
    doc_md=__doc__,
    params={
        "inbox": Param(f"{_ROOT}/inbox", type="string", description="Watched local folder"),
        "archive": Param(f"{_ROOT}/archive", type="string", description="Uploaded files end up here"),
        "dropbox_folder": Param("/Uploads", type="string", description="Dropbox destination folder"),
        "settle_seconds": Param(5, type="integer", minimum=0, description="Unchanged this long = complete"),
        "dropbox_conn_id": Param("dropbox_default", type="string"),
    },
):

    @task
    def stable_files(params: dict[str, Any]) -> list[str]:
        """Files present and unchanged over ``settle_seconds``: complete, safe to upload (none: the
        upload tasks are skipped)."""
        inbox = Path(params["inbox"])
        inbox.mkdir(parents=True, exist_ok=True)
        before = _candidates(inbox)
        if before:
            time.sleep(int(params["settle_seconds"]))
        after = _candidates(inbox)
        return sorted(rel for rel, seen in before.items() if after.get(rel) == seen)

    @task(retries=2, retry_delay=timedelta(seconds=20))
    def upload_and_archive(rel_path: str, params: dict[str, Any]) -> dict[str, Any]:
        """Upload one file (verified by the hook), then archive it; any failure leaves it in the inbox."""
        from airflow_provider_dropbox.hooks.dropbox import DropboxHook

        source = Path(params["inbox"]) / rel_path
        before = source.stat()
        remote = f"{params['dropbox_folder'].rstrip('/')}/{rel_path}"
        meta = DropboxHook(dropbox_conn_id=params["dropbox_conn_id"]).upload_file(
            source, remote, mode="overwrite"
        )
        after = source.stat()
        # The hook already refuses a file that changed while it was read (LocalFileChangedError, after two
        # fresh attempts); this catches a change between its last read and the archive step.
        stamp = ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev")
        if any(getattr(after, k) != getattr(before, k) for k in stamp):
            raise RuntimeError(f"{source} changed during the upload; it stays in the inbox for the next run")
        target = Path(params["archive"]) / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}.{int(time.time())}{target.suffix}")
        os.replace(source, target)  # same volume: atomic; the file is never in two places
        print(f"uploaded {source} -> {meta['path_display']} ({meta['size']} bytes), archived as {target}")
        return {"local": str(source), "dropbox": meta["path_display"], "archived": str(target)}

    upload_and_archive.expand(rel_path=stable_files())
