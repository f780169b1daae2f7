"""Planner and guards on plain data: a dict stands in for the disk, nothing touches the file system."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_dropbox.sync.engine import _guard, parse_max_deletes
from airflow_provider_dropbox.sync.errors import EmptyRemoteError, MirrorConfigError, TooManyDeletesError
from airflow_provider_dropbox.sync.layout import build_layout
from airflow_provider_dropbox.sync.plan import Action, DiskFact, Plan, make_plan
from airflow_provider_dropbox.sync.remote import RemoteTree
from airflow_provider_dropbox.sync.state import Managed


def listing(*items: tuple[str, str | None]) -> RemoteTree:
    """``("a/b.txt", "h1")`` is a file with content hash h1; ``("a", None)`` a folder."""
    metas = []
    for path, h in items:
        name = path.rsplit("/", 1)[-1]
        base = {"name": name, "path_lower": "/r/" + path.lower(), "path_display": "/R/" + path}
        if h is None:
            metas.append({".tag": "folder", **base})
        else:
            metas.append({".tag": "file", **base, "content_hash": h, "rev": "r-" + h, "size": len(h)})
    return RemoteTree.from_listing(metas, "/r")


class Disk:
    """path -> ("file", hash) | ("dir", None) | ("symlink", None); stat matches the manifest unless edited."""

    def __init__(self, entries: dict[str, tuple[str, str | None]], manifest: dict[str, Managed]) -> None:
        self.entries = entries
        self.manifest = manifest
        self.probed: list[str] = []

    def probe(self, p: str) -> DiskFact:
        self.probed.append(p)
        kind, h = self.entries.get(p, ("missing", None))
        if kind != "file":
            return DiskFact(kind)  # type: ignore[arg-type]
        m = self.manifest.get(p)
        if m is not None and not m.is_dir and m.content_hash == h:
            return DiskFact("file", m.size, m.mtime_ns)
        return DiskFact("file", 999, 999)

    def hash(self, p: str) -> str | None:
        return self.entries.get(p, ("missing", None))[1]


def managed(**files: str | None) -> dict[str, Managed]:
    out = {}
    for p, h in files.items():
        p = p.replace("__", "/")
        out[p] = Managed(True, p.lower()) if h is None else Managed(False, p.lower(), h, 1, 1, "r-" + h)
    return out


def plan_for(
    tree: RemoteTree,
    manifest: dict[str, Managed],
    disk: dict[str, tuple[str, str | None]],
    verify: Iterable[str] | None = None,
    **kw: object,
) -> tuple[Plan, Disk]:
    d = Disk(disk, manifest)
    plan = make_plan(
        build_layout(tree), manifest, d.probe, d.hash, verify=None if verify is None else set(verify), **kw
    )  # type: ignore[arg-type]
    return plan, d


def ops(plan: Plan) -> list[tuple[str, str]]:
    return [(a.op, a.path) for a in plan.actions]


def test_first_run_downloads_everything_and_probes_only_the_top() -> None:
    tree = listing(("a", None), ("a/x.txt", "h1"), ("a/b", None), ("a/b/y.txt", "h2"), ("z.txt", "h3"))
    plan, disk = plan_for(tree, {}, {})
    assert ops(plan) == [
        ("create_folder", "a"),
        ("create_folder", "a/b"),
        ("download", "a/b/y.txt"),
        ("download", "a/x.txt"),
        ("download", "z.txt"),
    ]
    assert disk.probed == ["a", "z.txt"]  # nothing below a folder this run creates


def test_incremental_trusts_unchanged_paths_without_touching_the_disk() -> None:
    tree = listing(("a.txt", "h1"), ("b.txt", "h2-new"))
    m = managed(**{"a.txt": "h1", "b.txt": "h2"})
    plan, disk = plan_for(tree, m, {"a.txt": ("file", "h1"), "b.txt": ("file", "h2")}, verify=set())
    assert ops(plan) == [("download", "b.txt")] and plan.unchanged == 1
    assert disk.probed == ["b.txt"]


def test_same_content_elsewhere_is_copied_locally() -> None:
    tree = listing(("new/name.txt", "h1"))
    m = managed(**{"old.txt": "h1"})
    plan, _ = plan_for(tree, m, {"old.txt": ("file", "h1")})
    copy = plan.of("copy_local")[0]
    assert copy.path == "new/name.txt" and copy.source == "old.txt"
    assert ("delete_file", "old.txt") in ops(plan)


def test_identical_local_file_is_adopted() -> None:
    plan, _ = plan_for(listing(("a.txt", "h1")), {}, {"a.txt": ("file", "h1")})
    assert ops(plan) == [("adopt", "a.txt")]


@pytest.mark.parametrize("conflict", ["copy", "skip"])
def test_unmanaged_file_in_the_way(conflict: str) -> None:
    plan, _ = plan_for(listing(("a.txt", "h1")), {}, {"a.txt": ("file", "mine")}, conflict=conflict)
    if conflict == "copy":
        assert ops(plan) == [("set_aside", "a.txt"), ("download", "a.txt")]
    else:
        assert ops(plan) == [("conflict", "a.txt")]


def test_adopt_local_overwrites_and_deletes_unmanaged() -> None:
    plan, _ = plan_for(
        listing(("a.txt", "h1")),
        {},
        {"a.txt": ("file", "mine"), "stray.txt": ("file", "s")},
        adopt_local=True,
        unmanaged_local=[("a.txt", False), ("stray.txt", False)],
    )
    assert ops(plan) == [("download", "a.txt"), ("delete_file", "stray.txt")]


def test_locally_modified_managed_file() -> None:
    m = managed(**{"a.txt": "h1", "b.txt": "h2"})
    disk = {"a.txt": ("file", "edited"), "b.txt": ("file", "edited too")}
    tree = listing(("a.txt", "h1-remote-new"))  # a changed remotely, b deleted remotely
    plan, _ = plan_for(tree, m, disk)
    assert ops(plan) == [
        ("set_aside", "a.txt"),
        ("download", "a.txt"),
        ("set_aside", "b.txt"),
        ("forget", "b.txt"),
    ]
    plan, _ = plan_for(tree, m, disk, conflict="skip")
    assert ops(plan) == [("conflict", "a.txt"), ("conflict", "b.txt"), ("forget", "b.txt")]
    assert plan.file_deletes == 0


def test_file_folder_swaps_wait_for_the_delete_phase() -> None:
    m = managed(x=None, x__in="h1", y="h2")
    tree = listing(("x", "hx"), ("y", None), ("y/in.txt", "h3"))
    plan, _ = plan_for(tree, m, {"x": ("dir", None), "x/in": ("file", "h1"), "y": ("file", "h2")})
    got = {(a.op, a.path, a.deferred) for a in plan.actions}
    assert got == {
        ("delete_folder", "x", False),
        ("download", "x", True),
        ("delete_file", "x/in", False),
        ("delete_file", "y", False),
        ("create_folder", "y", True),
        ("download", "y/in.txt", True),
    }


def test_symlink_in_the_way_is_set_aside_not_followed() -> None:
    tree = listing(("d", None), ("d/f.txt", "h1"))
    plan, disk = plan_for(tree, {}, {"d": ("symlink", None), "d/f.txt": ("file", "outside")})
    assert ops(plan) == [("set_aside", "d"), ("create_folder", "d"), ("download", "d/f.txt")]
    assert "d/f.txt" not in disk.probed


def test_blocked_folder_skips_its_subtree_under_skip_policy() -> None:
    tree = listing(("d", None), ("d/f.txt", "h1"))
    plan, _ = plan_for(tree, {}, {"d": ("file", "mine")}, conflict="skip")
    assert ops(plan) == [("conflict", "d"), ("conflict", "d/f.txt")]


def test_excluded_and_delete_stale_false_never_delete() -> None:
    m = managed(**{"a.tmp": "h1", "b.txt": "h2"})
    disk = {"a.tmp": ("file", "h1"), "b.txt": ("file", "h2")}
    plan, _ = plan_for(listing(("c.txt", "h3")), m, disk, excluded=lambda p: p.endswith(".tmp"))
    assert ("forget", "a.tmp") in ops(plan) and ("delete_file", "b.txt") in ops(plan)
    plan, _ = plan_for(listing(("c.txt", "h3")), m, disk, delete_stale=False)
    assert plan.file_deletes == 0 and plan.stale_kept == 2


def test_case_insensitive_destination_does_not_delete_the_renamed_file() -> None:
    # on a case-insensitive disk "A.txt" and "a.txt" are the same file: the probe finds it under both names
    m = managed(**{"A.txt": "h1"})
    disk = {"A.txt": ("file", "h1"), "a.txt": ("file", "h1")}
    plan, _ = plan_for(listing(("a.txt", "h1")), m, disk, case_insensitive_fs=True)
    assert ops(plan) == [("adopt", "a.txt"), ("forget", "A.txt")]
    plan, _ = plan_for(listing(("a.txt", "h1")), m, {"A.txt": ("file", "h1")})
    assert ops(plan) == [("copy_local", "a.txt"), ("delete_file", "A.txt")]


# -- guards ---------------------------------------------------------------------------------------------
def _plan_with_deletes(deletes: int, managed_files: int, remote_files: int) -> Plan:
    plan = Plan(managed_files=managed_files, remote_files=remote_files)
    plan.actions = [Action("delete_file", f"f{i}") for i in range(deletes)]
    return plan


def test_parse_max_deletes() -> None:
    assert parse_max_deletes(None) is None
    assert parse_max_deletes(5) == ("count", 5.0)
    assert parse_max_deletes("5") == ("count", 5.0)
    assert parse_max_deletes(" 10% ") == ("pct", 10.0)
    for bad in (-1, "-3", "150%", "ten", True, "5.5"):
        with pytest.raises(MirrorConfigError, match="max_deletes"):
            parse_max_deletes(bad)  # type: ignore[arg-type]


def test_max_deletes_guard() -> None:
    plan = _plan_with_deletes(812, 1000, 188)
    with pytest.raises(
        TooManyDeletesError, match=r"Plan deletes 812 of 1000 files \(81%\), over max_deletes=10%"
    ):
        _guard(plan, parse_max_deletes("10%"), "10%", False, "/r")
    with pytest.raises(TooManyDeletesError, match="over max_deletes=800"):
        _guard(plan, parse_max_deletes(800), 800, False, "/r")
    _guard(plan, parse_max_deletes(812), 812, False, "/r")
    _guard(plan, parse_max_deletes("82%"), "82%", False, "/r")
    _guard(_plan_with_deletes(0, 1000, 1000), parse_max_deletes(0), 0, False, "/r")
    with pytest.raises(TooManyDeletesError):
        _guard(_plan_with_deletes(1, 1000, 999), parse_max_deletes(0), 0, False, "/r")


def test_empty_remote_guard() -> None:
    with pytest.raises(EmptyRemoteError, match="allow_empty_remote=True"):
        _guard(_plan_with_deletes(3, 3, 0), None, None, False, "/r")
    _guard(_plan_with_deletes(3, 3, 0), None, None, True, "/r")
    _guard(_plan_with_deletes(0, 0, 0), None, None, False, "/r")  # nothing to lose


# -- property: the plan never destroys what is not the mirror's ------------------------------------------
NAMES = ["a", "b", "c"]
paths_st = st.sampled_from(["a", "b", "c", "a/a", "a/b", "b/a"])
content_st = st.sampled_from(["h1", "h2", "h3"])


@settings(max_examples=300, deadline=None)
@given(
    remote=st.dictionaries(paths_st, st.one_of(st.none(), content_st), max_size=6),
    manifest_files=st.dictionaries(paths_st, st.one_of(st.none(), content_st), max_size=6),
    disk=st.dictionaries(
        paths_st,
        st.one_of(
            st.tuples(st.just("file"), content_st),
            st.tuples(st.sampled_from(["dir", "symlink"]), st.none()),
        ),
        max_size=6,
    ),
    conflict=st.sampled_from(["copy", "skip"]),
    incremental=st.booleans(),
)
def test_plan_never_destroys_local_data_it_does_not_own(
    remote: dict[str, str | None],
    manifest_files: dict[str, str | None],
    disk: dict[str, tuple[str, str | None]],
    conflict: str,
    incremental: bool,
) -> None:
    # keep inputs tree-shaped: a path's parent must be a folder on each side
    def tree_shaped(d: dict[str, str | None]) -> dict[str, str | None]:
        out = dict(d)
        for p in list(out):
            if "/" in p:
                out[p.split("/")[0]] = None
        return out

    for p in list(disk):
        if "/" in p:
            disk[p.split("/")[0]] = ("dir", None)
    remote = tree_shaped(remote)
    mf = tree_shaped(manifest_files)
    manifest = {p: Managed(h is None, p, h, 1, 1, None) for p, h in mf.items()}
    tree = listing(*sorted(remote.items()))
    plan, _ = plan_for(tree, manifest, disk, verify=set() if incremental else None, conflict=conflict)

    set_aside = {a.path for a in plan.actions if a.op == "set_aside"}
    for a in plan.actions:
        kind, h = disk.get(a.path, ("missing", None))
        m = manifest.get(a.path)
        ours = m is not None and m.is_dir == (kind == "dir") and (m.is_dir or m.content_hash == h)
        if a.op == "delete_file":
            assert kind == "missing" or ours, (a, disk, manifest)
        if a.op in ("download", "copy_local") and kind == "file" and not ours:
            assert a.path in set_aside, (a, disk, manifest)
        if a.op == "conflict":
            assert conflict == "skip"
    if conflict == "skip":
        assert not set_aside


def test_local_copies_never_read_a_source_that_is_gone_by_then() -> None:
    # a file becomes a folder holding the same bytes: its only source is deleted before the deferred copy
    m = managed(**{"a.txt": "h1", "keep.txt": "h2"})
    disk = {"a.txt": ("file", "h1"), "keep.txt": ("file", "h2")}
    plan, _ = plan_for(listing(("a.txt", None), ("a.txt/inner", "h1"), ("keep.txt", "h2")), m, disk)
    inner = next(a for a in plan.actions if a.path == "a.txt/inner")
    assert inner.op == "download" and inner.deferred
    # with a second managed copy of the bytes, that one is used instead
    m2 = managed(**{"a.txt": "h1", "b.txt": "h1"})
    disk2 = {"a.txt": ("file", "h1"), "b.txt": ("file", "h1")}
    plan, _ = plan_for(listing(("a.txt", None), ("a.txt/inner", "h1"), ("b.txt", "h1")), m2, disk2)
    inner = next(a for a in plan.actions if a.path == "a.txt/inner")
    assert (inner.op, inner.source) == ("copy_local", "b.txt")
    # a modified source is set aside first: not a source at all
    m3 = managed(**{"old.txt": "h1"})
    plan, _ = plan_for(listing(("new.txt", "h1")), m3, {"old.txt": ("file", "edited")})
    assert ops(plan)[0] == ("download", "new.txt")
