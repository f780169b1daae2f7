"""Tokens: refresh before expiry and on 401, revoked refresh tokens fail fast, PKCE, no secrets in logs."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_dropbox.client import (
    Credentials,
    DropboxClient,
    Endpoints,
    build_authorize_url,
    errors,
    exchange_code,
    generate_pkce_pair,
)
from tests.client.conftest import MakeClient, dev_credentials, write_random
from tests.emulator_process import (
    DEV_APP_KEY,
    DEV_APP_SECRET,
    DEV_REFRESH_TOKEN,
    EmulatorProcess,
    start_emulator,
)

MiB = 1024 * 1024


@pytest.fixture
def short_token_emulator(tmp_path: Path):  # type: ignore[no-untyped-def]
    emu = start_emulator(tmp_path / "emu", "--token-lifetime", "2")
    try:
        yield emu
    finally:
        emu.stop()


def _raw_token(emu: EmulatorProcess) -> str:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": DEV_REFRESH_TOKEN,
        "client_id": DEV_APP_KEY,
        "client_secret": DEV_APP_SECRET,
    }
    return str(requests.post(f"{emu.base_url}/oauth2/token", data=form, timeout=10).json()["access_token"])


def test_transfers_outlive_short_tokens(
    short_token_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    """2 s tokens; a throttled upload/download takes several lifetimes and every new token is reported."""
    seen: list[str] = []
    client = make_client(short_token_emulator, on_new_token=seen.append, parallelism=2)
    src = tmp_path / "a.bin"
    # 16 MiB at 3 MB/s per request: four 4 MiB chunks of ~1.4 s each, so the upload alone spans about three
    # token lifetimes (8 MiB spanned barely more than one and left the count below to timing).
    data = write_random(src, 16 * MiB)
    short_token_emulator.set_faults(bandwidth_mbps=24)
    client.upload_file(src, "/a.bin", single_request_limit=4 * MiB, chunk_size=4 * MiB, parallelism=1)
    short_token_emulator.clear_faults()
    time.sleep(1.6)
    client.download_file("/a.bin", tmp_path / "a.out", parallelism=2)
    assert (tmp_path / "a.out").read_bytes() == data
    assert len(seen) >= 3 and len(set(seen)) == len(seen)
    assert all(t.startswith("sl.") for t in seen)


def test_refresh_once_on_expired_401(short_token_emulator: EmulatorProcess, make_client: MakeClient) -> None:
    """A token of unknown age (from the connection) is used until Dropbox says expired; then one refresh."""
    token = _raw_token(short_token_emulator)
    seen: list[str] = []
    client = make_client(
        short_token_emulator, credentials=dev_credentials(access_token=token), on_new_token=seen.append
    )
    client.get_current_account()
    assert seen == []  # the given token was still good
    time.sleep(2.1)
    short_token_emulator.reset_stats()
    assert client.get_current_account()["account_id"].startswith("dbid:")
    stats = short_token_emulator.stats()
    assert stats["/2/users/get_current_account"] == 2  # 401 expired, then the re-send
    assert stats["/oauth2/token"] == 1 and len(seen) == 1


def test_expired_static_token_fails_clearly(
    short_token_emulator: EmulatorProcess, make_client: MakeClient
) -> None:
    client = make_client(
        short_token_emulator, credentials=Credentials(access_token=_raw_token(short_token_emulator))
    )
    time.sleep(2.1)
    short_token_emulator.reset_stats()
    with pytest.raises(errors.ExpiredAccessTokenError, match="refresh token"):
        client.get_current_account()
    assert short_token_emulator.stats() == {"/2/users/get_current_account": 1}


def test_one_refresh_for_many_threads(short_token_emulator: EmulatorProcess, make_client: MakeClient) -> None:
    client = make_client(short_token_emulator, parallelism=8)
    client.get_current_account()
    time.sleep(2.1)
    short_token_emulator.reset_stats()
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            client.get_current_account()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert short_token_emulator.stats()["/oauth2/token"] == 1


def test_revoked_refresh_token_fails_fast(fresh_emulator: EmulatorProcess, make_client: MakeClient) -> None:
    first = make_client(fresh_emulator)
    first.get_current_account()
    assert first.rpc("auth/token/revoke") is None  # revokes the refresh token too
    fresh_emulator.reset_stats()
    started = time.monotonic()
    with pytest.raises(errors.AuthError) as info:
        first.get_current_account()
    assert "invalid_access_token" in info.value.tags
    second = make_client(fresh_emulator)
    with pytest.raises(errors.InvalidRefreshTokenError) as info2:
        second.list_folder_snapshot("")
    elapsed = time.monotonic() - started
    message = str(info2.value)
    assert "invalid or revoked" in message and "authorization helper" in message
    assert DEV_REFRESH_TOKEN not in message
    assert elapsed < 2.0
    # No retry storm: one API call for the dead access token, one token request for the dead refresh token.
    assert fresh_emulator.stats() == {"/2/users/get_current_account": 1, "/oauth2/token": 1}


def test_bad_app_secret_and_unknown_refresh_token(emulator: EmulatorProcess, make_client: MakeClient) -> None:
    with pytest.raises(errors.AuthError, match="app key or app secret") as info:
        make_client(emulator, credentials=dev_credentials(app_secret="wrong")).get_current_account()
    assert not isinstance(info.value, errors.InvalidRefreshTokenError)
    with pytest.raises(errors.InvalidRefreshTokenError):
        make_client(emulator, credentials=dev_credentials(refresh_token="nope")).get_current_account()


def test_missing_credentials_are_rejected_up_front() -> None:
    with pytest.raises(errors.AuthError, match="No Dropbox credentials"):
        DropboxClient(Credentials(app_key="k"))
    with pytest.raises(errors.AuthError, match="app key"):
        DropboxClient(Credentials(refresh_token="r"))


def test_pkce_code_exchange_end_to_end(emulator: EmulatorProcess, make_client: MakeClient) -> None:
    endpoints = Endpoints.single_host(emulator.base_url)
    verifier, challenge = generate_pkce_pair()
    url = build_authorize_url(DEV_APP_KEY, code_challenge=challenge, endpoints=endpoints)
    page = requests.get(url, timeout=10).text
    code = re.search(r"<code id='code'>([^<]+)</code>", page)
    assert code is not None
    tokens = exchange_code(code.group(1), app_key=DEV_APP_KEY, code_verifier=verifier, endpoints=endpoints)
    assert tokens["refresh_token"] and tokens["access_token"].startswith("sl.")
    # The new refresh token works without a secret (PKCE app).
    client = make_client(
        emulator, credentials=Credentials(app_key=DEV_APP_KEY, refresh_token=tokens["refresh_token"])
    )
    assert client.get_current_account()["account_id"].startswith("dbid:")
    with pytest.raises(errors.AuthError, match="single-use"):
        exchange_code(code.group(1), app_key=DEV_APP_KEY, code_verifier=verifier, endpoints=endpoints)


def test_no_secret_in_logs_or_errors(
    short_token_emulator: EmulatorProcess,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        client = make_client(short_token_emulator, on_new_token=seen.append)
        src = tmp_path / "s.txt"
        src.write_text("x")
        client.upload_file(src, "/s.txt")
        time.sleep(2.1)
        client.download_file("/s.txt", tmp_path / "s.out")
        short_token_emulator.set_faults(rate_limit=0.5, server_error=0.3, retry_after_s=0, seed=3)
        for _ in range(5):
            client.get_current_account()
        short_token_emulator.clear_faults()
        messages = []
        for bad in (dev_credentials(app_secret="wrong"), dev_credentials(refresh_token="dead-refresh")):
            try:
                make_client(short_token_emulator, credentials=bad).get_current_account()
            except errors.DropboxApiError as exc:
                messages.append(str(exc) + repr(exc))
    text = "\n".join([r.getMessage() for r in caplog.records] + messages)
    assert seen
    for secret in [*seen, DEV_APP_SECRET, DEV_REFRESH_TOKEN, "dead-refresh", "wrong"]:
        assert secret not in text
