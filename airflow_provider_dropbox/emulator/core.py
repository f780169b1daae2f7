"""Shared emulator state and the generic route pipeline (faults -> auth -> arg -> handler -> drop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import Auth, AuthConfig
from .faults import Faults, FaultSettings
from .sessions import Sessions
from .store import ROOT_NAMESPACE_ID, LookupFail, Store, StoreError
from .transfer import FdStream
from .wire import (
    RPC_CONTENT_TYPES,
    UPLOAD_CONTENT_TYPES,
    ApiFail,
    Args,
    api_error,
    auth_error,
    bad_input,
    check_content_type,
    header_arg,
    parse_json_text,
    rate_limit_response,
    tag,
    text_response,
)

LONGPOLL_AUTH_TEXT = (
    'Error in call to API function "files/list_folder/longpoll": Your request includes an '
    "Authorization header, but this function does not use it."
)


@dataclass
class EmulatorConfig:
    data_dir: Path
    app_key: str = "dev-app-key"
    app_secret: str = "dev-app-secret"
    refresh_token: str = "dev-refresh-token"
    token_lifetime: int = 14400
    autorename_start: int = 1
    team_member_id: str | None = None  # set: team headers are validated (see check_team_headers)
    team_root_namespace_id: str | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)


class Emulator:
    """Everything a handler needs: the tree, sessions, tokens, faults, stats, change wake-ups."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir, autorename_start=config.autorename_start)
        self.sessions = Sessions(config.data_dir / "sessions")
        self.auth = Auth(
            self.store,
            AuthConfig(config.app_key, config.app_secret, config.refresh_token, config.token_lifetime),
        )
        self.faults = Faults(config.faults)
        self.apply_settings()
        self.stats: dict[str, int] = {}
        self.stats_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changed = asyncio.Event()
        self.batch_jobs: dict[str, Any] = {}
        self.store.listeners.append(self._on_change)

    def apply_settings(self) -> None:
        """Push the fault settings that live elsewhere (token lifetime, quota) to their owners."""
        settings = self.faults.settings
        self.auth.config.token_lifetime = settings.token_lifetime or self.config.token_lifetime
        self.store.quota_bytes = settings.quota_bytes

    def _on_change(self) -> None:
        """Called from worker threads after a journal commit: wake every waiting longpoll."""
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self._pulse)

    def _pulse(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    def count(self, path: str) -> None:
        with self.stats_lock:
            self.stats[path] = self.stats.get(path, 0) + 1


@dataclass
class Call:
    emu: Emulator
    request: Request
    func: str
    args: Args
    token: str | None


Handler = Callable[[Call], Awaitable[Response]]


@dataclass
class Route:
    """One API route; ``write`` routes may get their response dropped after commit."""

    path: str
    style: str  # rpc | upload | download | notify
    handler: Handler
    write: bool = False
    methods: tuple[str, ...] = ("POST",)

    @property
    def func(self) -> str:
        return self.path.removeprefix("/2/")


def abort_connection(request: Request) -> bool:
    """Cut the TCP connection without a response (the client sees a connection error)."""
    abort = request.scope.get("emulator.abort")
    if abort is None:
        return False
    abort()
    return True


def add_stream_faults(c: Call, stream: FdStream, length: int) -> None:
    """The download faults (a connection cut halfway, flipped bytes) for any streamed body."""
    faults = c.emu.faults
    if length and faults.roll("truncate_download"):
        stream.cut_after = length // 2
        stream.on_cut = lambda: abort_connection(c.request)
    if length and faults.roll("corrupt_download"):
        stream.corrupt = True


async def inject_pre_faults(emu: Emulator, request: Request) -> Response | None:
    """Latency, then a 429 or 5xx for a fraction of requests (never for /_emulator routes)."""
    f = emu.faults
    if f.settings.latency_ms:
        await asyncio.sleep(f.settings.latency_ms / 1000)
    if f.roll("rate_limit"):
        return rate_limit_response("too_many_requests", f.settings.retry_after_s, f.settings.rate_limit_text)
    if f.roll("server_error"):
        status = f.choice([500, 503])
        if status == 500:
            return text_response("Internal Server Error", status=500)
        # 503 is the "come back later" answer; it carries a Retry-After like a 429.
        retry = {"Retry-After": str(f.settings.retry_after_s)}
        return text_response("Service Unavailable", status=503, headers=retry)
    return None


async def _parse_arg(route: Route, request: Request) -> Any:
    func = route.func
    if route.style in ("rpc", "notify"):
        raw = await request.body()
        ct = request.headers.get("content-type")
        if not raw.strip() and not ct:
            return None  # curl style: no body, no Content-Type (Void routes)
        check_content_type(request, func, RPC_CONTENT_TYPES, required=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_input(func, "request body: could not decode input as UTF-8") from None
        return parse_json_text(func, text, "request body")
    if route.style == "upload":
        check_content_type(request, func, UPLOAD_CONTENT_TYPES, required=False)
    elif route.style == "download":
        if await request.body():
            raise bad_input(
                func,
                "Unexpected request body. This function takes its argument in the HTTP header "
                '"Dropbox-API-Arg" or URL parameter "arg", and the request body must be empty.',
            )
        ct = request.headers.get("content-type", "")
        if ct and ct.strip().lower() != "text/plain; charset=dropbox-cors-hack":
            raise bad_input(
                func,
                f'You provided a non-empty HTTP "Content-Type" header ("{ct}").  '
                "This API function requires that the header be missing or empty.",
            )
    arg = header_arg(request, func)
    if arg is None:
        raise bad_input(func, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".')
    return arg


def check_team_headers(emu: Emulator, request: Request, func: str) -> None:
    """Team headers. ``Dropbox-API-Path-Root`` is always checked: ``home``, the account's root namespace
    (or ``--team-root-namespace-id``) pass; an unknown ``root`` gets 422 ``invalid_root`` (with the
    account's root info), an unknown ``namespace_id`` 422 ``no_permission`` (PathRootError). Select
    headers are ignored unless started with ``--team-member-id``: then ``Dropbox-API-Select-User/Admin``
    must name that member (else 401 ``invalid_select_user/admin``)."""
    cfg = emu.config
    raw = request.headers.get("dropbox-api-path-root")
    root = None if raw is None else parse_json_text(func, raw, 'HTTP header "Dropbox-API-Path-Root"')
    if cfg.team_member_id is not None:
        for header, tag_name in (
            ("dropbox-api-select-user", "invalid_select_user"),
            ("dropbox-api-select-admin", "invalid_select_admin"),
        ):
            value = request.headers.get(header)
            if value is not None and value != cfg.team_member_id:
                raise auth_error(tag_name)
    if root is None:
        return
    kind = root.get(".tag") if isinstance(root, dict) else root
    allowed = {ROOT_NAMESPACE_ID, cfg.team_root_namespace_id or ROOT_NAMESPACE_ID}
    if kind == "home":
        return
    if not isinstance(root, dict) or kind not in ("root", "namespace_id"):
        raise bad_input(func, 'HTTP header "Dropbox-API-Path-Root": unknown tag')
    if root.get(kind) in allowed:
        return
    if kind == "namespace_id":
        raise api_error(tag("no_permission"), status=422)
    info = {".tag": "user", "root_namespace_id": ROOT_NAMESPACE_ID, "home_namespace_id": ROOT_NAMESPACE_ID}
    raise api_error(tag("invalid_root", info), status=422)


def lock_fault(c: Call) -> str | None:
    """Lock contention, rolled just before a write commits: None, "429" or "409" (half each)."""
    faults = c.emu.faults
    if not faults.roll("lock_contention"):
        return None
    return "429" if faults.choice([True, False]) else "409"


def lock_429(c: Call) -> ApiFail:
    return ApiFail(rate_limit_response("too_many_write_operations", c.emu.faults.settings.retry_after_s))


def check_lock(c: Call, nested_error: Any) -> None:
    """Raise lock contention (429, or the route's nested 409 error) for a fraction of writes."""
    kind = lock_fault(c)
    if kind == "429":
        raise lock_429(c)
    if kind == "409":
        raise api_error(nested_error)


def endpoint(emu: Emulator, route: Route) -> Callable[[Request], Awaitable[Response]]:
    """The pipeline every API route runs through."""

    async def run(request: Request) -> Response:
        pre = await inject_pre_faults(emu, request)
        if pre is not None:
            return pre
        try:
            token = None
            if route.style == "notify":
                if "authorization" in request.headers:
                    return text_response(LONGPOLL_AUTH_TEXT)
            else:
                token = emu.auth.check_bearer(request, route.func)
                check_team_headers(emu, request, route.func)
            arg = await _parse_arg(route, request)
            where = "request body" if route.style in ("rpc", "notify") else 'HTTP header "Dropbox-API-Arg"'
            call = Call(emu, request, route.func, Args(route.func, arg, where), token)
            response = await route.handler(call)
        except ApiFail as fail:
            return fail.response
        if route.write and response.status_code < 300 and emu.faults.roll("drop_after_commit"):
            abort_connection(request)
        return response

    return run


async def blocking(func: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking store call in the thread pool."""
    return await run_in_threadpool(func, *args)


def lookup_error(e: StoreError, wrapper: str = "path") -> ApiFail:
    """LookupError nested in a route union, e.g. ``{".tag": "path", "path": {".tag": "not_found"}}``."""
    return api_error(tag(wrapper, e.reason))


__all__ = ["LookupFail", "StoreError"]
