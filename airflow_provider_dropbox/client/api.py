"""``DropboxClient``: one ``requests.Session``, the four call styles, and the metadata routes.

Call styles (reference §1): RPC (JSON body; Void args go as the body ``null``), upload (``Dropbox-API-Arg``
header + octet-stream body), download (``Dropbox-API-Arg`` header, result in the ``Dropbox-API-Result``
header, streamed body) and longpoll (JSON body, no Authorization, long read timeout). Header args are
``json.dumps`` with its default ``ensure_ascii=True``: Dropbox wants non-ASCII escaped as ``\\uXXXX`` and
requests refuses non-latin-1 headers anyway. Every request goes through the one retry policy (``retry.py``); a
401 ``expired_access_token`` refreshes the token once and is re-sent at once."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.utils import get_environ_proxies

from airflow_provider_dropbox import __version__
from airflow_provider_dropbox.client import download as _download
from airflow_provider_dropbox.client import upload as _upload
from airflow_provider_dropbox.client.auth import TokenManager
from airflow_provider_dropbox.client.config import (
    Credentials,
    Endpoints,
    check_parallelism,
    check_seconds,
    header_problem,
)
from airflow_provider_dropbox.client.errors import (
    CursorResetError,
    DropboxApiError,
    DropboxConnectionError,
    DropboxUnreachableError,
    ExpiredAccessTokenError,
    InvalidArgumentError,
    PathConflictError,
    PathNotFoundError,
    RateLimitError,
    api_error_from_response,
)
from airflow_provider_dropbox.client.paths import check_remote_path
from airflow_provider_dropbox.client.progress import ProgressCallback
from airflow_provider_dropbox.client.retry import (
    RetryPolicy,
    describe,
    host_port,
    is_retryable,
    is_unreachable,
    remaining_budget,
)
from airflow_provider_dropbox.longpoll import LONGPOLL_JITTER, clamp_longpoll_timeout

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs
    from requests.sessions import _Settings

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SEND_BLOCKSIZE = 1 * MiB
"""Socket write size for streamed bodies (urllib3's default of 16 KiB costs CPU on GiB-sized uploads)."""


Body = bytes | IO[bytes] | Any

_UPLOAD_ROUTES = ("files/upload", "files/upload_session/finish", "files/upload_session/finish_batch_v2")


class _Adapter(HTTPAdapter):
    """HTTPAdapter with large socket writes; urllib3's own retries stay off (tenacity decides).

    requests stats the CA bundle (exists, isdir, isdir) on every request; at 8 threads each stat is a GIL
    hand-off, so a bundle is checked once, when first used, and trusted from then on. A missing bundle is
    not remembered: requests raises its usual error for it on every attempt.

    ``cert_verify`` and ``build_connection_pool_key_attributes`` are the hooks requests documents for
    subclasses of ``HTTPAdapter`` (its API reference: "exposed for use when subclassing"), not private
    names. Measured: 8 threads of small HTTPS requests against the emulator on loopback, about 1,000 req/s
    with them against about 915 without (7-10 %), and 2.3 against 5.5 microseconds of adapter work per
    request; plain http is unaffected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._bundle_is_dir: dict[str, bool] = {}
        """CA bundle path -> is a directory; holds only paths seen to exist."""
        super().__init__(*args, **kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs.setdefault("blocksize", SEND_BLOCKSIZE)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def _bundle_kind(self, location: str) -> bool | None:
        """True for a CA directory, False for a file, None when the path does not exist (not cached)."""
        is_dir = self._bundle_is_dir.get(location)
        if is_dir is None and os.path.exists(location):
            is_dir = self._bundle_is_dir[location] = os.path.isdir(location)
        return is_dir

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        if not isinstance(verify, str):
            return super().build_connection_pool_key_attributes(request, verify, cert)
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
        if self._bundle_kind(verify):
            pool_kwargs["ca_cert_dir"] = verify
        else:
            pool_kwargs["ca_certs"] = verify
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        if verify and cert is None and url[:5].lower() == "https":
            location = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
            is_dir = self._bundle_kind(location) if location else None
            if is_dir is not None:  # the same settings requests makes, without its stats
                conn.cert_reqs = "CERT_REQUIRED"
                if is_dir:
                    conn.ca_cert_dir = location
                else:
                    conn.ca_certs = location
                return
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]


class _Session(requests.Session):
    """A Session that reads the proxy environment once per (scheme, host), not on every request.

    With ``trust_env`` on, requests walks ``os.environ`` twice per request for proxies and looks for a
    ``~/.netrc`` (whose entry for a Dropbox host would even replace the Bearer token with Basic auth). Here
    ``trust_env`` is off and the environment's proxies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, resolved by
    requests' own ``get_environ_proxies``) are looked up once per scheme and host and passed explicitly.
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE still apply when no CA bundle is configured, as before."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._env_proxies: dict[tuple[str, str], dict[str, str]] = {}

    def env_proxies(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url`` (empty when NO_PROXY matches), resolved once per host."""
        parts = urlsplit(url)
        key = (parts.scheme.lower(), parts.netloc.lower())
        found = self._env_proxies.get(key)
        if found is None:
            found = self._env_proxies[key] = dict(get_environ_proxies(url))
        return found

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        merged = dict(self.env_proxies(str(url)))
        if proxies:
            merged.update(proxies)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return super().merge_environment_settings(url, merged, stream, verify, cert)

    def rebuild_proxies(self, prepared_request: Any, proxies: Any) -> dict[str, str]:
        """On a redirect: the new host's environment proxy, as ``trust_env`` would add it."""
        url = str(prepared_request.url)
        scheme = urlsplit(url).scheme
        env = self.env_proxies(url)
        merged = dict(proxies or {})
        proxy = env.get(scheme, env.get("all"))
        if proxy:
            merged.setdefault(scheme, proxy)
        rebuilt: dict[str, str] = super().rebuild_proxies(prepared_request, merged)  # type: ignore[no-untyped-call]
        return rebuilt


def encode_arg(arg: Any) -> str:
    """Header-safe JSON for ``Dropbox-API-Arg``: non-ASCII and DEL become ``\\uXXXX`` escapes."""
    return json.dumps(arg, ensure_ascii=True)


def _path_of(arg: Any) -> str | None:
    if isinstance(arg, Mapping):
        for key in ("path", "from_path"):
            if isinstance(arg.get(key), str):
                return str(arg[key])
        commit = arg.get("commit")
        if isinstance(commit, Mapping) and isinstance(commit.get("path"), str):
            return str(commit["path"])
    return None


class DropboxClient:
    """Dropbox API v2 over ``requests``; thread-safe, meant to be shared by many transfer threads."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoints: Endpoints | None = None,
        timeout: float = 100.0,
        parallelism: int = 8,
        team_member_id: str | None = None,
        root_namespace_id: str | None = None,
        on_new_token: Callable[[str], None] | None = None,
        retry_deadline: float = 600.0,
        ca_bundle: str | None = None,
        retry_policy: RetryPolicy | None = None,
        connect_retry_deadline: float = 30.0,
    ) -> None:
        self.endpoints = endpoints or Endpoints()
        self.timeout = check_seconds(timeout, name="timeout")
        check_seconds(retry_deadline, name="retry_deadline")
        check_seconds(connect_retry_deadline, name="connect_retry_deadline")
        self.parallelism = check_parallelism(parallelism) or 1
        self.retry = retry_policy or RetryPolicy(
            deadline=retry_deadline, connect_deadline=connect_retry_deadline
        )
        self._server_date = threading.local()
        self.session: requests.Session = _Session()
        self.pool_size = self.parallelism * 2 + 4
        adapter = _Adapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = ca_bundle or True  # TLS verification is never switched off
        self.session.headers["User-Agent"] = f"airflow-provider-dropbox/{__version__}"
        self._team_headers: dict[str, str] = {}
        for field_name, value in (
            ("team_member_id", team_member_id),
            ("root_namespace_id", root_namespace_id),
        ):
            problem = header_problem(value) if value else None
            if problem:
                raise InvalidArgumentError(f"The Dropbox {field_name} {problem}; enter the id again")
        if team_member_id:
            self._team_headers["Dropbox-API-Select-User"] = team_member_id
        if root_namespace_id:
            self._team_headers["Dropbox-API-Path-Root"] = encode_arg(
                {".tag": "root", "root": root_namespace_id}
            )
        self.auth = TokenManager(
            credentials,
            endpoints=self.endpoints,
            session=self.session,
            retry_policy=self.retry,
            timeout=self.timeout,
            on_new_token=on_new_token,
        )

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DropboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _width(self, parallelism: int | None) -> int:
        """Threads for one transfer: the call's choice, at most what the connection pool keeps alive."""
        chosen = check_parallelism(parallelism, allow_none=True) or self.parallelism
        return max(1, min(chosen, self.pool_size))

    def _timeouts(self, read: float | None = None) -> tuple[float, float]:
        """(connect, read) timeouts, both within what is left of the operation's retry budget."""
        connect, read_s = min(10.0, self.timeout), read if read is not None else self.timeout
        left = remaining_budget()
        if left is not None:
            left = max(1.0, left)
            connect, read_s = min(connect, left), min(read_s, left)
        return (connect, read_s)

    def send(
        self,
        route: str,
        *,
        host: str,
        data: Body,
        headers: Mapping[str, str],
        arg: Any = None,
        stream: bool = False,
        path: str | None = None,
        auth: bool = True,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One HTTP attempt (plus one immediate re-send after a token refresh); non-2xx -> typed error.

        ``data`` may be a zero-argument callable returning a fresh body, so the re-send after a refresh does
        not reuse a consumed stream."""
        url = f"{host}/2/{route}"
        for refreshed in (False, True):
            all_headers = dict(self._team_headers) if auth else {}
            all_headers.update(headers)
            token = None
            if auth:
                token = self.auth.token()
                all_headers["Authorization"] = f"Bearer {token}"
            body = data() if callable(data) else data
            try:
                resp = self.session.post(
                    url,
                    data=body,
                    headers=all_headers,
                    stream=stream,
                    timeout=self._timeouts(read_timeout),
                    verify=self.session.verify,  # explicit, or REQUESTS_CA_BUNDLE would override ca_bundle
                )
            finally:
                close = getattr(body, "close", None)
                if callable(close) and body is not data:
                    close()
            if resp.status_code < 300:
                self._server_date.value = resp.headers.get("Date")
                return resp
            try:
                error = self._decode_error(resp, route, path if path is not None else _path_of(arg))
            finally:
                resp.close()
            if isinstance(error, ExpiredAccessTokenError) and token is not None and not refreshed:
                if self.auth.can_refresh:
                    self.auth.token_expired(token)
                    continue
            raise error
        raise AssertionError("unreachable")

    @staticmethod
    def _decode_error(resp: requests.Response, route: str, path: str | None) -> DropboxApiError:
        text = resp.text
        body: Any = None
        if "json" in resp.headers.get("Content-Type", ""):
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        retry_after: float | None = None
        header = resp.headers.get("Retry-After")
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return api_error_from_response(
            route=route,
            status=resp.status_code,
            body=body,
            text=text,
            request_id=resp.headers.get("X-Dropbox-Request-Id"),
            path=path,
            retry_after_header=retry_after,
            upload=route in _UPLOAD_ROUTES,
        )

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` under the retry policy; turns exhausted connection failures into a typed error."""
        try:
            return self.retry.call(what, fn)
        except requests.exceptions.SSLError as exc:
            raise DropboxConnectionError(
                f"TLS verification failed talking to Dropbox ({what}): {type(exc).__name__}; check the CA "
                "bundle (ca_bundle) and the host name",
                route=what,
            ) from exc
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            ConnectionError,
        ) as exc:
            if is_unreachable(exc):
                raise self._unreachable(what, exc) from exc
            raise DropboxConnectionError(
                f"Could not reach Dropbox ({what}) after retries: {type(exc).__name__}; check the host "
                f"URL and the network (retries stop after the retry deadline, {self.retry.deadline:g} s: "
                "retry_deadline)",
                route=what,
            ) from exc

    def _unreachable(self, what: str, exc: BaseException) -> DropboxUnreachableError:
        where = host_port(exc)
        host, _, port = where.rpartition(":") if where else (None, "", "")
        budget = min(self.retry.connect_deadline, self.retry.deadline)
        reason = describe(exc)
        return DropboxUnreachableError(
            f"Could not reach Dropbox at {where or '(unknown host)'} ({what}): {reason}, retried for up to "
            f"{budget:g} s; check the host URL and the network (is a server listening on that port, is the "
            "name right?); the connection extra connect_retry_deadline lengthens the wait for flaky networks",
            host=host or None,
            port=int(port) if port.isdigit() else None,
            route=what,
        )

    # ------------------------------------------------------------------ the four call styles

    def rpc(
        self,
        route: str,
        arg: Any = None,
        *,
        path: str | None = None,
        recover: Callable[[DropboxApiError], Any] | None = None,
    ) -> Any:
        """RPC call: JSON in, JSON out; ``arg=None`` is the Void argument (body ``null``).

        ``recover`` serves write routes: when an attempt's answer was lost (connection error, 5xx) and the
        re-sent request then fails for good (already deleted, already there), ``recover(error)`` may return
        the result the lost answer carried, after checking the first attempt took effect; None re-raises.
        """
        body = json.dumps(arg).encode("ascii")
        headers = {"Content-Type": "application/json"}
        uncertain = False

        def attempt() -> Any:
            nonlocal uncertain
            try:
                resp = self.send(
                    route, host=self.endpoints.api, data=body, headers=headers, arg=arg, path=path
                )
                content = resp.content
                return json.loads(content) if content else None
            except BaseException as exc:
                if (
                    recover is not None
                    and uncertain
                    and isinstance(exc, DropboxApiError)
                    and not is_retryable(exc)
                ):
                    recovered = recover(exc)
                    if recovered is not None:
                        log.info("Dropbox %s: the earlier attempt had taken effect; using its outcome", route)
                        return recovered
                if is_retryable(exc) and not isinstance(exc, RateLimitError):
                    uncertain = True
                raise

        return self.call(route, attempt)

    def upload_call(
        self, route: str, arg: Any, body: Callable[[], Body], *, path: str | None = None, retry: bool = True
    ) -> Any:
        """Upload-style call; ``body()`` makes a fresh body per attempt (bytes or a readable with
        ``__len__``)."""
        headers = {"Content-Type": "application/octet-stream", "Dropbox-API-Arg": encode_arg(arg)}

        def attempt() -> Any:
            resp = self.send(
                route, host=self.endpoints.content, data=body, headers=headers, arg=arg, path=path
            )
            content = resp.content
            return json.loads(content) if content else None

        return self.call(route, attempt) if retry else attempt()

    def download_response(
        self,
        route: str,
        arg: Any,
        *,
        byte_range: tuple[int, int | None] | None = None,
        path: str | None = None,
    ) -> requests.Response:
        """One download-style request (no retry here: the caller resumes from what it has). Caller closes."""
        headers = {"Dropbox-API-Arg": encode_arg(arg)}
        if byte_range is not None:
            start, end = byte_range
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        return self.send(
            route, host=self.endpoints.content, data=None, headers=headers, arg=arg, stream=True, path=path
        )

    def longpoll(self, cursor: str, timeout: int = 30) -> dict[str, Any]:
        """Wait for changes under ``cursor``: ``{"changes": bool, "backoff": int | None}``.

        No Authorization header (the route is noauth and Dropbox answers 400 if one is sent), and a read
        timeout above ``timeout + 90 s`` because Dropbox adds up to 90 s of jitter."""
        timeout = clamp_longpoll_timeout(timeout)
        arg = {"cursor": cursor, "timeout": timeout}
        body = json.dumps(arg).encode("ascii")
        route = "files/list_folder/longpoll"

        def attempt() -> Any:
            resp = self.send(
                route,
                host=self.endpoints.notify,
                data=body,
                headers={"Content-Type": "application/json"},
                arg=arg,
                auth=False,
                read_timeout=timeout + LONGPOLL_JITTER + 30.0,
            )
            return resp.json()

        try:
            result = self.call(route, attempt)
        except DropboxApiError as exc:
            if "reset" in exc.tags:
                raise CursorResetError(
                    "The Dropbox cursor was reset by the server (files/list_folder/longpoll); list the "
                    "folder again to get a new cursor",
                    route=route,
                    status=exc.status,
                    error_summary=exc.error_summary,
                    error=exc.error,
                    request_id=exc.request_id,
                ) from exc
            raise
        return {"changes": bool(result.get("changes")), "backoff": result.get("backoff")}

    # ------------------------------------------------------------------ account

    def get_current_account(self) -> dict[str, Any]:
        return dict(self.rpc("users/get_current_account"))

    def get_space_usage(self) -> dict[str, Any]:
        return dict(self.rpc("users/get_space_usage"))

    # ------------------------------------------------------------------ metadata

    def get_metadata(self, path: str, include_deleted: bool = False) -> dict[str, Any]:
        path = check_remote_path(path, route="files/get_metadata")
        return dict(self.rpc("files/get_metadata", {"path": path, "include_deleted": include_deleted}))

    def exists(self, path: str) -> bool:
        if check_remote_path(path, route="files/get_metadata", allow_root=True) == "":
            return True
        try:
            self.get_metadata(path)
        except PathNotFoundError:
            return False
        return True

    def _list_pages(self, first_route: str, first_arg: Any) -> Iterator[dict[str, Any]]:
        page = self.rpc(first_route, first_arg)
        yield page
        while page.get("has_more"):
            page = self.rpc("files/list_folder/continue", {"cursor": page["cursor"]})
            yield page

    def list_folder(
        self, path: str, recursive: bool = False, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every entry under ``path`` (all pages), as Metadata dicts with ``.tag``."""
        arg: dict[str, Any] = {
            "path": check_remote_path(path, route="files/list_folder", allow_root=True),
            "recursive": recursive,
        }
        if limit is not None:
            arg["limit"] = int(limit)
        for page in self._list_pages("files/list_folder", arg):
            yield from page.get("entries", [])

    def last_server_date(self) -> str | None:
        """The HTTP ``Date`` of the last successful response to a call made by this thread (server clock).

        Per thread, so concurrent calls never see each other's; used to tell when a cursor was taken.
        """
        return getattr(self._server_date, "value", None)

    def list_folder_pages(
        self, path: str, recursive: bool = True, limit: int | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """The listing one page at a time, each with the cursor that continues after it, so a caller can
        commit a page and resume from its cursor without holding the whole listing."""
        arg: dict[str, Any] = {
            "path": check_remote_path(path, route="files/list_folder", allow_root=True),
            "recursive": recursive,
        }
        if limit is not None:
            arg["limit"] = int(limit)
        for page in self._list_pages("files/list_folder", arg):
            yield list(page.get("entries", [])), str(page["cursor"])

    def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]:
        """All entries plus the cursor after the last page (start of incremental sync)."""
        entries: list[dict[str, Any]] = []
        last = ""
        for page, cursor in self.list_folder_pages(path, recursive):
            entries.extend(page)
            last = cursor
        return entries, last

    def get_latest_cursor(self, path: str, recursive: bool = True) -> str:
        arg = {
            "path": check_remote_path(path, route="files/list_folder", allow_root=True),
            "recursive": recursive,
        }
        return str(self.rpc("files/list_folder/get_latest_cursor", arg)["cursor"])

    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]:
        """Every change since ``cursor`` (all pages) and the new cursor; ``CursorResetError`` when reset."""
        entries: list[dict[str, Any]] = []
        page = self.rpc("files/list_folder/continue", {"cursor": cursor})
        entries.extend(page.get("entries", []))
        while page.get("has_more"):
            page = self.rpc("files/list_folder/continue", {"cursor": page["cursor"]})
            entries.extend(page.get("entries", []))
        return entries, str(page["cursor"])

    # ------------------------------------------------------------------ file operations

    def _metadata_or_none(self, path: str, include_deleted: bool = False) -> dict[str, Any] | None:
        try:
            return self.get_metadata(path, include_deleted=include_deleted)
        except PathNotFoundError:
            return None

    def delete(self, path: str, parent_rev: str | None = None) -> dict[str, Any]:
        """Delete a file or folder (with its contents); returns the metadata it had.

        ``parent_rev`` (files only): delete only that revision; a file changed since then is left alone
        and the call raises ``PathConflictError``."""
        path = check_remote_path(path, route="files/delete_v2")
        arg: dict[str, Any] = {"path": path}
        if parent_rev is not None:
            arg["parent_rev"] = parent_rev

        def recover(exc: DropboxApiError) -> Any:
            # Gone now, and Dropbox remembers it as deleted: our lost attempt did it.
            if isinstance(exc, PathNotFoundError):
                gone = self._metadata_or_none(path, include_deleted=True)
                if gone is not None and gone.get(".tag") == "deleted":
                    return {"metadata": gone}
            return None

        return dict(self.rpc("files/delete_v2", arg, recover=recover)["metadata"])

    def create_folder(self, path: str, exist_ok: bool = True) -> dict[str, Any]:
        """Create a folder (and missing parents); with ``exist_ok`` an existing folder is returned as is."""
        path = check_remote_path(path, route="files/create_folder_v2")

        def recover(exc: DropboxApiError) -> Any:
            if isinstance(exc, PathConflictError) and "folder" in exc.tags:
                return {"metadata": self.get_metadata(path)}
            return None

        try:
            arg = {"path": path, "autorename": False}
            return dict(self.rpc("files/create_folder_v2", arg, recover=recover)["metadata"])
        except PathConflictError as exc:
            if exist_ok and "folder" in exc.tags:
                return self.get_metadata(path)
            raise

    def _relocate(self, route: str, from_path: str, to_path: str, autorename: bool) -> dict[str, Any]:
        from_path = check_remote_path(from_path, route=route)
        to_path = check_remote_path(to_path, route=route)
        arg = {"from_path": from_path, "to_path": to_path, "autorename": autorename}

        def recover(exc: DropboxApiError) -> Any:
            """A lost move shows as 'source gone, target there'; a lost copy as 'target there, same bytes'."""
            if autorename:
                return None  # the lost attempt may have landed under another name; do not guess
            target = self._metadata_or_none(to_path)
            if target is None:
                return None
            if route == "files/move_v2" and exc.tags[:1] == ["from_lookup"] and "not_found" in exc.tags:
                return {"metadata": target}
            if route == "files/copy_v2" and exc.tags[:1] == ["to"] and "conflict" in exc.tags:
                source = self._metadata_or_none(from_path)
                same = source is not None and source.get(".tag") == target.get(".tag")
                if same and source is not None and source.get("content_hash") == target.get("content_hash"):
                    return {"metadata": target}
            return None

        try:
            return dict(self.rpc(route, arg, recover=recover)["metadata"])
        except DropboxApiError as exc:
            if exc.tags[:1] == ["to"] and exc.path != to_path:
                exc.path = to_path
                exc.message = exc.message.replace(f"'{from_path}'", f"'{to_path}'")
                exc.args = (exc.message,)
            raise

    def move(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]:
        return self._relocate("files/move_v2", from_path, to_path, autorename)

    def copy(self, from_path: str, to_path: str, autorename: bool = False) -> dict[str, Any]:
        return self._relocate("files/copy_v2", from_path, to_path, autorename)

    def create_shared_link(self, path: str) -> str:
        """A shared link URL for ``path``; the existing link when there already is one."""
        path = check_remote_path(path, route="sharing/create_shared_link_with_settings")
        try:
            return str(self.rpc("sharing/create_shared_link_with_settings", {"path": path})["url"])
        except DropboxApiError as exc:
            if "shared_link_already_exists" not in exc.tags:
                raise
            existing = exc.error.get("shared_link_already_exists") if isinstance(exc.error, Mapping) else None
            if isinstance(existing, Mapping):
                meta = existing.get("metadata", existing)
                if isinstance(meta, Mapping) and meta.get("url"):
                    return str(meta["url"])
        links = self.rpc("sharing/list_shared_links", {"path": path, "direct_only": True}).get("links", [])
        if not links:
            raise DropboxApiError(
                f"Dropbox says a shared link for '{path}' exists but lists none (sharing/list_shared_links)",
                route="sharing/list_shared_links",
                path=path,
            )
        return str(links[0]["url"])

    # ------------------------------------------------------------------ transfers

    def download_file(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        parallelism: int | None = None,
        progress: ProgressCallback | None = None,
        fsync: bool = True,
    ) -> dict[str, Any]:
        """Download to ``local_path`` atomically, verified by size and content_hash; returns FileMetadata.

        ``fsync=False`` skips the per-file fsync for callers (the mirror) that make a whole batch durable
        at once before recording it.
        """
        return _download.download_file(
            self,
            remote_path,
            local_path,
            parallelism=self._width(parallelism),
            progress=progress,
            fsync=fsync,
        )

    def download_zip(
        self, path: str, local_path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """Save the folder ``path`` as one zip file (files/download_zip); returns the folder's metadata.
        ``max_bytes`` drops a zip that turns out longer (``DownloadTooLargeError``)."""
        from airflow_provider_dropbox.client import batch  # batch.py builds on this module

        return batch.download_zip(self, path, local_path, max_bytes=max_bytes)

    def upload_file(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        mode: str | Mapping[str, str] = "add",
        autorename: bool = False,
        single_request_limit: int = _upload.SINGLE_REQUEST_LIMIT,
        chunk_size: int | None = None,
        parallelism: int | None = None,
        skip_if_identical: bool = True,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Upload one file (single request or upload session); returns the FileMetadata Dropbox stored."""
        return _upload.upload_file(
            self,
            local_path,
            remote_path,
            mode=mode,
            autorename=autorename,
            single_request_limit=single_request_limit,
            chunk_size=chunk_size,
            parallelism=self._width(parallelism),
            skip_if_identical=skip_if_identical,
            progress=progress,
        )

    def upload_files(
        self,
        pairs: Iterable[tuple[str | os.PathLike[str], str]],
        *,
        mode: str | Mapping[str, str] = "add",
        autorename: bool = False,
        chunk_size: int | None = None,
        parallelism: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[dict[str, Any]]:
        """Upload many files: data in parallel, commits batched (finish_batch_v2); metadata in input order."""
        pair_list: Sequence[tuple[str | os.PathLike[str], str]] = list(pairs)
        return _upload.upload_files(
            self,
            pair_list,
            mode=mode,
            autorename=autorename,
            chunk_size=chunk_size,
            parallelism=self._width(parallelism),
            progress=progress,
        )
