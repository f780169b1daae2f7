"""Wire format helpers: stone JSON bodies, plain-text 400s, error summaries, arg parsing.

Everything the real servers put on the wire is built here so the route modules never
hand-roll a response (the official SDK asserts on exact Content-Types and shapes).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
RPC_CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "text/plain; charset=dropbox-cors-hack",
)
UPLOAD_CONTENT_TYPES = ("application/octet-stream", "text/plain; charset=dropbox-cors-hack")

_dots_rng = random.Random()


class ApiFail(Exception):
    """Raised anywhere in a handler to answer with a ready-made error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def dumps(obj: Any) -> str:
    """JSON exactly as the stone serializer writes it: ASCII-escaped, so it is header-safe."""
    return json.dumps(obj)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON body with ``Content-Type: application/json`` and no charset (the SDK asserts on it)."""
    return Response(dumps(obj).encode("ascii"), status_code=status, media_type=JSON_TYPE, headers=headers)


def void_response() -> Response:
    """Void results are the body ``null``; an empty body breaks the SDK's ``json.loads``."""
    return json_response(None)


def text_response(text: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return Response(text.encode("utf-8"), status_code=status, media_type=TEXT_TYPE, headers=headers)


def bad_input(func: str, message: str) -> ApiFail:
    """A 400 worded like the real one: ``Error in call to API function "files/x": ...``."""
    return ApiFail(text_response(f'Error in call to API function "{func}": {message}'))


def error_summary(error: Any) -> str:
    """Join the nested union tags with ``/``, then add ``/`` and 0-3 dots (so nobody parses it)."""
    tags: list[str] = []
    node = error
    while node is not None:
        if isinstance(node, str):
            tags.append(node)
            break
        if not isinstance(node, dict):
            break
        tag = node.get(".tag")
        if tag is None:
            # RateLimitError and similar structs: the union sits under "reason".
            node = node.get("reason")
            continue
        tags.append(tag)
        inner = node.get(tag)
        if isinstance(inner, dict):  # a nested union; primitive values (malformed_path's text) end the chain
            node = inner
        elif isinstance(node.get("reason"), dict):
            node = node["reason"]
        else:
            break
    return "/".join(tags) + "/" + "." * _dots_rng.randint(0, 3)


def api_error(error: Any, status: int = 409, headers: dict[str, str] | None = None) -> ApiFail:
    """A stone route error: ``{"error_summary": ..., "error": ...}``."""
    body = {"error_summary": error_summary(error), "error": error}
    return ApiFail(json_response(body, status=status, headers=headers))


def tag(name: str, value: Any = None) -> dict[str, Any]:
    """Union member: nested under a key named like the tag when it has a union/primitive value."""
    if value is None:
        return {".tag": name}
    return {".tag": name, name: value}


def auth_error(tag_name: str) -> ApiFail:
    """401 AuthError, e.g. ``expired_access_token``."""
    return api_error({".tag": tag_name}, status=401)


def rate_limit_response(reason: str, retry_after: int, plain: bool = False) -> Response:
    """429 with a ``Retry-After`` header; JSON RateLimitError unless a plain-text variant is asked for."""
    headers = {"Retry-After": str(retry_after)}
    if plain:
        return text_response(reason, status=429, headers=headers)
    err = {"reason": {".tag": reason}, "retry_after": retry_after}
    return json_response({"error_summary": error_summary(err), "error": err}, status=429, headers=headers)


# ---------------------------------------------------------------- arg parsing


def parse_json_text(func: str, raw: str, where: str) -> Any:
    """Decode an arg; raw non-ASCII in a header is rejected like the real server does."""
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_input(func, f"{where}: could not decode input as JSON") from None


def header_arg(request: Request, func: str) -> Any:
    """The ``Dropbox-API-Arg`` header (or the ``arg`` URL parameter) of upload/download routes."""
    raw = request.headers.get("dropbox-api-arg")
    if raw is not None:
        if any(ord(c) > 0x7E for c in raw):
            raise bad_input(func, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON')
        return parse_json_text(func, raw, 'HTTP header "Dropbox-API-Arg"')
    q = request.query_params.get("arg")
    if q is not None:
        return parse_json_text(func, q, 'URL parameter "arg"')
    return None


def check_content_type(request: Request, func: str, allowed: tuple[str, ...], required: bool) -> None:
    """400 ``Bad HTTP "Content-Type" header`` (two spaces before Expecting, as on the real server)."""
    ct = request.headers.get("content-type")
    if ct is None or ct == "":
        if required:
            expecting = ", ".join(f'"{a}"' for a in allowed)
            raise bad_input(func, f'Missing HTTP "Content-Type" header.  Expecting one of {expecting}.')
        return
    if ct.strip().lower() not in allowed:
        expecting = ", ".join(f'"{a}"' for a in allowed)
        raise bad_input(func, f'Bad HTTP "Content-Type" header: "{ct}".  Expecting one of {expecting}.')


_JSON_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "object"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


class Args:
    """Typed accessors over a decoded arg object, raising 400s worded like stone's validator."""

    def __init__(self, func: str, value: Any, where: str = "request body") -> None:
        self.func = func
        self.where = where
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise bad_input(func, f"{where}: expected object, got {_type_name(value)}")
        self.value: dict[str, Any] = value

    def _fail(self, field: str, msg: str) -> ApiFail:
        return bad_input(self.func, f"{self.where}: {field}: {msg}")

    def opt_str(
        self, field: str, default: str | None = None, required: bool = False, pattern: str | None = None
    ) -> str | None:
        if field not in self.value or self.value[field] is None:
            if required and field in self.value:
                raise self._fail(field, "'None' expected to be a string, got null")  # the real wording
            if required:
                raise bad_input(self.func, f"{self.where}: missing required field '{field}'")
            return default
        v = self.value[field]
        if not isinstance(v, str):
            raise self._fail(field, f"'{v}' expected to be a string, got {_type_name(v)}")
        if pattern is not None and re.fullmatch(pattern, v) is None:
            raise self._fail(field, f"'{v}' did not match pattern '{pattern}'")
        return v

    def req_str(self, field: str, pattern: str | None = None) -> str:
        v = self.opt_str(field, required=True, pattern=pattern)
        assert v is not None
        return v

    def flag(self, field: str, default: bool = False) -> bool:
        v = self.value.get(field)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._fail(field, f"'{v}' expected to be a boolean, got {_type_name(v)}")
        return v

    def opt_int(
        self, field: str, default: int | None = None, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        v = self.value.get(field)
        if v is None:
            if default is None and field not in self.value:
                return None
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._fail(field, f"'{v}' expected to be an integer, got {_type_name(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self._fail(field, f"{v} is not within range [{lo}, {hi}]")
        return v

    def req_int(self, field: str, lo: int | None = None, hi: int | None = None) -> int:
        if field not in self.value or self.value[field] is None:
            raise bad_input(self.func, f"{self.where}: missing required field '{field}'")
        v = self.opt_int(field, lo=lo, hi=hi)
        assert v is not None
        return v

    def obj(self, field: str, required: bool = False) -> Args | None:
        v = self.value.get(field)
        if v is None:
            if required:
                raise bad_input(self.func, f"{self.where}: missing required field '{field}'")
            return None
        return Args(self.func, v, f"{self.where}: {field}")

    def union_tag(self, field: str, default: str, allowed: tuple[str, ...]) -> tuple[str, Any]:
        """A union in full (``{".tag": ..}``) or compact (``"add"``) form -> (tag, value)."""
        v = self.value.get(field)
        if v is None:
            return default, None
        if isinstance(v, str):
            t, val = v, None
        elif isinstance(v, dict) and isinstance(v.get(".tag"), str):
            t, val = v[".tag"], v.get(v[".tag"])
        else:
            raise self._fail(field, f"expected union, got {_type_name(v)}")
        if t not in allowed:
            raise self._fail(field, f"unknown tag '{t}'")
        return t, val
