"""Team spaces: members, their home namespaces, the team space root, and the headers that pick among them.

Off until ``POST /_emulator/team`` sets a team up (kept with the tree, so it survives a restart). Then:

* the store's tree is the team space (root namespace ``root_namespace_id``); each member's home namespace is
  the folder ``/<member name>`` in it, as in a Dropbox team space;
* ``Dropbox-API-Select-User`` / ``-Select-Admin`` pick the member a request acts for (unknown: 401
  ``invalid_select_user``; not an admin: 401 ``invalid_select_admin``); without them the first member acts;
* ``Dropbox-API-Path-Root`` picks where paths start: ``home`` (the default), ``root`` (must be the team
  space, else 422 ``invalid_root`` carrying the member's root_info) or ``namespace_id`` (the team space or
  the member's own home, any home for an admin, else 422 ``no_permission``);
* paths in request arguments are moved under the chosen namespace's folder, and ``path_lower`` /
  ``path_display`` in answers are made relative to it again;
* ``users/get_current_account`` answers with ``team_root_info``; ``team/members/list`` lists the members.

Without a team, only ``Dropbox-API-Path-Root`` is checked against the account's one namespace (unless the
legacy ``--team-member-id`` mode is on, which checks the headers itself).
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .core import Emulator, blocking
from .paths import norm
from .store import ROOT_NAMESPACE_ID
from .wire import ApiFail, dumps, json_response, text_response

PATH_KEYS = ("path", "from_path", "to_path")
TEAM_ID = "dbtid:AAAemulatorTeam"


@dataclass
class Member:
    team_member_id: str
    account_id: str
    name: str
    email: str
    home_namespace_id: str
    admin: bool

    @property
    def folder(self) -> str:
        return "/" + self.name


@dataclass
class Team:
    name: str
    root_namespace_id: str
    members: list[Member]

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.team_member_id == member_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root_namespace_id": self.root_namespace_id,
            "members": [m.__dict__ for m in self.members],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Team:
        return Team(data["name"], data["root_namespace_id"], [Member(**m) for m in data["members"]])


_CACHE: weakref.WeakKeyDictionary[Emulator, list[Team | None]] = weakref.WeakKeyDictionary()


def load(emu: Emulator) -> Team | None:
    """The team, read from the store once and then kept in memory (every API request asks)."""
    cached = _CACHE.get(emu)
    if cached is None:
        data = emu.store.kv_get("meta", "team")
        cached = _CACHE.setdefault(emu, [Team.from_json(data) if data else None])
    return cached[0]


def _remember(emu: Emulator, team: Team | None) -> None:
    _CACHE[emu] = [team]


def setup(emu: Emulator, spec: dict[str, Any]) -> Team:
    """Build a team from ``{"name", "members": [{"name", "email"?, "admin"?}]}``; creates the home folders."""
    names = spec.get("members")
    if not isinstance(names, list) or not names:
        raise ValueError("members: a non-empty list of {name, admin?} objects")
    members = []
    for i, m in enumerate(names):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"].strip():
            raise ValueError(f"members[{i}]: needs a non-empty name")
        if "/" in m["name"]:
            raise ValueError(f"members[{i}]: a name may not contain '/'")
        members.append(
            Member(
                team_member_id=m.get("team_member_id") or "dbmid:AA" + secrets.token_hex(12),
                account_id="dbid:A" + secrets.token_hex(17),  # AccountId is exactly 40 characters
                name=m["name"],
                email=m.get("email") or f"{m['name'].lower().replace(' ', '.')}@emulator.invalid",
                home_namespace_id=str(4000 + i),
                admin=bool(m.get("admin", i == 0)),
            )
        )
    team = Team(
        str(spec.get("name") or "Emulator Team"), str(spec.get("root_namespace_id") or "3999"), members
    )
    for m in members:
        if emu.store.nodes.get(norm(m.folder)) is None:
            emu.store.create_folder(m.folder, False)
    emu.store.kv_put("meta", "team", team.to_json())
    _remember(emu, team)
    return team


# ---------------------------------------------------------------- answers


def root_info(team: Team, member: Member) -> dict[str, Any]:
    return {
        ".tag": "team",
        "root_namespace_id": team.root_namespace_id,
        "home_namespace_id": member.home_namespace_id,
        "home_path": member.folder,
    }


def _user_root_info() -> dict[str, Any]:
    return {".tag": "user", "root_namespace_id": ROOT_NAMESPACE_ID, "home_namespace_id": ROOT_NAMESPACE_ID}


def _error(error: dict[str, Any], status: int) -> Response:
    summary = error[".tag"] + "/..."
    return json_response({"error_summary": summary, "error": error}, status=status)


def account(team: Team, member: Member) -> dict[str, Any]:
    first, _, last = member.name.partition(" ")
    return {
        "account_id": member.account_id,
        "name": {
            "given_name": first,
            "surname": last,
            "familiar_name": first,
            "display_name": member.name,
            "abbreviated_name": "".join(p[:1] for p in member.name.split()).upper(),
        },
        "email": member.email,
        "email_verified": True,
        "disabled": False,
        "country": "US",
        "locale": "en",
        "referral_link": "https://www.dropbox.com/referrals/emulator",
        "is_paired": False,
        "account_type": {".tag": "business"},
        "root_info": root_info(team, member),
        "team_member_id": member.team_member_id,
    }


def members_list(team: Team) -> dict[str, Any]:
    out = []
    for m in team.members:
        first, _, last = m.name.partition(" ")
        profile = {
            "team_member_id": m.team_member_id,
            "account_id": m.account_id,
            "email": m.email,
            "email_verified": True,
            "status": {".tag": "active"},
            "name": {
                "given_name": first,
                "surname": last,
                "familiar_name": first,
                "display_name": m.name,
                "abbreviated_name": "".join(p[:1] for p in m.name.split()).upper(),
            },
            "membership_type": {".tag": "full"},
            "groups": [],
            "member_folder_id": m.home_namespace_id,
            "root_folder_id": team.root_namespace_id,
        }
        role = {".tag": "team_admin" if m.admin else "member_only"}
        out.append({"profile": profile, "role": role})
    return {"members": out, "cursor": "", "has_more": False}


# ---------------------------------------------------------------- the request layer


def _prefix_paths(value: Any, prefix: str) -> Any:
    """Move every path argument under ``prefix`` (``""`` is the namespace's root)."""
    if isinstance(value, list):
        return [_prefix_paths(v, prefix) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k in PATH_KEYS and isinstance(v, str) and (v == "" or v.startswith("/")):
            out[k] = prefix + v if v not in ("", "/") else prefix
        elif k == "paths" and isinstance(v, list):
            out[k] = [prefix + p if isinstance(p, str) and p.startswith("/") else p for p in v]
        else:
            out[k] = _prefix_paths(v, prefix)
    return out


def _strip_paths(value: Any, prefix: str) -> Any:
    """Make ``path_lower`` / ``path_display`` relative to the namespace again."""
    if isinstance(value, list):
        return [_strip_paths(v, prefix) for v in value]
    if not isinstance(value, dict):
        return value
    low = prefix.lower()
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "path_display" and isinstance(v, str) and norm(v).startswith(low):
            out[k] = v[len(prefix) :]
        elif k == "path_lower" and isinstance(v, str) and v.startswith(low):
            out[k] = v[len(low) :]
        else:
            out[k] = _strip_paths(v, prefix)
    return out


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _parse_root(raw: str | None) -> Any:
    """The header's JSON; unparseable is left to the route pipeline, which answers it as a 400."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _resolve(team: Team, headers: dict[str, str]) -> tuple[Member, str]:
    """The acting member and the folder of the chosen namespace, or a refusal."""
    user = headers.get("dropbox-api-select-user")
    admin = headers.get("dropbox-api-select-admin")
    member = team.members[0]
    if user is not None:
        found = team.member(user)
        if found is None:
            raise _Refusal(_error({".tag": "invalid_select_user"}, 401))
        member = found
    elif admin is not None:
        found = team.member(admin)
        if found is None or not found.admin:
            raise _Refusal(_error({".tag": "invalid_select_admin"}, 401))
        member = found
    root = _parse_root(headers.get("dropbox-api-path-root"))
    kind = root.get(".tag") if isinstance(root, dict) else root
    if root is None or kind == "home":
        return member, member.folder
    if kind == "root":
        if root.get("root") != team.root_namespace_id:
            raise _Refusal(_error({".tag": "invalid_root", "invalid_root": root_info(team, member)}, 422))
        return member, ""
    if kind == "namespace_id":
        ns = root.get("namespace_id")
        if ns == team.root_namespace_id:
            return member, ""
        for m in team.members:
            if m.home_namespace_id == ns and (m is member or member.admin):
                return member, m.folder
        raise _Refusal(_error({".tag": "no_permission"}, 422))
    raise _Refusal(text_response(f'HTTP header "Dropbox-API-Path-Root": unknown tag {kind!r}'))


_RESOLVED = (b"dropbox-api-path-root", b"dropbox-api-select-user", b"dropbox-api-select-admin")


class TeamLayer:
    """ASGI layer in front of the API routes; a no-op for other paths."""

    def __init__(self, app: ASGIApp, emu: Emulator) -> None:
        self.app = app
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/2/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        team = load(self.emu)
        try:
            if team is None:  # the routes check Path-Root and Select-User (core.check_team_headers)
                await self.app(scope, receive, send)
                return
            member, prefix = _resolve(team, headers)
        except _Refusal as r:
            await r.response(scope, receive, send)
            return
        func = path.removeprefix("/2/")
        if func in ("users/get_current_account", "team/members/list"):
            try:
                self.emu.auth.check_bearer(Request(scope), func)
            except ApiFail as fail:
                await fail.response(scope, receive, send)
                return
            answer = account(team, member) if func == "users/get_current_account" else members_list(team)
            await json_response(answer)(scope, receive, send)
            return
        # This layer has resolved the member and the namespace: the routes see a plain user request.
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in _RESOLVED]}
        if prefix == "":
            await self.app(scope, receive, send)
            return
        await self._rewritten(scope, receive, send, headers, prefix)

    async def _rewritten(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], prefix: str
    ) -> None:
        new_headers = []
        for k, v in scope["headers"]:
            if k.lower() == b"dropbox-api-arg":
                try:
                    arg = json.loads(v.decode("utf-8"))
                    v = dumps(_prefix_paths(arg, prefix)).encode("utf-8")
                except ValueError:
                    pass
            new_headers.append((k, v))
        scope = {**scope, "headers": new_headers}
        is_json = "json" in headers.get("content-type", "")
        receive_fn: Callable[[], Any] = receive
        if is_json:
            body = b""
            more = True
            while more:
                msg = await receive()
                body += msg.get("body", b"")
                more = msg.get("more_body", False)
            try:
                body = dumps(_prefix_paths(json.loads(body), prefix)).encode("utf-8")
            except ValueError:
                pass
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive_fn = replay
            scope["headers"] = [
                (k, str(len(body)).encode() if k.lower() == b"content-length" else v) for k, v in new_headers
            ]

        start: Message | None = None
        chunks: list[bytes] = []

        async def send_fixed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                hdrs = []
                for k, v in message.get("headers", []):
                    if k.lower() == b"dropbox-api-result":
                        try:
                            v = dumps(_strip_paths(json.loads(v.decode("utf-8")), prefix)).encode("utf-8")
                        except ValueError:
                            pass
                    hdrs.append((k, v))
                message = {**message, "headers": hdrs}
                ctype = dict((k.lower(), v) for k, v in hdrs).get(b"content-type", b"")
                if b"json" in ctype:
                    start = message  # hold until the body is complete
                    return
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                try:
                    body = dumps(_strip_paths(json.loads(body), prefix)).encode("utf-8")
                except ValueError:
                    pass
                hdrs = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                hdrs.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": hdrs})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive_fn, send_fixed)


def admin_routes(emu: Emulator) -> dict[tuple[str, str], Any]:
    async def set_team(request: Request) -> Response:
        try:
            spec = json.loads(await request.body() or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("body must be a JSON object")
            team = await blocking(setup, emu, spec)
        except ValueError as e:
            return text_response(f"bad team: {e}", status=400)
        return json_response(team.to_json())

    async def drop_team(request: Request) -> Response:
        """Back to a single-user account; the member folders stay as ordinary folders."""
        await blocking(emu.store.kv_del, "meta", "team")
        _remember(emu, None)
        return Response(status_code=204)

    async def get_team(request: Request) -> Response:
        team = load(emu)
        return json_response(team.to_json() if team else None)

    return {
        ("POST", "/_emulator/team"): set_team,
        ("GET", "/_emulator/team"): get_team,
        ("DELETE", "/_emulator/team"): drop_team,
    }
