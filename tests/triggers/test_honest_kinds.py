"""Issue 16 item 3: a change is labelled ``added`` or ``modified`` only when that was established; when it
was not, the kind is ``changed`` (``kind_exact`` False) and it is never relabelled to fit a filter.
Pure: ``select_changes`` on hand-made ``list_folder/continue`` entries."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dropbox.changes import (
    UNDETERMINED,
    normalize_kinds,
    reset_message,
    select_changes,
)

ROOT = "/in"


def _file(name: str, file_id: str) -> dict[str, Any]:
    return {".tag": "file", "path_lower": f"{ROOT}/{name}", "path_display": f"{ROOT}/{name}", "id": file_id}


def _kinds(changes: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return sorted((c["path_lower"].rsplit("/", 1)[-1], c["kind"], c["kind_exact"]) for c in changes)


ALL = ("added", "modified", "deleted")


@pytest.mark.parametrize(
    "kinds", [ALL, ("added",), ("modified",), ("added", "modified")], ids=["all", "added", "modified", "both"]
)
def test_undetermined_file_is_changed_whatever_the_filter(kinds: tuple[str, ...]) -> None:
    """No cursor time, no cursor paths, no revisions: nothing establishes new vs edited."""
    got = select_changes([_file("a.csv", "id:1")], root=ROOT, kinds=kinds)
    assert _kinds(got) == [("a.csv", "changed", False)]


def test_no_unexact_added_or_modified_ever() -> None:
    entries = [
        _file("a.csv", "id:1"),
        {".tag": "deleted", "path_lower": f"{ROOT}/b.csv", "path_display": f"{ROOT}/b.csv"},
        _file("b.csv", "id:2"),  # re-created in the batch: established as added
        {".tag": "folder", "path_lower": f"{ROOT}/sub", "path_display": f"{ROOT}/sub", "id": "id:3"},
    ]
    for kinds in (ALL, ("added",), ("modified",)):
        for exact_kinds in (None, False):
            got = select_changes(
                entries, root=ROOT, kinds=kinds, include_folders=True, exact_kinds=exact_kinds
            )
            for change in got:
                assert change["kind_exact"] == (change["kind"] != UNDETERMINED), change


def test_established_kinds_stay_exact() -> None:
    entries = [_file("same.csv", "id:1"), _file("new.csv", "id:9")]
    got = select_changes(
        entries, root=ROOT, kinds=ALL, cursor_paths={f"{ROOT}/same.csv": "id:1", f"{ROOT}/new.csv": None}
    )
    assert _kinds(got) == [("new.csv", "added", True), ("same.csv", "modified", True)]
    only_modified = select_changes(
        entries,
        root=ROOT,
        kinds=("modified",),
        cursor_paths={f"{ROOT}/same.csv": "id:1", f"{ROOT}/new.csv": None},
    )
    assert _kinds(only_modified) == [("same.csv", "modified", True)]


def test_relist_after_reset_is_changed_and_from_the_beginning_is_added() -> None:
    entries = [
        _file("a.csv", "id:1"),
        {".tag": "folder", "path_lower": f"{ROOT}/sub", "path_display": f"{ROOT}/sub", "id": "id:3"},
    ]
    relisted = select_changes(entries, root=ROOT, kinds=ALL, include_folders=True, exact_kinds=False)
    assert _kinds(relisted) == [("a.csv", "changed", False), ("sub", "changed", False)]
    fresh = select_changes(
        entries, root=ROOT, kinds=ALL, include_folders=True, exact_kinds=False, from_empty=True
    )
    assert _kinds(fresh) == [("a.csv", "added", True), ("sub", "added", True)]
    # a deletions-only watcher does not see the undetermined entries
    assert select_changes(entries, root=ROOT, kinds=("deleted",), exact_kinds=False) == []
    assert "'changed'" in reset_message("/in", "relist")


def test_changed_is_reported_not_filtered_on() -> None:
    with pytest.raises(ValueError, match=r"'changed'.*already pass"):
        normalize_kinds(["changed"])
