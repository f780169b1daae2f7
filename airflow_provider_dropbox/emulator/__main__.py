"""CLI: ``python -m airflow_provider_dropbox.emulator --port 0 --data-dir DIR``; prints its base URL.

``python -m airflow_provider_dropbox.emulator populate --data-dir DIR --path /bench --files N --size B``
bulk-creates files in a data dir (no emulator may be running on it) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from pathlib import Path

import uvicorn

from .app import create_app
from .core import EmulatorConfig
from .faults import FaultSettings

log = logging.getLogger("airflow_provider_dropbox.emulator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_dropbox.emulator",
        description="Local Dropbox HTTP API v2 emulator for tests (not Dropbox).",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--data-dir", type=Path, required=True, help="state; reuse it to keep it")
    p.add_argument("--app-key", default="dev-app-key")
    p.add_argument("--app-secret", default="dev-app-secret")
    p.add_argument("--refresh-token", default="dev-refresh-token", help="valid from the start")
    p.add_argument("--token-lifetime", type=int, default=14400, help="seconds each access token lives")
    p.add_argument("--autorename-start", type=int, default=1, help="first autorename number ('a (1).txt')")
    p.add_argument("--team-member-id", help="validate team headers: the one accepted Select-User (dbmid:...)")
    p.add_argument("--team-root-namespace-id", help="with --team-member-id: a second accepted Path-Root")
    p.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", help="private key for --certfile")
    p.add_argument("--access-log", action="store_true", help="log every request")
    f = p.add_argument_group("fault injection (also settable at run time: POST /_emulator/faults)")
    f.add_argument("--latency-ms", type=float, default=0)
    f.add_argument("--bandwidth-mbps", type=float, default=None, help="megabits/s per request and direction")
    f.add_argument(
        "--window-bytes", type=int, default=None, help="with --latency-ms: each request <= window/latency B/s"
    )
    f.add_argument("--rate-limit", type=float, default=0, help="fraction answered 429")
    f.add_argument("--server-error", type=float, default=0, help="fraction answered 5xx")
    f.add_argument("--lock-contention", type=float, default=0, help="fraction of writes: lock contention")
    f.add_argument("--drop-after-commit", type=float, default=0, help="fraction of writes: response cut")
    f.add_argument("--retry-after-s", type=int, default=1)
    f.add_argument("--write-lock", action="store_true", help="namespace write-lock model")
    f.add_argument("--write-lock-commit-ms", type=float, default=20, help="lock held per commit")
    f.add_argument("--write-lock-entry-ms", type=float, default=1, help="lock held per batch entry")
    f.add_argument("--write-lock-wait-ms", type=float, default=100, help="wait for a busy lock, then 429")
    f.add_argument("--seed", type=int, default=None)
    f.add_argument("--quota-bytes", type=int, default=None, help="account size; writes beyond it fail")
    return p.parse_args(argv)


def build_config(ns: argparse.Namespace) -> EmulatorConfig:
    faults = FaultSettings(
        latency_ms=ns.latency_ms,
        bandwidth_mbps=ns.bandwidth_mbps,
        window_bytes=ns.window_bytes,
        rate_limit=ns.rate_limit,
        server_error=ns.server_error,
        lock_contention=ns.lock_contention,
        drop_after_commit=ns.drop_after_commit,
        retry_after_s=ns.retry_after_s,
        seed=ns.seed,
        quota_bytes=ns.quota_bytes,
        write_lock=ns.write_lock,
        write_lock_commit_ms=ns.write_lock_commit_ms,
        write_lock_entry_ms=ns.write_lock_entry_ms,
        write_lock_wait_ms=ns.write_lock_wait_ms,
    )
    return EmulatorConfig(
        data_dir=ns.data_dir,
        app_key=ns.app_key,
        app_secret=ns.app_secret,
        refresh_token=ns.refresh_token,
        token_lifetime=ns.token_lifetime,
        autorename_start=ns.autorename_start,
        team_member_id=ns.team_member_id,
        team_root_namespace_id=ns.team_root_namespace_id,
        faults=faults,
    )


async def serve(ns: argparse.Namespace) -> None:
    """Bind first (so port 0 resolves), start uvicorn, then print the base URL on its own line."""
    ns.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(build_config(ns))
    family = socket.AF_INET6 if ":" in ns.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it Nagle + delayed ACK add ~40 ms to every response.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((ns.host, ns.port))
    sock.listen(512)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="info" if ns.access_log else "warning",
        log_config=None,  # everything to stderr via our basicConfig: stdout carries only the URL line
        access_log=ns.access_log,
        ssl_certfile=ns.certfile,
        ssl_keyfile=ns.keyfile,
        timeout_keep_alive=120,  # longer than client pools keep idle sockets
        lifespan="off",
        server_header=False,
        date_header=False,  # uvicorn's is refreshed once a second; the middleware stamps each response
        timeout_graceful_shutdown=1,  # idle TLS keep-alives would otherwise hold shutdown for 30 s
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    scheme = "https" if ns.certfile else "http"
    host = f"[{ns.host}]" if ":" in ns.host else ns.host
    log.warning(
        "Dropbox API v2 EMULATOR for tests, NOT Dropbox: listening on %s://%s:%d (data dir %s)",
        scheme,
        host,
        port,
        ns.data_dir,
    )
    print(f"{scheme}://{host}:{port}", flush=True)
    await task


class _QuietShutdown(logging.Filter):
    """Idle keep-alive clients (TLS ones especially) always outlive the 1 s grace period; not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


def populate_main(argv: list[str]) -> None:
    """``populate``: N files of a given size under a folder, in one transaction, straight into the store."""
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_dropbox.emulator populate",
        description="Bulk-create files in an emulator data dir (stop the emulator using it first).",
    )
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--path", required=True, help="folder to fill, e.g. /bench (created if missing)")
    p.add_argument("--files", type=int, required=True, help="how many files")
    p.add_argument("--size", type=int, default=0, help="bytes per file")
    p.add_argument("--per-folder", type=int, default=0, help="group files into subfolders of this many")
    p.add_argument("--unique", action="store_true", help="distinct content per file (one blob each)")
    p.add_argument("--prefix", default="f", help="file name prefix")
    ns = p.parse_args(argv)
    from .routes_other import populate_args
    from .store import Store, StoreError

    body = {
        "path": ns.path,
        "files": ns.files,
        "size": ns.size,
        "per_folder": ns.per_folder,
        "unique": ns.unique,
        "prefix": ns.prefix,
    }
    try:
        args = populate_args(body)
    except ValueError as e:
        sys.exit(f"populate: {e}")
    ns.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(ns.data_dir)
    try:
        result = store.populate(*args)
    except StoreError as e:
        sys.exit(f"populate: refused: {e.reason}")
    finally:
        store.db.conn.close()
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["populate"]:
        populate_main(argv[1:])
        return
    ns = parse_args(argv)
    if bool(ns.certfile) != bool(ns.keyfile):
        sys.exit("--certfile and --keyfile go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_QuietShutdown())
    try:
        asyncio.run(serve(ns))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
