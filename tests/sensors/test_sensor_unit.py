"""Change sensor behaviour checked directly against the emulator (no DAG run): cursor sources, filters,
reset policies, deferral, bad input."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_provider_dropbox.sensors.dropbox import DropboxChangeSensor
from airflow_provider_dropbox.triggers.dropbox import DropboxChangeTrigger


class FakeTI:
    """Just the XCom calls the sensor makes."""

    def __init__(self, previous: Any = None) -> None:
        self.previous = previous
        self.pushed: dict[str, Any] = {}
        self.dag_id, self.task_id, self.run_id, self.map_index = "d", "t", "r", -1

    def xcom_pull(
        self, task_ids: str, key: str, include_prior_dates: bool = False, map_indexes: int | None = None
    ) -> Any:
        return self.previous

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _put(hook: Any, tmp: Path, remote: str, text: str = "x") -> None:
    local = tmp / uuid.uuid4().hex
    local.write_text(text)
    hook.upload_file(local, remote, mode="overwrite")


def test_template_fields_and_hook_not_created_in_init() -> None:
    sensor = DropboxChangeSensor(task_id="s", path="/in")
    assert {"path", "cursor", "file_pattern", "dropbox_conn_id"} <= set(sensor.template_fields)
    assert sensor._hook is None and sensor.dropbox_conn_id == "dropbox_default"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"kinds": ["renamed"]}, "Unknown change kind", id="kinds"),
        pytest.param({"start_from": "now"}, "start_from", id="start-from"),
        pytest.param({"on_cursor_reset": "ignore"}, "on_cursor_reset", id="reset"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DropboxChangeSensor(task_id="s", path="/in", **kwargs)


def test_missing_folder_is_a_clear_error(dropbox_default: Any) -> None:
    sensor = DropboxChangeSensor(task_id="s", path="/ops-tests/no-such-folder")
    with pytest.raises(AirflowException, match="does not exist"):
        sensor.poke({"ti": FakeTI()})  # type: ignore[arg-type]


def test_unknown_connection_names_it(dropbox_default: Any) -> None:
    sensor = DropboxChangeSensor(task_id="s", path="/in", dropbox_conn_id="no_such_conn")
    with pytest.raises(Exception, match="no_such_conn"):
        sensor.poke({"ti": FakeTI()})  # type: ignore[arg-type]


def test_start_from_beginning_reports_existing_files_as_added(
    dropbox_default: Any, hook: Any, root: str, tmp_path: Path
) -> None:
    _put(hook, tmp_path, f"{root}/a.csv")
    _put(hook, tmp_path, f"{root}/b.txt")
    sensor = DropboxChangeSensor(task_id="s", path=root, start_from="beginning", file_pattern="*.csv")
    ti = FakeTI()
    result = sensor.poke({"ti": ti})  # type: ignore[arg-type]
    assert result.is_done  # type: ignore[union-attr]
    value = result.xcom_value  # type: ignore[union-attr]
    assert [(c["path"], c["kind"]) for c in value["changes"]] == [(f"{root}/a.csv", "added")]
    assert ti.pushed["dropbox_cursor"]["cursor"] == value["cursor"]


def test_kinds_filter_deleted_only(dropbox_default: Any, hook: Any, root: str, tmp_path: Path) -> None:
    _put(hook, tmp_path, f"{root}/a.csv")
    cursor = hook.get_latest_cursor(root)
    _put(hook, tmp_path, f"{root}/b.csv")
    sensor = DropboxChangeSensor(task_id="s", path=root, cursor=cursor, kinds=["deleted"])
    assert sensor.poke({"ti": FakeTI()}) is False  # an addition does not count
    hook.delete(f"{root}/a.csv")
    result = sensor.poke({"ti": FakeTI()})  # type: ignore[arg-type]
    assert [(c["path_lower"], c["kind"]) for c in result.xcom_value["changes"]] == [  # type: ignore[union-attr]
        (f"{root}/a.csv", "deleted")
    ]


def test_previous_cursor_only_reused_for_the_same_folder(
    dropbox_default: Any, hook: Any, root: str, tmp_path: Path
) -> None:
    hook.create_folder(root)
    other = hook.get_latest_cursor("/ops-tests")
    sensor = DropboxChangeSensor(task_id="s", path=root)
    ti = FakeTI(previous={"cursor": other, "watch": "/somewhere-else|recursive=True"})
    assert sensor.poke({"ti": ti}) is False  # ignored the foreign cursor, took a fresh one
    assert sensor._cursor != other


def test_reset_policies(dropbox_default: Any, hook: Any, root: str, tmp_path: Path) -> None:
    _put(hook, tmp_path, f"{root}/keep.csv")
    cursor = hook.get_latest_cursor(root)
    dropbox_default.admin("reset_cursors", {})

    failing = DropboxChangeSensor(task_id="s", path=root, cursor=cursor, on_cursor_reset="fail")
    with pytest.raises(AirflowException, match="reset the change cursor"):
        failing.poke({"ti": FakeTI()})  # type: ignore[arg-type]

    restart = DropboxChangeSensor(task_id="s", path=root, cursor=cursor, on_cursor_reset="restart")
    assert restart.poke({"ti": FakeTI()}) is False

    relist = DropboxChangeSensor(task_id="s", path=root, cursor=cursor)
    value = relist.poke({"ti": FakeTI()}).xcom_value  # type: ignore[union-attr]
    assert value["reset"] is True
    assert [(c["path"], c["kind"]) for c in value["changes"]] == [(f"{root}/keep.csv", "changed")]


def test_deferrable_pokes_once_then_defers(dropbox_default: Any, hook: Any, root: str) -> None:
    hook.create_folder(root)
    sensor = DropboxChangeSensor(task_id="s", path=root, deferrable=True, timeout=300, file_pattern="*.csv")
    with pytest.raises(TaskDeferred) as exc:
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    trigger = exc.value.trigger
    assert isinstance(trigger, DropboxChangeTrigger)
    assert exc.value.method_name == "execute_complete"
    assert trigger.serialize()[1]["file_pattern"] == "*.csv" and trigger.cursor


def test_execute_complete_error_event_fails_clearly() -> None:
    sensor = DropboxChangeSensor(task_id="s", path="/in")
    with pytest.raises(AirflowException, match="Waiting for Dropbox changes under '/in' failed"):
        sensor.execute_complete({"ti": FakeTI()}, {"status": "error", "message": "boom"})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["path", "file_pattern"])
def test_unrendered_template_is_refused_before_any_request(field: str) -> None:
    """A '{{ ds }}' left in a field (from conf/params/XCom) would watch a literal folder forever."""
    from airflow_provider_dropbox.operators.dropbox import UnrenderedTemplateError

    kwargs: dict[str, Any] = {"path": "/in", field: "/in/{{ ds }}"}
    sensor = DropboxChangeSensor(task_id="s", dropbox_conn_id="no_such_connection", **kwargs)
    with pytest.raises(UnrenderedTemplateError, match=f"{field}=.*still holds a Jinja template"):
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
