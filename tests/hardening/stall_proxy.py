"""A TCP proxy that hangs a connection mid-body: bytes stop flowing but the socket stays open.

The emulator can slow a transfer (``bandwidth_mbps``) or cut it (``drop_after_commit``), but not hang it,
which is what a stuck load balancer or a half-dead peer does. Here a connection forwards ``stall_after`` bytes
in the chosen direction, then forwards nothing more until the client gives up and closes it; only the first
``stalls`` connections that get that far are hung. Request heads are recorded (``requests``) so a test can see
the retry and its ``Range`` header. The listener and connection handling are ``tests/client/proxy.py``'s.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from tests.client.proxy import CHUNK, TcpProxy, shut

_REQUEST_LINE = re.compile(r"(POST|GET|PUT) /\S* HTTP/1\.[01]")


@dataclass
class StallPlan:
    stall_after: int
    stalls: int = 1
    direction: Literal["down", "up"] = "down"  # down: response bodies; up: request bodies
    stalled: int = 0
    requests: list[str] = field(default_factory=list)


class StallProxy(TcpProxy):
    def __init__(self, upstream: str, plan: StallPlan) -> None:
        self.plan = plan
        super().__init__(upstream)

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
                data = src.recv(CHUNK)
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
                    head = head[-CHUNK:]
                if stall and sent + len(data) > self.plan.stall_after and self._claim_stall():
                    dst.sendall(data[: max(0, self.plan.stall_after - sent)])
                    # Hang: keep both sockets open and move nothing until the client gives up.
                    if self.plan.direction == "up":
                        src.settimeout(0.2)  # src is the client: drain it until it closes
                        while not self.stopped.is_set():
                            try:
                                if src.recv(CHUNK) == b"":
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
            shut(src, dst)

    def _relay(self, down: socket.socket, up: socket.socket) -> None:
        stall_up = self.plan.direction == "up"
        done = threading.Event()  # set when the client -> upstream direction ends (client closed)
        t = threading.Thread(target=self._pipe, args=(down, up, stall_up, True, done), daemon=True)
        t.start()
        self._pipe(up, down, not stall_up, False, done)
        t.join(timeout=5)


@contextmanager
def stall_proxy(upstream: str, plan: StallPlan) -> Iterator[StallProxy]:
    with StallProxy(upstream, plan) as p:
        yield p
