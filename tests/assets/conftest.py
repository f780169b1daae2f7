from __future__ import annotations

from tests.ops_fixtures import airflow_db, dropbox_default, hook, root, run_dag  # noqa: F401
