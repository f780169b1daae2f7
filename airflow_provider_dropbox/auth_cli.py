"""``airflow-dropbox-auth``: authorize the Dropbox app once and hand over a ready Airflow connection.

The flow is PKCE (S256) with ``token_access_type=offline``, so the answer holds a long-lived refresh token
that the hook can renew with the app key alone; an app secret is optional. Output on stdout: the authorize
URL, then the connection. Prompts and warnings go to stderr.

The refresh token must stay out of shell history and out of Airflow's audit log (the ``log`` table records
every CLI command line, masking ``--conn-password`` but not ``--conn-extra``). So the connection is handed
over in ways that keep it out of both: ``--conn-file PATH`` writes it to a new owner-only file for
``airflow connections import PATH`` (only the path is logged; stdout then holds no secret), and by default
the ``AIRFLOW_CONN_...`` JSON is printed for an environment file or a secrets backend. The old
``airflow connections add ... --conn-extra`` command leaks the token into both and is printed only on request
(``--print-add-command``), with a warning.

The app secret is optional and never printed by default. The exchange always uses PKCE, so the refresh token
can be renewed with the app key alone and a connection without the secret works; printing the secret would
only put it in terminal scrollback and shell history for no gain. When ``--app-secret`` is given it also
authenticates the code exchange (a wrong secret fails here, not later in a task); ``--include-secret`` adds it
to the printed connection for teams that want the hook to refresh as a confidential client. ``--app-secret -``
reads it from a prompt without echo. The output always holds the refresh token: treat it as a secret.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from airflow_provider_dropbox.client import Endpoints
from airflow_provider_dropbox.client.auth import build_authorize_url, exchange_code, generate_pkce_pair
from airflow_provider_dropbox.client.errors import DropboxApiError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-dropbox-auth",
        description="Authorize a Dropbox app once (PKCE, offline access) and print an Airflow connection.",
    )
    parser.add_argument("--app-key", required=True, help="App key from the Dropbox App Console.")
    parser.add_argument(
        "--app-secret",
        help="App secret; '-' asks for it without echo. Omit it for a PKCE connection (recommended).",
    )
    parser.add_argument(
        "--base-url",
        help="One base URL for every Dropbox endpoint (e.g. http://127.0.0.1:8765 for the emulator); "
        "default: the real Dropbox hosts.",
    )
    parser.add_argument(
        "--include-secret",
        action="store_true",
        help="Put the app secret in the printed connection (not needed: PKCE tokens refresh without it).",
    )
    parser.add_argument("--conn-id", default="dropbox_default", help="Airflow connection id to print.")
    parser.add_argument(
        "--conn-file",
        metavar="PATH",
        help="Write the connection to this new file (owner-only) for 'airflow connections import PATH', "
        "which keeps the token out of Airflow's audit log and shell history; print no secret.",
    )
    parser.add_argument(
        "--print-add-command",
        action="store_true",
        help="Also print an 'airflow connections add' command. It puts the refresh token in Airflow's "
        "audit log (the log table) and in shell history: prefer --conn-file.",
    )
    return parser


def parse_code(pasted: str) -> str:
    """The authorization code from what the user pasted: the bare code or the whole redirect URL."""
    text = pasted.strip()
    if "code=" in text:
        query = urlsplit(text).query or text.split("?", 1)[-1]
        codes = parse_qs(query).get("code")
        if codes:
            return codes[0]
    return text


def connection_fields(
    app_key: str, tokens: dict[str, Any], *, app_secret: str | None, base_url: str | None
) -> dict[str, Any]:
    """The Airflow connection (``Connection.from_json`` shape) for the exchanged tokens."""
    conn: dict[str, Any] = {"conn_type": "dropbox", "login": app_key}
    if app_secret:
        conn["password"] = app_secret
    if base_url:
        conn["host"] = base_url.rstrip("/")
    conn["extra"] = {"refresh_token": tokens["refresh_token"]}
    return conn


def render_outputs(conn_id: str, conn: dict[str, Any]) -> tuple[str, str]:
    """``(airflow connections add ... command, export AIRFLOW_CONN_...=... line)``, both shell-quoted."""
    args = ["airflow", "connections", "add", conn_id, "--conn-type", "dropbox", "--conn-login", conn["login"]]
    if "password" in conn:
        args += ["--conn-password", conn["password"]]
    if "host" in conn:
        args += ["--conn-host", conn["host"]]
    args += ["--conn-extra", json.dumps(conn["extra"])]
    env_name = "AIRFLOW_CONN_" + conn_id.upper().replace("-", "_")
    return shlex.join(args), f"export {env_name}={shlex.quote(json.dumps(conn))}"


def write_conn_file(path: str, conn_id: str, conn: dict[str, Any]) -> None:
    """Write ``{conn_id: conn}`` (the ``airflow connections import`` JSON shape) to a new 0600 file."""
    body = {conn_id: {**conn, "extra": json.dumps(conn["extra"])}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")


LEAK_WARNING = (
    "warning: the 'airflow connections add' command below holds the refresh token; running it stores the "
    "token in clear text in Airflow's audit log (the log table) and in your shell history. Prefer "
    "--conn-file (airflow connections import), the environment variable in an env file, a secrets "
    "backend, or the UI form."
)


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdin = stdin or sys.stdin
    out, err = sys.stdout, sys.stderr
    app_secret: str | None = args.app_secret
    if args.include_secret and not app_secret:
        print("error: --include-secret needs --app-secret", file=sys.stderr)
        return 2
    if args.conn_file and os.path.lexists(args.conn_file):
        print(
            f"error: --conn-file {args.conn_file} exists; pick a new path (it is never overwritten)", file=err
        )
        return 2
    if app_secret == "-":
        app_secret = getpass.getpass("Dropbox app secret (not echoed): ", stream=err) or None
    endpoints = Endpoints.single_host(args.base_url) if args.base_url else Endpoints()
    verifier, challenge = generate_pkce_pair()
    url = build_authorize_url(args.app_key, code_challenge=challenge, endpoints=endpoints)

    print("1. Open this URL, sign in and allow access:", file=err)
    print(url, file=out, flush=True)
    print(
        "2. Paste the authorization code (or the whole redirect URL) and press Enter:", file=err, flush=True
    )
    code = parse_code(stdin.readline())
    if not code:
        print("error: no authorization code was entered", file=err)
        return 2
    try:
        tokens = exchange_code(
            code, app_key=args.app_key, code_verifier=verifier, app_secret=app_secret, endpoints=endpoints
        )
    except DropboxApiError as e:
        print(f"error: {e}", file=err)
        return 1
    if not tokens.get("refresh_token"):
        print("error: Dropbox returned no refresh token (was token_access_type=offline dropped?)", file=err)
        return 1

    stored_secret = app_secret if args.include_secret else None
    conn = connection_fields(args.app_key, tokens, app_secret=stored_secret, base_url=args.base_url)
    command, export = render_outputs(args.conn_id, conn)
    who = tokens.get("account_id") or tokens.get("team_id") or "the account"
    if args.conn_file:
        try:
            write_conn_file(args.conn_file, args.conn_id, conn)
        except OSError as exc:
            print(f"error: cannot write --conn-file {args.conn_file}: {exc.strerror}", file=err)
            return 1
        path = shlex.quote(args.conn_file)
        print(f"Authorized {who}. The connection (with its refresh token) is in {args.conn_file}.", file=err)
        print("# Store it in the Airflow metadata database, then delete the file:", file=out)
        print(f"airflow connections import {path} && rm {path}", file=out, flush=True)
        return 0
    print(f"Authorized {who}. The lines below contain secrets; keep them out of shared logs.", file=err)
    print(
        "# The connection as an environment variable. It holds the refresh token: put it in an env file "
        "or a secrets backend,\n# not at a shell prompt (history). For the metadata database, run again "
        "with --conn-file PATH.",
        file=out,
    )
    print(export, file=out, flush=True)
    if args.print_add_command:
        print(LEAK_WARNING, file=err)
        print("# Leaks the token into Airflow's log table and shell history:", file=out)
        print(command, file=out, flush=True)
    return 0


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
