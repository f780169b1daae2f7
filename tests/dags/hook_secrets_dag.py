"""A real task run for the secrets check: uses DropboxHook and logs its credentials on purpose.

``tests/hooks/test_task_log_secrets.py`` runs it through a real executor and greps the task log files: the app
secret, the refresh token and every issued access token must show up only as ``***``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import BaseHook, dag, task

log = logging.getLogger(__name__)


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def hook_secrets_dag() -> None:
    @task
    def use_dropbox() -> dict[str, object]:
        from airflow_provider_dropbox.hooks.dropbox import DropboxHook

        hook = DropboxHook()
        ok, message = hook.test_connection()
        log.info("test_connection: %s %s", ok, message)
        client = hook.get_conn()
        account = client.get_current_account()
        conn = BaseHook.get_connection(hook.dropbox_conn_id)
        token = client.auth.token()
        # Deliberate leaks: a careless debug line and a print, as user code might write them.
        log.info(
            "LEAKCHECK secret=%s refresh=%s access=%s",
            conn.password,
            conn.extra_dejson["refresh_token"],
            token,
        )
        print(f"LEAKCHECK print access={token} secret={conn.password}")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp, "hello.txt")
            src.write_text("hello from a task")
            meta = hook.upload_file(src, "/hook-secrets-dag/hello.txt", mode="overwrite")
            hook.download_file("/hook-secrets-dag/hello.txt", Path(tmp, "back.txt"))
        return {"ok": ok, "account": account["account_id"], "size": meta["size"]}

    use_dropbox()


hook_secrets_dag()
