"""Routes beyond the transfer core: batches with their ``/check`` jobs, search_v2, restore, download_zip,
the shared-link routes and the team listing routes the SDK's suite calls.

Shapes follow files.stone / check.stone / team.stone. Batch jobs run to completion before the launch
answers, so every ``/check`` sees ``complete``; ids are per kind (a delete job id is not a copy job id).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import threading
import time
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import cursors
from .core import Call, Emulator, Route, add_stream_faults, blocking, check_lock, lookup_error
from .paths import READ_PATH_PATTERN, WRITE_PATH_OR_ID_PATTERN, WRITE_PATH_PATTERN, basename, norm
from .store import ROOT_NAMESPACE_ID, LookupFail, Node, RelocationFail, StoreError, WriteFail
from .transfer import FdStream, Throttle
from .wire import (
    ApiFail,
    Args,
    api_error,
    bad_input,
    dumps,
    json_response,
    tag,
    text_response,
    void_response,
)

BATCH_MAX = 1000
TEAM_MEMBER_ID = "dbmid:emulator-member"


@dataclass
class _Extra:
    """Per-emulator state of these routes (jobs and links live in memory, like Dropbox's short-lived ones)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    links: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (rev, expiry)
    in_progress_checks: int = 0  # admin switch: each job answers in_progress this many times first
    pending: dict[str, int] = field(default_factory=dict)


_STATE: weakref.WeakKeyDictionary[Emulator, _Extra] = weakref.WeakKeyDictionary()


def _state(emu: Emulator) -> _Extra:
    st = _STATE.get(emu)
    if st is None:
        st = _STATE.setdefault(emu, _Extra())
    return st


def _new_job(c: Call, kind: str, result: dict[str, Any]) -> str:
    job = "dbjid:" + secrets.token_urlsafe(24)
    st = _state(c.emu)
    with st.lock:
        st.jobs[job] = (kind, result)
        st.pending[job] = st.in_progress_checks
    return job


def _check_job(c: Call, kind: str) -> Response:
    job = c.args.req_str("async_job_id")
    if job == "":
        raise bad_input(c.func, "request body: async_job_id: String should have at least 1 character")
    st = _state(c.emu)
    with st.lock:
        found = st.jobs.get(job)
        waits = st.pending.get(job, 0)
        if found is not None and found[0] == kind and waits > 0:
            st.pending[job] = waits - 1
    if found is None or found[0] != kind:
        raise api_error(tag("invalid_async_job_id"))
    if waits > 0:
        return json_response({".tag": "in_progress"})
    return json_response({".tag": "complete", **found[1]})


def _entries(c: Call, name: str) -> list[Any]:
    value = c.args.value.get(name) if isinstance(c.args.value, dict) else None
    if not isinstance(value, list):
        raise bad_input(c.func, f"request body: {name}: expected list, got {type(value).__name__}")
    if len(value) > BATCH_MAX:
        raise bad_input(c.func, f"request body: {name}: list has more than {BATCH_MAX} items")
    return value


def _sub_args(c: Call, value: Any, where: str) -> Args:
    if not isinstance(value, dict):
        raise bad_input(c.func, f"request body: {where}: expected object")
    return Args(c.func, value, f"request body: {where}")


# ---------------------------------------------------------------- batches


def _delete_one(c: Call, arg: Any) -> dict[str, Any]:
    path = arg.req_str("path", pattern=WRITE_PATH_OR_ID_PATTERN)
    parent_rev = arg.opt_str("parent_rev", pattern="[0-9a-f]{9,}")
    try:
        md = c.emu.store.delete(path, parent_rev)
    except LookupFail as e:
        return tag("failure", tag("path_lookup", e.reason))
    except WriteFail as e:
        return tag("failure", tag("path_write", e.reason))
    return {".tag": "success", "metadata": md}


async def delete_batch(c: Call) -> Response:
    args = [_sub_args(c, v, f"entries[{i}]") for i, v in enumerate(_entries(c, "entries"))]
    check_lock(c, tag("too_many_write_operations"))
    out = await blocking(lambda: [_delete_one(c, a) for a in args])
    job = _new_job(c, "delete", {"entries": out})
    return json_response({".tag": "async_job_id", "async_job_id": job})


async def delete_batch_check(c: Call) -> Response:
    return _check_job(c, "delete")


def _create_one(c: Call, path: str, autorename: bool) -> dict[str, Any]:
    try:
        md = c.emu.store.create_folder(path, autorename)
    except StoreError as e:
        return tag("failure", tag("path", e.reason))
    return {".tag": "success", "metadata": md}


async def create_folder_batch(c: Call) -> Response:
    raw = _entries(c, "paths")
    paths = []
    for i, p in enumerate(raw):
        if not isinstance(p, str):
            raise bad_input(c.func, f"request body: paths[{i}]: expected string")
        paths.append(_sub_args(c, {"path": p}, f"paths[{i}]").req_str("path", pattern=WRITE_PATH_PATTERN))
    autorename = c.args.flag("autorename")
    force_async = c.args.flag("force_async")
    check_lock(c, tag("too_many_files"))
    out = await blocking(lambda: [_create_one(c, p, autorename) for p in paths])
    if not force_async:
        return json_response({".tag": "complete", "entries": out})
    job = _new_job(c, "create_folder", {"entries": out})
    return json_response({".tag": "async_job_id", "async_job_id": job})


async def create_folder_batch_check(c: Call) -> Response:
    return _check_job(c, "create_folder")


def _relocate_one(c: Call, src: str, dst: str, autorename: bool, copy: bool) -> dict[str, Any]:
    try:
        md = c.emu.store.relocate(src, dst, autorename, copy)
    except RelocationFail as e:
        return tag("failure", tag("relocation_error", e.reason))
    except StoreError as e:
        return tag("failure", tag("relocation_error", tag("from_lookup", e.reason)))
    return tag("success", md)


async def _relocate_batch(c: Call, copy: bool) -> Response:
    pairs = []
    for i, v in enumerate(_entries(c, "entries")):
        a = _sub_args(c, v, f"entries[{i}]")
        pairs.append(
            (
                a.req_str("from_path", pattern=WRITE_PATH_OR_ID_PATTERN),
                a.req_str("to_path", pattern=WRITE_PATH_OR_ID_PATTERN),
            )
        )
    autorename = c.args.flag("autorename")
    if not copy:
        c.args.flag("allow_ownership_transfer")
    check_lock(c, tag("too_many_write_operations"))
    out = await blocking(lambda: [_relocate_one(c, s, d, autorename, copy) for s, d in pairs])
    job = _new_job(c, "copy" if copy else "move", {"entries": out})
    return json_response({".tag": "async_job_id", "async_job_id": job})


async def copy_batch(c: Call) -> Response:
    return await _relocate_batch(c, copy=True)


async def move_batch(c: Call) -> Response:
    return await _relocate_batch(c, copy=False)


async def copy_batch_check(c: Call) -> Response:
    return _check_job(c, "copy")


async def move_batch_check(c: Call) -> Response:
    return _check_job(c, "move")


# ---------------------------------------------------------------- search_v2


def _search(c: Call, state: dict[str, Any]) -> dict[str, Any]:
    """Filename search: every space-separated token must occur in the name (case-insensitive)."""
    store = c.emu.store
    tokens = [t for t in norm(state["q"]).split(" ") if t]
    scope: str = state["p"]
    exts = [e.lower().lstrip(".") for e in state["x"]] if state["x"] else None
    with store.lock:
        keys = sorted(store.nodes)
        hits = []
        for key in keys:
            if scope and not key.startswith(scope + "/"):
                continue
            node = store.nodes[key]
            name = norm(basename(node.display))
            if not tokens or not all(t in name for t in tokens):
                continue
            if exts is not None and (node.kind != "file" or name.rsplit(".", 1)[-1] not in exts):
                continue
            hits.append(node.metadata(tagged=True))
    offset, limit = state["o"], state["m"]
    page = hits[offset : offset + limit]
    has_more = offset + limit < len(hits)
    result: dict[str, Any] = {
        "matches": [{"metadata": {".tag": "metadata", "metadata": md}} for md in page],
        "has_more": has_more,
    }
    if has_more:
        result["cursor"] = cursors.encode({**state, "o": offset + limit}, store.secret)
    return result


async def search_v2(c: Call) -> Response:
    query = c.args.req_str("query")
    if len(query) > 1000:
        raise bad_input(c.func, "request body: query: string longer than 1000")
    opts = c.args.obj("options")
    scope, limit, exts = "", 100, None
    if opts is not None:
        path = opts.opt_str("path", pattern=READ_PATH_PATTERN)
        got = opts.opt_int("max_results", default=100, lo=1, hi=1000)
        assert got is not None
        limit = got
        status, _ = opts.union_tag("file_status", "active", ("active", "deleted"))
        if status == "deleted":
            raise api_error(tag("invalid_argument", "deleted file search is not served by the emulator"))
        raw_exts = opts.value.get("file_extensions")
        if raw_exts is not None:
            if not isinstance(raw_exts, list) or not all(isinstance(e, str) for e in raw_exts):
                raise bad_input(c.func, "request body: options: file_extensions: expected list of strings")
            exts = raw_exts
        opts.flag("filename_only")
        if path:
            try:
                scope = await blocking(c.emu.store.folder_key, path)
            except LookupFail as e:
                raise lookup_error(e) from None
    if not query.strip():
        raise api_error(tag("invalid_argument", "query must not be empty"))
    state = {"q": query, "p": scope, "m": limit, "x": exts, "o": 0, "e": c.emu.store.epoch}
    return json_response(await blocking(_search, c, state))


async def search_continue_v2(c: Call) -> Response:
    cursor = c.args.req_str("cursor")
    try:
        state = cursors.decode(cursor, c.emu.store.secret)
    except (cursors.BadCursor, cursors.ForeignCursor):
        raise bad_input(c.func, 'request body: cursor: Invalid "cursor" parameter') from None
    if "q" not in state:
        raise bad_input(c.func, 'request body: cursor: Invalid "cursor" parameter')
    return json_response(await blocking(_search, c, state))


def admin_routes(emu: Emulator) -> dict[tuple[str, str], Any]:
    """The batch-job switch and the app-auth check routes."""

    async def batch_jobs(request: Request) -> Response:
        """``{"in_progress_checks": n}``: jobs launched from now on answer ``in_progress`` n times first."""
        try:
            body = json.loads(await request.body() or b"{}")
            n = body["in_progress_checks"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return text_response('bad batch job settings: {"in_progress_checks": <int >= 0>}')
        st = _state(emu)
        with st.lock:
            st.in_progress_checks = n
        return json_response({"in_progress_checks": n})

    return {
        ("POST", "/_emulator/batch_jobs"): batch_jobs,
        **app_auth_routes(emu),
    }


# ---------------------------------------------------------------- restore


def _restore(c: Call, path: str, rev: str) -> dict[str, Any]:
    """Copy the bytes of ``rev`` to ``path`` as a new revision; ``rev`` must be a revision of that path."""
    store = c.emu.store
    with store.lock:
        try:
            old, fd = store.open_file("rev:" + rev)
        except LookupFail:
            raise api_error(tag("invalid_revision")) from None
        try:
            if old.key != norm(path):
                try:
                    current = store.lookup(path)
                except LookupFail:
                    current = None
                if current is None or current.id != old.id:
                    raise api_error(tag("invalid_revision"))
            tmp = store.tmp_dir / ("restore-" + secrets.token_hex(8))
            with open(tmp, "wb") as out:
                while chunk := os.read(fd, 1 << 20):
                    out.write(chunk)
        finally:
            os.close(fd)
        try:
            md: dict[str, Any] = store.commit_file(
                path, ("overwrite", None), False, False, old.client_modified, tmp, old.size, old.content_hash
            )
        except LookupFail as e:
            tmp.unlink(missing_ok=True)
            raise api_error(tag("path_lookup", e.reason)) from None
        except StoreError as e:
            tmp.unlink(missing_ok=True)
            raise api_error(tag("path_write", e.reason)) from None
    return md


async def restore(c: Call) -> Response:
    path = c.args.req_str("path", pattern=WRITE_PATH_PATTERN)
    rev = c.args.req_str("rev")
    if len(rev) < 9:
        raise bad_input(c.func, f"request body: rev: '{rev}' must be at least 9 characters, got {len(rev)}")
    rev = c.args.req_str("rev", pattern="[0-9a-f]+")
    check_lock(c, tag("path_write", tag("too_many_write_operations")))
    return json_response(await blocking(_restore, c, path, rev))


# ---------------------------------------------------------------- thumbnails and app auth

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "ppm", "heic"})


def _link_target(c: Call, url: str) -> str:
    """The node id a shared link URL of this emulator stands for (query string ignored)."""
    want = url.split("?", 1)[0]
    for node_id, link in c.emu.store.kv_all("links").items():
        if str(link.get("url", "")).split("?", 1)[0] == want:
            return str(node_id)
    raise api_error(tag("not_found"))


async def get_thumbnail_v2(c: Call) -> Response:
    """ThumbnailV2Arg over a path or a shared link. The bytes are the image itself (not resized)."""
    res = c.args.obj("resource", required=True)
    assert res is not None
    kind, _ = res.union_tag(".tag", "path", ("path", "link"))
    c.args.union_tag("format", "jpeg", ("jpeg", "png", "webp"))
    sizes = ("w32h32", "w64h64", "w128h128", "w256h256", "w480h320", "w640h480", "w960h640", "w1024h768")
    c.args.union_tag("size", "w64h64", (*sizes, "w2048h1536"))
    c.args.union_tag("mode", "strict", ("strict", "bestfit", "fitone_bestfit"))
    store = c.emu.store
    link_md: dict[str, Any] | None = None
    if kind == "path":
        path = res.req_str("path", pattern=READ_PATH_PATTERN)
    else:
        url = res.req_str("url")
        node_id = await blocking(_link_target, c, url)
        path = node_id
        link_md = {"url": url}
    try:
        node, fd = await blocking(store.open_file, path)
    except LookupFail as e:
        if kind == "link":
            raise api_error(tag("not_found")) from None
        raise lookup_error(e) from None
    if basename(node.display).rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS:
        os.close(fd)
        raise api_error(tag("unsupported_extension"))
    result: dict[str, Any] = {}
    if link_md is None:
        result["file_metadata"] = node.metadata(tagged=False)
    else:
        result["link_metadata"] = {**link_md, "rev": node.rev, "id": node.id}
    size = os.fstat(fd).st_size
    headers = {"Dropbox-API-Result": dumps(result), "Content-Length": str(size)}
    stream = FdStream(fd, 0, size, Throttle(c.emu.faults.bytes_per_s))
    return StreamingResponse(stream, headers=headers, media_type="application/octet-stream")


def app_auth_routes(emu: Emulator) -> dict[tuple[str, str], Any]:
    """Routes called with the app's key and secret (HTTP Basic) instead of a user's token."""

    async def check_app(request: Request) -> Response:
        value = request.headers.get("authorization", "")
        scheme, _, cred = value.partition(" ")
        if scheme.lower() != "basic":
            return text_response(
                'Error in call to API function "check/app": Must provide HTTP header "Authorization" '
                'with "Basic" app key and secret.'
            )
        try:
            key, _, secret = base64.b64decode(cred.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            key, secret = "", ""
        if key != emu.config.app_key or secret != emu.config.app_secret:
            raise api_error(tag("invalid_access_token"), status=401)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return text_response('Error in call to API function "check/app": request body: could not decode')
        query = body.get("query", "") if isinstance(body, dict) else ""
        return json_response({"result": query if isinstance(query, str) else ""})

    return {("POST", "/2/check/app"): check_app}


# ---------------------------------------------------------------- shared links by URL (sharing.stone)


def _link_by_url(c: Call, url: str) -> tuple[Node, dict[str, Any]]:
    """The item and link record behind a shared link URL of this emulator, else ``shared_link_not_found``."""
    store = c.emu.store
    want = url.split("?", 1)[0]
    for node_id, link in store.kv_all("links").items():
        if str(link.get("url", "")).split("?", 1)[0] != want:
            continue
        expires = link.get("expires")
        if expires is not None and expires < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()):
            break
        key = store.by_id.get(node_id)
        node = store.nodes.get(key) if key is not None else None
        if node is not None:
            return node, dict(link, node_id=node_id)
        break
    raise api_error(tag("shared_link_not_found"))


def _rendered(node: Node, link: dict[str, Any]) -> dict[str, Any]:
    from .routes_other import _link_metadata

    md = _link_metadata(node, link)
    if link.get("expires"):
        md["expires"] = link["expires"]
    md["link_permissions"]["allow_download"] = link.get("allow_download", True)
    return md


def _within(c: Call, node: Node, sub: str | None) -> Node:
    """``path`` of a link argument: an item inside a shared folder."""
    if not sub:
        return node
    if node.kind != "folder" or not sub.startswith("/"):
        raise api_error(tag("shared_link_not_found"))
    try:
        return c.emu.store.lookup(node.display + sub)
    except LookupFail:
        raise api_error(tag("shared_link_not_found")) from None


async def get_shared_link_metadata(c: Call) -> Response:
    url = c.args.req_str("url")
    sub = c.args.opt_str("path")
    c.args.opt_str("link_password")
    node, link = await blocking(_link_by_url, c, url)
    return json_response(_rendered(_within(c, node, sub), link))


async def get_shared_link_file(c: Call) -> Response:
    url = c.args.req_str("url")
    sub = c.args.opt_str("path")
    c.args.opt_str("link_password")
    node, link = await blocking(_link_by_url, c, url)
    item = _within(c, node, sub)
    if item.kind == "folder":
        raise api_error(tag("shared_link_is_directory"))
    if not link.get("allow_download", True):
        raise api_error(tag("shared_link_access_denied"))
    try:
        opened, fd = await blocking(c.emu.store.open_file, item.id)
    except LookupFail:
        raise api_error(tag("shared_link_not_found")) from None
    size = os.fstat(fd).st_size
    headers = {"Dropbox-API-Result": dumps(_rendered(opened, link)), "Content-Length": str(size)}
    stream = FdStream(fd, 0, size, Throttle(c.emu.faults.bytes_per_s))
    return StreamingResponse(stream, headers=headers, media_type="application/octet-stream")


async def revoke_shared_link(c: Call) -> Response:
    url = c.args.req_str("url")
    if not url.startswith(("https://", "http://")):
        raise api_error(tag("shared_link_malformed"))
    _, link = await blocking(_link_by_url, c, url)
    await blocking(c.emu.store.kv_del, "links", link["node_id"])
    return void_response()


TS_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"


async def modify_shared_link_settings(c: Call) -> Response:
    url = c.args.req_str("url")
    settings = c.args.obj("settings", required=True)
    assert settings is not None
    expires = settings.opt_str("expires", pattern=TS_RE)
    allow_download = settings.value.get("allow_download")
    if allow_download is not None and not isinstance(allow_download, bool):
        raise bad_input(c.func, "request body: settings: allow_download: expected boolean")
    settings.union_tag("requested_visibility", "public", ("public", "team_only", "password"))
    settings.union_tag("audience", "public", ("public", "team", "no_one", "password", "members"))
    settings.union_tag("access", "viewer", ("viewer", "editor", "max", "default"))
    remove_expiration = c.args.flag("remove_expiration")
    node, link = await blocking(_link_by_url, c, url)
    if expires is not None and expires <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()):
        raise api_error(tag("settings_error", tag("invalid_settings")))
    record = {k: v for k, v in link.items() if k != "node_id"}
    if expires is not None:
        record["expires"] = expires
    if remove_expiration:
        record.pop("expires", None)
    if allow_download is not None:
        record["allow_download"] = allow_download
    await blocking(c.emu.store.kv_put, "links", link["node_id"], record)
    return json_response(_rendered(node, record))


# ---------------------------------------------------------------- download_zip

ZIP_MAX_FILES = 10_000
ZIP_MAX_BYTES = 20 * 1024**3


def _build_zip(c: Call, path: str) -> tuple[dict[str, Any], Path]:
    store = c.emu.store
    with store.lock:
        try:
            folder = store.lookup(path)
        except LookupFail as e:
            raise lookup_error(e) from None
        if folder.kind != "folder":
            raise api_error(tag("path", tag("not_folder")))
        items = [store.nodes[k] for k in store._subtree(folder.key)]
        files = [n for n in items if n.kind == "file"]
        if len(files) > ZIP_MAX_FILES:
            raise api_error(tag("too_many_files"))
        if sum(n.size for n in files) > ZIP_MAX_BYTES:
            raise api_error(tag("too_large"))
        fds = {n.key: os.open(store.blob_dir / n.blob, os.O_RDONLY) for n in files}
        md = folder.metadata(tagged=False)
    top = basename(folder.display)
    out = store.tmp_dir / ("zip-" + secrets.token_hex(8))
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for n in items:
                rel = top + n.display[len(folder.display) :]
                if n.kind == "folder":
                    zf.writestr(rel + "/", b"")
                    continue
                with os.fdopen(fds.pop(n.key), "rb") as src, zf.open(rel, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    finally:
        for fd in fds.values():
            os.close(fd)
    return md, out


async def download_zip(c: Call) -> Response:
    path = c.args.req_str("path", pattern=READ_PATH_PATTERN)
    md, zpath = await blocking(_build_zip, c, path)
    fd = os.open(zpath, os.O_RDONLY)
    zpath.unlink()  # the open fd keeps the bytes until the stream closes it
    size = os.fstat(fd).st_size
    headers = {"Dropbox-API-Result": dumps({"metadata": md}), "Content-Length": str(size)}
    stream = FdStream(fd, 0, size, Throttle(c.emu.faults.bytes_per_s))
    add_stream_faults(c, stream, size)
    return StreamingResponse(stream, headers=headers, media_type="application/zip")


# ---------------------------------------------------------------- team listing (team.stone)


def _member_profile() -> dict[str, Any]:
    from .auth import ACCOUNT_ID

    return {
        "team_member_id": TEAM_MEMBER_ID,
        "account_id": ACCOUNT_ID,
        "email": "dev@emulator.invalid",
        "email_verified": True,
        "status": tag("active"),
        "name": {
            "given_name": "Dev",
            "surname": "Emulator",
            "familiar_name": "Dev",
            "display_name": "Dev Emulator",
            "abbreviated_name": "DE",
        },
        "membership_type": tag("full"),
        "groups": [],
        "member_folder_id": ROOT_NAMESPACE_ID,
        "root_folder_id": ROOT_NAMESPACE_ID,
    }


async def team_members_list(c: Call) -> Response:
    c.args.opt_int("limit", default=1000, lo=1, hi=1000)
    c.args.flag("include_removed")
    member = {"profile": _member_profile(), "role": tag("team_admin")}
    return json_response({"members": [member], "cursor": "", "has_more": False})


async def team_groups_list(c: Call) -> Response:
    c.args.opt_int("limit", default=1000, lo=1, hi=1000)
    return json_response({"groups": [], "cursor": "", "has_more": False})


ROUTES = [
    Route("/2/files/delete_batch", "rpc", delete_batch, write=True),
    Route("/2/files/delete_batch/check", "rpc", delete_batch_check),
    Route("/2/files/create_folder_batch", "rpc", create_folder_batch, write=True),
    Route("/2/files/create_folder_batch/check", "rpc", create_folder_batch_check),
    Route("/2/files/copy_batch_v2", "rpc", copy_batch, write=True),
    Route("/2/files/copy_batch/check_v2", "rpc", copy_batch_check),
    Route("/2/files/move_batch_v2", "rpc", move_batch, write=True),
    Route("/2/files/move_batch/check_v2", "rpc", move_batch_check),
    Route("/2/files/search_v2", "rpc", search_v2),
    Route("/2/files/search/continue_v2", "rpc", search_continue_v2),
    Route("/2/files/restore", "rpc", restore, write=True),
    Route("/2/files/get_thumbnail_v2", "download", get_thumbnail_v2),
    Route("/2/files/download_zip", "download", download_zip),
    Route("/2/sharing/get_shared_link_metadata", "rpc", get_shared_link_metadata),
    Route("/2/sharing/get_shared_link_file", "download", get_shared_link_file),
    Route("/2/sharing/revoke_shared_link", "rpc", revoke_shared_link, write=True),
    Route("/2/sharing/modify_shared_link_settings", "rpc", modify_shared_link_settings, write=True),
    Route("/2/team/members/list", "rpc", team_members_list),
    Route("/2/team/groups/list", "rpc", team_groups_list),
]

__all__ = ["ROUTES", "ApiFail", "admin_routes"]
