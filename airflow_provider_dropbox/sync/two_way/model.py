"""The two-way sync's vocabulary: the client it needs, its report, its errors and conflict policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from airflow_provider_dropbox.sync.errors import EmptyRemoteError, MirrorError

ConflictPolicy = Literal["keep_both", "newer", "local", "remote"]
POLICIES = ("keep_both", "newer", "local", "remote")
NAME_MAX = 255


class TwoWayClient(Protocol):
    """The client calls the engine needs (``DropboxClient`` satisfies it)."""

    def get_metadata(self, path: str) -> dict[str, Any]: ...
    def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]: ...
    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]: ...
    def download_file(self, remote_path: str, local_path: str) -> dict[str, Any]: ...
    def upload_file(
        self, local_path: str, remote_path: str, *, mode: Any = "add", autorename: bool = False
    ) -> dict[str, Any]: ...
    def create_folder(self, path: str, exist_ok: bool = True) -> dict[str, Any]: ...
    def delete(self, path: str, parent_rev: str | None = None) -> dict[str, Any]: ...
    def move(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]: ...


class EmptySideError(EmptyRemoteError):
    """One side looks empty or gone while the index holds files: its deletes are not propagated."""


class TwoWayFailedError(MirrorError):
    """The run finished but some actions failed; deletes were skipped and the cursor kept."""

    def __init__(self, report: TwoWayReport) -> None:
        first = "; ".join(f"{e['path']}: {e['error']}" for e in report.errors[:3])
        super().__init__(
            f"Two-way sync of {report.remote_path!r} and {report.local_dir!r} finished with "
            f"{len(report.errors)} failed action(s): {first}. Deletes were skipped and the cursor was not "
            "advanced; the next run retries from the same point"
        )
        self.report = report


@dataclass
class TwoWayReport:
    remote_path: str
    local_dir: str
    first_run: bool = False
    dry_run: bool = False
    duration_s: float = 0.0
    planned: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    deletes_skipped: int = 0
    cursor_advanced: bool = False
    focused: bool = False  # looked only at the paths named as changed and at Dropbox's changes
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        done = ", ".join(f"{n} {op}" for op, n in sorted(self.done.items())) or "nothing"
        text = f"Dropbox two-way sync {self.remote_path or '/'} <-> {self.local_dir}: done {done}"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflict(s)"
        if self.errors:
            text += f"; {len(self.errors)} error(s), {self.deletes_skipped} delete(s) skipped"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote_path": self.remote_path, "local_dir": self.local_dir, "first_run": self.first_run,
            "dry_run": self.dry_run, "duration_s": round(self.duration_s, 3), "planned": self.planned,
            "done": self.done, "conflicts": self.conflicts, "skipped": self.skipped, "errors": self.errors,
            "deletes_skipped": self.deletes_skipped, "cursor_advanced": self.cursor_advanced,
            "focused": self.focused, "plan": self.plan[:200], "ok": self.ok, "summary": self.summary(),
        }  # fmt: skip
