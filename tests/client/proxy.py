"""Fault-injecting TCP proxies, for faults the emulator cannot stage.

``TcpProxy`` is the one core: a loopback listener that opens an upstream connection per client connection,
hands the pair to ``_relay`` and closes both when it returns. ``Proxy`` (here) cuts a response mid-body or
corrupts a byte; ``tests/hardening/stall_proxy.py`` hangs a connection mid-body on the same core.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import requests

CHUNK = 65536


def read_request(handler: BaseHTTPRequestHandler) -> tuple[bytes, dict[str, str]]:
    """The body and the headers worth forwarding of a request an HTTP-level test proxy received."""
    body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
    return body, headers


def write_response(handler: BaseHTTPRequestHandler, resp: requests.Response) -> None:
    """Send the upstream's answer back through ``handler`` (hop-by-hop headers dropped, body re-framed)."""
    handler.send_response(resp.status_code)
    for key, value in resp.headers.items():
        if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(resp.content)))
    handler.end_headers()
    handler.wfile.write(resp.content)


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port in a background thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until EOF or a socket error (the other side went away)."""
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass


def shut(*socks: socket.socket) -> None:
    """Shut both directions down, so a peer blocked in ``recv`` wakes up; errors mean it is already gone."""
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


class TcpProxy:
    """Listen on a free loopback port and relay each connection to ``upstream`` through ``_relay``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, down: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            down.close()
            return
        try:
            self._relay(down, up)
        finally:
            shut(down, up)
            down.close()
            up.close()

    def _relay(self, down: socket.socket, up: socket.socket) -> None:
        """Move bytes between the client (``down``) and the server (``up``); the faults live in overrides."""
        threading.Thread(target=pump, args=(down, up), daemon=True).start()
        pump(up, down)

    def stop(self) -> None:
        self.stopped.set()
        self.server.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class ProxyPlan:
    cut_after: int | None = None  # close a connection after this many bytes went downstream...
    cuts: int = 0  # ...for this many connections
    corrupt_body: bool = False  # flip the first byte after the end of each response header
    cut_count: int = 0
    corrupt_count: int = 0


class Proxy(TcpProxy):
    """Cut a response mid-body or flip its first body byte, as ``plan`` says; requests pass untouched."""

    def __init__(self, upstream: str, plan: ProxyPlan) -> None:
        self.plan = plan
        super().__init__(upstream)

    def _relay(self, down: socket.socket, up: socket.socket) -> None:
        with self.lock:
            cut = self.plan.cut_after if self.plan.cuts > 0 and self.plan.cut_after is not None else None
            if cut is not None:
                self.plan.cuts -= 1
        threading.Thread(target=pump, args=(down, up), daemon=True).start()
        sent = 0
        state: dict[str, object] = {"tail": b"", "pending": False}
        try:
            while data := up.recv(CHUNK):
                if self.plan.corrupt_body:
                    data = self._corrupt(data, state)
                if cut is not None and sent + len(data) >= cut:
                    down.sendall(data[: cut - sent])
                    with self.lock:
                        self.plan.cut_count += 1
                    break
                down.sendall(data)
                sent += len(data)
        except OSError:
            pass

    def _corrupt(self, data: bytes, state: dict[str, object]) -> bytes:
        """Flip the first body byte of every response (the byte after a header's blank line)."""
        buf = bytearray(data)
        start = 0
        if state["pending"] and buf:
            buf[0] ^= 0xFF
            state["pending"] = False
            self._count_corruption()
            start = 1
        tail = state["tail"]
        assert isinstance(tail, bytes)
        joined = tail + bytes(buf)
        search = 0
        while True:
            idx = joined.find(b"\r\n\r\n", search)
            if idx < 0:
                break
            pos = idx + 4 - len(tail)
            search = idx + 4
            if pos < start:
                continue
            if pos < len(buf):
                buf[pos] ^= 0xFF
                self._count_corruption()
            else:
                state["pending"] = True
        state["tail"] = joined[-3:]
        return bytes(buf)

    def _count_corruption(self) -> None:
        with self.lock:
            self.plan.corrupt_count += 1


@contextmanager
def proxy(upstream: str, plan: ProxyPlan) -> Iterator[Proxy]:
    with Proxy(upstream, plan) as p:
        yield p
