"""A loopback HTTP proxy that lets a test tamper with requests and answers between client and emulator.

``tests/client/proxy.py`` works at the TCP level and only touches download responses. This one parses each
request (``Content-Length`` bodies, which is what the client sends), so a test can corrupt an upload body on
the way, make the server's answer disagree with what it stored, or act between the server committing and the
client hearing about it (then drop the answer, as a lost response).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import requests

from tests.client.proxy import read_request, serve_http, write_response

RequestHook = Callable[[str, bytes, dict[str, str]], bytes]
"""(path, body, headers) -> the body to forward."""
ResponseHook = Callable[[str, requests.Response], bool]
"""(path, upstream response) -> False to drop the answer (close the connection without replying);
may change ``response._content`` / ``response.headers`` in place."""


@dataclass
class Tamper:
    upstream: str
    on_request: RequestHook | None = None
    on_response: ResponseHook | None = None
    seen: list[tuple[str, int]] = field(default_factory=list)  # (path, status) of each answered request
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def tampering_proxy(tamper: Tamper) -> Iterator[str]:
    """Serve a proxy to ``tamper.upstream``; yields its base URL."""
    session = requests.Session()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body, headers = read_request(self)
            if tamper.on_request is not None:
                body = tamper.on_request(self.path, body, headers)
            resp = session.request(
                self.command, tamper.upstream + self.path, data=body, headers=headers, timeout=120
            )
            if tamper.on_response is not None and not tamper.on_response(self.path, resp):
                self.close_connection = True
                return
            with tamper.lock:
                tamper.seen.append((self.path, resp.status_code))
            write_response(self, resp)

        do_GET = do_POST = _forward

    try:
        with serve_http(Handler) as url:
            yield url
    finally:
        session.close()
