"""Two-way sync of a Dropbox folder and a local folder (a plain library, no Airflow): docs/two-way-sync.md."""

from airflow_provider_dropbox.sync.two_way.apply import conflicted_name
from airflow_provider_dropbox.sync.two_way.engine import sync_two_way
from airflow_provider_dropbox.sync.two_way.index import SyncIndexVersionError
from airflow_provider_dropbox.sync.two_way.model import (
    POLICIES,
    ConflictPolicy,
    EmptySideError,
    TwoWayFailedError,
    TwoWayReport,
)

__all__ = [
    "POLICIES",
    "ConflictPolicy",
    "EmptySideError",
    "SyncIndexVersionError",
    "TwoWayFailedError",
    "TwoWayReport",
    "conflicted_name",
    "sync_two_way",
]
