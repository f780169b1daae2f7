"""Safe, incremental, verified one-way mirror of a Dropbox folder into a local directory (no Airflow imports).

    from airflow_provider_dropbox.sync import mirror
    report = mirror(client, "/Reports", "/data/reports", max_deletes="10%")
    report.to_dict()   # JSON-safe, for XCom

See docs/mirror.md for the guarantees, the options and the decisions behind them.
"""

from airflow_provider_dropbox.sync.engine import MirrorClient, mirror, parse_max_deletes
from airflow_provider_dropbox.sync.errors import (
    DestinationError,
    EmptyRemoteError,
    LockHeldError,
    LockLostError,
    MirrorAbortedError,
    MirrorConfigError,
    MirrorError,
    MirrorFailedError,
    RemoteRootError,
    RemoteShrankError,
    StateError,
    TooManyDeletesError,
    UnsafePathError,
)
from airflow_provider_dropbox.sync.report import MirrorReport

__all__ = [
    "DestinationError",
    "EmptyRemoteError",
    "LockHeldError",
    "LockLostError",
    "MirrorAbortedError",
    "MirrorClient",
    "MirrorConfigError",
    "MirrorError",
    "MirrorFailedError",
    "MirrorReport",
    "RemoteRootError",
    "RemoteShrankError",
    "StateError",
    "TooManyDeletesError",
    "UnsafePathError",
    "mirror",
    "parse_max_deletes",
]
