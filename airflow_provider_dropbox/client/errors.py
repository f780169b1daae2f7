"""Typed errors decoded from Dropbox's stone error tree.

Callers branch on the class, people read the message: every message names the route, the path when one is
known, and what to do about it. Messages never contain tokens or secrets (only paths, tags, request ids)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


class DropboxApiError(Exception):
    """Base of every error the client raises on purpose (API answers and bad local input alike).

    ``permanent`` says whether running the same call again, unchanged, cannot succeed (bad input,
    bad credentials, a path of the wrong kind): callers such as Airflow operators fail at once instead of
    retrying. ``False`` (the default) for anything a later attempt may get past.
    """

    permanent: bool = False

    def __init__(
        self,
        message: str,
        *,
        route: str = "",
        status: int | None = None,
        error_summary: str = "",
        error: Any = None,
        request_id: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.route = route
        self.status = status
        self.error_summary = error_summary
        self.error = error
        self.request_id = request_id
        self.path = path

    @property
    def tags(self) -> list[str]:
        """Every `.tag` in the error tree, outermost first (e.g. ``["path", "conflict", "file"]``)."""
        return list(iter_tags(self.error))

    def __str__(self) -> str:
        return self.message


class PathNotFoundError(DropboxApiError):
    """The remote path (or a parent) does not exist."""


class NotAFileError(DropboxApiError):
    """A file was expected at the remote path but a folder is there."""

    permanent = True


class NotAFolderError(DropboxApiError):
    """A folder was expected at the remote path but a file is there."""

    permanent = True


class PathConflictError(DropboxApiError):
    """Something already exists at the target path (WriteError.conflict)."""


class MalformedPathError(DropboxApiError):
    """The remote path is not a valid Dropbox path (checked locally before any request, or by the server)."""

    permanent = True


class DisallowedNameError(MalformedPathError):
    """Dropbox refuses to store an item with this name (``desktop.ini``, ``thumbs.db``, ``.dropbox``, ...)."""


class InsufficientSpaceError(DropboxApiError):
    """The Dropbox account is out of quota."""


class AuthError(DropboxApiError):
    """401/403 and token-endpoint failures: the credentials are wrong, expired for good, or lack a scope."""

    permanent = True


class ExpiredAccessTokenError(AuthError):
    """401 ``expired_access_token``; the client refreshes once and retries by itself when it can."""

    permanent = False


class InvalidRefreshTokenError(AuthError):
    """The refresh token is invalid or revoked (400 ``invalid_grant``); never retried."""


class RateLimitError(DropboxApiError):
    """429, or 409 lock contention (``too_many_write_operations``); retried with the server's wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class CursorResetError(DropboxApiError):
    """The list_folder cursor was invalidated; list the folder again to get a new one."""


class BadInputError(DropboxApiError):
    """HTTP 400 (the server rejected the request; the body is plain text) or 422 (bad path root)."""

    permanent = True


class ServerError(DropboxApiError):
    """HTTP 5xx; transient, retried (no sooner than a ``Retry-After`` the server sent, e.g. with a 503)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class DropboxConnectionError(DropboxApiError):
    """The host could not be reached or the connection broke, even after retries."""


class DropboxUnreachableError(DropboxConnectionError):
    """No connection could be made at all (refused, unknown host, no answer); ``host``/``port`` say where."""

    def __init__(
        self, message: str, *, host: str | None = None, port: int | None = None, route: str = ""
    ) -> None:
        super().__init__(message, route=route)
        self.host = host
        self.port = port


class LocalPathError(DropboxApiError):
    """Bad local input: a missing file, a directory where a file is expected, an unwritable destination."""

    permanent = True


class LocalConflictError(LocalPathError):
    """``overwrite='error'``: local files are in the way with different content; nothing was written."""

    def __init__(self, conflicts: Sequence[str]) -> None:
        shown = ", ".join(conflicts[:10]) + (" ..." if len(conflicts) > 10 else "")
        super().__init__(
            f"{len(conflicts)} local file(s) exist with different content (overwrite='error'): {shown}; "
            "move them away or pick overwrite='if_changed'/'never'. Nothing was downloaded",
            route="download_folder",
            path=conflicts[0] if conflicts else "",
        )
        self.conflicts = list(conflicts)


class LocalSourceMissingError(LocalPathError):
    """The local file, folder or glob to upload is not there (yet): an upstream step may still write it."""

    permanent = False


class LocalFileChangedError(LocalPathError):
    """The local file changed (size, modification time, inode or content) while it was being uploaded, and
    did not hold still for a retry; nothing that mixes two versions was committed."""

    permanent = False


class InvalidTokenError(AuthError):
    """A token holds a character an HTTP header cannot carry (a line break, a control or non-ASCII
    character); the message says where, never what the token is."""


class InvalidArgumentError(DropboxApiError, ValueError):
    """A call argument is out of its documented range (e.g. ``parallelism`` above ``MAX_PARALLELISM``)."""

    permanent = True


class ContentHashMismatchError(DropboxApiError):
    """Bytes on one side do not hash to what the other side reported (corrupt transfer or a file changed)."""


class DownloadTooLargeError(DropboxApiError):
    """A download grew past the ``max_bytes`` its caller allowed (e.g. a folder zip holding more than the
    files wanted from it); nothing was kept."""


class UploadSessionError(DropboxApiError):
    """An upload session call failed (``lookup_failed``, ``incorrect_offset``, concurrent-session rules)."""

    def __init__(self, message: str, *, correct_offset: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.correct_offset = correct_offset


class BatchUploadError(DropboxApiError):
    """Some entries of ``upload_files`` failed for good; ``failures`` maps remote path -> error."""

    def __init__(
        self, message: str, *, failures: Mapping[str, DropboxApiError], succeeded: list[dict[str, Any]]
    ) -> None:
        super().__init__(message, route="files/upload_session/finish_batch_v2")
        self.failures = dict(failures)
        self.succeeded = succeeded


def iter_tags(error: Any) -> Iterator[str]:
    """Walk a stone union value depth-first and yield every tag (also the compact string form)."""
    if isinstance(error, str):
        yield error
    elif isinstance(error, Mapping):
        tag = error.get(".tag")
        if isinstance(tag, str):
            yield tag
            nested = error.get(tag)
            if isinstance(nested, (Mapping, str)) and tag in error:
                yield from iter_tags(nested)
        for key, value in error.items():
            if key in (".tag", tag):
                continue
            if isinstance(value, Mapping):
                yield from iter_tags(value)


def has_tag(error: Any, tag: str) -> bool:
    """True when ``tag`` appears anywhere in the error tree (lock contention hides at any depth)."""
    return any(t == tag for t in iter_tags(error))


def find_key(error: Any, key: str) -> Any:
    """First value stored under ``key`` anywhere in the tree (``correct_offset``, ``retry_after``)."""
    if isinstance(error, Mapping):
        if key in error:
            return error[key]
        for value in error.values():
            found = find_key(value, key)
            if found is not None:
                return found
    return None


_SECRET_PATTERNS = (
    # An Authorization header quoted back by Dropbox ("Invalid authorization value ...") or by a proxy.
    (re.compile(r"\b(Bearer|Basic)\s+(?!<)[^\s\"',;]+", re.IGNORECASE), r"\1 ***"),
    # Token-endpoint form fields or JSON members echoed in an error page.
    (
        re.compile(
            r"\b(access_token|refresh_token|client_secret|code_verifier)(\"?\s*[=:]\s*\"?)[^\s\"'&,;}]+",
            re.IGNORECASE,
        ),
        r"\1\2***",
    ),
)


def redact(text: str) -> str:
    """Text from a server (error bodies) with credentials it may quote replaced by ``***``.

    Every message built from response text goes through here: the Airflow masker only hides secrets it was
    told about, and a proxy may echo a mangled or foreign token."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_ROOT_HINT = "paths are relative to the app folder (or the Dropbox root for full-access apps)"


def _where(route: str, path: str | None) -> str:
    return f"Dropbox path '{path}'" if path else f"The Dropbox item for {route}"


def _malformed_reason(error: Any) -> str:
    """The server's own words for a ``malformed_path`` (the union's value is text), redacted, or ''."""
    stack = [error]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            value = node.get("malformed_path")
            if isinstance(value, str) and value.strip():
                return redact(value.strip())[:200]
            stack.extend(v for v in node.values() if isinstance(v, Mapping))
    return ""


def api_error_from_response(
    *,
    route: str,
    status: int,
    body: Any,
    text: str,
    request_id: str | None,
    path: str | None,
    retry_after_header: float | None = None,
    upload: bool = False,
) -> DropboxApiError:
    """Turn a non-2xx response into the most specific typed error, with a message a person can act on.

    ``body`` is the decoded JSON (or None), ``text`` the raw body for 400s and non-JSON answers. ``upload``
    marks write-a-file routes, where a folder conflict means "a folder is in the way"."""
    summary = ""
    error: Any = None
    text = redact(text)
    if isinstance(body, Mapping):
        summary = redact(str(body.get("error_summary") or ""))
        error = body.get("error")
    tail = f" (request id {request_id})" if request_id else ""
    common: dict[str, Any] = {
        "route": route,
        "status": status,
        "error_summary": summary,
        "error": error,
        "request_id": request_id,
        "path": path,
    }
    where = _where(route, path)
    tags = list(iter_tags(error)) if error is not None else []
    short = summary.rstrip("./") or "/".join(tags) or text.strip()[:300]

    if status == 429 or (status == 409 and "too_many_write_operations" in tags):
        body_wait = find_key(body, "retry_after")
        waits = [w for w in (retry_after_header, _as_float(body_wait)) if w is not None]
        retry_after = max(waits) if waits else None
        reason = (
            "lock contention (too_many_write_operations)"
            if "too_many_write_operations" in tags or ("too_many_write_operations" in text)
            else "rate limited (too_many_requests)"
        )
        return RateLimitError(
            f"Dropbox {reason} on {route}; wait {retry_after or 1:g} s and retry, or lower the parallelism"
            f"{tail}",
            retry_after=retry_after,
            **common,
        )
    if status == 400:
        message = text.strip()[:500] or "bad request"
        return BadInputError(f"Dropbox rejected the request to {route} (HTTP 400): {message}{tail}", **common)
    if status == 401:
        if "expired_access_token" in tags:
            return ExpiredAccessTokenError(
                f"Dropbox access token expired ({route}); configure a refresh token so the client can "
                f"renew it{tail}",
                **common,
            )
        if "missing_scope" in tags:
            scope = find_key(error, "required_scope")
            return AuthError(
                f"The Dropbox app lacks the scope '{scope}' needed for {route}; enable it in the app console "
                f"and authorize again{tail}",
                **common,
            )
        return AuthError(
            f"Dropbox refused the credentials for {route} ({short}); check the access/refresh token and the "
            f"team member id{tail}",
            **common,
        )
    if status == 403:
        return AuthError(f"Dropbox denied access to {route} ({short}){tail}", **common)
    if status == 422:
        return BadInputError(
            f"Dropbox rejected the Dropbox-API-Path-Root header on {route} ({short}); check the root "
            f"namespace id{tail}",
            **common,
        )
    if status >= 500:
        return ServerError(
            f"Dropbox server error HTTP {status} on {route}: {text.strip()[:200]}{tail}",
            retry_after=retry_after_header,
            **common,
        )
    if status == 409:
        return _endpoint_error(route, tags, short, where, tail, common, error, upload)
    return DropboxApiError(f"Dropbox {route} failed with HTTP {status}: {short}{tail}", **common)


def _endpoint_error(
    route: str,
    tags: list[str],
    short: str,
    where: str,
    tail: str,
    common: dict[str, Any],
    error: Any,
    upload: bool,
) -> DropboxApiError:
    first = tags[0] if tags else ""
    if "content_hash_mismatch" in tags:
        return ContentHashMismatchError(
            f"Dropbox received bytes that do not match their content_hash ({route}); the data was "
            f"corrupted in "
            f"transit or the local file changed while uploading{tail}",
            **common,
        )
    if route.startswith("files/upload_session/") and first not in ("path", "properties_error", ""):
        return UploadSessionError(
            f"Dropbox upload session call {route} failed: {short}{tail}",
            correct_offset=_as_int(find_key(error, "correct_offset")),
            **common,
        )
    if "reset" in tags:
        return CursorResetError(
            f"The Dropbox cursor was reset by the server ({route}); list the folder again to get a new cursor"
            f"{tail}",
            **common,
        )
    if "insufficient_space" in tags or "insufficient_quota" in tags:
        return InsufficientSpaceError(
            f"Not enough space in the Dropbox account to write {where} ({route}); free "
            f"space or upgrade the plan{tail}",
            **common,
        )
    if "disallowed_name" in tags:
        name = common["path"].rsplit("/", 1)[-1] if common.get("path") else "this name"
        return DisallowedNameError(
            f"{where}: Dropbox does not store files or folders named '{name}' ({route}); rename it or "
            f"leave it out{tail}",
            **common,
        )
    if "malformed_path" in tags:
        reason = _malformed_reason(error)
        return MalformedPathError(
            f"{where} is malformed ({route}){': ' + reason if reason else ''}. Dropbox paths start with "
            "'/' and use '/' between names; no name may be empty, '.' or '..', end with whitespace or hold "
            f"a backslash{tail}",
            **common,
        )
    if "not_found" in tags:
        return PathNotFoundError(f"{where} not found ({route}). Check the path; {_ROOT_HINT}{tail}", **common)
    if "not_file" in tags:
        return NotAFileError(
            f"{where} is a folder, not a file ({route}); use a folder operation or pick a file path{tail}",
            **common,
        )
    if "not_folder" in tags:
        return NotAFolderError(
            f"{where} is a file, not a folder ({route}); pick a folder path{tail}", **common
        )
    if "conflict" in tags:
        if upload and "folder" in tags:
            return NotAFileError(
                f"{where} is a folder, so a file cannot be written there ({route}); pick a file path{tail}",
                **common,
            )
        kind = next((t for t in ("file_ancestor", "file", "folder") if t in tags), "item")
        what = {
            "file_ancestor": "a file is in the way of a parent folder",
            "file": "a file already exists",
            "folder": "a folder already exists",
        }.get(kind, "something already exists")
        return PathConflictError(
            f"{where}: {what} ({route}); use mode='overwrite', autorename=True, or another path{tail}",
            **common,
        )
    return DropboxApiError(f"Dropbox {route} failed for {where}: {short}{tail}", **common)


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
