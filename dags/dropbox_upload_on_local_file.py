"""Upload on local file: files dropped into a watched local folder go to Dropbox, then to an archive.

A file is picked up only once it has stopped growing (same size and mtime across ``settle_seconds``) and
is not a temp/partial file, so a half-written file is never uploaded. Large files go through a chunked,
parallel upload session automatically. ``DropboxHook.upload_file`` returns only once Dropbox's
``content_hash`` and size match the bytes it read (else it raises), so the file is moved to ``archive``
when the upload returned and the file did not change since it was read; on any failure it stays where it
is for the next run.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, PokeReturnValue, task

_AIRFLOW_HOME = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
_ROOT = os.environ.get("DROPBOX_UPLOAD_ROOT", os.path.join(_AIRFLOW_HOME, "dropbox-upload"))
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".swp")


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
    schedule=timedelta(minutes=1),
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

    @task.sensor(task_id="stable_files", poke_interval=15, timeout=50, mode="reschedule", soft_fail=True)
    def stable_files(params: dict[str, Any]) -> PokeReturnValue:
        """Files present and unchanged over ``settle_seconds``: complete, safe to upload."""
        inbox = Path(params["inbox"])
        inbox.mkdir(parents=True, exist_ok=True)
        before = _candidates(inbox)
        if before:
            time.sleep(int(params["settle_seconds"]))
        after = _candidates(inbox)
        stable = sorted(rel for rel, seen in before.items() if after.get(rel) == seen)
        return PokeReturnValue(is_done=bool(stable), xcom_value=stable)

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
