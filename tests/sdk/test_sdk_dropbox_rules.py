"""Issue 14 items 1-4 through the official SDK: Dropbox's case folding, no case-only renames in
``continue``, the spec-allowed alternatives, and the error shapes the SDK maps to its exception types."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.sdk.conftest import SdkTarget


def _root() -> str:
    return "/sdk-rules-" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize("token", ["BadToken-123456", "bad token!", "x"])
def test_bad_or_malformed_token_is_auth_error(sdk_target: SdkTarget, token: str) -> None:
    dropbox = sdk_target.dropbox
    dbx = dropbox.Dropbox(oauth2_access_token=token, ca_certs=str(sdk_target.cert))
    with pytest.raises(dropbox.exceptions.AuthError) as err:
        dbx.files_list_folder("")
    assert err.value.error.is_invalid_access_token()


def test_unknown_route_is_bad_input_error(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    dbx.check_and_refresh_access_token()
    with pytest.raises(dropbox.exceptions.BadInputError) as err:
        dbx.request_json_string_with_retry(
            dropbox.session.HOST_API,
            "files/no_such_route",
            "rpc",
            b"{}",
            dropbox.dropbox_client.USER_AUTH,
            None,
        )
    assert "files/no_such_route" in err.value.message


def test_path_root_errors(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    PathRoot = dropbox.common.PathRoot
    info = dbx.users_get_current_account().root_info
    for ok in (
        PathRoot.home,
        PathRoot.root(info.root_namespace_id),
        PathRoot.namespace_id(info.home_namespace_id),
    ):
        dbx.with_path_root(ok).files_list_folder("")
    with pytest.raises(dropbox.exceptions.PathRootError) as err:
        dbx.with_path_root(PathRoot.namespace_id("1234567890")).files_list_folder("")
    assert err.value.error.is_no_permission()
    with pytest.raises(dropbox.exceptions.PathRootError) as err:
        dbx.with_path_root(PathRoot.root("1234567890")).files_list_folder("")
    assert err.value.error.is_invalid_root()
    assert err.value.error.get_invalid_root().root_namespace_id == info.root_namespace_id


@pytest.mark.parametrize("name", ["a\x00b", "a\x7fb", "\x7f"])
def test_nul_and_del_names_are_malformed_without_text(sdk_target: SdkTarget, dbx: Any, name: str) -> None:
    dropbox = sdk_target.dropbox
    with pytest.raises(dropbox.exceptions.ApiError) as err:
        dbx.files_upload(b"x", f"{_root()}/{name}")
    reason = err.value.error.get_path().reason
    assert reason.is_malformed_path() and reason.get_malformed_path() is None
    with pytest.raises(dropbox.exceptions.ApiError) as err:
        dbx.files_get_metadata(f"{_root()}/{name}")
    assert err.value.error.get_path().is_malformed_path()
    assert err.value.error.get_path().get_malformed_path() is None


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("\u03a3\u03a3\u03a3", "\u03c3\u03c3\u03c3"),
        ("\u0130zmir", "izmir"),
        ("\ua64a", "\ua64a"),
        ("GRO\u1e9e", "gro\u1e9e"),
        ("\ufb01LE", "\ufb01le"),
    ],
)
def test_path_lower_folds_like_dropbox(dbx: Any, name: str, lower: str) -> None:
    root = _root()
    md = dbx.files_upload(name.encode(), f"{root}/{name}")
    assert md.path_lower == f"{root}/{lower}"
    assert dbx.files_get_metadata(f"{root}/{lower}").id == md.id


def test_case_only_rename_not_in_continue(dbx: Any) -> None:
    root = _root()
    dbx.files_upload(b"x", f"{root}/sub/report.txt")
    cursor = dbx.files_list_folder_get_latest_cursor(root, recursive=True).cursor
    dbx.files_move_v2(f"{root}/sub/report.txt", f"{root}/sub/Report.TXT")
    dbx.files_move_v2(f"{root}/sub", f"{root}/SUB")
    res = dbx.files_list_folder_continue(cursor)
    assert res.entries == [] and not res.has_more
    names = {e.path_display for e in dbx.files_list_folder(root, recursive=True).entries}
    assert f"{root}/SUB/Report.TXT" in names


def test_deleted_folder_cursor_alternatives(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    try:
        for setting in ("reset", "not_found"):
            sdk_target.emu.set_faults(deleted_folder_cursor=setting)
            root = _root()
            dbx.files_upload(b"x", f"{root}/f")
            cursor = dbx.files_list_folder_get_latest_cursor(root).cursor
            dbx.files_delete_v2(root)
            with pytest.raises(dropbox.exceptions.ApiError) as err:
                dbx.files_list_folder_continue(cursor)
            error = err.value.error
            if setting == "reset":
                assert error.is_reset()
            else:
                assert error.is_path() and error.get_path().is_not_found()
    finally:
        sdk_target.emu.set_faults(deleted_folder_cursor="reset")


def test_repeated_paths_in_one_continue_page(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    overwrite = dropbox.files.WriteMode.overwrite
    root = _root()
    dbx.files_upload(b"0", f"{root}/f")
    try:
        sdk_target.emu.set_faults(repeat_paths=True)
        cursor = dbx.files_list_folder_get_latest_cursor(root).cursor
        dbx.files_upload(b"1", f"{root}/f", mode=overwrite)
        dbx.files_delete_v2(f"{root}/f")
        dbx.files_upload(b"2", f"{root}/f")
        entries = dbx.files_list_folder_continue(cursor).entries
        kinds = [type(e).__name__ for e in entries]
        assert kinds == ["FileMetadata", "DeletedMetadata", "FileMetadata"]
        assert all(e.path_lower == f"{root}/f" for e in entries)
    finally:
        sdk_target.emu.set_faults(repeat_paths=False)
