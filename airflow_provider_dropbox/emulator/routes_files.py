"""``/2/files/*`` metadata routes: get_metadata, list_revisions, list_folder (+continue, longpoll), writes."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from starlette.responses import Response

from . import cursors, write_lock
from .core import Call, Route, blocking, check_lock, lookup_error
from .paths import (
    LIST_PATH_PATTERN,
    PATH_OR_ID_PATTERN,
    READ_PATH_PATTERN,
    WRITE_PATH_OR_ID_PATTERN,
    WRITE_PATH_PATTERN,
)
from .store import LookupFail, RelocationFail, StoreError, WriteFail
from .wire import ApiFail, api_error, bad_input, json_response, tag

DEFAULT_LIMIT = 500
RESET = tag("reset")


async def get_metadata(c: Call) -> Response:
    path = c.args.req_str("path")
    if path == "":
        raise bad_input(c.func, "request body: path: The root folder is unsupported.")
    c.args.req_str("path", pattern=READ_PATH_PATTERN)
    include_deleted = c.args.flag("include_deleted")
    try:
        md = await blocking(c.emu.store.get_metadata, path, include_deleted)
    except LookupFail as e:
        if not path.startswith("rev:"):
            raise lookup_error(e) from None
        md = await blocking(_old_revision_metadata, c, path)  # an earlier revision of a file
    return json_response(md)


def _old_revision_metadata(c: Call, path: str) -> dict[str, Any]:
    try:
        node, fd = c.emu.store.open_file(path)
    except LookupFail as e:
        raise lookup_error(e) from None
    os.close(fd)
    return node.metadata(tagged=True)


async def list_revisions(c: Call) -> Response:
    """ListRevisionsResult; ``limit`` 1..100 (default 10), ``before_rev`` only in path mode."""
    path = c.args.req_str("path", pattern=PATH_OR_ID_PATTERN)
    mode, _ = c.args.union_tag("mode", "path", ("path", "id"))
    limit = c.args.opt_int("limit", default=10, lo=1, hi=100)
    assert limit is not None
    before_rev = c.args.opt_str("before_rev")
    if before_rev is not None and len(before_rev) < 9:  # stone checks Rev's min_length before its pattern
        msg = f"'{before_rev}' must be at least 9 characters, got {len(before_rev)}"
        raise bad_input(c.func, f"request body: before_rev: {msg}")
    before_rev = c.args.opt_str("before_rev", pattern="[0-9a-f]+")
    restorable = c.args.flag("include_restorable_info")
    if before_rev is not None and mode == "id":
        raise api_error(tag("before_rev_not_supported"))
    store = c.emu.store
    try:
        result = await blocking(store.list_revisions, path, mode == "id", limit, before_rev, restorable)
    except LookupFail as e:
        raise lookup_error(e) from None
    except StoreError as e:
        raise api_error(e.reason) from None
    return json_response(result)


# ---------------------------------------------------------------- list_folder and cursors


def _list_args(c: Call) -> tuple[str, bool, bool, int]:
    if c.args.value.get("path") == "/":
        raise bad_input(
            c.func, 'request body: path: Specify the root folder as an empty string rather than as "/".'
        )
    path = c.args.req_str("path", pattern=LIST_PATH_PATTERN)
    recursive = c.args.flag("recursive")
    include_deleted = c.args.flag("include_deleted")
    for name in ("include_media_info", "include_has_explicit_shared_members", "include_mounted_folders"):
        c.args.flag(name)
    limit = c.args.opt_int("limit", default=DEFAULT_LIMIT, lo=1, hi=2000)
    assert limit is not None
    return path, recursive, include_deleted, limit


async def _folder_key(c: Call, path: str) -> str:
    try:
        key: str = await blocking(c.emu.store.folder_key, path)
    except LookupFail as e:
        raise lookup_error(e) from None
    return key


async def _newer(c: Call, state: dict[str, Any], since: int) -> bool:
    """Did anything in scope change after ``since``? Then a finished page still says ``has_more``, so a
    client that pages until ``has_more`` is false is up to date as of its last call."""
    store = c.emu.store
    if store.seq <= since:
        return False
    items = await blocking(store.changes, state["p"], state["r"], since, store.seq)
    return items is None or bool(items)


def _gone_folder(c: Call) -> ApiFail:
    """The cursor's folder no longer exists: ``reset`` or ``path/not_found`` (both allowed; a switch)."""
    if c.emu.faults.settings.deleted_folder_cursor == "not_found":
        return api_error(tag("path", tag("not_found")))
    return api_error(RESET)


async def _listing_page(c: Call, state: dict[str, Any]) -> dict[str, Any]:
    """Next page of a full listing; ``state["a"]`` is the last key already sent."""
    store = c.emu.store
    after = state.pop("a", None)
    page, has_more = await blocking(store.listing_page, state["p"], state["r"], state["d"], after, state["l"])
    if has_more:
        state["a"] = page[-1][0]
    else:
        has_more = await _newer(c, state, state["s"])
    cursor = cursors.encode(state, store.secret)
    return {"entries": [md for _, md in page], "cursor": cursor, "has_more": has_more}


async def list_folder(c: Call) -> Response:
    path, recursive, include_deleted, limit = _list_args(c)
    key = await _folder_key(c, path)
    store = c.emu.store
    state = {"p": key, "r": recursive, "d": include_deleted, "e": store.epoch, "s": store.seq, "l": limit}
    return json_response(await _listing_page(c, state))


async def get_latest_cursor(c: Call) -> Response:
    path, recursive, include_deleted, limit = _list_args(c)
    key = await _folder_key(c, path)
    store = c.emu.store
    state = {"p": key, "r": recursive, "d": include_deleted, "e": store.epoch, "s": store.seq, "l": limit}
    return json_response({"cursor": cursors.encode(state, store.secret)})


def _decode_cursor(c: Call, cursor: str) -> dict[str, Any]:
    """BadCursor -> 400; foreign signature or a reset epoch -> 409 ``reset``."""
    store = c.emu.store
    try:
        state = cursors.decode(cursor, store.secret)
    except cursors.BadCursor:
        raise bad_input(c.func, 'request body: cursor: Invalid "cursor" parameter') from None
    except cursors.ForeignCursor:
        raise api_error(RESET) from None
    if state.get("e") != store.epoch:
        raise api_error(RESET)
    return state


async def list_folder_continue(c: Call) -> Response:
    state = _decode_cursor(c, c.args.req_str("cursor"))
    store = c.emu.store
    if state["p"] and state["p"] not in store.nodes:
        raise _gone_folder(c)
    if "a" in state:
        return json_response(await _listing_page(c, state))
    upto = state.pop("w", store.seq)
    offset = state.pop("o", 0)
    repeat = c.emu.faults.settings.repeat_paths
    items = await blocking(store.changes, state["p"], state["r"], state["s"], upto, repeat)
    if items is None:
        raise api_error(RESET)
    limit = state["l"]
    chunk = items[offset : offset + limit]
    entries = [md for md in (store.render(op, disp) for op, disp in chunk) if md is not None]
    has_more = offset + limit < len(items)
    if has_more:
        state["w"], state["o"] = upto, offset + limit
    else:
        state["s"] = upto
        has_more = await _newer(c, state, upto)
    return json_response(
        {"entries": entries, "cursor": cursors.encode(state, store.secret), "has_more": has_more}
    )


async def longpoll(c: Call) -> Response:
    """Wait until something in the cursor's scope changes, or the timeout (30..480 s) passes."""
    emu = c.emu
    state = _decode_cursor(c, c.args.req_str("cursor"))
    timeout = c.args.opt_int("timeout", default=30, lo=30, hi=480)
    assert timeout is not None
    settings = emu.faults.settings
    wait = timeout if settings.longpoll_max_s is None else min(timeout, settings.longpoll_max_s)
    deadline = time.monotonic() + wait
    changes = "a" in state or "w" in state
    while not changes:
        event = emu.changed
        if state.get("e") != emu.store.epoch:
            raise api_error(RESET)
        items = await blocking(emu.store.changes, state["p"], state["r"], state["s"], emu.store.seq)
        if items is None:
            raise api_error(RESET)
        if items:
            changes = True
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            pass
    body: dict[str, Any] = {"changes": changes}
    if settings.longpoll_backoff_s:
        body["backoff"] = settings.longpoll_backoff_s
    return json_response(body)


# ---------------------------------------------------------------- namespace writes


async def delete_v2(c: Call) -> Response:
    path = c.args.req_str("path", pattern=WRITE_PATH_OR_ID_PATTERN)
    parent_rev = c.args.opt_str("parent_rev", pattern="[0-9a-f]{9,}")
    check_lock(c, tag("too_many_write_operations"))
    try:
        async with write_lock.hold(c):
            md = await blocking(c.emu.store.delete, path, parent_rev)
    except LookupFail as e:
        raise lookup_error(e, "path_lookup") from None
    except WriteFail as e:
        raise lookup_error(e, "path_write") from None
    return json_response({"metadata": md})


async def delete_v1(c: Call) -> Response:
    """Deprecated ``files/delete``: delete_v2's argument and errors, the Metadata itself as the result."""
    path = c.args.req_str("path", pattern=WRITE_PATH_OR_ID_PATTERN)
    parent_rev = c.args.opt_str("parent_rev", pattern="[0-9a-f]{9,}")
    check_lock(c, tag("too_many_write_operations"))
    try:
        md = await blocking(c.emu.store.delete, path, parent_rev)
    except LookupFail as e:
        raise lookup_error(e, "path_lookup") from None
    except WriteFail as e:
        raise lookup_error(e, "path_write") from None
    return json_response(md)


async def create_folder_v2(c: Call) -> Response:
    path = c.args.req_str("path", pattern=WRITE_PATH_PATTERN)
    autorename = c.args.flag("autorename")
    check_lock(c, tag("path", tag("too_many_write_operations")))
    try:
        async with write_lock.hold(c):
            md = await blocking(c.emu.store.create_folder, path, autorename)
    except StoreError as e:
        raise lookup_error(e) from None
    return json_response({"metadata": md})


async def _relocate(c: Call, copy: bool) -> Response:
    from_path = c.args.req_str("from_path", pattern=WRITE_PATH_OR_ID_PATTERN)
    to_path = c.args.req_str("to_path", pattern=WRITE_PATH_OR_ID_PATTERN)
    autorename = c.args.flag("autorename")
    c.args.flag("allow_shared_folder")
    c.args.flag("allow_ownership_transfer")
    check_lock(c, tag("to", tag("too_many_write_operations")))
    try:
        async with write_lock.hold(c):
            md = await blocking(c.emu.store.relocate, from_path, to_path, autorename, copy)
    except RelocationFail as e:
        raise api_error(e.reason) from None
    except StoreError as e:
        raise api_error(tag("from_lookup", e.reason)) from None
    return json_response({"metadata": md})


async def move_v2(c: Call) -> Response:
    return await _relocate(c, copy=False)


async def copy_v2(c: Call) -> Response:
    return await _relocate(c, copy=True)


ROUTES = [
    Route("/2/files/get_metadata", "rpc", get_metadata),
    Route("/2/files/list_revisions", "rpc", list_revisions),
    Route("/2/files/list_folder", "rpc", list_folder),
    Route("/2/files/list_folder/continue", "rpc", list_folder_continue),
    Route("/2/files/list_folder/get_latest_cursor", "rpc", get_latest_cursor),
    Route("/2/files/list_folder/longpoll", "notify", longpoll),
    Route("/2/files/delete_v2", "rpc", delete_v2, write=True),
    Route("/2/files/delete", "rpc", delete_v1, write=True),
    Route("/2/files/create_folder_v2", "rpc", create_folder_v2, write=True),
    Route("/2/files/move_v2", "rpc", move_v2, write=True),
    Route("/2/files/copy_v2", "rpc", copy_v2, write=True),
]

__all__ = ["ROUTES", "ApiFail"]
