"""Access tokens: a static token, or the refresh-token flow; plus PKCE helpers for the one-time code exchange.

Short-lived tokens (4 h) are the only kind Dropbox issues now, so a long-running task must refresh: 5 minutes
before expiry, and once more when a request still comes back 401 ``expired_access_token``. Many transfer
threads share one ``TokenManager``; the lock makes one thread refresh while the others wait and reuse the
result. Tokens and secrets never appear in messages or logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import string
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests

from airflow_provider_dropbox.client.config import Credentials, Endpoints, header_problem
from airflow_provider_dropbox.client.errors import (
    AuthError,
    BadInputError,
    DropboxApiError,
    ExpiredAccessTokenError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    RateLimitError,
    ServerError,
    redact,
)
from airflow_provider_dropbox.client.retry import RetryPolicy

log = logging.getLogger(__name__)

REFRESH_MARGIN = 300.0
"""Refresh this many seconds before the token expires (the SDK's TOKEN_EXPIRATION_BUFFER)."""

TOKEN_ROUTE = "oauth2/token"


class TokenManager:
    """Hands out a valid access token; thread-safe."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoints: Endpoints,
        session: requests.Session,
        retry_policy: RetryPolicy,
        timeout: float,
        on_new_token: Callable[[str], None] | None = None,
    ) -> None:
        if not credentials.refresh_token and not credentials.access_token:
            raise AuthError(
                "No Dropbox credentials: give a refresh token with the app key (and secret unless PKCE), "
                "or an access token"
            )
        if credentials.refresh_token and not credentials.app_key:
            raise AuthError(
                "A Dropbox refresh token needs the app key (client_id) to be refreshed; set the app key"
            )
        if credentials.access_token:
            check_token(credentials.access_token, "access token in the connection")
        self._credentials = credentials
        self._endpoints = endpoints
        self._session = session
        self._retry = retry_policy
        self._timeout = timeout
        self._on_new_token = on_new_token
        self._lock = threading.Lock()
        self._token: str | None = credentials.access_token
        self._expires_at: float | None = None  # monotonic; None = unknown (trust it until a 401)
        self._margin = REFRESH_MARGIN
        self.refresh_count = 0

    @property
    def can_refresh(self) -> bool:
        return bool(self._credentials.refresh_token)

    def token(self) -> str:
        """A token that is valid for at least ``REFRESH_MARGIN`` more seconds (as far as we know)."""
        token = self._token
        if token is not None and not self._expiring():
            return token
        with self._lock:
            if self._token is None or self._expiring():
                if not self.can_refresh:
                    assert self._token is not None
                    return self._token
                self._refresh_locked()
            assert self._token is not None
            return self._token

    def token_expired(self, stale: str) -> str:
        """Called on 401 ``expired_access_token`` with the token that was rejected; returns a fresh one.

        If another thread already replaced ``stale``, its token is returned without a second refresh."""
        if not self.can_refresh:
            raise ExpiredAccessTokenError(
                "The Dropbox access token has expired and there is no refresh token to renew it; configure "
                "the app key, app secret and a refresh token (run the authorization helper once)"
            )
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            self._refresh_locked()
            assert self._token is not None
            return self._token

    def _expiring(self) -> bool:
        return self._expires_at is not None and time.monotonic() >= self._expires_at - self._margin

    def _refresh_locked(self) -> None:
        creds = self._credentials
        form = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token or ""}
        form["client_id"] = creds.app_key or ""
        if creds.app_secret:
            form["client_secret"] = creds.app_secret
        started = time.monotonic()
        # Inside a request's retries this is one attempt (the request's budget decides about another);
        # outside any, it is its own operation with its own budget.
        payload = self._retry.call(
            "token refresh", lambda: token_request(self._session, self._endpoints, form, self._timeout)
        )
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("The Dropbox token endpoint answered without an access token")
        if self._on_new_token is not None:
            # Masked before anything can quote it, even the error below for an unusable token.
            self._on_new_token(token)
        check_token(token, "access token the Dropbox token endpoint returned")
        expires_in = payload.get("expires_in")
        self._token = token
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
            self._expires_at = started + float(expires_in)
            # A token living less than 20 minutes (tests, odd servers) would otherwise be refreshed before
            # every request; keep at least three quarters of its life.
            self._margin = min(REFRESH_MARGIN, float(expires_in) / 4)
        else:
            self._expires_at = None
        self.refresh_count += 1
        log.info("Dropbox access token refreshed (valid for %s s)", expires_in)


def check_token(token: str, what: str) -> str:
    """``token`` if it can travel in an ``Authorization`` header, else ``InvalidTokenError``.

    Without this, ``requests`` raises ``InvalidHeader`` quoting the whole header (token included) for a line
    break, and ``http.client`` a ``UnicodeEncodeError`` carrying it for a non-Latin-1 character."""
    problem = header_problem(token)
    if problem:
        fix = (
            "the token endpoint (or a proxy in front of it) sent a malformed token; check the API base URL"
            if "endpoint" in what
            else "paste the token again without line breaks or spaces (or use a refresh token)"
        )
        raise InvalidTokenError(
            f"The Dropbox {what} {problem}, so it cannot be sent; {fix}", route=TOKEN_ROUTE
        )
    return token


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that an exception message or log line may hold: as is, escaped the way
    ``repr``, JSON and ``unicode_escape`` write it, percent-encoded, as UTF-8 read as Latin-1, and each
    line of it. A masker that knows only the raw value misses ``'abc\\r\\ndef'`` in a message."""
    forms = {secret, secret.strip()}
    forms.add(repr(secret)[1:-1])
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(secret.encode("unicode_escape").decode("ascii"))
    forms.add(secret.encode("utf-8", "backslashreplace").decode("latin-1"))
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret, safe=""))
    forms.update(part for part in re.split(r"[\s\x00-\x1f\x7f]+", secret) if len(part) >= 8)
    return {form for form in forms if len(form) >= 4}


def token_request(
    session: requests.Session, endpoints: Endpoints, form: dict[str, str], timeout: float
) -> dict[str, Any]:
    """POST a form to /oauth2/token and decode the answer into a dict or a typed error.

    Token-endpoint errors are 400 JSON ``{"error": ..., "error_description": ...}`` (not 401)."""
    resp = session.post(
        endpoints.token,
        data=form,
        timeout=(min(10.0, timeout), timeout),
        verify=session.verify,  # explicit, or REQUESTS_CA_BUNDLE would override the configured CA bundle
    )
    request_id = resp.headers.get("X-Dropbox-Request-Id")
    tail = f" (request id {request_id})" if request_id else ""
    if resp.status_code == 200:
        try:
            data = resp.json()
        except ValueError as exc:
            raise AuthError(f"The Dropbox token endpoint answered with non-JSON{tail}") from exc
        if not isinstance(data, dict):
            raise AuthError(f"The Dropbox token endpoint answered with unexpected JSON{tail}")
        return data
    common: dict[str, Any] = {"route": TOKEN_ROUTE, "status": resp.status_code, "request_id": request_id}
    if resp.status_code == 429:
        try:
            wait: float | None = float(resp.headers.get("Retry-After", ""))
        except ValueError:
            wait = None
        raise RateLimitError(f"Dropbox token endpoint rate limited{tail}", retry_after=wait, **common)
    if resp.status_code >= 500:
        raise ServerError(f"Dropbox token endpoint error HTTP {resp.status_code}{tail}", **common)
    code, description = "", ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            code = str(body.get("error") or "")
            description = str(body.get("error_description") or "")
    except ValueError:
        description = resp.text.strip()[:200]
    description = redact(description)
    common["error_summary"] = code
    common["error"] = {".tag": code} if code else None
    grant = form.get("grant_type")
    if code == "invalid_grant":
        if grant == "refresh_token":
            raise InvalidRefreshTokenError(
                f"The Dropbox refresh token is invalid or revoked ({description or code}); run the "
                f"authorization helper again and store the new refresh token in the connection{tail}",
                **common,
            )
        raise AuthError(
            f"The Dropbox authorization code was rejected ({description or code}); codes are single-use and "
            f"short-lived, so authorize again{tail}",
            **common,
        )
    if code in ("invalid_client", "unauthorized_client"):
        raise AuthError(
            f"Dropbox rejected the app key or app secret ({description or code}); check them in the "
            f"connection{tail}",
            **common,
        )
    if resp.status_code in (401, 403) or code:
        raise AuthError(f"Dropbox token request failed: {code} {description}".rstrip() + tail, **common)
    raise BadInputError(
        f"Dropbox token request failed with HTTP {resp.status_code}: {description}{tail}", **common
    )


# ---------------------------------------------------------------- PKCE one-time authorization (console helpe

_VERIFIER_ALPHABET = string.ascii_letters + string.digits


def generate_pkce_pair(length: int = 128) -> tuple[str, str]:
    """``(code_verifier, code_challenge)`` for PKCE with S256 (RFC 7636: 43..128 unreserved chars)."""
    if not 43 <= length <= 128:
        raise ValueError("PKCE code_verifier length must be between 43 and 128")
    verifier = "".join(secrets.choice(_VERIFIER_ALPHABET) for _ in range(length))
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def build_authorize_url(
    app_key: str,
    *,
    code_challenge: str | None = None,
    endpoints: Endpoints | None = None,
    redirect_uri: str | None = None,
    state: str | None = None,
    scope: str | None = None,
    token_access_type: str = "offline",
) -> str:
    """The URL a person opens to approve the app; ``offline`` makes the exchange return a refresh token."""
    params = {"client_id": app_key, "response_type": "code", "token_access_type": token_access_type}
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    if state:
        params["state"] = state
    if scope:
        params["scope"] = scope
    base = (endpoints or Endpoints()).authorize
    return f"{base}?{urllib.parse.urlencode(params)}"


def exchange_code(
    code: str,
    *,
    app_key: str,
    code_verifier: str | None = None,
    app_secret: str | None = None,
    redirect_uri: str | None = None,
    endpoints: Endpoints | None = None,
    timeout: float = 30.0,
    ca_bundle: str | None = None,
) -> dict[str, Any]:
    """Trade the pasted authorization code for tokens (``access_token``, ``refresh_token``,
    ``expires_in``...).

    PKCE sends ``code_verifier`` and no secret; a confidential app sends ``app_secret`` instead."""
    if not code_verifier and not app_secret:
        raise AuthError("exchange_code needs the PKCE code_verifier or the app secret")
    form = {"grant_type": "authorization_code", "code": code.strip(), "client_id": app_key}
    if code_verifier:
        form["code_verifier"] = code_verifier
    if app_secret:
        form["client_secret"] = app_secret
    if redirect_uri:
        form["redirect_uri"] = redirect_uri
    with requests.Session() as session:
        session.verify = ca_bundle or True
        try:
            return token_request(session, endpoints or Endpoints(), form, timeout)
        except requests.RequestException as exc:
            raise DropboxApiError(
                f"Could not reach the Dropbox token endpoint ({type(exc).__name__}); check the network",
                route=TOKEN_ROUTE,
            ) from exc
