"""DropboxHook's many-path, search and temporary-link methods, over real HTTP against the emulator."""

from __future__ import annotations

import tempfile
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dropbox.client import batch, errors
from airflow_provider_dropbox.hooks.dropbox import DropboxHook
from tests.emulator_process import EmulatorProcess
from tests.hooks.conftest import MakeConn


def test_delete_batch_reports_each_path(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    for name in ("a.txt", "b.txt", "c.txt"):
        _upload(hook, f"{remote_dir}/{name}", name.encode())
    out = hook.delete_batch([f"{remote_dir}/a.txt", f"{remote_dir}/C.TXT"])
    assert [e["path"] for e in out] == [f"{remote_dir}/a.txt", f"{remote_dir}/C.TXT"]
    assert [e["metadata"]["name"] for e in out] == ["a.txt", "c.txt"]
    assert not hook.exists(f"{remote_dir}/a.txt") and hook.exists(f"{remote_dir}/b.txt")

    with pytest.raises(batch.BatchError) as err:
        hook.delete_batch([f"{remote_dir}/b.txt", f"{remote_dir}/gone.txt"])
    assert "1 of 2 entries failed" in str(err.value) and f"'{remote_dir}/gone.txt'" in str(err.value)
    assert "not_found" in err.value.entries[1].tags and err.value.entries[0].ok
    assert not hook.exists(f"{remote_dir}/b.txt")  # the good entry was still done

    out = hook.delete_batch([f"{remote_dir}/nothing"], raise_on_failure=False)
    assert "error" in out[0] and "metadata" not in out[0]


def _upload(hook: DropboxHook, path: str, data: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return hook.upload_file(f.name, path)


def test_create_copy_move_batches(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    made = hook.create_folder_batch([f"{remote_dir}/x", f"{remote_dir}/y/z"])
    assert [e["metadata"]["path_display"] for e in made] == [f"{remote_dir}/x", f"{remote_dir}/y/z"]
    with pytest.raises(batch.BatchError) as err:
        hook.create_folder_batch([f"{remote_dir}/x"])
    assert "conflict" in err.value.entries[0].tags
    again = hook.create_folder_batch([f"{remote_dir}/x"], autorename=True)
    assert again[0]["metadata"]["name"] == "x (1)"

    _upload(hook, f"{remote_dir}/x/f.txt", b"data")
    copied = hook.copy_batch([(f"{remote_dir}/x/f.txt", f"{remote_dir}/y/f.txt")])
    assert copied[0]["metadata"]["path_display"] == f"{remote_dir}/y/f.txt"
    moved = hook.move_batch([(f"{remote_dir}/x", f"{remote_dir}/moved")])
    assert moved[0]["metadata"]["path_display"] == f"{remote_dir}/moved"
    assert hook.exists(f"{remote_dir}/moved/f.txt") and not hook.exists(f"{remote_dir}/x")
    with pytest.raises(batch.BatchError) as err:
        hook.move_batch([(f"{remote_dir}/x", f"{remote_dir}/again")])
    assert err.value.entries[0].tags[:2] == ["relocation_error", "from_lookup"]


def test_batch_paths_are_checked_before_any_request(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    with pytest.raises(errors.MalformedPathError):
        hook.delete_batch([f"{remote_dir}/ok", "relative/path"])
    with pytest.raises(errors.MalformedPathError):
        hook.copy_batch([(f"{remote_dir}/a", f"{remote_dir}/b/")])


def test_search_pages_and_filters(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    for i in range(3):
        _upload(hook, f"{remote_dir}/logs/run-{i:03d}.log", b"x")
    hook.create_folder_batch([f"{remote_dir}/many/run-{i:03d}" for i in range(150)])
    found = hook.search("RUN", path=f"{remote_dir}/many")
    assert len(found) == 150  # more than one page of 100
    logs = hook.search("run", path=remote_dir, file_extensions=["log"])
    assert sorted(m["name"] for m in logs) == ["run-000.log", "run-001.log", "run-002.log"]
    assert len(hook.search("run", path=remote_dir, max_results=7)) == 7
    with pytest.raises(errors.PathNotFoundError):
        hook.search("run", path=f"{remote_dir}/absent")


def test_temporary_link_serves_the_file_from_the_same_host(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    _upload(hook, f"{remote_dir}/report.csv", b"a,b\n1,2\n")
    link = hook.get_temporary_link(f"{remote_dir}/report.csv")
    assert link.startswith(hook.get_conn().endpoints.api)
    resp = requests.get(link, timeout=10)  # no Authorization header
    assert resp.status_code == 200 and resp.content == b"a,b\n1,2\n"
    with urllib.request.urlopen(link) as r:
        assert r.read() == b"a,b\n1,2\n"
    with pytest.raises(errors.NotAFileError):
        hook.get_temporary_link(remote_dir)
    with pytest.raises(errors.PathNotFoundError):
        hook.get_temporary_link(f"{remote_dir}/nope.csv")


# -------------------------------------------------------------------------- team spaces, end to end


@pytest.fixture
def team(emulator: EmulatorProcess) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    spec = {
        "name": "Acme",
        "root_namespace_id": "7000",
        "members": [{"name": f"Ann {tag}", "admin": True}, {"name": f"Bob {tag}"}],
    }
    yield emulator.admin("team", spec)
    emulator.admin("team", None, method="DELETE")


def test_team_connection_mirrors_a_team_space_folder(
    make_conn: MakeConn, team: dict[str, Any], tmp_path: Path
) -> None:
    ann, _ = team["members"]
    root_conn = make_conn(extra={"team_member_id": ann["team_member_id"], "root_namespace_id": "7000"})
    hook = DropboxHook(root_conn)
    _upload(hook, "/Team Data/a.csv", b"1,2\n")
    _upload(hook, "/Team Data/sub/b.csv", b"3,4\n")
    report = hook.sync_to_local_dir("/Team Data", tmp_path / "mirror")
    assert report["ok"] and report["errors"] == [] and report["downloaded"] == 2
    assert (tmp_path / "mirror" / "a.csv").read_bytes() == b"1,2\n"
    assert (tmp_path / "mirror" / "sub" / "b.csv").read_bytes() == b"3,4\n"
    # the same folder is not in Ann's home namespace (no root_namespace_id: paths start at her home)
    home = DropboxHook(make_conn(extra={"team_member_id": ann["team_member_id"]}))
    assert not home.exists("/Team Data")
    assert hook.exists(f"/{ann['name']}")  # her home is a folder of the team space


def test_team_connection_uploads_into_another_members_folder(
    make_conn: MakeConn, team: dict[str, Any]
) -> None:
    ann, bob = team["members"]
    as_ann = DropboxHook(
        make_conn(extra={"team_member_id": ann["team_member_id"], "root_namespace_id": "7000"})
    )
    meta = _upload(as_ann, f"/{bob['name']}/inbox/from-ann.txt", b"hello bob")
    assert meta["path_display"] == f"/{bob['name']}/inbox/from-ann.txt"
    as_bob = DropboxHook(make_conn(extra={"team_member_id": bob["team_member_id"]}))
    assert as_bob.get_metadata("/inbox/from-ann.txt")["id"] == meta["id"]
    assert [e["name"] for e in as_bob.list_folder("/inbox")] == ["from-ann.txt"]


def test_misconfigured_team_connections_fail_clearly(make_conn: MakeConn, team: dict[str, Any]) -> None:
    ann, _ = team["members"]
    unknown_member = DropboxHook(make_conn(extra={"team_member_id": "dbmid:AAAnobody"}))
    with pytest.raises(errors.AuthError) as err:
        unknown_member.list_folder("").__next__()
    assert "invalid_select_user" in str(err.value)
    ok, message = unknown_member.test_connection()
    assert not ok and "invalid_select_user" in message
    wrong_root = DropboxHook(
        make_conn(extra={"team_member_id": ann["team_member_id"], "root_namespace_id": "1"})
    )
    with pytest.raises(errors.BadInputError) as berr:
        wrong_root.get_metadata("/x")
    assert "Dropbox-API-Path-Root" in str(berr.value) and "invalid_root" in str(berr.value)


def test_restore_brings_back_a_revision(make_conn: MakeConn, remote_dir: str) -> None:
    hook = DropboxHook(make_conn())
    first = _upload(hook, f"{remote_dir}/cfg.yaml", b"a: 1\n")
    hook.delete(f"{remote_dir}/cfg.yaml")
    md = hook.restore(f"{remote_dir}/cfg.yaml", first["rev"])
    assert md["content_hash"] == first["content_hash"] and hook.exists(f"{remote_dir}/cfg.yaml")
    with pytest.raises(errors.DropboxApiError) as err:
        hook.restore(f"{remote_dir}/cfg.yaml", "not-a-rev")
    assert "Not a Dropbox revision" in str(err.value)
    other = _upload(hook, f"{remote_dir}/other.yaml", b"b: 2\n")
    with pytest.raises(errors.DropboxApiError) as err:
        hook.restore(f"{remote_dir}/cfg.yaml", other["rev"])
    assert "invalid_revision" in err.value.tags


def test_download_zip_is_complete_or_absent(make_conn: MakeConn, remote_dir: str, tmp_path: Path) -> None:
    hook = DropboxHook(make_conn())
    _upload(hook, f"{remote_dir}/pack/a.txt", b"a" * 1000)
    _upload(hook, f"{remote_dir}/pack/deep/b.bin", bytes(range(256)) * 40)
    target = tmp_path / "pack.zip"
    md = hook.download_zip(f"{remote_dir}/pack", target)
    assert md["path_display"] == f"{remote_dir}/pack"
    with zipfile.ZipFile(target) as zf:
        assert zf.read("pack/deep/b.bin") == bytes(range(256)) * 40
        assert zf.read("pack/a.txt") == b"a" * 1000
    with pytest.raises(errors.PathNotFoundError):
        hook.download_zip(f"{remote_dir}/absent", tmp_path / "absent.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack.zip"]  # no partial file left behind
    with pytest.raises(errors.LocalPathError):
        hook.download_zip(f"{remote_dir}/pack", tmp_path / "no-such-dir" / "x.zip")


def test_shared_link_routes_through_the_hook(make_conn: MakeConn, remote_dir: str, tmp_path: Path) -> None:
    hook = DropboxHook(make_conn())
    _upload(hook, f"{remote_dir}/pub/data.csv", b"x,y\n")
    url = hook.create_shared_link(f"{remote_dir}/pub")
    assert hook.get_shared_link_metadata(url)[".tag"] == "folder"
    assert hook.get_shared_link_metadata(url, path="/data.csv")["size"] == 4
    md = hook.download_shared_link_file(url, tmp_path / "data.csv", path="/data.csv")
    assert md["name"] == "data.csv" and (tmp_path / "data.csv").read_bytes() == b"x,y\n"
    changed = hook.modify_shared_link_settings(url, expires="2099-01-01T00:00:00Z", allow_download=False)
    assert changed["expires"] == "2099-01-01T00:00:00Z"
    with pytest.raises(errors.DropboxApiError) as err:
        hook.download_shared_link_file(url, tmp_path / "denied.csv", path="/data.csv")
    assert "shared_link_access_denied" in err.value.tags and not (tmp_path / "denied.csv").exists()
    hook.revoke_shared_link(url)
    with pytest.raises(errors.DropboxApiError) as err:
        hook.get_shared_link_metadata(url)
    assert "shared_link_not_found" in err.value.tags


def test_batch_jobs_still_running_are_polled_until_complete(
    make_conn: MakeConn, remote_dir: str, emulator: EmulatorProcess
) -> None:
    hook = DropboxHook(make_conn())
    emulator.admin("batch_jobs", {"in_progress_checks": 3})
    try:
        emulator.reset_stats()
        out = hook.create_folder_batch([f"{remote_dir}/p", f"{remote_dir}/q"])  # answers complete at once
        deleted = hook.delete_batch([f"{remote_dir}/p", f"{remote_dir}/q"])
        assert [e["metadata"]["name"] for e in deleted] == ["p", "q"] and len(out) == 2
        assert emulator.stats().get("/2/files/delete_batch/check") == 4  # 3 x in_progress, then complete
    finally:
        emulator.admin("batch_jobs", {"in_progress_checks": 0})


def test_a_job_that_never_finishes_is_a_typed_timeout(
    make_conn: MakeConn, remote_dir: str, emulator: EmulatorProcess
) -> None:
    client = DropboxHook(make_conn()).get_conn()
    emulator.admin("batch_jobs", {"in_progress_checks": 1000})
    try:
        launch = client.rpc("files/delete_batch", {"entries": [{"path": f"{remote_dir}/none"}]})
        with pytest.raises(batch.BatchJobTimeout) as err:
            batch.wait_for_job(client, "files/delete_batch/check", launch, timeout=1)
        assert "still running after 1 s" in str(err.value)
    finally:
        emulator.admin("batch_jobs", {"in_progress_checks": 0})
    with pytest.raises(errors.DropboxApiError) as err2:  # a job id checked on another kind's route
        batch.wait_for_job(client, "files/copy_batch/check_v2", launch)
    assert "invalid_async_job_id" in err2.value.tags
