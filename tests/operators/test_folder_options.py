"""Folder-transfer options through real Airflow (``dag.test()``) and the hook, against the emulator.

``exclude`` (templated) and the never-synced names (skipped by default, refused on request), and the local
paths an operator refuses before any request: ``/`` (never meant as a folder to fill) and relative paths
(a worker's cwd is arbitrary). DAGs: ``tests/operators/dags/ops_folder_options_dag.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import errors
from tests.emulator_process import EmulatorProcess
from tests.ops_fixtures import load_dag_module

DAGS = Path(__file__).parent / "dags"

RunOpts = Callable[..., tuple[str, str, Any]]

# A Windows- and Mac-touched folder: what a DAG author means to upload is the two csv files.
TREE = {
    "data.csv": b"a,b\n1,2\n",
    "sub/more.csv": b"x\n",
    "desktop.ini": b"[.ShellClassInfo]",
    "sub/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "Thumbs.DB": b"thumbs",
    ".dropbox/cache.bin": b"state of another Dropbox app",
    "scratch.tmp": b"temporary",
    "build/out.log": b"log",
    "sub/build/keep.log": b"kept: exclude 'build/*' is anchored at the top",
}
SENT = {"data.csv", "sub/more.csv", "sub/build/keep.log"}


def _load() -> Any:
    return load_dag_module(DAGS / "ops_folder_options_dag.py")


@pytest.fixture
def run_opts(
    airflow_db: None,
    dropbox_default: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> RunOpts:
    """Run one DAG of the module with ``dag.test(run_conf=...)``: (state, task output, dag run)."""
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(DAGS))

    def run(dag_attr: str, **conf: Any) -> tuple[str, str, Any]:
        dag = getattr(_load(), dag_attr)
        capfd.readouterr()
        dr = dag.test(run_conf=conf)
        out, err = capfd.readouterr()
        return str(dr.state), out + err, dr

    return run


def _write(root: Path, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _remote_files(hook: Any, folder: str) -> set[str]:
    if not hook.exists(folder):
        return set()
    prefix = folder.lower() + "/"
    return {
        e["path_display"][len(prefix) :]
        for e in hook.list_folder(folder, recursive=True)
        if e[".tag"] == "file"
    }


def test_upload_folder_leaves_out_excluded_and_never_synced_names(
    run_opts: RunOpts, hook: Any, root: str, tmp_path: Path
) -> None:
    from tests.ops_fixtures import xcom

    _write(tmp_path / "src", TREE)
    state, output, dr = run_opts("upload_dag", local=str(tmp_path / "src"), remote=root, exclude="build/*")
    assert state == "success", output[-3000:]
    assert sorted(m["path_display"] for m in xcom(dr, "upload")["files"]) == sorted(
        f"{root}/{r}" for r in SENT
    )
    assert _remote_files(hook, root) == SENT
    # One line each for what was left out, naming it; nothing silent.
    assert "Left out 2 path(s)" in output and "'scratch.tmp'" in output and "'build/out.log'" in output
    assert "Skipped 4 path(s)" in output, output[-3000:]
    for name in ("'.dropbox/'", "'desktop.ini'", "'Thumbs.DB'", "'sub/.DS_Store'"):
        assert name in output, name


def test_upload_glob_applies_exclude_below_the_glob_start(
    run_opts: RunOpts, hook: Any, root: str, tmp_path: Path
) -> None:
    _write(tmp_path / "src", TREE)
    state, output, _ = run_opts("upload_dag", local=f"{tmp_path}/src/**/*", remote=root, exclude="sub/*.csv")
    assert state == "success", output[-3000:]
    # A glob flattens matches into remote_path (and skips dot files itself); desktop.ini, Thumbs.DB skipped.
    assert _remote_files(hook, root) == {"data.csv", "keep.log", "out.log"}


def test_upload_strict_refuses_the_whole_folder_before_any_request(
    run_opts: RunOpts, hook: Any, root: str, tmp_path: Path, dropbox_default: EmulatorProcess
) -> None:
    _write(tmp_path / "src", TREE)
    state, output, _ = run_opts("strict_dag", local=str(tmp_path / "src"), remote=root)
    assert state == "failed", output[-3000:]
    assert "DisallowedNameError" in output and "desktop.ini" in output and "nothing was uploaded" in output
    assert not hook.exists(root)


@pytest.mark.parametrize(
    ("dag_attr", "local", "problem"),
    [
        ("download_dag", "/", "root of the file system"),
        ("download_dag", "//", "root of the file system"),
        ("download_dag", "/tmp/..", "root of the file system"),
        ("mirror_dag", "/", "root of the file system"),
        ("download_dag", "out/data", "is a relative path"),
        ("download_dag", "~/data", "is a relative path"),
        ("upload_dag", "src", "is a relative path"),
        ("upload_dag", "src/*.csv", "is a relative path"),
        ("mirror_dag", "./mirror", "is a relative path"),
    ],
)
def test_root_and_relative_local_paths_are_refused_before_any_request(
    run_opts: RunOpts,
    hook: Any,
    root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dropbox_default: EmulatorProcess,
    dag_attr: str,
    local: str,
    problem: str,
) -> None:
    """The task fails with LocalPathError naming the problem and the fix; no request, nothing written."""
    hook.create_folder(root)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_bytes(b"a")
    monkeypatch.chdir(tmp_path)  # where a relative path would have landed
    before_local = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    before = dropbox_default.stats()
    state, output, _ = run_opts(dag_attr, local=local, remote=root)
    assert state == "failed", output[-3000:]
    assert "LocalPathError" in output and problem in output, output[-3000:]
    assert "absolute path" in output or "Pass the folder you mean" in output
    assert dropbox_default.stats() == before  # not even a token refresh or a metadata call
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before_local


def test_absolute_download_still_works_after_the_checks(
    run_opts: RunOpts, hook: Any, root: str, tmp_path: Path
) -> None:
    """The guard refuses '/' and relative paths only: the same DAG with an absolute folder succeeds."""
    src = tmp_path / "a.csv"
    src.write_bytes(b"payload")
    hook.upload_file(src, f"{root}/a.csv")
    state, output, _ = run_opts("download_dag", local=str(tmp_path / "out"), remote=root)
    assert state == "success", output[-3000:]
    assert (tmp_path / "out" / "a.csv").read_bytes() == b"payload"


# -- the hook (library use: a relative local_dir is the caller's own choice and stays allowed) -------------


@pytest.mark.parametrize("local", ["/", "//", "/tmp/.."])
def test_hook_download_folder_refuses_the_root_before_any_request(
    hook: Any, root: str, dropbox_default: EmulatorProcess, local: str
) -> None:
    hook.create_folder(root)
    before = dropbox_default.stats()
    with pytest.raises(errors.LocalPathError, match=r"root of the file system.*Pass the folder you mean"):
        hook.download_folder(root, local)
    assert dropbox_default.stats() == before


def test_hook_upload_folder_passes_exclude_and_the_strict_switch(
    hook: Any, root: str, tmp_path: Path
) -> None:
    _write(tmp_path / "src", TREE)
    uploaded = hook.upload_folder(tmp_path / "src", root, exclude=["*.TMP", "build"])
    # 'build' names a folder anywhere (the mirror's exclude rule), so sub/build goes too; *.TMP ignores case
    assert sorted(m["path_display"] for m in uploaded) == [f"{root}/data.csv", f"{root}/sub/more.csv"]
    with pytest.raises(errors.DisallowedNameError, match=r"desktop\.ini"):
        hook.upload_folder(tmp_path / "src", f"{root}/strict", skip_disallowed_names=False)
    assert not hook.exists(f"{root}/strict")


def test_hook_relative_local_dir_is_still_the_callers_choice(
    hook: Any, root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(b"rel")
    hook.upload_file(src, f"{root}/a.csv")
    monkeypatch.chdir(tmp_path)
    assert hook.download_folder(root, "rel-out") == ["rel-out/a.csv"]
    assert (tmp_path / "rel-out" / "a.csv").read_bytes() == b"rel"


@pytest.mark.slow  # ~25 s: dag.test plus a deliberately slow 10 s upload
def test_operator_upload_logs_progress_with_rate_and_eta(
    run_opts: RunOpts, hook: Any, root: str, tmp_path: Path, dropbox_default: EmulatorProcess
) -> None:
    """A 40 MiB upload over a ~4 MB/s link (the emulator's bandwidth fault) takes ~10 s; the task log
    shows where it is, how fast and how long is left, as downloads do (issue 15)."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    dropbox_default.set_faults(bandwidth_mbps=32)
    try:
        state, output, _ = run_opts("upload_dag", local=str(big), remote=f"{root}/big.bin")
    finally:
        dropbox_default.clear_faults()
    assert state == "success", output[-3000:]
    running = re.findall(
        r"Upload \S+/big\.bin: [\d.]+ MiB of 40\.0 MiB \(\d+\.\d%\), ([\d.]+) MB/s, ETA (\d+) s", output
    )
    assert running, output[-3000:]
    assert all(0.5 < float(rate) < 20 for rate, _ in running), running
    done = r"Upload \S+/big\.bin: 40\.0 MiB of 40\.0 MiB \(100\.0%\), [\d.]+ MB/s, ETA done"
    assert re.search(done, output), output[-3000:]
    assert hook.get_metadata(f"{root}/big.bin")["size"] == 40 * 1024 * 1024
