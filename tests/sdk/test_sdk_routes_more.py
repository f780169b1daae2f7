"""files/get_temporary_link (the link really serves the file), check/user and the v1 files/delete, through the
official SDK (issue 14 item 5, the simplest routes)."""

from __future__ import annotations

import importlib
import json
import uuid
import warnings
from typing import Any

import pytest
import requests

from tests.sdk.conftest import SdkTarget
from tests.sdk.test_sdk_shapes import Raw


def _root() -> str:
    return "/sdk-more-" + uuid.uuid4().hex[:8]


def test_temporary_link_serves_the_file(sdk_target: SdkTarget, dbx: Any) -> None:
    root = _root()
    data = uuid.uuid4().bytes * 1000
    md = dbx.files_upload(data, f"{root}/r\u00e9port one.bin")
    res = dbx.files_get_temporary_link(f"{root}/R\u00c9PORT ONE.bin")
    assert res.metadata.id == md.id and res.metadata.content_hash == md.content_hash
    assert res.link.startswith(sdk_target.emu.base_url + "/")
    r = requests.get(res.link, verify=str(sdk_target.cert), timeout=30)
    assert r.status_code == 200 and r.content == data
    # the link is for the revision it was made for: an overwrite does not change what it serves
    dbx.files_upload(b"new", f"{root}/r\u00e9port one.bin", mode=sdk_target.dropbox.files.WriteMode.overwrite)
    assert requests.get(res.link, verify=str(sdk_target.cert), timeout=30).content == data
    bogus = res.link.replace("/_tl/", "/_tl/x")
    assert requests.get(bogus, verify=str(sdk_target.cert), timeout=30).status_code == 404


def test_temporary_link_errors(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    root = _root()
    dbx.files_create_folder_v2(root)
    with pytest.raises(dropbox.exceptions.ApiError) as err:
        dbx.files_get_temporary_link(root)
    assert err.value.error.is_path() and err.value.error.get_path().is_not_file()
    with pytest.raises(dropbox.exceptions.ApiError) as err:
        dbx.files_get_temporary_link(root + "/missing")
    assert err.value.error.get_path().is_not_found()


@pytest.mark.parametrize("query", ["", "ping", "\u00e9cho " * 10])
def test_check_user_echoes(dbx: Any, query: str) -> None:
    assert dbx.check_user(query).result == query


def test_check_user_query_too_long(sdk_target: SdkTarget, dbx: Any) -> None:
    dbx.check_and_refresh_access_token()
    with pytest.raises(sdk_target.dropbox.exceptions.BadInputError):
        dbx.request_json_string_with_retry(
            sdk_target.dropbox.session.HOST_API,
            "check/user",
            "rpc",
            b'{"query": "' + b"q" * 501 + b'"}',
            sdk_target.dropbox.dropbox_client.USER_AUTH,
            None,
        )


def test_delete_v1(sdk_target: SdkTarget, dbx: Any) -> None:
    dropbox = sdk_target.dropbox
    root = _root()
    md = dbx.files_upload(b"x", f"{root}/a.txt")
    dbx.files_upload(b"y", f"{root}/sub/b.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        gone = dbx.files_delete(f"{root}/a.txt")
        assert isinstance(gone, dropbox.files.FileMetadata) and gone.id == md.id
        folder = dbx.files_delete(f"{root}/sub")
        assert isinstance(folder, dropbox.files.FolderMetadata)
        with pytest.raises(dropbox.exceptions.ApiError) as err:
            dbx.files_delete(f"{root}/a.txt")
    assert err.value.error.is_path_lookup() and err.value.error.get_path_lookup().is_not_found()
    assert [e.name for e in dbx.files_list_folder(root).entries] == []


def test_new_shapes_decode_strictly(sdk_target: SdkTarget) -> None:
    """The new routes' results and errors, and PathRootError, decode with the SDK's strict validators."""
    raw = Raw(sdk_target)
    files = importlib.import_module("dropbox.files")
    check = importlib.import_module("dropbox.check")
    common = importlib.import_module("dropbox.common")
    root = _root()
    raw.upload(files.upload, "files/upload", {"path": root + "/f.txt"}, b"abc")
    raw.rpc(files.create_folder_v2, "files/create_folder_v2", {"path": root + "/dir"})
    link = raw.rpc(files.get_temporary_link, "files/get_temporary_link", {"path": root + "/f.txt"})
    assert link.metadata.name == "f.txt"
    assert raw.rpc(files.get_temporary_link, "files/get_temporary_link", {"path": root + "/dir"}).is_path()
    assert raw.rpc(check.user, "check/user", {"query": "hi"}).result == "hi"
    assert raw.rpc(files.delete, "files/delete", {"path": root + "/f.txt"}).name == "f.txt"
    assert raw.rpc(files.delete, "files/delete", {"path": root + "/f.txt"}).is_path_lookup()
    bad = raw.rpc(files.get_metadata, "files/get_metadata", {"path": root + "/a\x7f"})
    assert bad.get_path().is_malformed_path()
    for header in ('{".tag": "root", "root": "1"}', '{".tag": "namespace_id", "namespace_id": "1"}'):
        r = raw.http.post(
            f"{raw.base}/2/files/list_folder",
            data=json.dumps({"path": ""}),
            headers={**raw.auth, "Content-Type": "application/json", "Dropbox-API-Path-Root": header},
            timeout=30,
        )
        assert r.status_code == 422
        raw.ser.json_compat_obj_decode(common.PathRootError_validator, r.json()["error"], strict=True)
