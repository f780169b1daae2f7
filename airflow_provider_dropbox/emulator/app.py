"""Starlette app factory: one port for the api, content and notify routes, OAuth and the admin routes."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import routes_content, routes_extra, routes_files, routes_other, routes_sessions, team
from .core import Emulator, EmulatorConfig, endpoint
from .wire import ApiFail, rate_limit_response, text_response

ADMIN_PREFIX = "/_emulator/"


class EmulatorMiddleware:
    """Per request: count it, tag the response with ``X-Dropbox-Request-Id`` and ``Date``, expose a connection
    cutter."""

    def __init__(self, app: ASGIApp, emu: Emulator) -> None:
        self.app = app
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.emu.loop = asyncio.get_running_loop()
        path: str = scope["path"]
        if not path.startswith(ADMIN_PREFIX):
            self.emu.count(path)
        scope["emulator.abort"] = _abort_fn(receive)
        request_id = secrets.token_hex(16).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # An exact Date (the server's clock when the answer left): clients may time a cursor by it.
                date = formatdate(time.time(), usegmt=True).encode()
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-dropbox-request-id", request_id),
                    (b"date", date),
                ]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _abort_fn(receive: Receive) -> Callable[[], None] | None:
    """uvicorn's ``receive`` is bound to its request cycle, which holds the transport."""
    cycle: Any = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return None

    def abort() -> None:
        transport.abort()
        cycle.disconnected = True  # uvicorn then silently drops whatever the app still sends

    return abort


def _guard(func: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn ApiFail into its response and a vanished client into a no-op."""

    async def run(request: Request) -> Response:
        try:
            return await func(request)
        except ApiFail as fail:
            return fail.response
        except ClientDisconnect:
            return Response(status_code=400)

    return run


def create_app(config: EmulatorConfig) -> Starlette:
    """Build the emulator app; state lives under ``config.data_dir``."""
    emu = Emulator(config)

    async def oauth_token(request: Request) -> Response:
        f = emu.faults
        if f.roll("rate_limit"):
            return rate_limit_response(
                "too_many_requests", f.settings.retry_after_s, f.settings.rate_limit_text
            )
        if f.roll("server_error"):
            return text_response("Internal Server Error", status=500)
        return await emu.auth.token_endpoint(request)

    routes: list[StarletteRoute] = [
        StarletteRoute("/oauth2/token", _guard(oauth_token), methods=["POST"]),
        StarletteRoute("/oauth2/authorize", _guard(emu.auth.authorize), methods=["GET"]),
    ]
    for spec in routes_files.ROUTES + routes_content.ROUTES + routes_sessions.ROUTES + routes_other.ROUTES:
        routes.append(StarletteRoute(spec.path, _guard(endpoint(emu, spec)), methods=list(spec.methods)))
    for (method, path), handler in {
        **routes_other.admin_routes(emu),
        **routes_other.share_link_routes(emu),
    }.items():
        routes.append(StarletteRoute(path, _guard(handler), methods=[method]))
    for spec in routes_extra.ROUTES:
        routes.append(StarletteRoute(spec.path, _guard(endpoint(emu, spec)), methods=list(spec.methods)))
    for (method, path), handler in {**routes_extra.admin_routes(emu), **team.admin_routes(emu)}.items():
        routes.append(StarletteRoute(path, _guard(handler), methods=[method]))

    async def temporary_link(request: Request) -> Response:
        return await routes_content.serve_temporary_link(request, emu)

    routes.append(
        StarletteRoute(
            routes_content.TEMP_LINK_PREFIX + "{token}/{name:path}", temporary_link, methods=["GET"]
        )
    )

    async def unknown_function(request: Request) -> Response:
        """Dropbox answers a route it does not know with a plain-text 400 (the SDK's BadInputError)."""
        func = request.url.path.removeprefix("/2/")
        return text_response(f'Unknown API function: "{func}".', status=400)

    routes.append(StarletteRoute("/2/{rest:path}", unknown_function, methods=["GET", "POST"]))
    app = _EmulatorApp(routes=routes)
    app.emulator = emu
    app.state.emulator = emu
    return app


class _EmulatorApp(Starlette):
    """Puts EmulatorMiddleware outside Starlette's error middleware, so even a 500 carries a request id."""

    emulator: Emulator

    def build_middleware_stack(self) -> ASGIApp:
        return EmulatorMiddleware(
            team.TeamLayer(super().build_middleware_stack(), self.emulator), self.emulator
        )
