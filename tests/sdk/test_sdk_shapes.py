"""Every JSON shape the emulator sends decodes with the SDK's own stone validators in strict mode.

Strict decoding rejects unknown fields and unknown union tags, so this catches a misspelt field, a
``.tag`` where the type has none, or a nested value that should have been flattened.
"""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

import requests

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN
from tests.sdk.conftest import SdkTarget

BLOCK = 4 * 1024 * 1024


class Raw:
    """Raw HTTP to the HTTPS emulator plus strict decoding with the SDK's route types."""

    def __init__(self, target: SdkTarget) -> None:
        self.t = target
        self.base = target.emu.base_url
        self.http = requests.Session()
        self.http.verify = str(target.cert)
        r = self.http.post(
            f"{self.base}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": DEV_REFRESH_TOKEN},
            auth=(DEV_APP_KEY, DEV_APP_SECRET),
            timeout=30,
        )
        self.auth = {"Authorization": "Bearer " + r.json()["access_token"]}
        self.decoded = 0
        self.ser = importlib.import_module("dropbox.stone_serializers")

    def decode(self, route: Any, r: requests.Response, body: Any = None) -> Any:
        ser = self.ser
        if r.status_code == 200:
            obj = (
                json.loads(r.headers["Dropbox-API-Result"])
                if body is None and "Dropbox-API-Result" in r.headers
                else r.json()
            )
            result = ser.json_compat_obj_decode(route.result_type, obj, strict=True)
        else:
            assert r.status_code == 409, (r.status_code, r.text)
            result = ser.json_compat_obj_decode(route.error_type, r.json()["error"], strict=True)
        self.decoded += 1
        return result

    def rpc(self, route: Any, name: str, arg: Any = None) -> Any:
        r = self.http.post(
            f"{self.base}/2/{name}",
            data=json.dumps(arg),
            headers={**self.auth, "Content-Type": "application/json"},
            timeout=60,
        )
        return self.decode(route, r)

    def upload(self, route: Any, name: str, arg: Any, data: bytes = b"") -> Any:
        r = self.http.post(
            f"{self.base}/2/{name}",
            data=data,
            headers={
                **self.auth,
                "Content-Type": "application/octet-stream",
                "Dropbox-API-Arg": json.dumps(arg),
            },
            timeout=60,
        )
        return self.decode(route, r)


def test_all_shapes_decode_strictly(sdk_target: SdkTarget) -> None:
    raw = Raw(sdk_target)
    f, users, sharing = sdk_target.dropbox.files, sdk_target.dropbox.users, sdk_target.dropbox.sharing
    auth = sdk_target.dropbox.auth
    root = "/shapes-" + uuid.uuid4().hex[:8]

    raw.rpc(users.get_current_account, "users/get_current_account")
    raw.rpc(users.get_space_usage, "users/get_space_usage")

    up = raw.upload(f.upload, "files/upload", {"path": root + "/a.txt"}, b"abc")
    assert up.size == 3
    assert raw.upload(f.upload, "files/upload", {"path": root + "/a.txt"}, b"other").is_path()
    bad_hash = {"path": root + "/b.txt", "content_hash": "0" * 64}
    assert raw.upload(f.upload, "files/upload", bad_hash, b"x").is_content_hash_mismatch()
    assert raw.upload(f.upload, "files/upload", {"path": root + "/a.txt/x"}, b"x").is_path()

    assert isinstance(
        raw.rpc(f.get_metadata, "files/get_metadata", {"path": root + "/a.txt"}), f.FileMetadata
    )
    assert isinstance(raw.rpc(f.get_metadata, "files/get_metadata", {"path": root}), f.FolderMetadata)
    raw.rpc(f.delete_v2, "files/delete_v2", {"path": root + "/a.txt"})
    gone = raw.rpc(f.get_metadata, "files/get_metadata", {"path": root + "/a.txt", "include_deleted": True})
    assert isinstance(gone, f.DeletedMetadata)
    assert raw.rpc(f.get_metadata, "files/get_metadata", {"path": root + "/a.txt"}).is_path()
    assert (
        raw.rpc(f.get_metadata, "files/get_metadata", {"path": root + "/x/"}).get_path().is_malformed_path()
    )

    raw.upload(f.upload, "files/upload", {"path": root + "/d/e.txt"}, b"e")
    listing = raw.rpc(
        f.list_folder, "files/list_folder", {"path": root, "recursive": True, "include_deleted": True}
    )
    assert listing.entries
    raw.rpc(f.list_folder, "files/list_folder", {"path": root + "/d/e.txt"})
    latest = raw.rpc(f.list_folder_get_latest_cursor, "files/list_folder/get_latest_cursor", {"path": root})
    raw.upload(f.upload, "files/upload", {"path": root + "/new.txt"}, b"n")
    r = requests.post(
        f"{raw.base}/2/files/list_folder/longpoll",
        json={"cursor": latest.cursor, "timeout": 30},
        verify=str(sdk_target.cert),
        timeout=60,
    )
    assert raw.decode(f.list_folder_longpoll, r).changes is True
    raw.rpc(f.list_folder_continue, "files/list_folder/continue", {"cursor": listing.cursor})

    r = raw.http.post(
        f"{raw.base}/2/files/download",
        headers={**raw.auth, "Dropbox-API-Arg": json.dumps({"path": root + "/d/e.txt"})},
        timeout=30,
    )
    assert isinstance(raw.decode(f.download, r), f.FileMetadata)
    r = raw.http.post(
        f"{raw.base}/2/files/download",
        headers={**raw.auth, "Dropbox-API-Arg": json.dumps({"path": root})},
        timeout=30,
    )
    assert raw.decode(f.download, r).get_path().is_not_file()

    # sessions
    sid = raw.upload(f.upload_session_start, "files/upload_session/start", {}, b"12345").session_id
    assert (
        raw.upload(
            f.upload_session_append_v2,
            "files/upload_session/append_v2",
            {"cursor": {"session_id": sid, "offset": 5}},
            b"6",
        )
        is None
    )
    err = raw.upload(
        f.upload_session_append_v2,
        "files/upload_session/append_v2",
        {"cursor": {"session_id": sid, "offset": 1}},
        b"x",
    )
    assert err.get_incorrect_offset().correct_offset == 6
    err = raw.upload(
        f.upload_session_finish,
        "files/upload_session/finish",
        {"cursor": {"session_id": sid, "offset": 2}, "commit": {"path": root + "/s.bin"}},
    )
    assert err.get_lookup_failed().get_incorrect_offset().correct_offset == 6
    raw.upload(
        f.upload_session_finish,
        "files/upload_session/finish",
        {"cursor": {"session_id": sid, "offset": 6}, "commit": {"path": root + "/s.bin"}},
    )
    conc = raw.upload(
        f.upload_session_start, "files/upload_session/start", {"session_type": "concurrent"}
    ).session_id
    cur = {"session_id": conc, "offset": 7}
    assert raw.upload(
        f.upload_session_append_v2, "files/upload_session/append_v2", {"cursor": cur}, b"x"
    ).is_concurrent_session_invalid_offset()
    cur["offset"] = 0
    assert raw.upload(
        f.upload_session_append_v2, "files/upload_session/append_v2", {"cursor": cur}, b"x"
    ).is_concurrent_session_invalid_data_size()
    err = raw.upload(
        f.upload_session_finish,
        "files/upload_session/finish",
        {"cursor": cur, "commit": {"path": root + "/c.bin"}},
    )
    assert err.is_concurrent_session_not_closed()
    closed = raw.upload(
        f.upload_session_start, "files/upload_session/start", {"close": True}, b"done"
    ).session_id
    open_sid = raw.upload(f.upload_session_start, "files/upload_session/start", {}, b"open").session_id
    raw.upload(f.upload, "files/upload", {"path": root + "/taken"}, b"t")
    batch = {
        "entries": [
            {"cursor": {"session_id": closed, "offset": 4}, "commit": {"path": root + "/batch.bin"}},
            {"cursor": {"session_id": open_sid, "offset": 4}, "commit": {"path": root + "/o.bin"}},
            {
                "cursor": {"session_id": "pid_upload_session:none", "offset": 0},
                "commit": {"path": root + "/n"},
            },
        ]
    }
    res = raw.rpc(f.upload_session_finish_batch_v2, "files/upload_session/finish_batch_v2", batch)
    assert [e.is_success() for e in res.entries] == [True, False, False]
    job = raw.rpc(
        f.upload_session_finish_batch, "files/upload_session/finish_batch", {"entries": batch["entries"][1:]}
    )
    check = raw.rpc(
        f.upload_session_finish_batch_check,
        "files/upload_session/finish_batch/check",
        {"async_job_id": job.get_async_job_id()},
    )
    assert check.is_complete()

    # namespace writes
    raw.rpc(f.create_folder_v2, "files/create_folder_v2", {"path": root + "/f"})
    assert raw.rpc(f.create_folder_v2, "files/create_folder_v2", {"path": root + "/f"}).is_path()
    raw.rpc(f.move_v2, "files/move_v2", {"from_path": root + "/f", "to_path": root + "/g"})
    raw.rpc(f.copy_v2, "files/copy_v2", {"from_path": root + "/g", "to_path": root + "/h"})
    assert raw.rpc(
        f.move_v2, "files/move_v2", {"from_path": root + "/nope", "to_path": root + "/z"}
    ).is_from_lookup()
    assert raw.rpc(f.move_v2, "files/move_v2", {"from_path": root + "/g", "to_path": root + "/h"}).is_to()
    assert raw.rpc(
        f.move_v2, "files/move_v2", {"from_path": root + "/g", "to_path": root + "/g/in"}
    ).is_cant_move_folder_into_itself()
    assert raw.rpc(f.delete_v2, "files/delete_v2", {"path": root + "/nope"}).is_path_lookup()

    # sharing
    link = raw.rpc(
        sharing.create_shared_link_with_settings,
        "sharing/create_shared_link_with_settings",
        {"path": root + "/s.bin"},
    )
    assert isinstance(link, sharing.FileLinkMetadata)
    again = raw.rpc(
        sharing.create_shared_link_with_settings,
        "sharing/create_shared_link_with_settings",
        {"path": root + "/s.bin"},
    )
    assert again.is_shared_link_already_exists()
    folder_link = raw.rpc(
        sharing.create_shared_link_with_settings,
        "sharing/create_shared_link_with_settings",
        {"path": root + "/g"},
    )
    assert isinstance(folder_link, sharing.FolderLinkMetadata)
    assert (
        len(raw.rpc(sharing.list_shared_links, "sharing/list_shared_links", {"path": root + "/s.bin"}).links)
        == 1
    )

    # lock contention and quota shapes
    emu = sdk_target.emu
    try:
        emu.set_faults(lock_contention=1, seed=11)
        for _ in range(4):
            for route, name, arg in (
                (f.create_folder_v2, "files/create_folder_v2", {"path": root + "/lc"}),
                (f.delete_v2, "files/delete_v2", {"path": root + "/g"}),
                (f.move_v2, "files/move_v2", {"from_path": root + "/g", "to_path": root + "/m"}),
            ):
                r = raw.http.post(f"{raw.base}/2/{name}", json=arg, headers=raw.auth, timeout=30)
                if r.status_code == 429:
                    raw.ser.json_compat_obj_decode(
                        auth.RateLimitError_validator, r.json()["error"], strict=True
                    )
                else:
                    raw.decode(route, r)
        emu.set_faults(lock_contention=0, quota_bytes=1)
        assert (
            raw.upload(f.upload, "files/upload", {"path": root + "/q"}, b"qq")
            .get_path()
            .reason.is_insufficient_space()
        )
    finally:
        emu.clear_faults()
    assert raw.decoded > 50
