# ruff: noqa: RUF001, RUF002
"""The sensor compares folders as Dropbox does (``casefold.path_key``), never with ``str.lower()``.

``/ΣΑΣ-İ`` and ``/σασ-i`` are one Dropbox folder (Dropbox folds capital sigma to ``σ``, never to the final
``ς``, and the Turkish dotted capital I to a plain ``i``), while Python's ``str.lower()`` gives ``σας-i̇``
for the first. A run given the other spelling must continue from the previous run's cursor instead of
starting afresh and losing the changes made between the runs. A case-only rename is not an event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor
from tests.ops_fixtures import RunDag, task_states, xcom
from tests.sensors.test_sensor_dags import _upload_once_watching


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("ΣΑΣ", "σασ", id="greek-sigma"),
        pytest.param("İzmir", "izmir", id="turkish-dotted-i"),
    ],
)
def test_next_run_with_another_spelling_continues_from_the_cursor(
    run_dag: RunDag, dropbox_default: Any, hook: Any, root: str, tmp_path: Path, first: str, second: str
) -> None:
    hook.create_folder(f"{root}/{first}")
    writer = _upload_once_watching(dropbox_default, hook, tmp_path, {f"{root}/{first}/a.csv": "1"})
    dr = run_dag("ops_sensor_dag.py", "ops_sensor_poke", {"root": f"{root}/{first}"})
    writer.join()
    assert str(dr.state) == "success", task_states(dr)
    # Between the runs: a new file. The second run names the folder in another case.
    (tmp_path / "b.csv").write_text("2")
    hook.upload_file(tmp_path / "b.csv", f"{root}/{second}/b.csv")
    dr2 = run_dag("ops_sensor_dag.py", "ops_sensor_poke", {"root": f"{root}/{second}"})
    assert str(dr2.state) == "success", task_states(dr2)
    changes = xcom(dr2, "wait_for_change")["changes"]
    assert [c["path_lower"].rsplit("/", 1)[-1] for c in changes] == ["b.csv"]


def test_watch_marker_uses_dropbox_folding() -> None:
    markers = {
        DropboxChangeSensor(task_id="s", path=p)._watch_marker() for p in ("/ΣΑΣ/İ", "/σασ/i", "/Σασ/I")
    }
    assert len(markers) == 1
    assert DropboxChangeSensor(task_id="s", path="/σας")._watch_marker() not in markers
    # German capital sharp s is not folded by Dropbox: /STRAẞE and /straße are two folders, one cursor each.
    sharp = {DropboxChangeSensor(task_id="s", path=p)._watch_marker() for p in ("/STRAẞE", "/straße")}
    assert len(sharp) == 2


def test_case_only_rename_is_not_a_change(dropbox_default: Any, hook: Any, root: str, tmp_path: Path) -> None:
    """``list_folder/continue`` does not report a rename that changes only case: no event, no loss."""
    hook.create_folder(f"{root}/in")
    (tmp_path / "x.csv").write_text("x")
    for old, new in (("σασ.csv", "ΣΑΣ.csv"), ("straße.csv", "STRAßE.csv"), ("izmir.csv", "İZMİR.csv")):
        hook.upload_file(tmp_path / "x.csv", f"{root}/in/{old}")
        cursor, _ = hook.latest_cursor_at(f"{root}/in")
        hook.move(f"{root}/in/{old}", f"{root}/in/{new}")
        entries, _, _ = hook.list_changes_at(cursor)
        assert entries == [], f"{old} -> {new}"
        shown = {e["path_display"].rsplit("/", 1)[-1] for e in hook.list_folder(f"{root}/in")}
        assert new in shown  # a listing shows the new case
