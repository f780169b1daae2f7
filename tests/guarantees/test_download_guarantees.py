"""Download guarantee: a well-framed body that comes back short (a proxy or server cut it, HTTP framing
intact) is noticed and the rest fetched; the short bytes never replace the local file, even when the answer
carries no ``content_hash`` to check them against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from airflow_provider_dropbox.client import Endpoints
from airflow_provider_dropbox.client.errors import DropboxApiError
from tests.client.conftest import MakeClient, leftovers, write_random
from tests.emulator_process import EmulatorProcess
from tests.guarantees.http_proxy import Tamper, tampering_proxy


@pytest.mark.parametrize("keep_hash", [False, True], ids=["no-hash", "with-hash"])
def test_short_download_body_is_resumed_never_put_in_place(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    remote_dir: str,
    tmp_path: Path,
    keep_hash: bool,
) -> None:
    remote = f"{remote_dir}/short.bin"
    src = tmp_path / "src.bin"
    data = write_random(src, 200_000)
    make_client(emulator).upload_file(src, remote)
    dst = tmp_path / "dst" / "short.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    cut: list[int] = []

    def on_response(path: str, resp: requests.Response) -> bool:
        if path == "/2/files/download" and resp.status_code == 200:
            cut.append(1)
            resp._content = resp.content[: len(resp.content) // 2]  # a well-framed but short body
            if not keep_hash:
                meta = json.loads(resp.headers["Dropbox-API-Result"])
                meta.pop("content_hash", None)
                resp.headers["Dropbox-API-Result"] = json.dumps(meta)
        return True

    with tampering_proxy(Tamper(upstream=emulator.base_url, on_response=on_response)) as url:
        client = make_client(emulator, endpoints=Endpoints.single_host(url))
        try:
            client.download_file(remote, dst, parallelism=1)
        except DropboxApiError:
            assert dst.read_bytes() == b"old"  # refused: the old file stays
        else:
            assert dst.read_bytes() == data  # resumed: exactly the remote bytes
    assert cut
    assert dst.read_bytes() == data, "a short body was not resumed"
    assert leftovers(dst.parent) == []
