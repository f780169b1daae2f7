"""OAuth 2: refresh grant, code grant (secret / Basic / PKCE), authorize page and redirect, revoke, expiry."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.emulator.helpers import Api, summary_ok
from tests.emulator_process import EmulatorProcess, start_emulator

KEY, SECRET = "dev-app-key", "dev-app-secret"


def token(base: str, auth: tuple[str, str] | None = None, **form: str) -> requests.Response:
    return requests.post(f"{base}/oauth2/token", data=form, auth=auth, timeout=10)


def authorize(base: str, **params: str) -> requests.Response:
    return requests.get(
        f"{base}/oauth2/authorize",
        params={"client_id": KEY, "response_type": "code", **params},
        allow_redirects=False,
        timeout=10,
    )


def code_from_page(r: requests.Response) -> str:
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    return r.text.split("<code id='code'>")[1].split("</code>")[0]


def test_refresh_grant_shape(emulator: EmulatorProcess) -> None:
    r = token(
        emulator.base_url,
        grant_type="refresh_token",
        refresh_token="dev-refresh-token",
        client_id=KEY,
        client_secret=SECRET,
    )
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["access_token"].startswith("sl.") and body["token_type"] == "bearer"
    assert body["expires_in"] == 14400


def test_refresh_grant_with_basic_auth(emulator: EmulatorProcess) -> None:
    r = token(emulator.base_url, (KEY, SECRET), grant_type="refresh_token", refresh_token="dev-refresh-token")
    assert r.status_code == 200


def test_token_errors(emulator: EmulatorProcess) -> None:
    base = emulator.base_url
    r = token(base, grant_type="refresh_token", refresh_token="bogus", client_id=KEY, client_secret=SECRET)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}
    r = token(
        base, grant_type="refresh_token", refresh_token="dev-refresh-token", client_id=KEY, client_secret="x"
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    r = token(base, grant_type="refresh_token", refresh_token="dev-refresh-token", client_id="other")
    assert r.json()["error"] == "invalid_client"
    r = token(base, grant_type="password", client_id=KEY)
    assert r.json()["error"] == "unsupported_grant_type"


def test_code_grant_with_secret_and_offline(emulator: EmulatorProcess) -> None:
    base = emulator.base_url
    code = code_from_page(authorize(base, token_access_type="offline"))
    r = token(base, grant_type="authorization_code", code=code, client_id=KEY, client_secret=SECRET)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"] and body["uid"] and body["account_id"].startswith("dbid:")
    assert body["access_token"].startswith("sl.")
    # a code is single-use
    r = token(base, grant_type="authorization_code", code=code, client_id=KEY, client_secret=SECRET)
    assert r.json()["error"] == "invalid_grant"
    # the new refresh token works
    r = token(base, (KEY, SECRET), grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert r.status_code == 200


def test_code_grant_online_has_no_refresh_token(emulator: EmulatorProcess) -> None:
    code = code_from_page(authorize(emulator.base_url))
    r = token(emulator.base_url, (KEY, SECRET), grant_type="authorization_code", code=code)
    assert "refresh_token" not in r.json()


def test_code_grant_without_secret_or_verifier_fails(emulator: EmulatorProcess) -> None:
    code = code_from_page(authorize(emulator.base_url))
    r = token(emulator.base_url, grant_type="authorization_code", code=code, client_id=KEY)
    assert r.status_code == 400


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_pkce(emulator: EmulatorProcess, method: str) -> None:
    base = emulator.base_url
    verifier = secrets.token_urlsafe(64)[:128]
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if method == "S256"
        else verifier
    )
    page = authorize(
        base, code_challenge=challenge, code_challenge_method=method, token_access_type="offline"
    )
    code = code_from_page(page)
    r = token(base, grant_type="authorization_code", code=code, client_id=KEY, code_verifier="wrong" * 10)
    assert r.json()["error"] == "invalid_grant"
    code = code_from_page(
        authorize(base, code_challenge=challenge, code_challenge_method=method, token_access_type="offline")
    )
    r = token(base, grant_type="authorization_code", code=code, client_id=KEY, code_verifier=verifier)
    assert r.status_code == 200, r.text
    rt = r.json()["refresh_token"]
    # PKCE refresh tokens refresh without a secret
    r = token(base, grant_type="refresh_token", refresh_token=rt, client_id=KEY)
    assert r.status_code == 200


def test_authorize_redirects_with_state(emulator: EmulatorProcess) -> None:
    base = emulator.base_url
    r = authorize(base, redirect_uri="http://localhost:9999/cb", state="xyz")
    assert r.status_code == 302
    loc = urlparse(r.headers["Location"])
    q = parse_qs(loc.query)
    assert loc.netloc == "localhost:9999" and q["state"] == ["xyz"]
    r = token(base, grant_type="authorization_code", code=q["code"][0], client_id=KEY, client_secret=SECRET)
    assert r.json()["error"] == "invalid_grant"  # redirect_uri must be repeated
    r = authorize(base, redirect_uri="http://localhost:9999/cb")
    code = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    r = token(
        base,
        grant_type="authorization_code",
        code=code,
        client_id=KEY,
        client_secret=SECRET,
        redirect_uri="http://localhost:9999/cb",
    )
    assert r.status_code == 200


def test_authorize_wrong_client(emulator: EmulatorProcess) -> None:
    r = requests.get(f"{emulator.base_url}/oauth2/authorize", params={"client_id": "nope"}, timeout=10)
    assert r.status_code == 400


def test_revoke_cascades_to_refresh_token(emulator: EmulatorProcess) -> None:
    base = emulator.base_url
    code = code_from_page(authorize(base, token_access_type="offline"))
    body = token(base, (KEY, SECRET), grant_type="authorization_code", code=code).json()
    rt, at1 = body["refresh_token"], body["access_token"]
    at2 = token(base, (KEY, SECRET), grant_type="refresh_token", refresh_token=rt).json()["access_token"]
    r = requests.post(
        f"{base}/2/auth/token/revoke",
        data="null",
        headers={"Authorization": f"Bearer {at1}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200 and r.content == b"null" and r.headers["Content-Type"] == "application/json"
    for at in (at1, at2):
        r = requests.post(
            f"{base}/2/users/get_current_account", headers={"Authorization": f"Bearer {at}"}, timeout=10
        )
        assert r.status_code == 401 and r.json()["error"] == {".tag": "invalid_access_token"}
    r = token(base, (KEY, SECRET), grant_type="refresh_token", refresh_token=rt)
    assert r.json()["error"] == "invalid_grant"


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = start_emulator(tmp_path / "data", "--token-lifetime", "2")
    try:
        yield emu
    finally:
        emu.stop()


def test_access_token_expires(short_tokens: EmulatorProcess) -> None:
    api = Api(short_tokens)
    assert api.rpc("users/get_current_account").status_code == 200
    time.sleep(2.2)
    r = api.rpc("users/get_current_account")
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"] == {".tag": "expired_access_token"}
    assert summary_ok(r.json(), "expired_access_token")
    api.token = api.refresh()
    assert api.rpc("users/get_current_account").status_code == 200


def test_custom_credentials(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data", "--app-key", "k1", "--app-secret", "s1", "--refresh-token", "r1")
    try:
        r = token(emu.base_url, ("k1", "s1"), grant_type="refresh_token", refresh_token="r1")
        assert r.status_code == 200
        r = token(emu.base_url, (KEY, SECRET), grant_type="refresh_token", refresh_token="dev-refresh-token")
        assert r.status_code == 400
    finally:
        emu.stop()
