"""Token and retry guarantees the README makes, each defended by a test that fails when it is broken.

- A token whose lifetime is known is refreshed *before* it expires: no request ever meets
  ``expired_access_token``.
- The triggerer's async hook masks every access token it refreshes.
- A non-retryable error (``path/not_found`` and friends) costs exactly one request.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import Endpoints
from airflow_provider_dropbox.client.errors import PathNotFoundError
from tests.client.conftest import MakeClient
from tests.emulator_process import EmulatorProcess
from tests.guarantees.http_proxy import Tamper, tampering_proxy
from tests.hooks.conftest import MakeConn

TOKEN = "/oauth2/token"


# ------------------------------------------------------------------- refresh before expiry (6)


@pytest.mark.parametrize("wait_s", [3.3, 4.5], ids=["inside-margin", "past-expiry"])
def test_token_with_known_lifetime_is_refreshed_before_expiry(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, wait_s: float
) -> None:
    """Tokens live 4 s here (margin = a quarter of the life): a call 3.3 s or 4.5 s after the first must
    refresh first, so the server never answers 401."""
    faulty_emulator.set_faults(token_lifetime=4)
    tamper = Tamper(upstream=faulty_emulator.base_url)
    with tampering_proxy(tamper) as url:
        client = make_client(faulty_emulator, endpoints=Endpoints.single_host(url))
        client.get_current_account()
        assert client.auth.refresh_count == 1
        time.sleep(wait_s)
        client.get_current_account()
        assert client.auth.refresh_count == 2
    statuses = [status for path, status in tamper.seen if path != TOKEN]
    assert statuses and all(s == 200 for s in statuses), tamper.seen
    assert [p for p, _ in tamper.seen].count(TOKEN) == 2


# -------------------------------------------------------------- async hook masks new tokens (3)


def test_async_hook_masks_a_token_refreshed_in_the_triggerer(make_conn: MakeConn) -> None:
    from airflow.sdk.log import redact

    from airflow_provider_dropbox.hooks.dropbox_async import DropboxAsyncHook

    hook = DropboxAsyncHook(dropbox_conn_id=make_conn())

    async def scenario() -> str:
        client = await hook.get_client()
        await hook.get_latest_cursor("")  # first call: the refresh happens in a worker thread
        await asyncio.sleep(0.2)  # the masking is scheduled back onto the loop
        token = client.auth.token()
        await hook.aclose()
        return token

    token = asyncio.run(scenario())
    assert token.startswith("sl.")
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"


def test_async_hook_masks_every_later_refresh(faulty_emulator: EmulatorProcess, make_conn: MakeConn) -> None:
    """Not only the first token: one refreshed later, ahead of expiry, is masked too."""
    from airflow.sdk.log import redact

    from airflow_provider_dropbox.hooks.dropbox_async import DropboxAsyncHook

    faulty_emulator.set_faults(token_lifetime=2)
    hook = DropboxAsyncHook(dropbox_conn_id=make_conn(base_url=faulty_emulator.base_url))

    async def scenario() -> list[str]:
        client = await hook.get_client()
        tokens = []
        for _ in range(2):
            await hook.get_latest_cursor("")
            await asyncio.sleep(0.2)
            tokens.append(client.auth.token())
            await asyncio.sleep(1.6)
        await hook.aclose()
        return tokens

    tokens = asyncio.run(scenario())
    assert len(set(tokens)) == 2
    for token in tokens:
        assert redact(f"t={token}") == "t=***"


# --------------------------------------------------------- non-retryable costs one request (7)


def test_not_found_costs_exactly_one_request(
    faulty_emulator: EmulatorProcess, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(faulty_emulator)
    client.get_current_account()  # token refresh out of the way
    faulty_emulator.reset_stats()
    with pytest.raises(PathNotFoundError):
        client.get_metadata("/no/such/file.txt")
    with pytest.raises(PathNotFoundError):
        client.download_file("/no/such/file.txt", tmp_path / "x")
    with pytest.raises(PathNotFoundError):
        list(client.list_folder("/no/such/folder"))
    stats = faulty_emulator.stats()
    assert stats.get("/2/files/get_metadata") == 1, stats
    assert stats.get("/2/files/download") == 1, stats
    assert stats.get("/2/files/list_folder") == 1, stats
    assert not (tmp_path / "x").exists()


def test_conflict_costs_exactly_one_request(
    faulty_emulator: EmulatorProcess, make_client: MakeClient
) -> None:
    from airflow_provider_dropbox.client.errors import DropboxApiError

    client = make_client(faulty_emulator)
    client.create_folder("/one-request")
    faulty_emulator.reset_stats()
    with pytest.raises(DropboxApiError):
        client.create_folder("/one-request", exist_ok=False)
    assert faulty_emulator.stats().get("/2/files/create_folder_v2") == 1
