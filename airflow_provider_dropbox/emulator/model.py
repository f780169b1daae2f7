"""Domain types of the namespace: items (Node), their stone metadata, and the errors the store raises."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .paths import basename, norm


class StoreError(Exception):
    """A domain error; routes wrap ``reason`` in their own stone union."""

    kind = "store"

    def __init__(self, reason: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason


class LookupFail(StoreError):
    kind = "lookup"


class WriteFail(StoreError):
    kind = "write"


class RelocationFail(StoreError):
    kind = "relocation"


def tag(name: str, value: Any = None) -> dict[str, Any]:
    return {".tag": name} if value is None else {".tag": name, name: value}


def now_ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_id() -> str:
    return "id:" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass(slots=True)
class Node:
    kind: str  # "file" | "folder"
    display: str
    id: str
    rev: str = ""
    size: int = 0
    content_hash: str = ""
    blob: str = ""
    client_modified: str = ""
    server_modified: str = ""

    @property
    def key(self) -> str:
        return norm(self.display)

    def metadata(self, tagged: bool) -> dict[str, Any]:
        """Stone shape: ``.tag`` only where the declared type is ``Metadata``."""
        md: dict[str, Any] = {".tag": self.kind} if tagged else {}
        md.update(name=basename(self.display), path_lower=self.key, path_display=self.display, id=self.id)
        if self.kind == "file":
            md.update(
                client_modified=self.client_modified,
                server_modified=self.server_modified,
                rev=self.rev,
                size=self.size,
                is_downloadable=True,
                content_hash=self.content_hash,
            )
        return md


def deleted_metadata(display: str) -> dict[str, Any]:
    return {
        ".tag": "deleted",
        "name": basename(display),
        "path_lower": norm(display),
        "path_display": display,
    }
