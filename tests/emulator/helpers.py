"""Raw-HTTP helpers for the conformance suite (independent of the product client on purpose)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import requests

from tests.emulator_process import DEV_APP_KEY, DEV_APP_SECRET, DEV_REFRESH_TOKEN, EmulatorProcess

BLOCK = 4 * 1024 * 1024
SUMMARY_RE = r"/\.{0,3}$"


def content_hash(data: bytes) -> str:
    """Reference section 4, written out independently of the emulator's hasher."""
    blocks = (hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(b"".join(blocks)).hexdigest()


def summary_ok(body: dict[str, Any], tags: str) -> bool:
    """``error_summary`` is ``tags`` + ``/`` + 0..3 dots."""
    return re.fullmatch(re.escape(tags) + SUMMARY_RE, body["error_summary"]) is not None


class Api:
    """A tiny raw client: one token, one requests.Session, arg/result headers by hand."""

    def __init__(self, emu: EmulatorProcess, token: str | None = None) -> None:
        self.emu = emu
        self.base = emu.base_url
        self.http = requests.Session()
        self.token = token or self.refresh()

    def refresh(self, refresh_token: str = DEV_REFRESH_TOKEN) -> str:
        r = self.http.post(
            f"{self.base}/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": DEV_APP_KEY,
                "client_secret": DEV_APP_SECRET,
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def rpc(self, route: str, arg: Any = None, **kw: Any) -> requests.Response:
        headers = {**self.auth(), "Content-Type": "application/json", **kw.pop("headers", {})}
        return self.http.post(
            f"{self.base}/2/{route}",
            data=json.dumps(arg),
            headers=headers,
            timeout=kw.pop("timeout", 60),
            **kw,
        )

    def ok(self, route: str, arg: Any = None) -> Any:
        r = self.rpc(route, arg)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json"
        return r.json()

    def upload_raw(self, route: str, arg: Any, data: bytes = b"", **kw: Any) -> requests.Response:
        headers = {
            **self.auth(),
            "Content-Type": "application/octet-stream",
            "Dropbox-API-Arg": json.dumps(arg),
            **kw.pop("headers", {}),
        }
        return self.http.post(f"{self.base}/2/{route}", data=data, headers=headers, timeout=120, **kw)

    def upload(self, path: str, data: bytes, **arg: Any) -> dict[str, Any]:
        r = self.upload_raw("files/upload", {"path": path, **arg}, data)
        assert r.status_code == 200, (r.status_code, r.text)
        md: dict[str, Any] = r.json()
        return md

    def download(self, path: str, **headers: str) -> requests.Response:
        return self.http.post(
            f"{self.base}/2/files/download",
            headers={**self.auth(), "Dropbox-API-Arg": json.dumps({"path": path}), **headers},
            timeout=120,
        )

    def mkdir(self, path: str) -> dict[str, Any]:
        md: dict[str, Any] = self.ok("files/create_folder_v2", {"path": path})["metadata"]
        return md

    def list_all(self, path: str, recursive: bool = True, **arg: Any) -> tuple[list[dict[str, Any]], str]:
        res = self.ok("files/list_folder", {"path": path, "recursive": recursive, **arg})
        entries = list(res["entries"])
        while res["has_more"]:
            res = self.ok("files/list_folder/continue", {"cursor": res["cursor"]})
            entries += res["entries"]
        return entries, res["cursor"]

    def changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]:
        entries: list[dict[str, Any]] = []
        while True:
            res = self.ok("files/list_folder/continue", {"cursor": cursor})
            entries += res["entries"]
            cursor = res["cursor"]
            if not res["has_more"]:
                return entries, cursor


def unique_dir() -> str:
    """A fresh top-level folder name so tests can share the session emulator."""
    return "/t-" + uuid.uuid4().hex[:10]
