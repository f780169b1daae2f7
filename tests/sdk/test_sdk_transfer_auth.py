"""The SDK's file_transfer helpers, its OAuth flow, and refreshing an expired token."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from tests.emulator_process import start_emulator
from tests.sdk.certs import make_cert, sdk_env
from tests.sdk.conftest import SdkTarget

MIB = 1024 * 1024
SEED = 7  # drops two appends, not the finish (deterministic: sequential upload)


def test_uploader_and_downloader(sdk_target: SdkTarget, dbx: Any, tmp_path: Path) -> None:
    ft, files = sdk_target.dropbox.file_transfer, sdk_target.dropbox.files
    root = "/ft-" + uuid.uuid4().hex[:8]
    data = os.urandom(20 * MIB + 12345)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    parallel = ft.Uploader(dbx).upload(
        ft.FileUpload(str(src)), files.CommitInfo(root + "/par.bin"), ft.UploadOptions(parallel_uploads=3)
    )
    sequential = ft.Uploader(dbx).upload_file(str(src), files.CommitInfo(root + "/seq.bin"))
    assert parallel.metadata.content_hash == sequential.metadata.content_hash
    assert parallel.metadata.size == len(data)
    target = ft.Bytes()
    ft.Downloader(dbx).download(root + "/par.bin", target, ft.DownloadOptions(parallel_downloads=4))
    assert target.bytes() == data
    out = tmp_path / "out.bin"
    ft.Downloader(dbx).download_file(root + "/seq.bin", str(out))
    assert out.read_bytes() == data
    # an empty file through the ranged (parallel) path
    dbx.files_upload(b"", root + "/empty")
    target = ft.Bytes()
    ft.Downloader(dbx).download(root + "/empty", target, ft.DownloadOptions(parallel_downloads=2))
    assert target.bytes() == b""


def test_uploader_survives_dropped_append_responses(sdk_target: SdkTarget, dbx: Any, tmp_path: Path) -> None:
    """A committed append whose response is cut: the retry gets incorrect_offset == offset+len (success).

    Sequential, so the seeded fault sequence is deterministic: it drops an append but not the finish
    (a retried finish of a committed session gets ``lookup_failed/closed``, which the SDK doesn't handle).
    """
    ft, files = sdk_target.dropbox.file_transfer, sdk_target.dropbox.files
    data = os.urandom(24 * MIB)
    dbx.users_get_current_account()
    sdk_target.emu.reset_stats()
    try:
        sdk_target.emu.set_faults(drop_after_commit=0.3, seed=SEED)
        res = ft.Uploader(dbx).upload(
            ft.BytesUpload(data),
            files.CommitInfo("/ft-drop-" + uuid.uuid4().hex[:8]),
            ft.UploadOptions(max_attempts=8),
        )
    finally:
        sdk_target.emu.clear_faults()
    assert res.metadata.size == len(data)
    assert sdk_target.emu.stats()["/2/files/upload_session/append_v2"] > 3  # 3 chunks + retries


def test_oauth_pkce_flow(sdk_target: SdkTarget) -> None:
    oauth = sdk_target.dropbox.oauth
    flow = oauth.DropboxOAuth2FlowNoRedirect(
        "dev-app-key", use_pkce=True, token_access_type="offline", ca_certs=str(sdk_target.cert)
    )
    url = flow.start()
    assert url.startswith(sdk_target.emu.base_url + "/oauth2/authorize?")
    page = requests.get(url, verify=str(sdk_target.cert), timeout=10)
    code = page.text.split("<code id='code'>")[1].split("</code>")[0]
    result = flow.finish(code)
    assert result.access_token.startswith("sl.") and result.refresh_token
    client = sdk_target.dropbox.Dropbox(
        oauth2_refresh_token=result.refresh_token, app_key="dev-app-key", ca_certs=str(sdk_target.cert)
    )
    assert client.users_get_current_account().account_id == result.account_id
    client.auth_token_revoke()
    other = sdk_target.dropbox.Dropbox(
        oauth2_refresh_token=result.refresh_token, app_key="dev-app-key", ca_certs=str(sdk_target.cert)
    )
    try:
        other.users_get_current_account()
        raise AssertionError("revoked refresh token still works")
    except sdk_target.dropbox.exceptions.AuthError as e:
        assert e.error.is_invalid_access_token()


SCRIPT = textwrap.dedent(
    """
    import datetime, time
    import dropbox

    cert = {cert!r}
    # proactive: no access token yet, so the SDK refreshes before the first call
    dbx = dropbox.Dropbox(oauth2_refresh_token="dev-refresh-token", app_key="dev-app-key",
                          app_secret="dev-app-secret", ca_certs=cert)
    dbx.users_get_current_account()
    token = dbx._oauth2_access_token
    # reactive: the SDK believes its token is good for an hour; the server says it expired
    later = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
    stale = dropbox.Dropbox(oauth2_access_token=token, oauth2_access_token_expiration=later,
                            oauth2_refresh_token="dev-refresh-token", app_key="dev-app-key",
                            app_secret="dev-app-secret", ca_certs=cert)
    time.sleep(2.5)
    bare = dropbox.Dropbox(oauth2_access_token=token, ca_certs=cert)
    try:
        bare.users_get_current_account()
        raise SystemExit("expired token accepted")
    except dropbox.exceptions.AuthError as e:
        assert e.error.is_expired_access_token(), e
    md = stale.files_upload(b"after refresh", "/refreshed.txt")
    assert stale._oauth2_access_token != token
    print("OK", md.size)
    """
)


def test_expired_token_refresh(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "tls")
    emu = start_emulator(
        tmp_path / "data", "--token-lifetime", "2", "--certfile", str(cert), "--keyfile", str(key)
    )
    try:
        env = {**os.environ, **sdk_env(urlparse(emu.base_url).netloc, cert)}
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(cert=str(cert))],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip() == "OK 13"
        assert emu.stats()["/oauth2/token"] >= 2
    finally:
        emu.stop()
