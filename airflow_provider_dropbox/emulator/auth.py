"""OAuth 2 for the emulator: authorize codes (secret or PKCE), refresh grants, expiring ``sl.`` tokens.

Tokens are persisted with the tree so a client keeps working across an emulator restart.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .scopes import check_scope, parse_scope
from .store import Store
from .wire import ApiFail, auth_error, bad_input, json_response, text_response

ACCOUNT_ID = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
UID = "3235641"
SCOPES = (
    "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9._\-~+/=]{8,}")


@dataclass
class AuthConfig:
    app_key: str
    app_secret: str
    refresh_token: str
    token_lifetime: int


def _oauth_error(error: str, description: str) -> ApiFail:
    return ApiFail(json_response({"error": error, "error_description": description}, status=400))


class Auth:
    """Access tokens (expiring), refresh tokens (until revoked) and one-time authorization codes."""

    def __init__(self, store: Store, config: AuthConfig) -> None:
        self.store = store
        self.config = config
        self.lock = threading.Lock()
        self.access: dict[str, dict[str, Any]] = store.kv_all("access")
        self.refresh: dict[str, dict[str, Any]] = store.kv_all("refresh")
        self.codes: dict[str, dict[str, Any]] = {}
        self._issued = 0
        dev = self.refresh.get(config.refresh_token)
        if dev is None and store.kv_get("revoked", config.refresh_token) is None:
            self._add_refresh(config.refresh_token, pkce=True)

    def _add_refresh(self, token: str, pkce: bool) -> None:
        self.refresh[token] = {"pkce": pkce}
        self.store.kv_put("refresh", token, self.refresh[token])

    def issue_access(self, refresh_token: str | None, scope: list[str] | None = None) -> tuple[str, int]:
        lifetime = self.config.token_lifetime
        token = "sl.u." + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        rec: dict[str, Any] = {"expires": time.time() + lifetime, "refresh": refresh_token}
        if scope is not None:
            rec["scope"] = scope
        with self.lock:
            self.access[token] = rec
            self.store.kv_put("access", token, rec)
            self._issued += 1
            if self._issued % 256 == 0:
                self._prune()
        return token, lifetime

    def _prune(self) -> None:
        """Forget tokens expired for a day (until then they still answer ``expired_access_token``)."""
        horizon = time.time() - 86400
        for token in [t for t, rec in self.access.items() if rec["expires"] < horizon]:
            del self.access[token]
            self.store.kv_del("access", token)

    # ------------------------------------------------------------ bearer checks

    def check_bearer(self, request: Request, func: str) -> str:
        """Validate ``Authorization: Bearer`` (or the ``authorization`` URL param); returns the token."""
        value = request.headers.get("authorization")
        where = 'HTTP header "Authorization"'
        if value is None:
            value = request.query_params.get("authorization")
            where = 'URL parameter "authorization"'
        if value is None:
            raise bad_input(
                func, 'Must provide HTTP header "Authorization" or URL parameter "authorization".'
            )
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise bad_input(
                func,
                f'Invalid authorization value in {where}: "{value}".  '
                'Expecting "Bearer <oauth2-access-token>".',
            )
        if _TOKEN_RE.fullmatch(token) is None:
            raise auth_error("invalid_access_token")  # as Dropbox: a malformed token is just not valid
        with self.lock:
            rec = self.access.get(token)
        if rec is None:
            raise auth_error("invalid_access_token")
        if time.time() >= rec["expires"]:
            raise auth_error("expired_access_token")
        check_scope(rec.get("scope"), func)
        return token

    def revoke(self, token: str) -> None:
        """Revoke an access token, its refresh token, and every token minted from that refresh token."""
        with self.lock:
            rec = self.access.pop(token, None)
            self.store.kv_del("access", token)
            rt = rec.get("refresh") if rec else None
            if rt:
                self.refresh.pop(rt, None)
                self.store.kv_del("refresh", rt)
                self.store.kv_put("revoked", rt, True)
                for other, orec in list(self.access.items()):
                    if orec.get("refresh") == rt:
                        del self.access[other]
                        self.store.kv_del("access", other)

    # ------------------------------------------------------------ /oauth2/token

    async def token_endpoint(self, request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        params: dict[str, str] = dict(parse_qsl(raw, keep_blank_values=True))
        for k, v in request.query_params.items():
            params.setdefault(k, v)
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                cid, _, csec = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise _oauth_error(
                    "invalid_client", "Invalid client credentials in Authorization header"
                ) from None
            params.setdefault("client_id", cid)
            params.setdefault("client_secret", csec)
        grant = params.get("grant_type")
        if grant is None:
            raise _oauth_error("invalid_request", "No grant_type provided.")
        client_id = params.get("client_id")
        if client_id is None:
            raise _oauth_error("invalid_request", "No client_id provided.")
        if client_id != self.config.app_key:
            raise _oauth_error("invalid_client", "Invalid client_id or client_secret")
        secret = params.get("client_secret")
        if secret is not None and secret != self.config.app_secret:
            raise _oauth_error("invalid_client", "Invalid client_id or client_secret")
        if grant == "refresh_token":
            return self._refresh_grant(params, secret)
        if grant == "authorization_code":
            return self._code_grant(params, secret)
        raise _oauth_error("unsupported_grant_type", f'"{grant}" is not a supported grant type')

    def _refresh_grant(self, params: dict[str, str], secret: str | None) -> Response:
        rt = params.get("refresh_token")
        if not rt:
            raise _oauth_error("invalid_request", "No refresh_token provided.")
        with self.lock:
            rec = self.refresh.get(rt)
        if rec is None:
            raise _oauth_error("invalid_grant", "refresh token is invalid or revoked")
        if secret is None and not rec.get("pkce"):
            raise _oauth_error("invalid_client", "No client_secret provided.")
        scope = parse_scope(params.get("scope"))
        token, lifetime = self.issue_access(rt, scope)
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
        if scope is not None:
            body["scope"] = " ".join(scope)
        return json_response(body)

    def _code_grant(self, params: dict[str, str], secret: str | None) -> Response:
        code = params.get("code", "")
        with self.lock:
            rec = self.codes.pop(code, None)
        if rec is None or time.time() > rec["expires"]:
            raise _oauth_error("invalid_grant", "code doesn't exist or has expired")
        if rec["redirect_uri"] and params.get("redirect_uri") != rec["redirect_uri"]:
            raise _oauth_error("invalid_grant", "redirect_uri mismatch")
        if rec["challenge"]:
            verifier = params.get("code_verifier", "")
            if rec["method"] == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                computed = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            else:
                computed = verifier
            if computed != rec["challenge"]:
                raise _oauth_error("invalid_grant", "invalid code verifier")
        elif secret is None:
            raise _oauth_error("invalid_client", "No client_secret provided.")
        rt = None
        if rec["offline"]:
            rt = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
            with self.lock:
                self._add_refresh(rt, pkce=bool(rec["challenge"]))
        token, lifetime = self.issue_access(rt)
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
        if rt:
            body["refresh_token"] = rt
        body.update(scope=SCOPES, uid=UID, account_id=ACCOUNT_ID)
        return json_response(body)

    # ------------------------------------------------------------ /oauth2/authorize

    async def authorize(self, request: Request) -> Response:
        """Auto-approve: show the code in a small page, and redirect to ``redirect_uri`` if given."""
        q = request.query_params
        if q.get("client_id") != self.config.app_key:
            return text_response("Invalid client_id.", status=400)
        if q.get("response_type", "code") != "code":
            return text_response('Only response_type "code" is supported by the emulator.', status=400)
        method = q.get("code_challenge_method", "plain") if q.get("code_challenge") else ""
        if method not in ("", "S256", "plain"):
            return text_response("Invalid code_challenge_method.", status=400)
        code = secrets.token_urlsafe(32)
        redirect_uri = q.get("redirect_uri", "")
        with self.lock:
            self.codes[code] = {
                "expires": time.time() + 600,
                "redirect_uri": redirect_uri,
                "challenge": q.get("code_challenge", ""),
                "method": method,
                "offline": q.get("token_access_type") == "offline",
            }
        if redirect_uri:
            params = {"code": code}
            if q.get("state") is not None:
                params["state"] = q["state"]
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)
        page = (
            "<!doctype html><title>Dropbox emulator: authorization code</title>"
            "<p>Local Dropbox API emulator (not Dropbox). Access was granted automatically.</p>"
            f"<p>Enter this code into your app: <code id='code'>{html.escape(code)}</code></p>"
        )
        return HTMLResponse(page)
