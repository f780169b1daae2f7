"""Content routes: download (ranges, ETag) and single-request upload; CommitInfo parsing.

Bytes go straight from the socket to their final file; only metadata is handled under locks.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import write_lock
from .core import Call, Emulator, Route, add_stream_faults, blocking, lock_429, lock_fault, lookup_error
from .paths import READ_PATH_PATTERN, WRITE_PATH_OR_ID_PATTERN
from .store import LookupFail, StoreError
from .transfer import FdStream, Throttle, receive_body
from .wire import ApiFail, Args, api_error, bad_input, dumps, json_response, tag, text_response

REV_PATTERN = "[0-9a-f]{9,}"
HASH_PATTERN = "[0-9a-fA-F]{64}"
TS_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"


def throttle_for(c: Call) -> Throttle:
    return Throttle(c.emu.faults.bytes_per_s)


def content_length(c: Call) -> int | None:
    v = c.request.headers.get("content-length")
    return int(v) if v is not None and v.isdigit() else None


# ---------------------------------------------------------------- download


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """(start, end-inclusive), None to ignore the header, or "416" when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if size == 0:
        return None  # nothing to slice: serve the (empty) whole file
    if not m.group(1):
        n = int(m.group(2))
        return "416" if n == 0 else (max(0, size - n), size - 1)
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size:
        return "416"
    if end < start:
        return None
    return start, min(end, size - 1)


async def download(c: Call) -> Response:
    path = c.args.req_str("path", pattern=READ_PATH_PATTERN)
    rev = c.args.opt_str("rev", pattern=REV_PATTERN)
    if rev:
        path = "rev:" + rev
    try:
        node, fd = await blocking(c.emu.store.open_file, path)
    except LookupFail as e:
        raise lookup_error(e) from None
    md = node.metadata(tagged=False)
    etag = f'W/"{node.rev}"'
    headers = {"Dropbox-API-Result": dumps(md), "ETag": etag, "Accept-Ranges": "bytes"}
    inm = c.request.headers.get("if-none-match")
    if inm is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        os.close(fd)
        return Response(status_code=304, headers=headers)
    start, length, status = 0, node.size, 200
    rng = c.request.headers.get("range")
    if rng is not None:
        parsed = _parse_range(rng, node.size)
        if parsed == "416":
            os.close(fd)
            headers["Content-Range"] = f"bytes */{node.size}"
            return text_response("Requested range not satisfiable", status=416, headers=headers)
        if isinstance(parsed, tuple):
            start, end = parsed
            length, status = end - start + 1, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{node.size}"
    headers["Content-Length"] = str(length)
    stream = FdStream(fd, start, length, throttle_for(c))
    add_stream_faults(c, stream, length)
    return StreamingResponse(
        stream,
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


# ---------------------------------------------------------------- commit info


class Commit:
    """A parsed ``CommitInfo`` (validated before any body byte is read)."""

    def __init__(self, a: Args) -> None:
        self.path = a.req_str("path", pattern=WRITE_PATH_OR_ID_PATTERN)
        tag_, value = a.union_tag("mode", "add", ("add", "overwrite", "update"))
        if tag_ == "update" and (not isinstance(value, str) or re.fullmatch(REV_PATTERN, value) is None):
            raise bad_input(a.func, f"{a.where}: mode: update: expected a rev (at least 9 hex characters)")
        self.mode: tuple[str, Any] = (tag_, value)
        self.autorename = a.flag("autorename")
        self.strict_conflict = a.flag("strict_conflict")
        a.flag("mute")
        self.client_modified = a.opt_str("client_modified", pattern=TS_PATTERN)
        if self.client_modified is not None:
            try:
                time.strptime(self.client_modified, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                raise bad_input(a.func, f"{a.where}: client_modified: not a valid timestamp") from None

    async def commit(self, c: Call, data: Path, size: int, chash: str) -> dict[str, Any]:
        md: dict[str, Any] = await blocking(self.commit_sync, c, data, size, chash)
        return md

    def commit_sync(self, c: Call, data: Path, size: int, chash: str) -> dict[str, Any]:
        """``commit`` for a caller already on a worker thread."""
        md: dict[str, Any] = c.emu.store.commit_file(
            self.path,
            self.mode,
            self.autorename,
            self.strict_conflict,
            self.client_modified,
            data,
            size,
            chash,
        )
        return md


def content_hash_arg(a: Args) -> str | None:
    v = a.opt_str("content_hash", pattern=HASH_PATTERN)
    return v.lower() if v else None


# ---------------------------------------------------------------- upload


async def upload(c: Call) -> Response:
    """Single-request upload: body -> temp file -> commit. On a failed commit the bytes become a closed
    session whose id goes back in ``upload_session_id`` (so the commit can be retried with finish)."""
    commit = Commit(c.args)
    want_hash = content_hash_arg(c.args)
    store, sessions = c.emu.store, c.emu.sessions
    tmp = store.tmp_dir / secrets.token_hex(16)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        body = await receive_body(c.request, fd, 0, throttle_for(c))
    except BaseException:
        tmp.unlink(missing_ok=True)  # client went away
        raise
    finally:
        os.close(fd)
    if body.too_large or (want_hash is not None and want_hash != body.content_hash):
        tmp.unlink(missing_ok=True)
        raise api_error(tag("payload_too_large" if body.too_large else "content_hash_mismatch"))

    async def write_failed(reason: dict[str, Any]) -> ApiFail:
        sid = await blocking(sessions.adopt, tmp, body.size, body.hasher)
        return api_error({".tag": "path", "reason": reason, "upload_session_id": sid})

    try:
        async with write_lock.hold(c):
            kind = lock_fault(c)
            if kind == "429":
                tmp.unlink(missing_ok=True)
                raise lock_429(c)
            if kind == "409":
                raise await write_failed(tag("too_many_write_operations"))
            try:
                md = await commit.commit(c, tmp, body.size, body.content_hash)
            except StoreError as e:
                raise await write_failed(e.reason) from None
    except write_lock.Busy:
        tmp.unlink(missing_ok=True)
        raise
    return json_response(md)


# ---------------------------------------------------------------- temporary links

TEMP_LINK_PREFIX = "/_tl/"
TEMP_LINK_LIFETIME_S = 4 * 3600  # as documented for files/get_temporary_link


async def get_temporary_link(c: Call) -> Response:
    """GetTemporaryLinkResult: the file's metadata and a link on this emulator that serves its bytes (no
    token) for four hours. A folder is ``path/not_file``."""
    path = c.args.req_str("path", pattern=READ_PATH_PATTERN)
    store = c.emu.store
    try:
        node = await blocking(store.lookup, path)
    except LookupFail as e:
        raise lookup_error(e) from None
    if node.kind != "file":
        raise api_error(tag("path", tag("not_file")))
    token = secrets.token_urlsafe(24)
    record = {"rev": node.rev, "expires": time.time() + TEMP_LINK_LIFETIME_S}
    await blocking(store.kv_put, "templinks", token, record)
    base = str(c.request.base_url).rstrip("/")
    name = quote(node.display.rsplit("/", 1)[1])
    return json_response(
        {"metadata": node.metadata(tagged=False), "link": f"{base}{TEMP_LINK_PREFIX}{token}/{name}"}
    )


async def serve_temporary_link(request: Request, emu: Emulator) -> Response:
    """GET a temporary link: the bytes of the revision it was made for; 404 once expired or gone (the real
    links answer 404/410 text pages; clients only need "not 200")."""
    token = request.path_params["token"]
    record = await blocking(emu.store.kv_get, "templinks", token)
    if record is None or time.time() > record["expires"]:
        return text_response("This link has expired or does not exist.", status=404)
    try:
        node, fd = await blocking(emu.store.open_file, "rev:" + record["rev"])
    except LookupFail:
        return text_response("The file behind this link no longer exists.", status=404)
    headers = {"Content-Length": str(node.size), "ETag": f'W/"{node.rev}"'}
    disposition = quote(node.display.rsplit("/", 1)[1])
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{disposition}"
    stream = FdStream(fd, 0, node.size, Throttle(emu.faults.bytes_per_s))
    return StreamingResponse(stream, headers=headers, media_type="application/octet-stream")


ROUTES = [
    Route("/2/files/get_temporary_link", "rpc", get_temporary_link),
    Route("/2/files/download", "download", download, methods=("GET", "POST")),
    Route("/2/files/upload", "upload", upload, write=True),
]
