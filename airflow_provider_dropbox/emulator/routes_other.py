"""users/*, auth/token/revoke, sharing/* and the ``/_emulator`` admin routes."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .auth import ACCOUNT_ID
from .core import Call, Emulator, Route, blocking, lookup_error
from .paths import READ_PATH_PATTERN
from .store import ROOT_NAMESPACE_ID, LookupFail, Node, StoreError
from .transfer import FdStream, Throttle
from .wire import api_error, bad_input, json_response, tag, text_response, void_response

ALLOCATED = 2 * 1024**4


async def get_current_account(c: Call) -> Response:
    return json_response(
        {
            "account_id": ACCOUNT_ID,
            "name": {
                "given_name": "Dev",
                "surname": "Emulator",
                "familiar_name": "Dev",
                "display_name": "Dev Emulator",
                "abbreviated_name": "DE",
            },
            "email": "dev@emulator.invalid",
            "email_verified": True,
            "disabled": False,
            "country": "US",
            "locale": "en",
            "referral_link": "https://www.dropbox.com/referrals/emulator",
            "is_paired": False,
            "account_type": {".tag": "pro"},
            "root_info": {
                ".tag": "user",
                "root_namespace_id": ROOT_NAMESPACE_ID,
                "home_namespace_id": ROOT_NAMESPACE_ID,
            },
        }
    )


async def get_space_usage(c: Call) -> Response:
    store = c.emu.store
    allocated = store.quota_bytes if store.quota_bytes is not None else ALLOCATED
    return json_response(
        {"used": store.space_used(), "allocation": {".tag": "individual", "allocated": allocated}}
    )


async def revoke(c: Call) -> Response:
    assert c.token is not None
    await blocking(c.emu.auth.revoke, c.token)
    return void_response()


# ---------------------------------------------------------------- sharing


def _link_metadata(node: Node, link: dict[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = {
        ".tag": node.kind,
        "url": link["url"],
        "id": node.id,
        "name": node.display.rsplit("/", 1)[1],
        "path_lower": node.key,
        "link_permissions": {
            "can_revoke": True,
            "resolved_visibility": {".tag": "public"},
            "visibility_policies": [],
            "can_set_expiry": True,
            "can_remove_expiry": True,
            "allow_download": True,
            "can_allow_download": True,
            "can_disallow_download": True,
            "allow_comments": True,
            "team_restricts_comments": False,
        },
        "preview_type": "file" if node.kind == "file" else "folder",
    }
    if node.kind == "file":
        md.update(
            client_modified=node.client_modified,
            server_modified=node.server_modified,
            rev=node.rev,
            size=node.size,
        )
    return md


async def create_shared_link(c: Call) -> Response:
    path = c.args.req_str("path", pattern=READ_PATH_PATTERN)
    c.args.obj("settings")
    store = c.emu.store
    try:
        node = await blocking(store.lookup, path)
    except LookupFail as e:
        raise lookup_error(e) from None
    existing = await blocking(store.kv_get, "links", node.id)
    if existing is not None:
        md = _link_metadata(node, existing)
        raise api_error(tag("shared_link_already_exists", {".tag": "metadata", "metadata": md}))
    kind = "fi" if node.kind == "file" else "fo"
    token = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    name = quote(node.display.rsplit("/", 1)[1])
    # The link points at this emulator (the host the caller reached it by), where ``serve_shared_link``
    # answers it: a real dropbox.com look-alike would lead nowhere.
    base = str(c.request.base_url).rstrip("/")
    link = {"url": f"{base}/scl/{kind}/{token}/{name}?rlkey={secrets.token_hex(12)}&dl=0"}
    await blocking(store.kv_put, "links", node.id, link)
    return json_response(_link_metadata(node, link))


async def list_shared_links(c: Call) -> Response:
    path = c.args.opt_str("path", pattern=READ_PATH_PATTERN)
    c.args.opt_str("cursor")
    direct_only = c.args.flag("direct_only")
    store = c.emu.store
    links = await blocking(store.kv_all, "links")
    out = []
    if path is not None:
        try:
            target = await blocking(store.lookup, path)
        except LookupFail as e:
            raise lookup_error(e) from None
    for node_id, link in links.items():
        key = store.by_id.get(node_id)
        node = store.nodes.get(key) if key is not None else None
        if node is None:
            continue
        if path is not None:
            if direct_only and node.key != target.key:
                continue
            if node.key != target.key and not target.key.startswith(node.key + "/"):
                continue
        out.append(_link_metadata(node, link))
    return json_response({"links": out, "has_more": False})


async def check_user(c: Call) -> Response:
    """EchoResult: the ``query`` (at most 500 characters) back, for a connectivity check with a user token."""
    query = c.args.opt_str("query", default="")
    assert query is not None
    if len(query) > 500:
        msg = f"'{query}' must be at most 500 characters, got {len(query)}"  # stone's validator wording
        raise bad_input(c.func, f"request body: query: {msg}")
    return json_response({"result": query})


def _find_link(emu: Emulator, token: str, rlkey: str) -> Node | None:
    """The node whose shared link carries ``token`` and ``rlkey`` (None if revoked, moved away or wrong)."""
    store = emu.store
    for node_id, link in store.kv_all("links").items():
        url = str(link.get("url", ""))
        if f"/{token}/" in url and f"rlkey={rlkey}&" in url:
            key = store.by_id.get(node_id)
            return store.nodes.get(key) if key is not None else None
    return None


def share_link_routes(emu: Emulator) -> dict[tuple[str, str], Any]:
    """``GET /scl/{fi|fo}/{token}/{name}?rlkey=..&dl=0|1``: what a shared link opens. A file's bytes
    (inline for ``dl=0``, as a download for ``dl=1``); a folder's entries as a plain-text list."""

    async def serve_shared_link(request: Request) -> Response:
        token = request.path_params["token"]
        rlkey = request.query_params.get("rlkey", "")
        node = await blocking(_find_link, emu, token, rlkey)
        if node is None:
            return text_response("This shared link does not exist (or was revoked).", status=404)
        name = node.display.rsplit("/", 1)[1]
        if node.kind != "file":
            prefix = node.key + "/"
            names = sorted(
                n.display.rsplit("/", 1)[1] + ("/" if n.kind != "file" else "")
                for key, n in list(emu.store.nodes.items())
                if key.startswith(prefix) and "/" not in key[len(prefix) :]
            )
            return text_response("".join(f"{n}\n" for n in names), status=200)
        try:
            node, fd = await blocking(emu.store.open_file, node.id)
        except LookupFail:
            return text_response("This shared link's file is gone.", status=404)
        disposition = "attachment" if request.query_params.get("dl") == "1" else "inline"
        headers = {
            "Content-Length": str(node.size),
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        }
        return StreamingResponse(
            FdStream(fd, 0, node.size, Throttle(None)),
            headers=headers,
            media_type="application/octet-stream",
        )

    return {("GET", "/scl/{kind}/{token}/{name:path}"): serve_shared_link}


ROUTES = [
    Route("/2/check/user", "rpc", check_user),
    Route("/2/users/get_current_account", "rpc", get_current_account),
    Route("/2/users/get_space_usage", "rpc", get_space_usage),
    Route("/2/auth/token/revoke", "rpc", revoke),
    Route("/2/sharing/create_shared_link_with_settings", "rpc", create_shared_link, write=True),
    Route("/2/sharing/list_shared_links", "rpc", list_shared_links),
]


# ---------------------------------------------------------------- /_emulator admin (no token, no faults)


def admin_routes(emu: Emulator) -> dict[tuple[str, str], Any]:
    async def get_faults(request: Request) -> Response:
        return json_response(emu.faults.snapshot())

    async def set_faults(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            snapshot = emu.faults.update(body)
        except ValueError as e:
            return text_response(f"bad fault settings: {e}", status=400)
        emu.apply_settings()
        return json_response(snapshot)

    async def reset_cursors(request: Request) -> Response:
        await blocking(emu.store.reset_cursors)
        return void_response()

    async def populate(request: Request) -> Response:
        """Bulk-create files: ``{"path": "/b", "files": N, "size": B, "per_folder": K, "unique": false}``."""
        try:
            body = json.loads(await request.body() or b"{}")
            args = populate_args(body)
        except ValueError as e:
            return text_response(f"bad populate request: {e}", status=400)
        try:
            result = await blocking(emu.store.populate, *args)
        except StoreError as e:
            return json_response({"error": e.reason}, status=409)
        return json_response(result)

    async def stats(request: Request) -> Response:
        with emu.stats_lock:
            return json_response({"requests": dict(emu.stats)})

    async def stats_reset(request: Request) -> Response:
        with emu.stats_lock:
            emu.stats.clear()
        return void_response()

    return {
        ("GET", "/_emulator/faults"): get_faults,
        ("POST", "/_emulator/faults"): set_faults,
        ("POST", "/_emulator/reset_cursors"): reset_cursors,
        ("POST", "/_emulator/populate"): populate,
        ("GET", "/_emulator/stats"): stats,
        ("POST", "/_emulator/stats/reset"): stats_reset,
    }


def populate_args(body: Any) -> tuple[str, int, int, int, bool, str]:
    """Validate a populate request (admin route body or CLI options) -> ``Store.populate`` arguments."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {"path", "files", "size", "per_folder", "unique", "prefix"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    path, files = body.get("path"), body.get("files")
    size, per_folder = body.get("size", 0), body.get("per_folder", 0)
    unique, prefix = body.get("unique", False), body.get("prefix", "f")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("path must be an absolute folder path like '/bench'")
    for name, v, lo in (("files", files, 1), ("size", size, 0), ("per_folder", per_folder, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}")
    if not isinstance(unique, bool):
        raise ValueError("unique must be a boolean")
    if not isinstance(prefix, str) or not prefix or "/" in prefix:
        raise ValueError("prefix must be a non-empty name without '/'")
    assert isinstance(files, int) and isinstance(size, int) and isinstance(per_folder, int)
    return path, files, size, per_folder, unique, prefix
