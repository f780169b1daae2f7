"""The client reads the proxy environment once per host (``trust_env`` off) and checks a CA bundle once.

Real proxies on loopback: a forward proxy for plain http and a CONNECT tunnel for https, each recording what
went through it, so the tests show requests do go through HTTP(S)_PROXY and stop doing so when NO_PROXY
matches the host."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dropbox.client import DropboxClient
from tests.client.conftest import client_for
from tests.client.proxy import read_request, serve_http, write_response
from tests.emulator_process import EmulatorProcess, start_emulator

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Proxy(BaseHTTPRequestHandler):
    """Forward proxy (absolute-form POST) and CONNECT tunnel; records (method, target, headers)."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]]
    upstream: requests.Session

    def do_POST(self) -> None:
        body, headers = read_request(self)
        self.seen.append(("POST", self.path, headers))
        resp = self.upstream.post(self.path, data=body, headers=headers, timeout=30)
        write_response(self, resp)

    def do_CONNECT(self) -> None:
        self.seen.append(("CONNECT", self.path, dict(self.headers.items())))
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            ends = [self.connection, upstream]
            while True:
                readable, _, _ = select.select(ends, [], [], 30)
                if not readable:
                    break
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        self.close_connection = True
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    seen: list[tuple[str, str, dict[str, str]]] = []
    upstream = requests.Session()
    upstream.trust_env = False  # the proxy itself goes straight to the emulator
    handler = type("Proxy", (_Proxy,), {"seen": seen, "upstream": upstream})
    try:
        with serve_http(handler) as url:
            yield url, seen
    finally:
        upstream.close()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Clear every proxy variable (either case), then set the given ones."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProcess, Path]]:
    from tests.sdk.certs import make_cert

    base = tmp_path_factory.mktemp("proxy-tls")
    cert, key = make_cert(base / "tls")
    emu = start_emulator(base / "emu", "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert emu.base_url.startswith("https://")
        yield emu, cert
    finally:
        emu.stop()


def _host(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def test_http_proxy_from_the_environment_carries_every_request(
    emulator: EmulatorProcess, proxy: tuple[str, list[Any]], proxy_env: Callable[..., None], tmp_path: Path
) -> None:
    proxy_url, seen = proxy
    proxy_env(HTTP_PROXY=proxy_url, NO_PROXY="example.invalid")
    with client_for(emulator) as client:
        assert client.get_current_account()["account_id"].startswith("dbid:")
        src = tmp_path / "f.bin"
        src.write_bytes(b"through the proxy")
        client.upload_file(src, "/env-proxy/f.bin", mode="overwrite")
        client.download_file("/env-proxy/f.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"through the proxy"
    targets = [target for method, target, _ in seen if method == "POST"]
    base = emulator.base_url.rstrip("/")
    for route in ("/oauth2/token", "/2/users/get_current_account", "/2/files/upload", "/2/files/download"):
        assert base + route in targets, (route, targets)


def test_no_proxy_matching_the_host_goes_direct(
    emulator: EmulatorProcess, proxy: tuple[str, list[Any]], proxy_env: Callable[..., None]
) -> None:
    proxy_url, seen = proxy
    host = _host(emulator.base_url).split(":")[0]
    proxy_env(HTTP_PROXY=proxy_url, HTTPS_PROXY=proxy_url, NO_PROXY=f"example.invalid,{host}")
    with client_for(emulator) as client:
        assert client.get_current_account()["account_id"].startswith("dbid:")
    assert seen == []


def test_https_proxy_tunnels_tls_and_no_proxy_skips_it(
    tls_emulator: tuple[EmulatorProcess, Path], proxy: tuple[str, list[Any]], proxy_env: Callable[..., None]
) -> None:
    emu, cert = tls_emulator
    proxy_url, seen = proxy
    proxy_env(HTTPS_PROXY=proxy_url)
    with client_for(emu, ca_bundle=str(cert)) as client:
        assert client.get_current_account()["account_id"].startswith("dbid:")
    assert ("CONNECT", _host(emu.base_url)) in [(method, target) for method, target, _ in seen]
    assert not [s for s in seen if s[0] == "POST"]  # TLS inside the tunnel: the proxy sees no request

    seen.clear()
    proxy_env(NO_PROXY=_host(emu.base_url).split(":")[0])
    with client_for(emu, ca_bundle=str(cert)) as client:
        assert client.get_current_account()["account_id"].startswith("dbid:")
    assert seen == []


def test_netrc_does_not_replace_the_bearer_token(
    emulator: EmulatorProcess,
    proxy: tuple[str, list[Any]],
    proxy_env: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ~/.netrc entry for the Dropbox host made requests send Basic auth instead of the access token."""
    proxy_url, seen = proxy
    netrc = tmp_path / "netrc"
    host = _host(emulator.base_url).split(":")[0]
    netrc.write_text(f"machine {host} login SECRETLOGIN password secretpassword\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    proxy_env(HTTP_PROXY=proxy_url)
    with client_for(emulator) as client:
        assert client.get_current_account()["account_id"].startswith("dbid:")
    api = [headers for method, target, headers in seen if "/2/" in target]
    assert api and all(h.get("Authorization", "").startswith("Bearer ") for h in api)


def test_ca_bundle_is_checked_once_not_per_request(
    tls_emulator: tuple[EmulatorProcess, Path],
    proxy_env: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu, cert = tls_emulator
    proxy_env()
    calls: list[str] = []
    real_exists, real_isdir = os.path.exists, os.path.isdir

    def exists(path: Any) -> bool:
        calls.append(str(path))
        return real_exists(path)

    def isdir(path: Any) -> bool:
        calls.append(str(path))
        return real_isdir(path)

    with client_for(emu, ca_bundle=str(cert)) as client:
        client.get_current_account()
        monkeypatch.setattr(os.path, "exists", exists)
        monkeypatch.setattr(os.path, "isdir", isdir)
        for _ in range(20):
            client.get_space_usage()
    assert calls.count(str(cert)) == 0


def test_a_missing_ca_bundle_fails_on_every_attempt(
    tls_emulator: tuple[EmulatorProcess, Path], proxy_env: Callable[..., None], tmp_path: Path
) -> None:
    emu, _ = tls_emulator
    proxy_env()
    missing = tmp_path / "nope.pem"
    client: DropboxClient
    with client_for(emu, ca_bundle=str(missing)) as client:
        for _ in range(2):  # a failed check is not remembered as a good bundle
            with pytest.raises(
                OSError, match=r"Could not find a suitable TLS CA certificate bundle.*nope\.pem"
            ):
                client.get_current_account()
