"""Upload sessions: start, append_v2, finish, finish_batch_v2 (+ the deprecated async finish_batch/check).

Pieces are written straight to the session's data file; finishing commits that file as the blob.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from starlette.responses import Response

from . import write_lock
from .core import Call, Route, blocking, check_lock
from .routes_content import Commit, content_hash_arg, content_length, throttle_for
from .sessions import MAX_SESSION_BYTES, Session, SessionFail
from .store import StoreError
from .transfer import receive_body
from .wire import ApiFail, Args, api_error, bad_input, json_response, tag, void_response

LOOKUP_TAGS = frozenset(
    {
        "not_found",
        "incorrect_offset",
        "closed",
        "not_closed",
        "too_large",
        "concurrent_session_invalid_offset",
        "concurrent_session_invalid_data_size",
        "payload_too_large",
    }
)


# ---------------------------------------------------------------- upload sessions


def _session_fail(e: SessionFail) -> ApiFail:
    return api_error(e.reason)


async def _append_data(c: Call, sid: str, offset: int, close: bool, want_hash: str | None) -> Session:
    """Receive one piece of a session at ``offset``: checks, pwrite, hash check, record."""
    sessions = c.emu.sessions
    length = content_length(c)
    accept = c.emu.faults.settings.resent_piece == "accept"
    s: Session = await blocking(sessions.reserve, sid, offset, length, close, accept)
    try:
        if s.concurrent and length is not None and length % (4 * 1024 * 1024) and not close:
            raise SessionFail(tag("concurrent_session_invalid_data_size"))
        hasher = sessions.seq_hasher_copy(s) if not s.concurrent else None
        # Sequential pieces at a block boundary reuse the request's block digests (no second pass).
        aligned = hasher is not None and hasher.at_boundary
        fd = os.open(sessions.data_path(sid), os.O_WRONLY)
        try:
            body = await receive_body(
                c.request,
                fd,
                offset,
                throttle_for(c),
                on_block=hasher.update if hasher and not aligned else None,
            )
        finally:
            os.close(fd)
        if hasher is not None and aligned:
            hasher = hasher.followed_by(body.hasher)
        if body.too_large:
            raise SessionFail(tag("payload_too_large"))
        if want_hash is not None and want_hash != body.content_hash:
            raise SessionFail(tag("content_hash_mismatch"))
        await blocking(
            sessions.commit_append, s, offset, body.size, close, body.hasher.block_digests(), hasher
        )
    finally:
        sessions.release(s, offset)
    return s


async def start(c: Call) -> Response:
    close = c.args.flag("close")
    session_type, _ = c.args.union_tag("session_type", "sequential", ("sequential", "concurrent"))
    want_hash = content_hash_arg(c.args)
    sessions = c.emu.sessions
    if session_type == "concurrent":
        if close:
            raise api_error(tag("concurrent_session_close_not_allowed"))
        body = await receive_body(c.request, None, 0, throttle_for(c))
        if body.size:
            raise api_error(tag("concurrent_session_data_not_allowed"))
        if want_hash is not None and want_hash != body.content_hash:
            raise api_error(tag("content_hash_mismatch"))
        s = await blocking(sessions.create, True)
        return json_response({"session_id": s.id})
    return await _start_sequential(c, close, want_hash)


async def _start_sequential(c: Call, close: bool, want_hash: str | None) -> Response:
    """A new sequential session with its first piece: the same checks and answers as creating an empty
    session and appending at offset 0, in one pass (the many-small-files path: one request per file). The
    session exists, saved once, only after its bytes are in and their hash checked; a failed start leaves
    nothing behind (nobody could name that session anyway)."""
    sessions = c.emu.sessions
    length = content_length(c)
    if length is not None and length > MAX_SESSION_BYTES:
        raise _session_fail(SessionFail(tag("too_large")))
    sid = sessions.new_id()
    path = sessions.data_path(sid)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    ok = False
    try:
        try:
            body = await receive_body(c.request, fd, 0, throttle_for(c))
        finally:
            os.close(fd)
        if body.too_large:
            raise _session_fail(SessionFail(tag("payload_too_large")))
        if want_hash is not None and want_hash != body.content_hash:
            raise _session_fail(SessionFail(tag("content_hash_mismatch")))
        await blocking(sessions.register_started, sid, body.size, close, body.hasher)
        ok = True
    finally:
        if not ok:
            path.unlink(missing_ok=True)
    return json_response({"session_id": sid})


def _cursor(a: Args) -> tuple[str, int]:
    cur = a.obj("cursor", required=True)
    assert cur is not None
    return cur.req_str("session_id"), cur.req_int("offset", lo=0)


async def append_v2(c: Call) -> Response:
    sid, offset = _cursor(c.args)
    close = c.args.flag("close")
    want_hash = content_hash_arg(c.args)
    try:
        await _append_data(c, sid, offset, close, want_hash)
    except SessionFail as e:
        raise _session_fail(e) from None
    return void_response()


def _finish_error(e: SessionFail) -> dict[str, Any]:
    """Lookup reasons nest under ``lookup_failed``; the concurrent_* finish errors are top level."""
    if e.reason[".tag"] in LOOKUP_TAGS:
        return tag("lookup_failed", e.reason)
    return e.reason


async def _finish_one(c: Call, sid: str, offset: int, commit: Commit, batch: bool) -> dict[str, Any]:
    """Assemble a session and commit it; raises SessionFail / ApiFail-ready dicts via _FinishFail."""
    sessions = c.emu.sessions
    s = sessions.get(sid)  # a dict look-up under the sessions lock: no thread hop per batch entry
    if s.finished:
        raise SessionFail(tag("closed"))
    if batch and not s.closed:
        raise SessionFail(tag("not_closed"))
    if s.concurrent and s.closed and offset != s.size:
        raise SessionFail({".tag": "incorrect_offset", "correct_offset": s.size})
    if not s.concurrent and offset != s.size:
        raise SessionFail({".tag": "incorrect_offset", "correct_offset": s.size})
    with sessions.lock:
        if -1 in s.inflight:
            raise SessionFail({".tag": "incorrect_offset", "correct_offset": s.size})
        s.inflight.add(-1)
    try:
        md: dict[str, Any] = await blocking(_assemble_and_commit, c, s, commit, batch)
        return md
    finally:
        sessions.release(s, -1)


def _assemble_and_commit(c: Call, s: Session, commit: Commit, batch: bool) -> dict[str, Any]:
    """Assemble, the random contention fault, the store commit and marking the session finished, in that
    order, in one worker-thread call (one thread hop per entry instead of three: a batch of 1000 entries
    spends most of its time on hops otherwise)."""
    sessions = c.emu.sessions
    data, size, chash = sessions.assemble(s)
    if batch:
        if c.emu.faults.roll("lock_contention"):
            raise _EntryFail(tag("too_many_write_operations"))
    else:
        check_lock(c, tag("too_many_write_operations"))
    try:
        md = commit.commit_sync(c, data, size, chash)
    except StoreError as e:
        raise _EntryFail(tag("path", e.reason)) from None
    sessions.mark_finished(s)
    return md


class _EntryFail(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error


async def finish(c: Call) -> Response:
    sid, offset = _cursor(c.args)
    commit_args = c.args.obj("commit", required=True)
    assert commit_args is not None
    commit = Commit(commit_args)
    want_hash = content_hash_arg(c.args)
    length = content_length(c)
    try:
        s = await blocking(c.emu.sessions.get, sid)
        if length != 0 and s.concurrent:
            body = await receive_body(c.request, None, 0, throttle_for(c))
            if body.size:
                raise api_error(tag("concurrent_session_data_not_allowed"))
        elif length != 0:
            s = await _append_data(c, sid, offset, True, want_hash)
            offset = s.size
        elif want_hash is not None and want_hash != _EMPTY_HASH:
            raise api_error(tag("content_hash_mismatch"))
        async with write_lock.hold(c):
            md = await _finish_one(c, sid, offset, commit, batch=False)
    except SessionFail as e:
        raise api_error(_finish_error(e)) from None
    except _EntryFail as e:
        raise api_error(e.error) from None
    return json_response(md)


_EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


async def _finish_entries(c: Call) -> list[dict[str, Any]]:
    raw = c.args.value.get("entries")
    if not isinstance(raw, list):
        raise bad_input(c.func, "request body: missing required field 'entries'")
    if len(raw) > 1000:
        raise bad_input(c.func, f"request body: entries: list has {len(raw)} items, more than 1000")
    parsed = []
    for i, item in enumerate(raw):
        a = Args(c.func, item, f"request body: entries: [{i}]")
        sid, offset = _cursor(a)
        commit_args = a.obj("commit", required=True)
        assert commit_args is not None
        parsed.append((sid, offset, Commit(commit_args)))
    results: list[dict[str, Any]] = []
    async with write_lock.hold(c, entries=len(parsed)):  # a batch takes the namespace lock once
        for sid, offset, commit in parsed:
            try:
                md = await _finish_one(c, sid, offset, commit, batch=True)
                results.append({".tag": "success", **md})
            except SessionFail as e:
                results.append({".tag": "failure", "failure": _finish_error(e)})
            except _EntryFail as e:
                results.append({".tag": "failure", "failure": e.error})
    return results


async def finish_batch_v2(c: Call) -> Response:
    return json_response({"entries": await _finish_entries(c)})


async def finish_batch(c: Call) -> Response:
    """Deprecated async flavour: commits synchronously, then hands out a job id for ``check``."""
    entries = await _finish_entries(c)
    job = "dbjid:" + secrets.token_urlsafe(24)
    c.emu.batch_jobs[job] = entries
    return json_response({".tag": "async_job_id", "async_job_id": job})


async def finish_batch_check(c: Call) -> Response:
    job = c.args.req_str("async_job_id")
    entries = c.emu.batch_jobs.get(job)
    if entries is None:
        raise api_error(tag("invalid_async_job_id"))
    return json_response({".tag": "complete", "entries": entries})


async def start_batch(c: Call) -> Response:
    """RPC: open ``num_sessions`` empty sessions at once (1..1000)."""
    n = c.args.req_int("num_sessions", lo=1, hi=1000)
    session_type, _ = c.args.union_tag("session_type", "sequential", ("sequential", "concurrent"))
    ids = [(await blocking(c.emu.sessions.create, session_type == "concurrent")).id for _ in range(n)]
    return json_response({"session_ids": ids})


ROUTES = [
    Route("/2/files/upload_session/start_batch", "rpc", start_batch, write=True),
    Route("/2/files/upload_session/start", "upload", start, write=True),
    Route("/2/files/upload_session/append_v2", "upload", append_v2, write=True),
    Route("/2/files/upload_session/finish", "upload", finish, write=True),
    Route("/2/files/upload_session/finish_batch_v2", "rpc", finish_batch_v2, write=True),
    Route("/2/files/upload_session/finish_batch", "rpc", finish_batch, write=True),
    Route("/2/files/upload_session/finish_batch/check", "rpc", finish_batch_check),
]
