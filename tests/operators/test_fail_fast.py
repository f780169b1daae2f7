"""Errors no retry can fix fail the task at once, through real Airflow (``dag.test``) with ``retries=2``.

The error classes' ``permanent`` attribute decides; the operators' base class maps it to Airflow's
fail-fast exception. A transient-looking error (a missing remote file, which an upstream task may still
create) keeps its retries, so the count below can tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import errors
from airflow_provider_dropbox.hooks.dropbox import DropboxConnectionConfigError
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import load_dag_module

DAGS = Path(__file__).parent / "dags"
Run = Callable[..., tuple[str, int, str]]


@pytest.fixture
def run_ff(
    airflow_db: None,
    dropbox_default: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> Run:
    """``dag.test`` one DAG: (run state, how many times the task ran, task output)."""
    import airflow.settings
    from airflow.utils.session import create_session

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(DAGS))

    def run(dag_attr: str, **conf: Any) -> tuple[str, int, str]:
        dag = getattr(load_dag_module(DAGS / "ops_fail_fast_dag.py"), dag_attr)
        capfd.readouterr()
        dr = dag.test(run_conf=conf)
        out, err = capfd.readouterr()
        with create_session() as session:
            (ti,) = dr.get_task_instances(session=session)
            tries = ti.try_number
        return str(dr.state), tries, out + err

    return run


@pytest.mark.parametrize(
    ("dag_attr", "conf", "error"),
    [
        pytest.param("delete_dag", {"remote": "reports/x.csv"}, "MalformedPathError", id="relative-remote"),
        pytest.param("mkdir_dag", {"remote": "no/leading/slash"}, "MalformedPathError", id="relative-mkdir"),
        pytest.param(
            "upload_dag",
            {"remote": "/ff/x.csv", "local": "rel/x.csv"},
            "LocalPathError",
            id="relative-local-upload",
        ),
        pytest.param(
            "download_dag",
            {"remote": "/ff/x.csv", "local": "relative/x.csv"},
            "LocalPathError",
            id="relative-local",
        ),
        pytest.param(
            "delete_dag",
            {"remote": "/ff/x", "conn": "ff_no_token"},
            "DropboxConnectionConfigError",
            id="connection-config",
        ),
    ],
)
def test_permanent_errors_run_once(
    run_ff: Run, monkeypatch: pytest.MonkeyPatch, dag_attr: str, conf: dict[str, str], error: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FF_NO_TOKEN", '{"conn_type": "dropbox"}')
    state, tries, out = run_ff(dag_attr, **conf)
    assert state == "failed"
    assert tries == 1, out[-3000:]
    assert error in out


def test_bad_argument_combination_runs_once(run_ff: Run, tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(name)
    state, tries, out = run_ff("update_dag", remote="/ff/folder", local=str(tmp_path))
    assert state == "failed" and tries == 1, out[-3000:]
    assert "applies to a single file" in out


def test_transient_errors_keep_their_retries(run_ff: Run) -> None:
    state, tries, out = run_ff("download_dag", remote="/ff/missing.csv", local="/tmp/ff-missing.csv")
    assert state == "failed"
    assert tries == 3, out[-3000:]


def test_permanent_is_a_property_of_the_error_classes() -> None:
    permanent = [
        errors.MalformedPathError,
        errors.DisallowedNameError,
        errors.NotAFileError,
        errors.NotAFolderError,
        errors.BadInputError,
        errors.InvalidArgumentError,
        errors.LocalPathError,
        errors.AuthError,
        errors.InvalidRefreshTokenError,
        errors.InvalidTokenError,
        DropboxConnectionConfigError,
    ]
    transient = [
        errors.PathNotFoundError,
        errors.PathConflictError,
        errors.RateLimitError,
        errors.ServerError,
        errors.DropboxConnectionError,
        errors.ExpiredAccessTokenError,
        errors.LocalFileChangedError,
        errors.ContentHashMismatchError,
        errors.InsufficientSpaceError,
        errors.DropboxApiError,
    ]
    assert all(cls.permanent is True for cls in permanent)
    assert all(cls.permanent is False for cls in transient)


def test_fail_fast_error_keeps_its_type_and_attributes(tmp_path: Path) -> None:
    """Callers that catch the typed error (or check it in a failure callback) still see it."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_provider_dropbox.operators.dropbox import DropboxDeleteOperator, DropboxPermanentError

    op = DropboxDeleteOperator(task_id="t", path="relative/x.csv", retries=2)
    with pytest.raises(errors.MalformedPathError) as info:
        op.execute({})
    exc = info.value
    assert isinstance(exc, AirflowFailException) and isinstance(exc, DropboxPermanentError)
    assert type(exc).__name__ == "MalformedPathError"
    assert "relative/x.csv" in str(exc) and exc.permanent is True
