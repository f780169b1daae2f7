"""Real tasks for the secrets check (``tests/hardening/test_security.py``), run with ``airflow dags test``.

Every operator family plus hook calls, a failing task (wrong app secret) and a template that renders the
connection id; the test then greps the console output, every file under AIRFLOW_HOME (task logs, the SQLite
database with XCom and rendered template fields) for the app secret, the refresh token and any access token.
Nothing here logs a secret on purpose: ``airflow dags test`` does not mask its console, so any hit is a leak
in the provider itself.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_dropbox.operators.dropbox import (
    DropboxCreateSharedLinkOperator,
    DropboxDownloadOperator,
    DropboxUploadOperator,
)
from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

log = logging.getLogger(__name__)

with DAG(
    "hardening_secrets",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"local": "/nonexistent", "conn": "hsec", "bad_conn": "hsec_bad"},
) as hardening_secrets:
    up = DropboxUploadOperator(
        task_id="upload",
        local_path="{{ params.local }}/in.csv",
        remote_path="/secrets-check/{{ dag_run.conf.get('run', 'r') }}/in.csv",
        dropbox_conn_id="{{ params.conn }}",
        mode="overwrite",
    )
    down = DropboxDownloadOperator(
        task_id="download",
        remote_path="/secrets-check/{{ dag_run.conf.get('run', 'r') }}/in.csv",
        local_path="{{ params.local }}/out/",
        dropbox_conn_id="{{ params.conn }}",
    )
    share = DropboxCreateSharedLinkOperator(
        task_id="share",
        path="/secrets-check/{{ dag_run.conf.get('run', 'r') }}/in.csv",
        dropbox_conn_id="{{ params.conn }}",
    )
    mirror = DropboxMirrorOperator(
        task_id="mirror",
        dropbox_path="/secrets-check",
        local_path="{{ params.local }}/mirror",
        dropbox_conn_id="{{ params.conn }}",
    )

    @task
    def hook_calls(params: dict[str, str] | None = None) -> dict[str, object]:
        from airflow_provider_dropbox.hooks.dropbox import DropboxHook

        assert params is not None
        hook = DropboxHook(params["conn"])
        ok, message = hook.test_connection()
        log.info("test_connection: %s %s", ok, message)
        entries = [e["path_display"] for e in hook.list_folder("/secrets-check", recursive=True)]
        cursor = hook.get_latest_cursor("/secrets-check")
        _changes, cursor = hook.list_changes(cursor)
        log.info("hook=%r client=%r credentials=%r", hook, hook.get_conn(), hook.get_conn().auth._credentials)
        return {"ok": ok, "message": message, "entries": entries, "cursor": cursor}

    @task(trigger_rule="all_done")
    def wrong_secret(params: dict[str, str] | None = None) -> None:
        from airflow_provider_dropbox.hooks.dropbox import DropboxHook

        assert params is not None
        hook = DropboxHook(params["bad_conn"], retry_deadline=2)
        ok, message = hook.test_connection()
        log.info("test_connection with a wrong secret: %s %s", ok, message)
        hook.get_metadata("/secrets-check")  # raises AuthError: the task fails, its traceback is logged

    up >> down >> share >> mirror >> hook_calls() >> wrong_secret()
