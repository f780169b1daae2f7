"""Typed mirror errors: each message names the problem and the fix, so a failed task log is enough."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_dropbox.sync.report import MirrorReport


class MirrorError(Exception):
    """Base class of every error the mirror engine raises itself."""


class MirrorConfigError(MirrorError, ValueError):
    """A bad argument to ``mirror()`` (caught before anything is read or written)."""


class MirrorAbortedError(MirrorError):
    """A safety guard stopped the run before it changed anything (nothing written, nothing deleted)."""

    def __init__(self, message: str, report: MirrorReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class TooManyDeletesError(MirrorAbortedError):
    """The plan deletes more than ``max_deletes`` allows."""


class EmptyRemoteError(MirrorAbortedError):
    """The remote folder is empty but the mirror is not; it is not emptied without ``allow_empty_remote``."""


class RemoteShrankError(EmptyRemoteError):
    """A full listing would delete most of the destination's files (a wrong or partial listing looks so)."""


class UnsafePathError(MirrorError):
    """A path would resolve outside the destination (``..``, absolute, or through a symlink)."""


class LockHeldError(MirrorError):
    """Another mirror run holds the destination's lock."""


class LockLostError(MirrorError):
    """This run's lock was taken over (it looked stale to another run); this run stops applying."""


class DestinationError(MirrorError):
    """The destination cannot be written (read-only, permissions, full) outside of a file transfer."""


class StateError(MirrorError):
    """The state file in the destination is unreadable or from an unknown format version."""


class RemoteRootError(MirrorError):
    """The remote path is missing or is not a folder."""


class MirrorFailedError(MirrorError):
    """The run finished but some actions failed; the report says which. Deletes were skipped."""

    def __init__(self, report: MirrorReport) -> None:
        errors = report.errors
        first = "; ".join(f"{e['path']}: {e['error']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(
            f"Mirror of {report.remote_path!r} into {report.local_dir!r} finished with {len(errors)} failed "
            f"action(s): {first}{more}. Deletes were skipped and the cursor was not advanced; the next run "
            "retries from the same point."
        )
        self.report = report
