# ruff: noqa: RUF001, RUF002
"""Keys as Dropbox folds names (issue 14): the operators never rely on Python's ``str.lower`` agreeing with
the server's ``path_lower``. Dropbox folds by older Unicode rules (``casefold.path_key``): ``ΣΣΣ`` is
``σσσ`` (no final sigma), ``İ`` is one ``i``, Cyrillic ``Ꙋ`` and German ``ẞ`` stay as they are, a ligature
such as ``ﬁ`` is left alone. Real operators, real hook, real HTTP against the emulator (which folds so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_dropbox.operators.dropbox import DropboxDownloadOperator, DropboxUploadOperator

# Each name differs from (or, for the last two, agrees with) Python's lower-casing of it.
NAMES = ["ΣΣΣ", "İstanbul", "Ꙋ", "ẞtraße", "ﬁle", "Straße"]
FOLDERS = ["ΣΣΣ", "İzmir", "ꙊЖ", "GROẞ", "ﬂow"]


def _tree(base: Path, count: int) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (base / f"{NAMES[i % len(NAMES)]}-{i}.txt").write_bytes(f"payload {i}".encode())


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("count", [5, 20], ids=["looked-up", "listed"])
def test_second_upload_skips_every_identical_file(
    dropbox_default: Any, root: str, tmp_path: Path, folder: str, count: int
) -> None:
    """5 files: one metadata lookup each; 20 files: one listing of the folder, matched by key."""
    _tree(tmp_path / "src", count)
    remote = f"{root}/{folder}"
    first = DropboxUploadOperator(task_id="u", local_path=str(tmp_path / "src"), remote_path=remote)
    assert first.execute({})["uploaded"] == count  # type: ignore[arg-type,index]
    again = DropboxUploadOperator(task_id="u", local_path=str(tmp_path / "src"), remote_path=remote)
    result = again.execute({})  # type: ignore[arg-type]
    assert (result["uploaded"], result["skipped_identical"]) == (0, count), result  # type: ignore[index]


@pytest.mark.parametrize("folder", FOLDERS)
def test_download_overwrite_error_sees_a_differing_file_below_a_folded_root(
    hook: Any, root: str, tmp_path: Path, folder: str
) -> None:
    """The conflict check keys files by the server's paths, so ``pattern`` and the local path are right
    under a root whose Python lower-case differs from Dropbox's; the local file is never replaced."""
    src = tmp_path / "src"
    (src / "Sub").mkdir(parents=True)
    (src / "Sub" / "ẞ-ΣΣ.txt").write_bytes(b"dropbox copy")
    hook.upload_folder(src, f"{root}/{folder}")
    dest = tmp_path / "dest"
    (dest / "Sub").mkdir(parents=True)
    (dest / "Sub" / "ẞ-ΣΣ.txt").write_bytes(b"local edits")
    op = DropboxDownloadOperator(
        task_id="d", remote_path=f"{root}/{folder}", local_path=str(dest), pattern="sub/*", overwrite="error"
    )
    with pytest.raises(AirflowException, match="exist with different content"):
        op.execute({})  # type: ignore[arg-type]
    assert (dest / "Sub" / "ẞ-ΣΣ.txt").read_bytes() == b"local edits"


@pytest.mark.parametrize(
    ("name", "pattern", "same"),
    [
        ("ΣΣΣ", "σσσ", True),  # no final sigma on Dropbox
        ("İNDEX.csv", "in*", True),  # one i, not i + combining dot
        ("ꙊЖ.csv", "ꙋж*", False),  # U+A64A has no lower-case on Dropbox (Unicode 5.1)
        ("ẞ.csv", "ß*", False),  # capital sharp s (5.1) stays as it is
        ("ﬁle.csv", "ﬁ*", True),  # a ligature is its own letter
    ],
)
def test_patterns_and_excludes_fold_as_dropbox(
    hook: Any, root: str, tmp_path: Path, name: str, pattern: str, same: bool
) -> None:
    """A download ``pattern`` and an upload ``exclude`` match a name exactly when Dropbox would call the
    two spellings the same name."""
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(b"x")
    (src / "other.csv").write_bytes(b"y")
    hook.upload_folder(src, root)
    dest = tmp_path / "dest"
    dest.mkdir()
    op = DropboxDownloadOperator(task_id="d", remote_path=root, local_path=str(dest), pattern=pattern)
    op.execute({})  # type: ignore[arg-type]
    assert sorted(p.name for p in dest.iterdir()) == ([name] if same else [])
    up = DropboxUploadOperator(task_id="u", local_path=str(src), remote_path=f"{root}/again", exclude=pattern)
    result = up.execute({})  # type: ignore[arg-type]
    kept = ["other.csv"] if same else sorted([name, "other.csv"])
    assert sorted(m["name"] for m in result["files"]) == kept  # type: ignore[index]
