"""The official SDK against an emulator holding a team space: DropboxTeam, as_user, as_admin, with_path_root,
root_info, and the errors Dropbox gives for a wrong member or namespace. Also the single-user path roots."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN
from tests.sdk.conftest import SdkTarget


@pytest.fixture
def team(sdk_target: SdkTarget) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    spec = {
        "name": "Acme",
        "root_namespace_id": "7000",
        "members": [{"name": f"Ann {tag}", "admin": True}, {"name": f"Bob {tag}", "admin": False}],
    }
    yield sdk_target.emu.admin("team", spec)
    sdk_target.emu.admin("team", None, method="DELETE")


@pytest.fixture
def dbx_team(sdk_target: SdkTarget) -> Iterator[Any]:
    client = sdk_target.dropbox.DropboxTeam(
        oauth2_refresh_token=DEV_REFRESH_TOKEN,
        app_key=DEV_APP_KEY,
        app_secret=DEV_APP_SECRET,
        ca_certs=str(sdk_target.cert),
    )
    yield client
    client.close()


def _names(result: Any) -> set[str]:
    return {e.name for e in result.entries}


def test_members_and_root_info(sdk_target: SdkTarget, team: dict[str, Any], dbx_team: Any) -> None:
    ann, bob = team["members"]
    members = dbx_team.team_members_list().members
    assert [m.profile.team_member_id for m in members] == [ann["team_member_id"], bob["team_member_id"]]
    assert members[0].role.is_team_admin() and members[1].role.is_member_only()
    assert members[1].profile.member_folder_id == bob["home_namespace_id"]
    account = dbx_team.as_user(bob["team_member_id"]).users_get_current_account()
    assert isinstance(account.root_info, sdk_target.dropbox.common.TeamRootInfo)
    assert account.root_info.root_namespace_id == "7000"
    assert account.root_info.home_namespace_id == bob["home_namespace_id"]
    assert account.root_info.home_path == "/" + bob["name"]
    assert account.team_member_id == bob["team_member_id"] and account.account_type.is_business()


def test_home_root_and_namespace_views(sdk_target: SdkTarget, team: dict[str, Any], dbx_team: Any) -> None:
    common = sdk_target.dropbox.common
    ann, bob = team["members"]
    as_bob = dbx_team.as_user(bob["team_member_id"])
    md = as_bob.files_upload(b"bob's", "/notes.txt")
    assert md.path_display == "/notes.txt"  # relative to Bob's home
    in_root = as_bob.with_path_root(common.PathRoot.root("7000"))
    assert {ann["name"], bob["name"]} <= _names(in_root.files_list_folder(""))
    got = in_root.files_get_metadata(f"/{bob['name']}/notes.txt")
    assert got.id == md.id and got.path_display == f"/{bob['name']}/notes.txt"
    # the team space folder written from the root view is seen by every member
    in_root.files_upload(b"shared", "/Projects/plan.txt")
    as_ann_root = dbx_team.as_user(ann["team_member_id"]).with_path_root(common.PathRoot.root("7000"))
    _, resp = as_ann_root.files_download("/Projects/plan.txt")
    assert resp.content == b"shared"
    by_ns = as_bob.with_path_root(common.PathRoot.namespace_id(bob["home_namespace_id"]))
    assert _names(by_ns.files_list_folder("")) == {"notes.txt"}
    assert "notes.txt" not in _names(dbx_team.as_user(ann["team_member_id"]).files_list_folder(""))
    # an admin may open another member's home namespace; listing paths stay relative to it
    as_admin = dbx_team.as_admin(ann["team_member_id"])
    other = as_admin.with_path_root(common.PathRoot.namespace_id(bob["home_namespace_id"]))
    entry = other.files_list_folder("").entries[0]
    assert entry.path_display == "/notes.txt"


def test_wrong_member_or_namespace_errors(sdk_target: SdkTarget, team: dict[str, Any], dbx_team: Any) -> None:
    common = sdk_target.dropbox.common
    exc = sdk_target.dropbox.exceptions
    ann, bob = team["members"]
    with pytest.raises(exc.AuthError) as err:
        dbx_team.as_user("dbmid:nobody").files_list_folder("")
    assert err.value.error.is_invalid_select_user()
    with pytest.raises(exc.AuthError) as err:
        dbx_team.as_admin(bob["team_member_id"]).files_list_folder("")
    assert err.value.error.is_invalid_select_admin()
    as_bob = dbx_team.as_user(bob["team_member_id"])
    with pytest.raises(exc.PathRootError) as perr:
        as_bob.with_path_root(common.PathRoot.root("1234")).files_list_folder("")
    assert perr.value.error.is_invalid_root()
    info = perr.value.error.get_invalid_root()
    assert info.root_namespace_id == "7000" and info.home_namespace_id == bob["home_namespace_id"]
    with pytest.raises(exc.PathRootError) as perr:
        as_bob.with_path_root(common.PathRoot.namespace_id(ann["home_namespace_id"])).files_list_folder("")
    assert perr.value.error.is_no_permission()


def test_single_user_path_roots(sdk_target: SdkTarget, dbx: Any) -> None:
    common = sdk_target.dropbox.common
    exc = sdk_target.dropbox.exceptions
    info = dbx.users_get_current_account().root_info
    assert isinstance(info, common.UserRootInfo) and info.root_namespace_id == info.home_namespace_id
    for root in (common.PathRoot.home, common.PathRoot.root(info.root_namespace_id)):
        dbx.with_path_root(root).files_list_folder("")
    dbx.with_path_root(common.PathRoot.namespace_id(info.home_namespace_id)).files_list_folder("")
    with pytest.raises(exc.PathRootError) as err:
        dbx.with_path_root(common.PathRoot.namespace_id("999999")).files_list_folder("")
    assert err.value.error.is_no_permission()
    with pytest.raises(exc.PathRootError) as err:
        dbx.with_path_root(common.PathRoot.root("999999")).files_list_folder("")
    assert err.value.error.is_invalid_root()
    assert err.value.error.get_invalid_root().root_namespace_id == info.root_namespace_id
