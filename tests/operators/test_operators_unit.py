"""Operator contracts that need no server: templating, lazy hooks, argument checks, declared assets."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from airflow_provider_dropbox.operators.dropbox import (
    DropboxChunkedUploadOperator,
    DropboxCopyOperator,
    DropboxCreateFolderOperator,
    DropboxCreateSharedLinkOperator,
    DropboxDeleteOperator,
    DropboxDownloadOperator,
    DropboxMoveOperator,
    DropboxUploadOperator,
)

CASES: list[tuple[type[Any], dict[str, Any], set[str]]] = [
    (
        DropboxUploadOperator,
        {"local_path": "/l", "remote_path": "/r"},
        {"local_path", "remote_path", "pattern", "rev"},
    ),
    (DropboxChunkedUploadOperator, {"local_path": "/l", "remote_path": "/r"}, {"local_path", "remote_path"}),
    (
        DropboxDownloadOperator,
        {"remote_path": "/r", "local_path": "/l"},
        {"remote_path", "local_path", "pattern"},
    ),
    (DropboxDeleteOperator, {"path": "/r"}, {"path"}),
    (DropboxCreateFolderOperator, {"path": "/r"}, {"path"}),
    (DropboxMoveOperator, {"from_path": "/a", "to_path": "/b"}, {"from_path", "to_path"}),
    (DropboxCopyOperator, {"from_path": "/a", "to_path": "/b"}, {"from_path", "to_path"}),
    (DropboxCreateSharedLinkOperator, {"path": "/r"}, {"path"}),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize(("cls", "kwargs", "paths"), CASES, ids=IDS)
def test_every_path_is_templated_and_conn_id_defaults(
    cls: type[Any], kwargs: dict[str, Any], paths: set[str]
) -> None:
    op = cls(task_id="t", **kwargs)
    assert paths | {"dropbox_conn_id"} <= set(op.template_fields)
    assert op.dropbox_conn_id == "dropbox_default"


@pytest.mark.parametrize(("cls", "kwargs", "paths"), CASES, ids=IDS)
def test_hook_not_created_during_init(cls: type[Any], kwargs: dict[str, Any], paths: set[str]) -> None:
    with mock.patch("airflow_provider_dropbox.operators.base.DropboxHook") as hook_cls:
        op = cls(task_id="t", **kwargs)
    hook_cls.assert_not_called()
    assert op._hook is None


@pytest.mark.parametrize(("cls", "kwargs", "paths"), CASES, ids=IDS)
def test_arguments_are_keyword_only(cls: type[Any], kwargs: dict[str, Any], paths: set[str]) -> None:
    with pytest.raises(TypeError):
        cls("t", *kwargs.values())


def test_static_paths_declare_dropbox_assets() -> None:
    up = DropboxUploadOperator(task_id="u", local_path="/l/x.csv", remote_path="/Reports/X.csv")
    assert [a.uri for a in up.outlets] == ["dropbox://dropbox_default/reports/x.csv"]
    down = DropboxDownloadOperator(
        task_id="d", remote_path="/Reports", local_path="/l", dropbox_conn_id="team"
    )
    assert [a.uri for a in down.inlets] == ["dropbox://team/reports"]
    move = DropboxMoveOperator(task_id="m", from_path="/a", to_path="/b")
    assert [a.uri for a in move.inlets] == ["dropbox://dropbox_default/a"]
    assert {a.uri for a in move.outlets} == {"dropbox://dropbox_default/a", "dropbox://dropbox_default/b"}


def test_templated_paths_declare_no_static_asset() -> None:
    op = DropboxUploadOperator(task_id="u", local_path="/l", remote_path="/out/{{ ds }}.csv")
    assert op.outlets == []


def test_user_outlets_win() -> None:
    from airflow.sdk import Asset

    mine = Asset("dropbox://dropbox_default/custom")
    op = DropboxCreateFolderOperator(task_id="c", path="/x", outlets=[mine])
    assert op.outlets == [mine]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"mode": "append"}, "mode must be one of", id="mode"),
        pytest.param({"mode": "update"}, "needs rev", id="update-without-rev"),
        pytest.param({"chunk_size": 5_000_000}, "multiple of 4 MiB", id="chunk-size"),
        pytest.param({"parallelism": 0}, "parallelism", id="parallelism"),
    ],
)
def test_bad_upload_arguments_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DropboxUploadOperator(task_id="u", local_path="/l", remote_path="/r", **kwargs)


def test_bad_overwrite_policy() -> None:
    with pytest.raises(ValueError, match="overwrite must be one of"):
        DropboxDownloadOperator(task_id="d", remote_path="/r", local_path="/l", overwrite="sometimes")


def test_chunked_upload_forces_a_session_with_explicit_chunking(tmp_path: Any) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    op = DropboxChunkedUploadOperator(
        task_id="c", local_path=str(src), remote_path="/f.bin", chunk_size=8 * 1024 * 1024, parallelism=2
    )
    client = mock.MagicMock()
    client.list_folder.return_value = []
    from airflow_provider_dropbox.client.errors import PathNotFoundError

    client.get_metadata.side_effect = PathNotFoundError("not found", route="files/get_metadata")
    client.upload_file.return_value = {"path_display": "/f.bin"}
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    op._hook = DropboxHook(dropbox_conn_id="never_used")
    op._hook._client = client
    assert op.execute({})["files"] == [{"path_display": "/f.bin"}]  # type: ignore[arg-type,index]
    kwargs = client.upload_file.call_args.kwargs
    assert kwargs["single_request_limit"] == 0
    assert kwargs["chunk_size"] == 8 * 1024 * 1024 and kwargs["parallelism"] == 2


def _mirror_case() -> tuple[type[Any], dict[str, Any], set[str]]:
    from airflow_provider_dropbox.operators.mirror import DropboxMirrorOperator

    return DropboxMirrorOperator, {"dropbox_path": "/r", "local_path": "/l"}, {"dropbox_path", "local_path"}


@pytest.mark.parametrize(("cls", "kwargs", "paths"), [*CASES, _mirror_case()], ids=[*IDS, "Mirror"])
def test_unrendered_template_in_any_path_field_is_refused(
    cls: type[Any], kwargs: dict[str, Any], paths: set[str]
) -> None:
    """#7: a field still holding Jinja at run time fails naming the field, before the hook is built."""
    from airflow_provider_dropbox.operators.dropbox import UnrenderedTemplateError

    for field in sorted(paths - {"rev"}):
        for raw in ("/x/{{ ds }}.csv", "/x/{% if x %}a{% endif %}"):
            op = cls(task_id="t", **kwargs)
            setattr(op, field, [raw] if field == "path" and cls is DropboxDeleteOperator else raw)
            op._hook = _offline_hook()
            with pytest.raises(UnrenderedTemplateError, match=rf"{field}=.*still holds a Jinja template"):
                op.execute({})
            assert op._hook._client is None  # no client built: no request


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (DropboxUploadOperator, {"remote_path": "/r"}),
        (DropboxDownloadOperator, {"remote_path": "/r"}),
        (_mirror_case()[0], {"dropbox_path": "/r"}),
    ],
    ids=["Upload", "Download", "Mirror"],
)
@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_local_path_is_refused(
    cls: type[Any], kwargs: dict[str, Any], blank: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17: a blank template renders local_path to '' (the worker's cwd): refused, the hook untouched."""
    from airflow_provider_dropbox.client.errors import LocalPathError

    monkeypatch.chdir(tmp_path)
    op = cls(task_id="t", local_path=blank, **kwargs)
    op._hook = _offline_hook()
    with pytest.raises(LocalPathError, match=r"local_path .* is empty or blank.*absolute local path"):
        op.execute({})
    assert op._hook._client is None  # no client built: no request
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "local", ["/", "//", "/tmp/..", "/**", "/*/*", "/*.csv", "//**/x.csv", "/tmp/../**", "/[a-z]*/x"]
)
def test_upload_of_the_whole_filesystem_is_refused(local: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """#8: '/' or a glob rooted at '/' (e.g. '{{ params.dir }}/**' with an empty dir) is never expanded."""
    import glob

    from airflow_provider_dropbox.client.errors import LocalPathError

    monkeypatch.setattr(glob, "glob", mock.MagicMock(side_effect=AssertionError("glob expanded")))
    monkeypatch.setattr("pathlib.Path.rglob", mock.MagicMock(side_effect=AssertionError("walked")))
    op = DropboxUploadOperator(task_id="u", local_path=local, remote_path="/r")
    op._hook = _offline_hook()
    with pytest.raises(LocalPathError, match=r"root of the file system|whole file system"):
        op.execute({})
    assert op._hook._client is None  # no client built: no request


def test_upload_glob_below_a_top_level_folder_still_works(tmp_path: Any) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_bytes(b"a")
    op = DropboxUploadOperator(task_id="u", local_path=f"{tmp_path}/**/*.csv", remote_path="/r")
    assert [(p.name, r) for p, r in _offline_hook().plan_upload(op.local_path, op.remote_path)] == [
        ("a.csv", "/r/a.csv")
    ]


def test_upload_glob_collecting_one_name_twice_is_refused_before_any_request(tmp_path: Any) -> None:
    """#3: a glob flattens matches into one folder; 'x/A.csv' and 'y/a.csv' would both be '/r/a.csv'."""
    from airflow_provider_dropbox.client.errors import LocalPathError

    for sub, name in (("x", "A.csv"), ("y", "a.csv")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / name).write_bytes(b"1")
    op = DropboxUploadOperator(task_id="u", local_path=f"{tmp_path}/*/*.csv", remote_path="/r")
    op._hook = _offline_hook()
    with pytest.raises(LocalPathError, match=r"x/A\.csv' and '.*y/a\.csv' -> '/r/A\.csv'"):
        op.execute({})
    assert op._hook._client is None  # no client built: no request


def test_upload_folder_holding_desktop_ini_is_refused_before_any_request(tmp_path: Any) -> None:
    """#4: with skip_disallowed_names=False, a folder holding desktop.ini is refused whole, not half
    uploaded; by default desktop.ini is left out of the plan and the rest goes."""
    from airflow_provider_dropbox.client.errors import DisallowedNameError

    (tmp_path / "a.csv").write_bytes(b"1")
    (tmp_path / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
    op = DropboxUploadOperator(
        task_id="u", local_path=str(tmp_path), remote_path="/r", skip_disallowed_names=False
    )
    op._hook = _offline_hook()
    with pytest.raises(DisallowedNameError, match=r"desktop\.ini'.*nothing was uploaded"):
        op.execute({})
    assert op._hook._client is None  # no client built: no request
    default = DropboxUploadOperator(task_id="u", local_path=str(tmp_path), remote_path="/r")
    assert [(f.name, r) for f, r in _offline_hook().plan_upload(default.local_path, "/r")] == [
        ("a.csv", "/r/a.csv")
    ]


def test_exclude_must_be_globs() -> None:
    with pytest.raises(ValueError, match="exclude must be a glob or a list of globs"):
        DropboxUploadOperator(task_id="u", local_path="/d", remote_path="/r", exclude=5)  # type: ignore[arg-type]
    assert "exclude" in DropboxUploadOperator.template_fields


def _offline_hook() -> Any:
    """A real hook whose client must never be built: planning an upload makes no request."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    hook = DropboxHook(dropbox_conn_id="never_used")
    hook.get_conn = mock.MagicMock(side_effect=AssertionError("a request was made"))  # type: ignore[method-assign]
    return hook
