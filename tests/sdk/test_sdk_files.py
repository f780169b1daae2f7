"""The official SDK, unchanged, against the emulator: files, sessions, listing, longpoll, errors."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from typing import Any

import pytest

from tests.sdk.conftest import SdkTarget

BLOCK = 4 * 1024 * 1024


def content_hash(data: bytes) -> str:
    blocks = (hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(b"".join(blocks)).hexdigest()


@pytest.fixture
def root() -> str:
    return "/sdk-" + uuid.uuid4().hex[:8]


def test_account(dbx: Any) -> None:
    account = dbx.users_get_current_account()
    assert account.account_id.startswith("dbid:")
    assert account.name.display_name
    usage = dbx.users_get_space_usage()
    assert usage.allocation.is_individual()


def test_upload_get_metadata_download(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    data = "h\u00e9llo \U0001f600".encode() * 100
    path = root + "/D\u00f6cs/r\u00e9sum\u00e9 \U0001f600.txt"
    md = dbx.files_upload(data, path, mode=files.WriteMode.overwrite)
    assert isinstance(md, files.FileMetadata)
    assert md.content_hash == content_hash(data) and md.size == len(data)
    got = dbx.files_get_metadata(path.upper())
    assert isinstance(got, files.FileMetadata) and got.id == md.id and got.rev == md.rev
    folder = dbx.files_get_metadata(root + "/d\u00f6cs")
    assert isinstance(folder, files.FolderMetadata)
    meta, resp = dbx.files_download(path)
    assert resp.content == data and meta.rev == md.rev
    target = sdk_target.emu.data_dir.parent / "dl.bin"
    dbx.files_download_to_file(str(target), path)
    assert target.read_bytes() == data


def test_not_found_is_api_error(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    exceptions = sdk_target.dropbox.exceptions
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_get_metadata(root + "/missing.txt")
    err = info.value.error
    assert err.is_path() and err.get_path().is_not_found()
    assert info.value.request_id
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_download(root + "/missing.txt")
    assert info.value.error.get_path().is_not_found()
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_list_folder(root + "/missing")
    assert info.value.error.get_path().is_not_found()


def test_upload_conflict_and_autorename(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    exceptions = sdk_target.dropbox.exceptions
    dbx.files_upload(b"one", root + "/c.txt")
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_upload(b"two", root + "/c.txt")
    err = info.value.error
    assert err.is_path() and err.get_path().reason.get_conflict().is_file()
    renamed = dbx.files_upload(b"two", root + "/c.txt", autorename=True)
    assert renamed.name == "c (1).txt"


def test_upload_session(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    parts = [os.urandom(BLOCK), os.urandom(BLOCK), os.urandom(1000)]
    start = dbx.files_upload_session_start(parts[0])
    cursor = files.UploadSessionCursor(start.session_id, len(parts[0]))
    dbx.files_upload_session_append_v2(parts[1], cursor)
    cursor.offset += len(parts[1])
    md = dbx.files_upload_session_finish(parts[2], cursor, files.CommitInfo(root + "/session.bin"))
    data = b"".join(parts)
    assert md.size == len(data) and md.content_hash == content_hash(data)
    assert dbx.files_download(root + "/session.bin")[1].content == data


def test_upload_session_incorrect_offset(sdk_target: SdkTarget, dbx: Any) -> None:
    files, exceptions = sdk_target.dropbox.files, sdk_target.dropbox.exceptions
    start = dbx.files_upload_session_start(b"abc")
    with pytest.raises(exceptions.ApiError) as info:
        dbx.files_upload_session_append_v2(b"def", files.UploadSessionCursor(start.session_id, 1))
    err = info.value.error
    assert err.is_incorrect_offset() and err.get_incorrect_offset().correct_offset == 3


def test_concurrent_session_and_finish_batch(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    data = os.urandom(2 * BLOCK + 10)
    start = dbx.files_upload_session_start(b"", session_type=files.UploadSessionType.concurrent)
    sid = start.session_id
    dbx.files_upload_session_append_v2(data[BLOCK:], files.UploadSessionCursor(sid, BLOCK), close=True)
    dbx.files_upload_session_append_v2(data[:BLOCK], files.UploadSessionCursor(sid, 0))
    small = dbx.files_upload_session_start(b"small", close=True).session_id
    result = dbx.files_upload_session_finish_batch_v2(
        [
            files.UploadSessionFinishArg(
                files.UploadSessionCursor(sid, len(data)), files.CommitInfo(root + "/c.bin")
            ),
            files.UploadSessionFinishArg(
                files.UploadSessionCursor(small, 5), files.CommitInfo(root + "/s.bin")
            ),
        ]
    )
    assert [e.is_success() for e in result.entries] == [True, True]
    assert result.entries[0].get_success().content_hash == content_hash(data)
    assert dbx.files_download(root + "/c.bin")[1].content == data


def test_list_folder_then_continue_after_changes(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files = sdk_target.dropbox.files
    dbx.files_upload(b"a", root + "/dir/a.txt")
    dbx.files_upload(b"b", root + "/keep.txt")
    listing = dbx.files_list_folder(root, recursive=True)
    assert {e.path_lower for e in listing.entries} == {
        root,
        root + "/dir",
        root + "/dir/a.txt",
        root + "/keep.txt",
    }
    cursor = listing.cursor
    assert dbx.files_list_folder_continue(cursor).entries == []
    dbx.files_upload(b"b2", root + "/keep.txt", mode=files.WriteMode.overwrite)
    dbx.files_delete_v2(root + "/dir")
    dbx.files_create_folder_v2(root + "/new")
    moved = dbx.files_move_v2(root + "/keep.txt", root + "/new/kept.txt").metadata
    changes = dbx.files_list_folder_continue(cursor)
    kinds = {(type(e).__name__, e.path_lower) for e in changes.entries}
    assert ("DeletedMetadata", root + "/dir") in kinds
    assert ("DeletedMetadata", root + "/keep.txt") in kinds
    assert ("FolderMetadata", root + "/new") in kinds
    assert ("FileMetadata", root + "/new/kept.txt") in kinds
    kept = next(e for e in changes.entries if e.path_lower == root + "/new/kept.txt")
    assert kept.id == moved.id
    assert not changes.has_more


def test_longpoll(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    dbx.files_create_folder_v2(root)
    cursor = dbx.files_list_folder_get_latest_cursor(root, recursive=True).cursor
    # longpoll is a noauth route: a client without any token can call it
    poller = sdk_target.dropbox.Dropbox(
        oauth2_access_token="unused-for-noauth", ca_certs=str(sdk_target.cert)
    )
    result: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        result["res"] = poller.files_list_folder_longpoll(cursor, timeout=30)
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    dbx.files_upload(b"wake", root + "/wake.txt")
    t.join(15)
    assert not t.is_alive()
    assert result["res"].changes is True and result["took"] < 10
    changes = dbx.files_list_folder_continue(cursor)
    assert [e.name for e in changes.entries] == ["wake.txt"]


def test_folder_ops_and_shared_link(sdk_target: SdkTarget, dbx: Any, root: str) -> None:
    files, sharing = sdk_target.dropbox.files, sdk_target.dropbox.sharing
    created = dbx.files_create_folder_v2(root + "/f").metadata
    assert isinstance(created, files.FolderMetadata)
    dbx.files_upload(b"x", root + "/f/x.txt")
    copied = dbx.files_copy_v2(root + "/f", root + "/g").metadata
    assert isinstance(copied, files.FolderMetadata) and copied.id != created.id
    deleted = dbx.files_delete_v2(root + "/f").metadata
    assert isinstance(deleted, files.FolderMetadata)
    link = dbx.sharing_create_shared_link_with_settings(root + "/g/x.txt")
    assert isinstance(link, sharing.FileLinkMetadata) and link.url.startswith("https://")
    links = dbx.sharing_list_shared_links(path=root + "/g/x.txt").links
    assert [x.url for x in links] == [link.url]


def test_rate_limit_and_server_error(sdk_target: SdkTarget) -> None:
    exceptions = sdk_target.dropbox.exceptions
    client = sdk_target.client(max_retries_on_rate_limit=0, max_retries_on_error=0)
    client.users_get_current_account()  # refresh the token before faults start
    try:
        sdk_target.emu.set_faults(rate_limit=1, retry_after_s=2)
        with pytest.raises(exceptions.RateLimitError) as info:
            client.users_get_current_account()
        assert info.value.backoff == 2
        assert info.value.error.reason.is_too_many_requests()
        sdk_target.emu.set_faults(rate_limit=0, server_error=1)
        with pytest.raises(exceptions.InternalServerError):
            client.users_get_current_account()
    finally:
        sdk_target.emu.clear_faults()
