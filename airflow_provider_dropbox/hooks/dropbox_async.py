"""Async access to Dropbox for triggers (runs inside the triggerer's event loop).

Only ``list_folder/longpoll`` is done natively with ``httpx.AsyncClient``: it needs no authorization and
blocks for minutes, so it must not hold a thread. Authenticated calls (``list_folder/continue``,
``get_latest_cursor``) go through the synchronous client in ``asyncio.to_thread``, so token refresh, retries
and error decoding live in one place (the client) and are not duplicated here.

The connection is read with ``await BaseHook.aget_connection`` / ``await conn.aextra_dejson()`` and new
access tokens are masked with ``amask_secret``: their sync counterparts may deadlock in the event loop.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from airflow_provider_dropbox.changes import revisions_arg, server_time
from airflow_provider_dropbox.longpoll import (
    LONGPOLL_JITTER,
    LONGPOLL_MIN,
    clamp_longpoll_timeout,
)

if TYPE_CHECKING:
    from airflow_provider_dropbox.client import DropboxClient

LONGPOLL_ROUTE = "files/list_folder/longpoll"


class DropboxAsyncHook(BaseHook):
    """Trigger-side counterpart of :class:`~airflow_provider_dropbox.hooks.dropbox.DropboxHook`.

    :param dropbox_conn_id: Airflow connection id of type ``dropbox``.
    """

    conn_name_attr = "dropbox_conn_id"
    default_conn_name = "dropbox_default"
    conn_type = "dropbox"
    hook_name = "Dropbox (async)"

    def __init__(self, dropbox_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropbox_conn_id = dropbox_conn_id
        self._client: DropboxClient | None = None
        self._notify_base: str | None = None
        self._ca_bundle: str | None = None
        self._http: httpx.AsyncClient | None = None
        self._client_lock = asyncio.Lock()

    async def get_client(self) -> DropboxClient:
        """Build the sync client once, from the connection read asynchronously."""
        async with self._client_lock:
            if self._client is None:
                conn = await _aget_connection(self.dropbox_conn_id)
                # Masks the extra's secrets through the async path before anything reads them.
                if hasattr(conn, "aextra_dejson"):
                    await conn.aextra_dejson()
                if conn.password:
                    await _amask(conn.password)
                loop = asyncio.get_running_loop()

                def on_new_token(token: str) -> None:
                    # Called from the worker thread doing the refresh; mask on the loop, don't block.
                    asyncio.run_coroutine_threadsafe(_amask(token), loop)

                self._client = await asyncio.to_thread(_client_for, conn, on_new_token)
                self._notify_base = str(self._client.endpoints.notify).rstrip("/")
                verify = self._client.session.verify
                self._ca_bundle = verify if isinstance(verify, str) else None
            return self._client

    async def get_latest_cursor(self, path: str, recursive: bool = True) -> str:
        client = await self.get_client()
        return await asyncio.to_thread(client.get_latest_cursor, path, recursive=recursive)

    async def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]:
        """All pages since ``cursor``; raises the client's ``CursorResetError`` on 409 ``reset``."""
        client = await self.get_client()
        return await asyncio.to_thread(client.list_changes, cursor)

    async def latest_cursor_at(self, path: str, recursive: bool = True) -> tuple[str, str | None]:
        """A cursor for "now" and the server time it was taken (see ``DropboxHook.latest_cursor_at``)."""
        client = await self.get_client()

        def call() -> tuple[str, str | None]:  # one thread: the Date read is this call's
            cursor = client.get_latest_cursor(path, recursive=recursive)
            return cursor, server_time(client.last_server_date())

        return await asyncio.to_thread(call)

    async def list_changes_at(self, cursor: str) -> tuple[list[dict[str, Any]], str, str | None]:
        """Entries since ``cursor``, the next cursor and the server time it was taken."""
        client = await self.get_client()

        def call() -> tuple[list[dict[str, Any]], str, str | None]:
            entries, new_cursor = client.list_changes(cursor)
            return entries, new_cursor, server_time(client.last_server_date())

        return await asyncio.to_thread(call)

    async def snapshot_at(
        self, path: str, recursive: bool = True
    ) -> tuple[list[dict[str, Any]], str, str | None]:
        """Every entry under ``path``, the cursor after the listing and the server time it was taken."""
        client = await self.get_client()

        def call() -> tuple[list[dict[str, Any]], str, str | None]:
            entries, cursor = client.list_folder_snapshot(path, recursive=recursive)
            return entries, cursor, server_time(client.last_server_date())

        return await asyncio.to_thread(call)

    async def list_revisions(self, path_lower: str) -> Any:
        """``files/list_revisions`` of one path (path mode): what tells added from modified."""
        client = await self.get_client()
        return await asyncio.to_thread(client.rpc, "files/list_revisions", revisions_arg(path_lower))

    async def longpoll(self, cursor: str, timeout: int = LONGPOLL_MIN) -> dict[str, Any]:
        """``{"changes": bool, "backoff": int | None}``; unauthenticated, so no token ever leaves here.

        Raises the client's typed errors (``CursorResetError`` on ``reset``, ``RateLimitError``, ...), and
        ``DropboxConnectionError`` when the notify host cannot be reached; the caller decides on retries.
        """
        from airflow_provider_dropbox.client import errors

        await self.get_client()
        timeout = clamp_longpoll_timeout(timeout)
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, read=timeout + LONGPOLL_JITTER + 10),
                headers={"User-Agent": "airflow-provider-dropbox"},
                # the connection's CA bundle, like the sync client; else httpx's default (certifi)
                verify=ssl.create_default_context(cafile=self._ca_bundle) if self._ca_bundle else True,
            )
        url = f"{self._notify_base}/2/{LONGPOLL_ROUTE}"
        try:
            resp = await self._http.post(url, json={"cursor": cursor, "timeout": timeout})
        except httpx.HTTPError as exc:
            raise errors.DropboxConnectionError(
                f"Could not reach the Dropbox notify host for {LONGPOLL_ROUTE}: {type(exc).__name__}: {exc}",
                route=LONGPOLL_ROUTE,
            ) from exc
        if resp.status_code == 200:
            data = resp.json() or {}
            return {"changes": bool(data.get("changes")), "backoff": data.get("backoff")}
        try:
            body = resp.json()
        except (json.JSONDecodeError, ValueError):
            body = None
        retry_after = resp.headers.get("Retry-After")
        raise errors.api_error_from_response(
            route=LONGPOLL_ROUTE,
            status=resp.status_code,
            body=body,
            text=resp.text,
            request_id=resp.headers.get("X-Dropbox-Request-Id"),
            path=None,
            retry_after_header=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)


async def _aget_connection(conn_id: str) -> Any:
    """``BaseHook.aget_connection`` where the Task SDK has it; else the sync lookup off the event loop."""
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:
        return await aget(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)


async def _amask(token: str) -> None:
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # older Task SDK: the sync call, off the event loop
        from airflow.sdk.log import mask_secret

        await asyncio.to_thread(mask_secret, token)
        return
    await amask_secret(token)


def _client_for(conn: Any, on_new_token: Any) -> DropboxClient:
    """Same connection -> client mapping and validation as ``DropboxHook`` (run in a worker thread)."""
    from airflow_provider_dropbox.client import DropboxClient
    from airflow_provider_dropbox.hooks.dropbox import connection_options

    options = connection_options(conn)
    return DropboxClient(
        options["credentials"],
        endpoints=options["endpoints"],
        timeout=options["timeout"],
        retry_deadline=options["retry_deadline"],
        connect_retry_deadline=options["connect_retry_deadline"],
        parallelism=2,
        team_member_id=options["team_member_id"],
        root_namespace_id=options["root_namespace_id"],
        on_new_token=on_new_token,
        ca_bundle=options["ca_bundle"],
    )
