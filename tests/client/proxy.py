"""A tiny TCP proxy for fault tests the emulator cannot stage: cut a response mid-body, or corrupt a byte."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class ProxyPlan:
    cut_after: int | None = None  # close a connection after this many bytes went downstream...
    cuts: int = 0  # ...for this many connections
    corrupt_body: bool = False  # flip the first byte after the end of each response header
    cut_count: int = 0
    corrupt_count: int = 0


class Proxy:
    def __init__(self, upstream: str, plan: ProxyPlan) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.plan = plan
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
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
        with self.lock:
            cut = self.plan.cut_after if self.plan.cuts > 0 and self.plan.cut_after is not None else None
            if cut is not None:
                self.plan.cuts -= 1
        threading.Thread(target=self._pump, args=(down, up), daemon=True).start()
        sent = 0
        state = {"tail": b"", "pending": False}
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
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
        finally:
            for s in (down, up):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

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

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass

    def stop(self) -> None:
        self.stopped = True
        self.server.close()


@contextmanager
def proxy(upstream: str, plan: ProxyPlan) -> Iterator[Proxy]:
    p = Proxy(upstream, plan)
    try:
        yield p
    finally:
        p.stop()
