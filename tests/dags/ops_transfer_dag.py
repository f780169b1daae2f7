"""Every Dropbox operator in one DAG, paths templated from ``params`` so each test run uses its own folder.

Run by ``tests/operators/test_operators_dag.py`` through ``dag.test()`` against the emulator.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_dropbox.operators.dropbox import (
    DropboxChunkedUploadOperator,
    DropboxCopyOperator,
    DropboxCreateFolderOperator,
    DropboxCreateSharedLinkOperator,
    DropboxDeleteOperator,
    DropboxDownloadOperator,
    DropboxMoveOperator,
    DropboxUploadOperator,
)

R = "{{ params.root }}"
L = "{{ params.local }}"

with DAG(
    dag_id="ops_transfer",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": "/ops", "local": "/tmp/ops"},
    tags=["test"],
) as ops_transfer:
    mkdir = DropboxCreateFolderOperator(task_id="create_folder", path=R)
    up_file = DropboxUploadOperator(
        task_id="upload_file",
        local_path=f"{L}/src/report.csv",
        remote_path=f"{R}/report.csv",
        mode="overwrite",
    )
    up_again = DropboxUploadOperator(
        task_id="upload_again_identical", local_path=f"{L}/src/report.csv", remote_path=f"{R}/report.csv"
    )
    up_folder = DropboxUploadOperator(
        task_id="upload_folder", local_path=f"{L}/src", remote_path=f"{R}/folder", pattern="*.csv"
    )
    up_glob = DropboxUploadOperator(
        task_id="upload_glob", local_path=f"{L}/src/*.txt", remote_path=f"{R}/glob"
    )
    up_none = DropboxUploadOperator(task_id="upload_glob_empty", local_path=f"{L}/src/*.nope", remote_path=R)
    up_chunked = DropboxChunkedUploadOperator(
        task_id="upload_chunked",
        local_path=f"{L}/big.bin",
        remote_path=f"{R}/big.bin",
        chunk_size=4 * 1024 * 1024,
        parallelism=3,
    )
    down_file = DropboxDownloadOperator(
        task_id="download_file", remote_path=f"{R}/big.bin", local_path=f"{L}/out/"
    )
    down_folder = DropboxDownloadOperator(
        task_id="download_folder", remote_path=f"{R}/folder", local_path=f"{L}/out/folder", pattern="sub/*"
    )
    copy = DropboxCopyOperator(task_id="copy", from_path=f"{R}/report.csv", to_path=f"{R}/copy.csv")
    move = DropboxMoveOperator(task_id="move", from_path=f"{R}/copy.csv", to_path=f"{R}/moved/copy.csv")
    link = DropboxCreateSharedLinkOperator(task_id="share", path=f"{R}/report.csv")
    delete = DropboxDeleteOperator(task_id="delete", path=[f"{R}/glob", f"{R}/missing"], missing_ok=True)

    (
        mkdir
        >> up_file
        >> up_again
        >> up_folder
        >> up_glob
        >> up_none
        >> up_chunked
        >> down_file
        >> down_folder
        >> copy
        >> move
        >> link
        >> delete
    )


# Static paths declare dropbox:// assets, so a DAG can be scheduled on what this one writes.
PUBLISHED = Asset("dropbox://dropbox_default/ops-published/data.csv")

with DAG(
    dag_id="ops_publish",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"local": "/tmp/ops/data.csv"},
    tags=["test"],
) as ops_publish:
    DropboxUploadOperator(
        task_id="publish",
        local_path="{{ params.local }}",
        remote_path="/ops-published/data.csv",
        mode="overwrite",
        skip_identical=False,
    )


with DAG(
    dag_id="ops_consume",
    schedule=[PUBLISHED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
) as ops_consume:

    @task
    def read_published() -> str:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath("dropbox://dropbox_default@/ops-published/data.csv").read_text()

    read_published()
