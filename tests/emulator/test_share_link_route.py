"""Issue 16 item 4: the emulator's shared links point at the emulator and open what was shared."""

from __future__ import annotations

import requests

from tests.emulator.helpers import Api


def test_file_link_points_at_the_emulator_and_serves_the_bytes(api: Api, root: str) -> None:
    data = bytes(range(256)) * 300  # binary, more than one read chunk would hold if it were small
    api.upload(root + "/rép ort.bin", data)
    link = api.ok("sharing/create_shared_link_with_settings", {"path": root + "/rép ort.bin"})
    url = link["url"]
    assert url.startswith(api.base + "/scl/fi/"), url
    assert "dropbox.com" not in url
    inline = requests.get(url, timeout=10)
    assert inline.status_code == 200 and inline.content == data
    assert inline.headers["Content-Disposition"].startswith("inline")
    download = requests.get(url.replace("dl=0", "dl=1"), timeout=10)
    assert download.content == data and download.headers["Content-Disposition"].startswith("attachment")
    # list_shared_links hands out the same working URL
    listed = api.ok("sharing/list_shared_links", {"path": root + "/rép ort.bin"})["links"]
    assert [x["url"] for x in listed] == [url]


def test_folder_link_lists_the_folder(api: Api, root: str) -> None:
    api.upload(root + "/dir/a.txt", b"a")
    api.upload(root + "/dir/sub/b.txt", b"b")
    link = api.ok("sharing/create_shared_link_with_settings", {"path": root + "/dir"})
    assert link["url"].startswith(api.base + "/scl/fo/")
    r = requests.get(link["url"], timeout=10)
    assert r.status_code == 200 and r.text.splitlines() == ["a.txt", "sub/"]


def test_wrong_key_or_deleted_file_is_404(api: Api, root: str) -> None:
    api.upload(root + "/gone.txt", b"x")
    url = api.ok("sharing/create_shared_link_with_settings", {"path": root + "/gone.txt"})["url"]
    wrong = url.split("rlkey=")[0] + "rlkey=000&dl=0"
    assert requests.get(wrong, timeout=10).status_code == 404
    api.ok("files/delete_v2", {"path": root + "/gone.txt"})
    assert requests.get(url, timeout=10).status_code == 404
