"""``files/list_revisions`` through the official SDK, and its result and error shapes decoded strictly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.sdk.conftest import SdkTarget
from tests.sdk.test_sdk_shapes import Raw


def test_list_revisions_through_the_sdk(sdk_target: SdkTarget, dbx: Any) -> None:
    files, exceptions = sdk_target.dropbox.files, sdk_target.dropbox.exceptions
    root = "/sdk-rev-" + uuid.uuid4().hex[:8]
    path = root + "/r.txt"
    first = dbx.files_upload(b"1", path)
    second = dbx.files_upload(b"2", path, mode=files.WriteMode.overwrite)
    res = dbx.files_list_revisions(path, limit=5)
    assert isinstance(res, files.ListRevisionsResult)
    assert res.is_deleted is False and res.server_deleted is None and res.has_more is False
    assert [e.rev for e in res.entries] == [second.rev, first.rev]
    assert all(isinstance(e, files.FileMetadata) for e in res.entries)
    by_id = dbx.files_list_revisions(first.id, mode=files.ListRevisionsMode.id, include_restorable_info=True)
    assert [(e.rev, e.is_restorable) for e in by_id.entries] == [(second.rev, True), (first.rev, True)]
    older = dbx.files_list_revisions(path, before_rev=second.rev)
    assert [e.rev for e in older.entries] == [first.rev]

    dbx.files_delete_v2(path)
    gone = dbx.files_list_revisions(path)
    assert gone.is_deleted is True and gone.server_deleted is not None and len(gone.entries) == 2

    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_list_revisions(root + "/missing.txt")
    assert info.value.error.is_path() and info.value.error.get_path().is_not_found()
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_list_revisions(path, before_rev="0123456789abcdef0")
    assert info.value.error.is_invalid_before_rev()
    raw = Raw(sdk_target)
    route = files.list_revisions
    for arg in (
        {"path": path},
        {"path": path, "mode": "id", "include_restorable_info": True},
        {"path": root},
        {"path": root + "/missing.txt"},
        {"path": path, "before_rev": "0123456789abcdef0"},
        {"path": path, "mode": "id", "before_rev": first.rev},
    ):
        raw.rpc(route, "files/list_revisions", arg)
    assert raw.decoded == 6
