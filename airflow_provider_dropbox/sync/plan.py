"""Plan: compare the desired local tree with the manifest and the disk, and decide every action as data.

The planner never writes. It reads the disk only through the ``probe`` (lstat) and ``hasher`` callables
it is given, and only for paths it cannot trust from the manifest (``verify``; everything on a full
re-list), so an incremental run with one change stats a handful of paths, not the tree.

Conflict policy (a local file the mirror did not write, or one modified since it wrote it, is in the
way): ``conflict="copy"`` (default) renames it to ``"<name> (conflicted copy <UTC stamp>)<ext>"`` next to
it and then mirrors the remote file, so the mirror converges and no local edit is lost; ``"skip"`` leaves
it in place and reports it (the path stays out of sync until someone resolves it). ``adopt_local=True``
means the destination is the mirror's to manage: such files are overwritten or deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from airflow_provider_dropbox.sync.layout import Desired, Layout
from airflow_provider_dropbox.sync.paths import collision_key, key_parent
from airflow_provider_dropbox.sync.state import Managed

ConflictPolicy = Literal["copy", "skip"]

Op = Literal[
    "create_folder",  # mkdir
    "download",  # fetch from Dropbox (verified, atomic)
    "copy_local",  # same content is already in the mirror under another name (moves, renames, copies)
    "adopt",  # the right content is already there; just record it (no transfer)
    "set_aside",  # rename a conflicting local file to a conflicted copy, keeping it
    "delete_file",
    "delete_folder",  # rmdir once empty; a folder holding files we don't manage is kept
    "forget",  # stop managing a path, leave it on disk (excluded, vanished, or not ours any more)
    "conflict",  # conflict="skip": reported, left alone
]


@dataclass(frozen=True, slots=True)
class DiskFact:
    kind: Literal["missing", "file", "dir", "symlink", "other"]
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    op: Op
    path: str
    is_dir: bool = False
    key: str | None = None
    content_hash: str | None = None
    size: int = 0
    rev: str | None = None
    source: str | None = None
    reason: str = ""
    deferred: bool = False  # runs after the delete phase (a file and a folder swapped places)
    modified: str | None = None  # the remote client_modified, when this run listed it (see RemoteEntry)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        for name in ("is_dir", "key", "content_hash", "size", "rev", "source", "reason", "deferred"):
            value = getattr(self, name)
            if value not in (None, "", False, 0):
                out[name] = value
        return out


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    stale_kept: int = 0
    managed_files: int = 0
    remote_files: int = 0
    local_files: int = 0  # files in the destination the run could delete (managed, plus unmanaged if adopted)

    def of(self, *ops: str) -> list[Action]:
        return [a for a in self.actions if a.op in ops]

    @property
    def file_deletes(self) -> int:
        return sum(1 for a in self.actions if a.op == "delete_file")

    def counts(self) -> dict[str, int]:
        c = Counter(a.op for a in self.actions)
        out: dict[str, int] = {op: c[op] for op in sorted(c)}
        out["unchanged"] = self.unchanged
        if self.stale_kept:
            out["stale_kept"] = self.stale_kept
        return out

    def download_bytes(self) -> int:
        return sum(a.size for a in self.actions if a.op == "download")

    def summary(self) -> str:
        parts = [f"{n} {op}" for op, n in self.counts().items() if n]
        return ", ".join(parts) or "nothing to do"


def _matches(m: Managed | None, d: Desired) -> bool:
    if m is None or m.is_dir != d.is_dir:
        return False
    return d.is_dir or m.content_hash == d.entry.content_hash


def _stat_matches(m: Managed | None, f: DiskFact) -> bool:
    return (
        m is not None and not m.is_dir and f.kind == "file" and (f.size, f.mtime_ns) == (m.size, m.mtime_ns)
    )


def _under_any(path: str, roots: set[str]) -> bool:
    if not roots:
        return False
    p = path
    while p:
        if p in roots:
            return True
        p = key_parent(p)
    return False


def path_collision_key(path: str) -> str:
    return "/".join(collision_key(part) for part in path.split("/"))


def make_plan(
    layout: Layout,
    manifest: Mapping[str, Managed],
    probe: Callable[[str], DiskFact],
    hasher: Callable[[str], str | None],
    *,
    verify: set[str] | None = None,
    delete_stale: bool = True,
    adopt_local: bool = False,
    conflict: ConflictPolicy = "copy",
    excluded: Callable[[str], bool] = lambda _p: False,
    unmanaged_local: Iterable[tuple[str, bool]] = (),
    case_insensitive_fs: bool = False,
    copy_sources: Mapping[str, Iterable[str]] | None = None,
) -> Plan:
    """Decide the actions. ``verify=None`` checks every path on disk (full re-list); otherwise only those.

    ``unmanaged_local`` (path, is_dir) lists local entries the mirror does not manage; only used with
    ``adopt_local`` (they are deleted when the remote does not have them). The steps: every desired path
    (folders and files), then managed paths the remote no longer has, then (``adopt_local``) local items
    that are not the mirror's, and last the local copies re-pointed at sources that still exist.
    ``copy_sources`` (content hash -> managed paths) adds local copy sources that are not in ``manifest``
    (an incremental run holds only the rows it touches and looks the others up by hash).
    """
    planner = _Planner(
        layout, manifest, probe, hasher,
        delete_stale=delete_stale, adopt_local=adopt_local, conflict=conflict, excluded=excluded,
        case_insensitive_fs=case_insensitive_fs, copy_sources=copy_sources or {},
    )  # fmt: skip
    unmanaged = list(unmanaged_local)
    planner.count_local_files(unmanaged)
    for p in sorted(layout.paths):
        planner.desired(p, verify)
    for p in sorted(manifest, reverse=True):  # children before parents
        if p not in layout.paths:
            planner.stale(p)
    if adopt_local and delete_stale:
        planner.unmanaged(unmanaged)
    _reroute_local_copies(planner.acts, planner.all_sources)
    return planner.plan


class _Planner:
    """The state one ``make_plan`` call builds up while it walks the paths, and one method per decision."""

    def __init__(
        self,
        layout: Layout,
        manifest: Mapping[str, Managed],
        probe: Callable[[str], DiskFact],
        hasher: Callable[[str], str | None],
        *,
        delete_stale: bool,
        adopt_local: bool,
        conflict: ConflictPolicy,
        excluded: Callable[[str], bool],
        case_insensitive_fs: bool,
        copy_sources: Mapping[str, Iterable[str]],
    ) -> None:
        self.layout, self.manifest, self.probe, self.hasher = layout, manifest, probe, hasher
        self.delete_stale, self.adopt_local, self.conflict, self.excluded = (
            delete_stale, adopt_local, conflict, excluded
        )  # fmt: skip
        self.plan = Plan(
            managed_files=sum(1 for m in manifest.values() if not m.is_dir), remote_files=layout.file_count()
        )
        self.acts = self.plan.actions
        self.blocked: set[str] = set()  # folders we could not create: their subtree is skipped
        self.swaps: set[str] = set()  # old occupant goes in the delete phase; new content waits for it
        self.fresh: set[str] = set()  # folders this run creates (nothing of ours below them yet)
        self.hashes: dict[str, str | None] = {}
        # On a case-insensitive destination "A.txt" and "a.txt" are one file: managed records by alias.
        self.alias = {path_collision_key(p): p for p in manifest} if case_insensitive_fs else {}
        self.desired_aliases = {path_collision_key(p) for p in layout.paths} if case_insensitive_fs else set()
        self.all_sources: dict[str, list[str]] = {}
        for p in sorted(manifest):
            rec = manifest[p]
            if not rec.is_dir and rec.content_hash:
                self.all_sources.setdefault(rec.content_hash, []).append(p)
        for h, paths in copy_sources.items():
            known = self.all_sources.get(h, [])
            extra = set(paths) - set(known) - set(manifest)
            if extra:
                self.all_sources[h] = sorted([*known, *extra])
        self.sources = {h: paths[0] for h, paths in self.all_sources.items()}

    def count_local_files(self, unmanaged: list[tuple[str, bool]]) -> None:
        self.plan.local_files = self.plan.managed_files + sum(
            1 for p, is_dir in unmanaged if not is_dir and p not in self.manifest
        )

    # ---------------------------------------------------------------- lookups

    def managed_at(self, p: str) -> tuple[str, Managed | None]:
        m = self.manifest.get(p)
        if m is None and self.alias:
            q = self.alias.get(path_collision_key(p))
            if q is not None:
                return q, self.manifest[q]
        return p, m

    def local_hash(self, p: str, f: DiskFact, m: Managed | None) -> str | None:
        if _stat_matches(m, f):
            assert m is not None
            return m.content_hash
        if p not in self.hashes:
            self.hashes[p] = self.hasher(p)
        return self.hashes[p]

    def fetch(self, d: Desired, deferred: bool, reason: str) -> Action:
        """A download, or a local copy when the same content is already in the mirror."""
        e = d.entry
        src = self.sources.get(e.content_hash or "")
        if src is not None and src != d.path:
            return Action(
                "copy_local", d.path, key=e.key, content_hash=e.content_hash, size=e.size, rev=e.rev,
                source=src, reason=reason or "same content already in the mirror", deferred=deferred,
            )  # fmt: skip
        return Action(
            "download", d.path, key=e.key, content_hash=e.content_hash, size=e.size, rev=e.rev,
            reason=reason, deferred=deferred, modified=e.modified,
        )  # fmt: skip

    def occupied(self, p: str, d: Desired, what: str) -> bool:
        """Something that is not ours is in the way. Returns True when the desired item can still go in."""
        if self.adopt_local:
            return True
        if self.conflict == "copy":
            self.acts.append(Action("set_aside", p, reason=f"{what} in the way; kept as a conflicted copy"))
            return True
        self.acts.append(
            Action("conflict", p, key=d.entry.key, reason=f"{what} in the way; left alone (conflict=skip)")
        )
        return False

    # ---------------------------------------------------------------- step 1: desired paths

    def desired(self, p: str, verify: set[str] | None) -> None:
        d = self.layout.paths[p]
        if _under_any(key_parent(p), self.blocked):
            self.acts.append(
                Action("conflict", p, key=d.entry.key, reason="parent folder is blocked by a local item")
            )
            self.blocked.add(p)
            return
        mp, m = self.managed_at(p)
        if verify is not None and p not in verify and mp == p and _matches(m, d):
            self.plan.unchanged += 1
            return
        # below a folder this run creates there is nothing to look at (and we must not look through a
        # symlink that is being set aside)
        f = DiskFact("missing") if _under_any(key_parent(p), self.fresh) else self.probe(p)
        deferred = _under_any(key_parent(p), self.swaps)
        if d.is_dir:
            self.desired_folder(p, d, f, m, mp, deferred)
        else:
            self.desired_file(p, d, f, m, mp, deferred)

    def desired_folder(
        self, p: str, d: Desired, f: DiskFact, m: Managed | None, mp: str, deferred: bool
    ) -> None:
        acts, e = self.acts, d.entry
        if f.kind == "dir":
            if m is not None and m.is_dir and mp == p:
                self.plan.unchanged += 1
            else:
                acts.append(Action("adopt", p, is_dir=True, key=e.key, reason="folder already exists"))
        elif f.kind == "missing":
            acts.append(Action("create_folder", p, is_dir=True, key=e.key, deferred=deferred))
            self.fresh.add(p)
        elif (
            f.kind == "file" and m is not None and not m.is_dir and self.local_hash(p, f, m) == m.content_hash
        ):
            acts.append(Action("delete_file", p, key=m.key, reason="remote replaced this file by a folder"))
            acts.append(Action("create_folder", p, is_dir=True, key=e.key, deferred=True))
            self.swaps.add(p)
        elif self.adopt_local:
            acts.append(Action("delete_file", p, reason="adopt_local: replaced by a remote folder"))
            acts.append(Action("create_folder", p, is_dir=True, key=e.key, deferred=True))
            self.swaps.add(p)
        elif self.occupied(p, d, f"local {f.kind}"):
            acts.append(Action("create_folder", p, is_dir=True, key=e.key, deferred=deferred))
            self.fresh.add(p)
        else:
            self.blocked.add(p)

    def desired_file(
        self, p: str, d: Desired, f: DiskFact, m: Managed | None, mp: str, deferred: bool
    ) -> None:
        acts, e = self.acts, d.entry
        if f.kind == "file":
            h = self.local_hash(p, f, m)
            if h is not None and h == e.content_hash:
                if _stat_matches(m, f) and mp == p:
                    self.plan.unchanged += 1
                else:
                    acts.append(
                        Action("adopt", p, key=e.key, content_hash=e.content_hash, size=e.size, rev=e.rev,
                               reason="identical content already there")
                    )  # fmt: skip
            elif m is not None and not m.is_dir and h == m.content_hash:
                acts.append(self.fetch(d, deferred, "remote changed"))
            elif self.occupied(
                p, d, "locally modified file" if m is not None else "local file the mirror did not write"
            ):
                acts.append(self.fetch(d, deferred, "replacing a conflicting local file"))
        elif f.kind == "missing":
            acts.append(self.fetch(d, deferred, ""))
        elif f.kind == "dir" and m is not None and m.is_dir:
            acts.append(
                Action(
                    "delete_folder", p, is_dir=True, key=m.key, reason="remote replaced this folder by a file"
                )
            )
            acts.append(self.fetch(d, True, "remote replaced a folder by this file"))
            self.swaps.add(p)
        elif self.adopt_local:
            op: Op = "delete_folder" if f.kind == "dir" else "delete_file"
            acts.append(
                Action(op, p, is_dir=f.kind == "dir", reason="adopt_local: replaced by a remote file")
            )
            acts.append(self.fetch(d, True, ""))
            self.swaps.add(p)
        elif self.occupied(p, d, f"local {f.kind}"):
            acts.append(self.fetch(d, deferred, "replacing a conflicting local item"))

    # ---------------------------------------------------------------- step 2: managed paths gone remotely

    def stale(self, p: str) -> None:
        acts, m = self.acts, self.manifest[p]
        if self.excluded(p):
            acts.append(Action("forget", p, is_dir=m.is_dir, key=m.key, reason="now excluded; left on disk"))
            return
        if self.desired_aliases and path_collision_key(p) in self.desired_aliases:
            acts.append(
                Action("forget", p, is_dir=m.is_dir, key=m.key, reason="same file as a desired path here")
            )
            return
        if not self.delete_stale:
            self.plan.stale_kept += 1
            return
        f = self.probe(p)
        if m.is_dir:
            if f.kind == "dir":
                acts.append(Action("delete_folder", p, is_dir=True, key=m.key))
            else:
                acts.append(
                    Action("forget", p, is_dir=True, key=m.key, reason=f"folder is gone (now {f.kind})")
                )
        elif f.kind == "missing":
            acts.append(Action("forget", p, key=m.key, reason="already gone"))
        elif f.kind != "file":
            acts.append(Action("forget", p, key=m.key, reason=f"replaced locally by a {f.kind}; not ours"))
        elif self.adopt_local or self.local_hash(p, f, m) == m.content_hash:
            acts.append(Action("delete_file", p, key=m.key, content_hash=m.content_hash, size=m.size))
        elif self.conflict == "copy":
            acts.append(
                Action("set_aside", p, key=m.key, reason="deleted remotely but modified locally; kept")
            )
            acts.append(Action("forget", p, key=m.key, reason="kept as a conflicted copy"))
        else:
            acts.append(
                Action("conflict", p, key=m.key, reason="deleted remotely but modified locally; left alone")
            )
            acts.append(Action("forget", p, key=m.key, reason="locally modified; no longer managed"))

    # ---------------------------------------------------------------- step 3: adopt_local's strangers

    def unmanaged(self, unmanaged: list[tuple[str, bool]]) -> None:
        for p, is_dir in sorted(unmanaged, reverse=True):
            if p in self.layout.paths or p in self.manifest or self.excluded(p):
                continue
            op: Op = "delete_folder" if is_dir else "delete_file"
            self.acts.append(Action(op, p, is_dir=is_dir, reason="adopt_local: not in the remote folder"))


def _reroute_local_copies(acts: list[Action], all_sources: Mapping[str, list[str]]) -> None:
    """A local copy must read a source that still exists when it runs: set-asides happen before every
    copy, deletes before the deferred ones. Pick another managed file with the same content, else download."""
    early = {a.path for a in acts if a.op == "set_aside"}
    late = early | {a.path for a in acts if a.op in ("delete_file", "delete_folder")}
    for i, a in enumerate(acts):
        if a.op != "copy_local" or a.source is None:
            continue
        gone = late if a.deferred else early
        if not _under_any(a.source, gone):
            continue
        alt = next(
            (p for p in all_sources.get(a.content_hash or "", ()) if p != a.path and not _under_any(p, gone)),
            None,
        )
        acts[i] = replace(a, source=alt) if alt else replace(a, op="download", source=None, reason=a.reason)
