"""The official SDK, unchanged, on the routes beyond the transfer core: batches and their jobs, search_v2,
temporary links, check/user, the deprecated v1 delete and the team listings."""

from __future__ import annotations

import datetime
import io
import ssl
import urllib.request
import uuid
import zipfile
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.sdk.conftest import SdkTarget


@pytest.fixture
def root() -> str:
    return "/routes-" + uuid.uuid4().hex[:8]


def _exists(dbx: Any, path: str) -> bool:
    try:
        dbx.files_get_metadata(path)
    except Exception as e:
        assert e.error.is_path() and e.error.get_path().is_not_found()
        return False
    return True


def test_v1_delete_returns_bare_metadata(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    dbx.files_upload(b"one", root + "/a.txt")
    md = dbx.files_delete(root)
    assert isinstance(md, files.FolderMetadata) and md.path_display == root
    assert not _exists(dbx, root + "/a.txt")
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_delete(root)
    assert err.value.error.is_path_lookup() and err.value.error.get_path_lookup().is_not_found()
    # the v2 route keeps its own wrapper
    dbx.files_upload(b"two", root + "/b.txt")
    res = dbx.files_delete_v2(root + "/b.txt")
    assert isinstance(res, files.DeleteResult) and res.metadata.name == "b.txt"


def test_check_user_echoes(dbx: Any) -> None:
    assert dbx.check_user("ping \u00e9").result == "ping \u00e9"
    assert dbx.check_user().result == ""


def test_delete_batch_job(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    for name in ("a", "b"):
        dbx.files_upload(name.encode(), f"{root}/{name}.txt")
    launch = dbx.files_delete_batch(
        [
            files.DeleteArg(f"{root}/a.txt"),
            files.DeleteArg(f"{root}/missing"),
            files.DeleteArg(f"{root}/B.TXT"),
        ]
    )
    assert launch.is_async_job_id()
    status = dbx.files_delete_batch_check(launch.get_async_job_id())
    assert status.is_complete()
    entries = status.get_complete().entries
    assert [e.is_success() for e in entries] == [True, False, True]
    assert entries[0].get_success().metadata.name == "a.txt"
    assert entries[1].get_failure().get_path_lookup().is_not_found()
    assert not _exists(dbx, root + "/b.txt")
    # a job id of another kind, or an unknown one, is invalid_async_job_id
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_copy_batch_check_v2(launch.get_async_job_id())
    assert err.value.error.is_invalid_async_job_id()
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError):
        dbx.files_delete_batch_check("dbjid:nope")


def test_create_folder_batch_sync_and_async(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    dbx.files_upload(b"x", root + "/file")
    launch = dbx.files_create_folder_batch([root + "/one", root + "/two/deep", root + "/file"])
    assert launch.is_complete()
    entries = launch.get_complete().entries
    assert [e.is_success() for e in entries] == [True, True, False]
    assert entries[1].get_success().metadata.path_display == root + "/two/deep"
    assert entries[2].get_failure().get_path().is_conflict()
    launch = dbx.files_create_folder_batch([root + "/one"], autorename=True, force_async=True)
    assert launch.is_async_job_id()
    done = dbx.files_create_folder_batch_check(launch.get_async_job_id()).get_complete()
    assert done.entries[0].get_success().metadata.name == "one (1)"


def test_copy_and_move_batches(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    dbx.files_upload(b"a", root + "/src/a.txt")
    dbx.files_upload(b"b", root + "/src/b.txt")
    launch = dbx.files_copy_batch_v2(
        [
            files.RelocationPath(root + "/src/a.txt", root + "/copy/a.txt"),
            files.RelocationPath(root + "/nope", root + "/copy/nope"),
        ]
    )
    done = dbx.files_copy_batch_check_v2(launch.get_async_job_id()).get_complete()
    assert done.entries[0].is_success() and done.entries[0].get_success().path_display == root + "/copy/a.txt"
    err = done.entries[1].get_failure().get_relocation_error()
    assert err.is_from_lookup() and err.get_from_lookup().is_not_found()
    assert _exists(dbx, root + "/src/a.txt")
    launch = dbx.files_move_batch_v2([files.RelocationPath(root + "/src", root + "/moved")])
    done = dbx.files_move_batch_check_v2(launch.get_async_job_id()).get_complete()
    assert done.entries[0].get_success().path_display == root + "/moved"
    assert not _exists(dbx, root + "/src") and _exists(dbx, root + "/moved/b.txt")


def test_search_v2_pages_and_scopes(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    for i in range(5):
        dbx.files_upload(b"r", f"{root}/reports/Report {i}.csv")
    dbx.files_upload(b"o", f"{root}/other/report-x.txt")
    opts = files.SearchOptions(path=root + "/reports", max_results=2)
    res = dbx.files_search_v2("report", options=opts)
    names = [m.metadata.get_metadata().name for m in res.matches]
    while res.has_more:
        res = dbx.files_search_continue_v2(res.cursor)
        names += [m.metadata.get_metadata().name for m in res.matches]
    assert sorted(names) == [f"Report {i}.csv" for i in range(5)]
    res = dbx.files_search_v2("REPORT", options=files.SearchOptions(path=root, file_extensions=["txt"]))
    assert [m.metadata.get_metadata().path_display for m in res.matches] == [root + "/other/report-x.txt"]
    assert not res.has_more
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_search_v2("x", options=files.SearchOptions(path=root + "/absent"))
    assert err.value.error.is_path() and err.value.error.get_path().is_not_found()


def test_temporary_link_serves_the_revision_from_the_emulator(
    sdk_target: SdkTarget, dbx: Any, root: str
) -> None:
    md = dbx.files_upload(b"first version", root + "/doc.txt")
    res = dbx.files_get_temporary_link(root + "/doc.txt")
    assert res.metadata.rev == md.rev
    link = urlparse(res.link)
    assert link.netloc == urlparse(sdk_target.emu.base_url).netloc
    ctx = ssl.create_default_context(cafile=str(sdk_target.cert))
    files = sdk_target.dropbox.files
    dbx.files_upload(b"second", root + "/doc.txt", mode=files.WriteMode.overwrite)
    with urllib.request.urlopen(res.link, context=ctx) as resp:  # no token: the link is the credential
        assert resp.read() == b"first version"
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_get_temporary_link(root)
    assert err.value.error.is_path() and err.value.error.get_path().is_not_file()
    bad = res.link.replace(link.path.split("/")[-2], "unknown")  # .../<token>/<name>
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(bad, context=ctx)
    assert http_err.value.code == 404


def test_team_listings(sdk_target: SdkTarget) -> None:
    team = sdk_target.dropbox.DropboxTeam(
        oauth2_refresh_token="dev-refresh-token",
        app_key="dev-app-key",
        app_secret="dev-app-secret",
        ca_certs=str(sdk_target.cert),
    )
    assert team.team_groups_list().groups == []
    members = team.team_members_list().members
    assert len(members) == 1
    member_id = members[0].profile.team_member_id
    as_user = team.as_user(member_id)
    assert as_user.files_list_folder("").entries is not None
    team.close()


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc000000301010018dd8db40000000049454e44ae426082"
)


def test_thumbnail_by_path_and_by_shared_link(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    md = dbx.files_upload(PNG, root + "/pixel.png")
    result, resp = dbx.files_get_thumbnail_v2(files.PathOrLink.path(root + "/pixel.png"))
    assert resp.status_code == 200 and resp.content == PNG
    assert result.file_metadata.id == md.id
    url = dbx.sharing_create_shared_link_with_settings(root + "/pixel.png").url
    result, resp = dbx.files_get_thumbnail_v2(files.PathOrLink.link(files.SharedLinkFileInfo(url=url)))
    assert resp.content == PNG and result.link_metadata.url == url and result.link_metadata.rev == md.rev
    dbx.files_upload(b"text", root + "/notes.txt")
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_get_thumbnail_v2(files.PathOrLink.path(root + "/notes.txt"))
    assert err.value.error.is_unsupported_extension()
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        unknown = files.SharedLinkFileInfo(url=url.replace("/scl/", "/scl/x"))
        dbx.files_get_thumbnail_v2(files.PathOrLink.link(unknown))
    assert err.value.error.is_not_found()


def test_check_app_with_key_and_secret(sdk_target: SdkTarget) -> None:
    app = sdk_target.dropbox.Dropbox(
        app_key="dev-app-key", app_secret="dev-app-secret", ca_certs=str(sdk_target.cert)
    )
    assert app.check_app(query="hi there").result == "hi there"
    wrong = sdk_target.dropbox.Dropbox(
        app_key="dev-app-key", app_secret="nope", ca_certs=str(sdk_target.cert)
    )
    with pytest.raises(sdk_target.dropbox.exceptions.AuthError):
        wrong.check_app(query="x")


def test_downscoped_token_is_refused_other_scopes(sdk_target: SdkTarget) -> None:
    client = sdk_target.client()
    client.users_get_current_account()
    client.refresh_access_token(scope=["files.metadata.read"])
    client.files_list_folder("")  # within the scope
    with pytest.raises(sdk_target.dropbox.exceptions.AuthError) as err:
        client.users_get_current_account()
    assert err.value.error.is_missing_scope()
    assert err.value.error.get_missing_scope().required_scope == "account_info.read"
    with pytest.raises(sdk_target.dropbox.exceptions.AuthError):
        client.files_upload(b"x", "/scoped.txt")
    client.refresh_access_token()  # a plain refresh restores the app's full scopes
    client.users_get_current_account()
    client.close()


def test_bad_app_secret_on_refresh_names_invalid_client(sdk_target: SdkTarget) -> None:
    client = sdk_target.client(app_secret="wrong")
    with pytest.raises(sdk_target.dropbox.exceptions.BadInputError) as err:
        client.users_get_current_account()
    assert "invalid_client" in err.value.message


def test_restore_and_rev_paths(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    exc = sdk_target.dropbox.exceptions
    path = root + "/r.txt"
    v1 = dbx.files_upload(b"one", path)
    dbx.files_upload(b"two!", path, mode=files.WriteMode.overwrite)
    old = dbx.files_get_metadata("rev:" + v1.rev)
    assert old.rev == v1.rev and old.size == 3
    _, resp = dbx.files_download("rev:" + v1.rev)
    assert resp.content == b"one"
    restored = dbx.files_restore(path, v1.rev)
    assert isinstance(restored, files.FileMetadata) and restored.rev not in (v1.rev,)
    assert restored.content_hash == v1.content_hash and restored.id == v1.id
    _, resp = dbx.files_download(path)
    assert resp.content == b"one"
    # a deleted file comes back from its last revision
    dbx.files_delete_v2(path)
    back = dbx.files_restore(path, restored.rev)
    assert back.size == 3 and dbx.files_get_metadata(path).rev == back.rev
    other = dbx.files_upload(b"other", root + "/other.txt")
    with pytest.raises(exc.ApiError) as err:
        dbx.files_restore(path, other.rev)
    assert err.value.error.is_invalid_revision()
    with pytest.raises(exc.ApiError) as err:
        dbx.files_restore(path, "0123456789abcdef")
    assert err.value.error.is_invalid_revision()


def test_shared_link_metadata_file_settings_and_revoke(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    sharing = sdk_target.dropbox.sharing
    exc = sdk_target.dropbox.exceptions
    dbx.files_upload(b"inside", root + "/shared/in.txt")
    url = dbx.sharing_create_shared_link_with_settings(root + "/shared").url
    md = dbx.sharing_get_shared_link_metadata(url)
    assert isinstance(md, sharing.FolderLinkMetadata) and md.name == "shared"
    inner = dbx.sharing_get_shared_link_metadata(url, path="/in.txt")
    assert isinstance(inner, sharing.FileLinkMetadata) and inner.size == 6
    got, resp = dbx.sharing_get_shared_link_file(url, path="/in.txt")
    assert resp.content == b"inside" and got.name == "in.txt"
    with pytest.raises(exc.ApiError) as err:
        dbx.sharing_get_shared_link_file(url)
    assert err.value.error.is_shared_link_is_directory()

    changed = dbx.sharing_modify_shared_link_settings(
        url, sharing.SharedLinkSettings(expires=datetime.datetime(2099, 1, 1), allow_download=False)
    )
    assert changed.expires == datetime.datetime(2099, 1, 1) and not changed.link_permissions.allow_download
    with pytest.raises(exc.ApiError) as err:
        dbx.sharing_get_shared_link_file(url, path="/in.txt")
    assert err.value.error.is_shared_link_access_denied()
    back = dbx.sharing_modify_shared_link_settings(
        url, sharing.SharedLinkSettings(allow_download=True), remove_expiration=True
    )
    assert back.expires is None and back.link_permissions.allow_download

    dbx.sharing_revoke_shared_link(url)
    with pytest.raises(exc.ApiError) as err:
        dbx.sharing_get_shared_link_metadata(url)
    assert err.value.error.is_shared_link_not_found()
    with pytest.raises(exc.ApiError) as err:
        dbx.sharing_revoke_shared_link(url)
    assert err.value.error.is_shared_link_not_found()


def test_download_zip(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    dbx.files_upload(b"A", root + "/Zipped/a.txt")
    dbx.files_upload(b"BB", root + "/Zipped/sub/b.txt")
    dbx.files_create_folder_v2(root + "/Zipped/empty")
    md, resp = dbx.files_download_zip(root + "/zipped")
    assert md.metadata.path_display == root + "/Zipped"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        assert sorted(zf.namelist()) == [
            "Zipped/",
            "Zipped/a.txt",
            "Zipped/empty/",
            "Zipped/sub/",
            "Zipped/sub/b.txt",
        ]
        assert zf.read("Zipped/sub/b.txt") == b"BB"
    with pytest.raises(sdk_target.dropbox.exceptions.ApiError) as err:
        dbx.files_download_zip(root + "/Zipped/a.txt")
    assert err.value.error.is_path() and err.value.error.get_path().is_not_folder()
