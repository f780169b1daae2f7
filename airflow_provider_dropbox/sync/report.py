"""The run report: what was planned, what was done, what failed. ``to_dict()`` is JSON-safe for XCom."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLAN_LIMIT = 200  # actions listed by to_dict() by default (XCom rows stay small); counts cover all of them
PLAN_KEPT = 10_000  # actions a streamed first run keeps in ``plan`` (the rest are counted, not held)


@dataclass
class MirrorReport:
    remote_path: str
    local_dir: str
    mode: str = (
        "full"  # "full" (first run or full_rescan), "incremental" (from the cursor), "reset" (cursor expired)
    )
    dry_run: bool = False
    started_at: str = ""
    duration_s: float = 0.0
    planned: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    bytes_downloaded: int = 0
    bytes_copied: int = 0
    zipped: int = 0  # of the downloads, files fetched inside a folder zip (zipped.py)
    bytes_planned: int = 0
    remote_files: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    collisions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    kept_folders: list[str] = field(default_factory=list)
    deletes_skipped: int = 0
    deferred_skipped: int = 0
    aborted: str | None = None
    cursor_advanced: bool = False
    plan: list[dict[str, Any]] = field(default_factory=list)
    plan_left_out: int = 0  # actions not held in ``plan`` (a streamed first run keeps PLAN_KEPT)
    _seen: set[str] = field(default_factory=set, repr=False, compare=False)  # absorbed collisions, skipped

    def _add_once(self, mine: list[Any], theirs: list[Any]) -> None:
        for item in theirs:
            seen = repr(sorted(item.items()))
            if seen not in self._seen:
                self._seen.add(seen)
                mine.append(item)

    def absorb(self, part: MirrorReport) -> None:
        """Add one streamed page's report to the run's; ``remote_files`` is the page's (it counts the whole
        mirror)."""
        for mine, theirs in ((self.planned, part.planned), (self.done, part.done)):
            for op, n in theirs.items():
                mine[op] = mine.get(op, 0) + n
        self.bytes_downloaded += part.bytes_downloaded
        self.bytes_copied += part.bytes_copied
        self.zipped += part.zipped
        self.bytes_planned += part.bytes_planned
        self.remote_files = part.remote_files
        self.errors.extend(part.errors)
        self.conflicts.extend(part.conflicts)
        self._add_once(self.collisions, part.collisions)  # pages sharing a folder see its names again
        self._add_once(self.skipped, part.skipped)
        self.kept_folders.extend(part.kept_folders)
        self.deletes_skipped += part.deletes_skipped
        self.deferred_skipped += part.deferred_skipped
        room = max(0, PLAN_KEPT - len(self.plan))
        self.plan.extend(part.plan[:room])
        self.plan_left_out += max(0, len(part.plan) - room) + part.plan_left_out

    @property
    def ok(self) -> bool:
        return not self.errors and self.aborted is None

    @property
    def plan_summary(self) -> str:
        parts = [f"{n} {op}" for op, n in self.planned.items() if n]
        return ", ".join(parts) or "nothing to do"

    def summary(self) -> str:
        done = ", ".join(f"{n} {op}" for op, n in self.done.items() if n) or "nothing"
        text = (
            f"Dropbox mirror {self.remote_path or '/'} -> {self.local_dir} ({self.mode}"
            f"{', dry run' if self.dry_run else ''}): planned {self.plan_summary}; done {done}; "
            f"{self.bytes_downloaded} bytes downloaded in {self.duration_s:.2f}s"
        )
        if self.errors:
            text += f"; {len(self.errors)} error(s), {self.deletes_skipped} delete(s) skipped"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflict(s)"
        if self.collisions:
            text += f"; {len(self.collisions)} name collision(s)"
        if self.aborted:
            text += f"; aborted: {self.aborted}"
        return text

    def to_dict(self, plan_limit: int = PLAN_LIMIT) -> dict[str, Any]:
        """JSON-safe summary; lists at most ``plan_limit`` actions (and skipped entries)."""
        return {
            "remote_path": self.remote_path,
            "local_dir": self.local_dir,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary(),
            "plan_summary": self.plan_summary,
            "downloaded": self.done.get("download", 0),
            "copied_locally": self.done.get("copy_local", 0),
            "downloaded_in_zips": self.zipped,
            "deleted": self.done.get("delete_file", 0),
            "planned": dict(self.planned),
            "done": dict(self.done),
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_copied": self.bytes_copied,
            "bytes_planned": self.bytes_planned,
            "remote_files": self.remote_files,
            "errors": list(self.errors),
            "conflicts": list(self.conflicts),
            "collisions": list(self.collisions),
            "skipped": list(self.skipped[:plan_limit]),
            "kept_folders": list(self.kept_folders),
            "deletes_skipped": self.deletes_skipped,
            "deferred_skipped": self.deferred_skipped,
            "aborted": self.aborted,
            "cursor_advanced": self.cursor_advanced,
            "plan": list(self.plan[:plan_limit]),
            "plan_truncated": max(0, len(self.plan) - plan_limit) + self.plan_left_out,
        }
