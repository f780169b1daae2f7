"""A TCP proxy that hangs a connection mid-body: bytes stop flowing but the socket stays open.

The emulator can slow a transfer (``bandwidth_mbps``) or cut it (``drop_after_commit``), but not hang it,
which is what a stuck load balancer or a half-dead peer does. Here a connection forwards ``stall_after`` bytes
in the chosen direction, then forwards nothing more until the client gives up and closes it; only the first
``stalls`` connections that get that far are hung. Request heads are recorded (``requests``) so a test can see
the retry and its ``Range`` header.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

_REQUEST_LINE = re.compile(r"(POST|GET|PUT) /\S* HTTP/1\.[01]")


@dataclass
class StallPlan:
    stall_after: int
    stalls: int = 1
    direction: Literal["down", "up"] = "down"  # down: response bodies; up: request bodies
    stalled: int = 0
    requests: list[str] = field(default_factory=list)


class StallProxy:
    def __init__(self, upstream: str, plan: StallPlan) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.plan = plan
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _claim_stall(self) -> bool:
        with self.lock:
            if self.plan.stalled < self.plan.stalls:
                self.plan.stalled += 1
                return True
            return False

    def _pipe(
        self, src: socket.socket, dst: socket.socket, stall: bool, record: bool, done: threading.Event
    ) -> None:
        sent = 0
        head = b""
        try:
            while not self.stopped.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    head += data
                    while b"\r\n\r\n" in head:
                        block, _, head = head.partition(b"\r\n\r\n")
                        text = block.decode("latin-1")
                        # the previous request's body has no line end, so a request line may follow it
                        found = _REQUEST_LINE.search(text)
                        if found:
                            rng = [ln for ln in text.split("\r\n") if ln.lower().startswith("range:")]
                            with self.lock:
                                self.plan.requests.append(" ".join([found.group(0), *rng]))
                    head = head[-65536:]
                if stall and sent + len(data) > self.plan.stall_after and self._claim_stall():
                    dst.sendall(data[: max(0, self.plan.stall_after - sent)])
                    # Hang: keep both sockets open and move nothing until the client gives up.
                    if self.plan.direction == "up":
                        src.settimeout(0.2)  # src is the client: drain it until it closes
                        while not self.stopped.is_set():
                            try:
                                if src.recv(65536) == b"":
                                    break
                            except TimeoutError:
                                continue
                            except OSError:
                                break
                    else:  # src is upstream: wait until the client side of this connection is gone
                        while not self.stopped.is_set() and not done.wait(0.2):
                            pass
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            if record:
                done.set()
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _serve(self, down: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            down.close()
            return
        stall_up = self.plan.direction == "up"
        done = threading.Event()  # set when the client -> upstream direction ends (client closed)
        t = threading.Thread(target=self._pipe, args=(down, up, stall_up, True, done), daemon=True)
        t.start()
        self._pipe(up, down, not stall_up, False, done)
        t.join(timeout=5)
        for s in (down, up):
            s.close()

    def stop(self) -> None:
        self.stopped.set()
        self.server.close()


@contextmanager
def stall_proxy(upstream: str, plan: StallPlan) -> Iterator[StallProxy]:
    p = StallProxy(upstream, plan)
    try:
        yield p
    finally:
        p.stop()
