"""Bad input through every layer a user touches: client, hook, operators (``dag.test()``) and the mirror.

Each row: the call must raise a typed error whose message names the problem (and, where the row says so, the
fix), and nothing may be written, deleted or left partial: the local work area and the whole remote account
(a private emulator) are snapshotted before and after, and no transfer temp file may remain.

Rows marked xfail(strict) are product bugs, described in docs/known-limitations.md (#N in the reason).
"""

from __future__ import annotations

import contextlib
import glob as globmod
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_dropbox.client import (
    Credentials,
    DropboxClient,
    Endpoints,
    RetryPolicy,
    errors,
    folders,
)
from airflow_provider_dropbox.sync import errors as sync_errors
from airflow_provider_dropbox.sync import mirror
from tests.emulator_process import EmulatorProcess
from tests.hardening.helpers import (
    MiB,
    can_mount,
    fast_client,
    free_port,
    local_snapshot,
    remote_snapshot,
    temp_leftovers,
    tmpfs,
)
from tests.hooks.conftest import conn_json
from tests.ops_fixtures import load_dag_module

MOUNT = can_mount()
needs_mount = pytest.mark.skipif(
    not MOUNT, reason="needs root and a working `mount -t tmpfs` (see RELIABILITY)"
)
DAGS = Path(__file__).parent / "dags"

NFC_NAME = unicodedata.normalize("NFC", "café.csv")
NFD_NAME = unicodedata.normalize("NFD", "café.csv")
SEED = {
    "/data/a.csv": b"a,b\n1,2\n",
    "/data/sub/b.txt": b"bbb",
    "/data/big.bin": os.urandom(3 * MiB + 17),
    "/file.txt": b"just a file",
    "/folder/keep.txt": b"keep",
    f"/data/{NFC_NAME}": b"nfc",
}


@pytest.fixture(scope="module")
def seeded(hemu: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> EmulatorProcess:
    src = tmp_path_factory.mktemp("seed")
    with fast_client(hemu) as c:
        for i, (remote, data) in enumerate(SEED.items()):
            f = src / f"{i}.bin"
            f.write_bytes(data)
            c.upload_file(f, remote)
    return hemu


@dataclass
class Ctx:
    emu: EmulatorProcess
    client: DropboxClient
    work: Path
    monkeypatch: pytest.MonkeyPatch
    inputs: dict[str, bytes] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def chdir(self) -> Path:
        """Make ``work/cwd`` the current directory, so writes to a relative or empty path are seen."""
        cwd = self.work / "cwd"
        cwd.mkdir(exist_ok=True)
        self.monkeypatch.chdir(cwd)
        return cwd

    def mount(self, name: str, *, size: str = "1m", read_only: bool = False) -> Path:
        """A tmpfs at ``work/name`` for the rest of the test (read-only, or tiny to fill up)."""
        return self.stack.enter_context(tmpfs(self.work / name, size=size, read_only=read_only))

    def src(self, name: str = "src.csv", data: bytes = b"x,y\n") -> Path:
        """An input file; inputs may be created lazily inside the action and are not counted as output."""
        p = self.work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.inputs[name] = data
        return p

    def outputs(self) -> dict[str, Any]:
        """Snapshot of the work area without the input files (checked unchanged) and their folders."""
        snap = local_snapshot(self.work)
        for name, data in self.inputs.items():
            assert (self.work / name).read_bytes() == data, f"input {name} was modified"
            snap.pop(name, None)
            parent = Path(name).parent
            while str(parent) != ".":
                snap.pop(parent.as_posix(), None)
                parent = parent.parent
        return snap

    def conn(self, **overrides: Any) -> str:
        """Define an Airflow connection (dev credentials at this emulator unless overridden)."""
        conn_id = f"hard_{uuid.uuid4().hex[:8]}"
        base = overrides.pop("base_url", self.emu.base_url)
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(base, **overrides))
        return conn_id

    def hook(self, **overrides: Any) -> Any:
        from airflow_provider_dropbox.hooks.dropbox import DropboxHook

        return DropboxHook(self.conn(**overrides), retry_deadline=2.0)


Prepare = Callable[[Ctx], Callable[[], object]]


@dataclass
class Row:
    id: str
    prepare: Prepare
    exc: type[BaseException] | tuple[type[BaseException], ...]
    problem: str
    fix: str | None = None
    mount: bool = False
    xfail: str | None = None


def _ro(ctx: Ctx) -> Path:
    return ctx.work / "ro"


ROWS: list[Row] = [
    # ------------------------------------------------------------------ remote paths (client)
    Row(
        "client-upload-empty-path",
        lambda c: lambda: c.client.upload_file(c.src(), ""),
        errors.MalformedPathError,
        r"root folder cannot be used",
        r"give a path like '/folder/file'",
    ),
    Row(
        "client-upload-whitespace-path",
        lambda c: lambda: c.client.upload_file(c.src(), "   "),
        errors.MalformedPathError,
        r"must start with '/'",
    ),
    Row(
        "client-upload-trailing-whitespace-name",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/report.csv "),
        errors.MalformedPathError,
        r"ends with whitespace",
    ),
    Row(
        "client-download-no-leading-slash",
        lambda c: lambda: c.client.download_file("data/a.csv", c.work / "out" / "a.csv"),
        errors.MalformedPathError,
        r"must start with '/'",
        r"did you mean '/data/a.csv'",
    ),
    Row(
        "client-download-dotdot",
        lambda c: lambda: c.client.download_file("/data/../file.txt", c.work / "a.csv"),
        errors.MalformedPathError,
        r"'\.\.' component",
        r"Dropbox paths look like",
    ),
    Row(
        "client-delete-dotdot-escape",
        lambda c: lambda: c.client.delete("/data/sub/../../file.txt"),
        errors.MalformedPathError,
        r"'\.\.' component",
    ),
    Row(
        "client-upload-nul-byte",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/a\x00b.csv"),
        errors.MalformedPathError,
        r"NUL",
    ),
    Row(
        "client-upload-name-over-255",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/" + "n" * 256 + ".csv"),
        errors.MalformedPathError,
        r"255",
    ),
    Row(
        "client-upload-reserved-desktop.ini",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/desktop.ini"),
        errors.MalformedPathError,
        r"desktop\.ini",
        r"rename|exclude",
    ),
    Row(
        "client-mkdir-reserved-.dropbox",
        lambda c: lambda: c.client.create_folder("/.dropbox"),
        errors.MalformedPathError,
        r"\.dropbox",
        r"rename|another name",
    ),
    Row(
        "client-upload-nfd-onto-nfc-name",
        lambda c: lambda: c.client.upload_file(c.src(data=b"other"), f"/data/{NFD_NAME}"),
        errors.PathConflictError,
        r"a file already exists",
        r"mode='overwrite', autorename=True, or another path",
    ),
    Row(
        "client-upload-case-variant-onto-existing",
        lambda c: lambda: c.client.upload_file(c.src(data=b"other"), "/DATA/A.CSV"),
        errors.PathConflictError,
        r"a file already exists",
        r"mode='overwrite'",
    ),
    # ------------------------------------------------------------------ file vs folder
    Row(
        "client-upload-under-a-file",
        lambda c: lambda: c.client.upload_file(c.src(), "/file.txt/child.csv"),
        errors.PathConflictError,
        r"a file is in the way of a parent folder",
    ),
    Row(
        "client-mkdir-on-a-file",
        lambda c: lambda: c.client.create_folder("/file.txt"),
        errors.PathConflictError,
        r"a file already exists",
    ),
    Row(
        "client-upload-onto-a-folder",
        lambda c: lambda: c.client.upload_file(c.src(), "/folder"),
        errors.NotAFileError,
        r"is a folder",
        r"pick a file path",
    ),
    Row(
        "client-download-folder-of-a-file",
        lambda c: lambda: folders.download_folder(c.client, "/file.txt", c.work / "out"),
        errors.NotAFolderError,
        r"is a file, not a folder",
        r"pick a folder path",
    ),
    Row(
        "client-download-a-folder-as-file",
        lambda c: lambda: c.client.download_file("/folder", c.work / "new" / "f.bin"),
        errors.NotAFileError,
        r"is a folder, not a file",
        r"use a folder operation or pick a file path",
    ),
    Row(
        "client-download-onto-local-dir",
        lambda c: (
            (c.work / "adir").mkdir() or (lambda: c.client.download_file("/data/a.csv", c.work / "adir"))
        ),
        errors.LocalPathError,
        r"is a directory, but a file path is expected",
        r"name the file",
    ),
    Row(
        "client-download-under-local-file",
        lambda c: (
            c.src("plain") and (lambda: c.client.download_file("/data/a.csv", c.work / "plain" / "a.csv"))
        ),
        errors.LocalPathError,
        r"is a file, so .* cannot be created under it",
    ),
    Row(
        "client-download-local-path-with-nul",
        lambda c: lambda: c.client.download_file("/data/a.csv", str(c.work / "a\x00b.csv")),
        errors.LocalPathError,
        r"NUL|null",
    ),
    Row(
        "client-list-changes-garbage-cursor",
        lambda c: lambda: c.client.list_changes("not-a-cursor"),
        errors.BadInputError,
        r"cursor",
    ),
    # ------------------------------------------------------------------ local collisions (upload_folder)
    Row(
        "client-upload-folder-case-collision",
        lambda c: (
            c.src("tree/Report.csv", b"A")
            and c.src("tree/report.csv", b"bb")
            and (lambda: folders.upload_folder(c.client, c.work / "tree", "/coll"))
        ),
        errors.LocalPathError,
        r"Report\.csv.*report\.csv|report\.csv.*Report\.csv",
        r"rename",
    ),
    Row(
        "client-upload-folder-nfc-nfd-collision",
        lambda c: (
            c.src(f"tree/{NFC_NAME}", b"A")
            and c.src(f"tree/{NFD_NAME}", b"bb")
            and (lambda: folders.upload_folder(c.client, c.work / "tree", "/coll2"))
        ),
        errors.LocalPathError,
        r"normali[sz]|same name",
    ),
    Row(
        "client-upload-folder-holding-desktop.ini",
        lambda c: (
            c.src("win/a.csv", b"A")
            and c.src("win/desktop.ini", b"[.ShellClassInfo]")
            and (lambda: folders.upload_folder(c.client, c.work / "win", "/win", skip_disallowed_names=False))
        ),
        errors.DropboxApiError,
        r"desktop\.ini",
        r"exclude|rename|skip",
    ),
    # ------------------------------------------------------------------ local filesystem
    Row(
        "client-download-readonly-fs",
        lambda c: (
            c.mount("ro", read_only=True)
            and (lambda: c.client.download_file("/data/a.csv", _ro(c) / "a.csv"))
        ),
        errors.LocalPathError,
        r"Read-only file system",
        mount=True,
    ),
    Row(
        "client-download-readonly-fs-new-subdir",
        lambda c: (
            c.mount("ro", read_only=True)
            and (lambda: c.client.download_file("/data/a.csv", _ro(c) / "sub" / "a.csv"))
        ),
        errors.LocalPathError,
        r"Cannot create the local folder .* Read-only file system",
        mount=True,
    ),
    Row(
        "client-download-full-fs",
        lambda c: (
            c.mount("full") and (lambda: c.client.download_file("/data/big.bin", c.work / "full" / "big.bin"))
        ),
        errors.LocalPathError,
        r"No space left",
        mount=True,
    ),
    Row(
        "client-download-folder-readonly-fs",
        lambda c: (
            c.mount("ro", read_only=True)
            and (lambda: folders.download_folder(c.client, "/data", _ro(c) / "m"))
        ),
        errors.LocalPathError,
        r"Read-only file system",
        mount=True,
    ),
    Row(
        "client-download-folder-symlink-escape",
        lambda c: (
            (c.work / "outside").mkdir()
            or (c.work / "dest").mkdir()
            or (c.work / "dest" / "sub").symlink_to(c.work / "outside")
            or (lambda: folders.download_folder(c.client, "/data", c.work / "dest"))
        ),
        errors.LocalPathError,
        r"resolves outside",
        r"nothing was downloaded",
    ),
    Row(
        "client-upload-folder-symlink-escape",
        lambda c: (
            (
                c.src("secret/passwd", b"root:x:0:0")
                and c.src("up/a.csv")
                and (c.work / "up" / "link").symlink_to(c.work / "secret" / "passwd")
            )
            or (lambda: folders.upload_folder(c.client, c.work / "up", "/up"))
        ),
        errors.LocalPathError,
        r"symlink to outside",
        r"refusing to upload",
    ),
    # ------------------------------------------------------------------ credentials and hosts (client)
    Row(
        "client-no-credentials",
        lambda c: lambda: DropboxClient(Credentials(), endpoints=Endpoints.single_host(c.emu.base_url)),
        errors.AuthError,
        r"No Dropbox credentials",
        r"give a refresh token",
    ),
    Row(
        "client-refresh-token-without-app-key",
        lambda c: (
            lambda: DropboxClient(
                Credentials(refresh_token="x" * 40), endpoints=Endpoints.single_host(c.emu.base_url)
            )
        ),
        errors.AuthError,
        r"needs the app key",
        r"set the app key",
    ),
    Row(
        "client-malformed-access-token",
        lambda c: (
            lambda: fast_client(c.emu, credentials=Credentials(access_token="not a token")).get_metadata(
                "/file.txt"
            )
        ),
        errors.InvalidTokenError,
        r"access token in the connection holds whitespace at position 4",
        r"paste the token again",
    ),
    Row(
        "client-unknown-access-token",
        lambda c: (
            lambda: fast_client(c.emu, credentials=Credentials(access_token="sl.u." + "A" * 64)).get_metadata(
                "/file.txt"
            )
        ),
        errors.AuthError,
        r"refused the credentials",
        r"check the access/refresh token",
    ),
    Row(
        "client-wrong-app-secret",
        lambda c: (
            lambda: fast_client(
                c.emu,
                credentials=Credentials(
                    app_key="dev-app-key", app_secret="wrong", refresh_token="dev-refresh-token"
                ),
            ).get_metadata("/file.txt")
        ),
        errors.AuthError,
        r"rejected the app key or app secret",
        r"check them in the connection",
    ),
    Row(
        "client-unreachable-host",
        lambda c: (
            lambda: fast_client(
                c.emu,
                endpoints=Endpoints.single_host(f"http://127.0.0.1:{free_port()}"),
                retry_policy=RetryPolicy(initial_wait=0.01, max_wait=0.05, deadline=2.0, max_attempts=3),
            ).get_metadata("/file.txt")
        ),
        errors.DropboxConnectionError,
        r"Could not reach Dropbox",
        r"check the host URL and the network",
    ),
    # ------------------------------------------------------------------ hook (Airflow connection)
    Row(
        "hook-no-credentials",
        lambda c: lambda: c.hook(extra={"refresh_token": None}).get_metadata("/file.txt"),
        AirflowException,
        r"has no refresh token or access token",
        r"run airflow-dropbox-auth",
    ),
    Row(
        "hook-refresh-token-without-app-key",
        lambda c: lambda: c.hook(login=None).get_metadata("/file.txt"),
        AirflowException,
        r"no App key",
        r"app key is needed",
    ),
    Row(
        "hook-bad-timeout",
        lambda c: lambda: c.hook(extra={"timeout": "soon"}).get_metadata("/file.txt"),
        AirflowException,
        r"timeout must be a number of seconds",
    ),
    Row(
        "hook-unreachable-host",
        lambda c: lambda: c.hook(base_url=f"http://127.0.0.1:{free_port()}").get_metadata("/file.txt"),
        errors.DropboxConnectionError,
        r"Could not reach Dropbox",
        r"check the host URL",
    ),
    Row(
        "hook-malformed-token-in-connection",
        lambda c: (
            lambda: c.hook(extra={"refresh_token": None, "access_token": "has spaces in it"}).get_metadata(
                "/file.txt"
            )
        ),
        AirflowException,
        r"access token holds whitespace at position 4",
        r"paste it again",
    ),
    Row(
        "hook-download-folder-symlink-escape",
        lambda c: (
            (c.work / "outside").mkdir()
            or (c.work / "dest").mkdir()
            or (c.work / "dest" / "sub").symlink_to(c.work / "outside")
            or (lambda: c.hook().download_folder("/data", c.work / "dest"))
        ),
        errors.LocalPathError,
        r"resolves outside",
    ),
    # ------------------------------------------------------------------ mirror
    Row(
        "mirror-remote-is-a-file",
        lambda c: lambda: mirror(c.client, "/file.txt", c.work / "m"),
        sync_errors.RemoteRootError,
        r"is a file, not a folder",
        r"mirror a folder",
    ),
    Row(
        "mirror-remote-missing",
        lambda c: lambda: mirror(c.client, "/nope", c.work / "m"),
        sync_errors.RemoteRootError,
        r"does not exist",
        r"check remote_path",
    ),
    Row(
        "mirror-remote-dotdot",
        lambda c: lambda: mirror(c.client, "/data/../folder", c.work / "m"),
        sync_errors.MirrorConfigError,
        r"'\.' or '\.\.'",
        r"plain /-rooted folder path",
    ),
    Row(
        "mirror-local-is-a-file",
        lambda c: c.src("m") and (lambda: mirror(c.client, "/data", c.work / "m")),
        sync_errors.MirrorConfigError,
        r"is not a directory",
        r"pass a folder path",
    ),
    Row(
        "mirror-whitespace-remote-path",
        lambda c: lambda: mirror(c.client, "   ", c.work / "m"),
        sync_errors.MirrorConfigError,
        r"remote_path .* is empty or blank",
        r"pass '/' to mirror the whole Dropbox",
    ),
    Row(
        "mirror-empty-local-dir",
        lambda c: c.chdir() and (lambda: mirror(c.client, "/data", "")),
        sync_errors.MirrorConfigError,
        r"local_dir",
    ),
    Row(
        "client-download-folder-empty-local-dir",
        lambda c: c.chdir() and (lambda: folders.download_folder(c.client, "/data", "")),
        errors.LocalPathError,
        r"empty",
    ),
    Row(
        "mirror-readonly-destination",
        lambda c: c.mount("ro", read_only=True) and (lambda: mirror(c.client, "/data", _ro(c))),
        sync_errors.DestinationError,
        r"Cannot write to the mirror destination .*Read-only file system",
        r"pass a writable local_dir",
        mount=True,
    ),
    Row(
        "mirror-full-filesystem",
        lambda c: c.mount("full") and (lambda: mirror(c.client, "/data", c.work / "full" / "m")),
        sync_errors.MirrorFailedError,
        r"No space left on device",
        r"retries from the same point",
    ),
]


def _raw_extra_hook(c: Ctx, text: str) -> Any:
    """A hook whose connection's Extra field is ``text`` verbatim (not JSON-encoded by us)."""
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

    conn = json.loads(conn_json(c.emu.base_url))
    conn["extra"] = text
    conn_id = f"hard_{uuid.uuid4().hex[:8]}"
    c.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return DropboxHook(conn_id, retry_deadline=2.0)


def _token_client(c: Ctx, token: str) -> Callable[[], object]:
    return lambda: fast_client(c.emu, credentials=Credentials(access_token=token)).get_metadata("/file.txt")


def _hook_call(c: Ctx, **overrides: Any) -> Callable[[], object]:
    return lambda: c.hook(**overrides).get_metadata("/file.txt")


def _fifo_in(c: Ctx, name: str) -> Path:
    path = c.work / name
    os.mkfifo(path)
    return path


_SECRET = "sl.SECRETSECRETSECRET"
_CONFIG = AirflowException
_BAD = errors.InvalidArgumentError

ROWS += [
    # ------------------------------------------------------------------ connection inputs (finding 10)
    *(
        Row(
            f"hook-timeout-{name}",
            lambda c, v=value: _hook_call(c, extra={"timeout": v}),
            _CONFIG,
            rf"timeout must be a finite number of seconds, got '{re.escape(value)}'",
            r"give e\.g\. 100",
        )
        for name, value in (("nan", "nan"), ("inf", "inf"), ("1e400", "1e400"), ("minus-inf", "-inf"))
    ),
    Row(
        "hook-timeout-a-year",
        lambda c: _hook_call(c, extra={"timeout": 31536000}),
        _CONFIG,
        r"timeout must be more than 0 and at most 86400 seconds",
    ),
    Row(
        "hook-timeout-boolean",
        lambda c: _hook_call(c, extra={"timeout": True}),
        _CONFIG,
        r"timeout must be a number of seconds, got True",
    ),
    Row(
        "hook-retry-deadline-NaN",
        lambda c: _hook_call(c, extra={"retry_deadline": "NaN"}),
        _CONFIG,
        r"retry_deadline must be a finite number",
    ),
    Row(
        "hook-extra-not-json",
        lambda c: lambda: _raw_extra_hook(c, '{refresh_token: "abc"}').get_metadata("/file.txt"),
        _CONFIG,
        r"Extra field is not valid JSON \(.* at line 1 column 2\)",
        r"must be a JSON object",
    ),
    Row(
        "hook-extra-truncated-json",
        lambda c: lambda: _raw_extra_hook(c, '{"refresh_token": "abc"').get_metadata("/file.txt"),
        _CONFIG,
        r"Extra field is not valid JSON",
    ),
    Row(
        "hook-extra-json-list",
        lambda c: lambda: _raw_extra_hook(c, '["refresh_token", "abc"]').get_metadata("/file.txt"),
        _CONFIG,
        r"Extra field is JSON but not an object \(it is a list\)",
    ),
    Row(
        "hook-host-ftp-scheme",
        lambda c: _hook_call(c, base_url="ftp://127.0.0.1:21"),
        _CONFIG,
        r"scheme 'ftp'",
        r"use https://",
    ),
    Row(
        "hook-host-port-and-port-field-disagree",
        lambda c: _hook_call(c, port=1),
        _CONFIG,
        r"has port \d+ but the Port field says 1; keep one",
    ),
    Row(
        "hook-port-field-out-of-range",
        lambda c: _hook_call(c, base_url="127.0.0.1", port=70000),
        _CONFIG,
        r"Port 70000 is not a port number",
    ),
    Row(
        "hook-host-port-not-a-number",
        lambda c: _hook_call(c, base_url="http://127.0.0.1:80a"),
        _CONFIG,
        r"port that is not a number",
    ),
    Row(
        "hook-host-with-inner-space",
        lambda c: _hook_call(c, base_url="127.0.0.1 8765"),
        _CONFIG,
        r"contains whitespace or a control character",
        r"e\.g\. https://",
    ),
    Row(
        "hook-host-with-inner-line-break",
        lambda c: _hook_call(c, base_url="127.0.\n0.1"),
        _CONFIG,
        r"contains whitespace or a control character",
    ),
    Row(
        "hook-team-member-id-header-injection",
        lambda c: _hook_call(c, extra={"team_member_id": "dbmid:abc\r\nX-Evil: 1"}),
        _CONFIG,
        r"team_member_id holds a line break at position 10",
        r"enter the id again",
    ),
    Row(
        "hook-root-namespace-fullwidth-digits",
        lambda c: _hook_call(c, extra={"root_namespace_id": "\uff11\uff12\uff13"}),
        _CONFIG,
        r"root_namespace_id holds a non-ASCII character \(U\+FF11\)",
    ),
    Row(
        "client-team-member-id-tab",
        lambda c: lambda: fast_client(c.emu, team_member_id="dbmid:\tabc"),
        _BAD,
        r"team_member_id holds whitespace at position 7",
    ),
    # ------------------------------------------------------------------ unusable tokens (finding 4)
    *(
        Row(
            f"client-access-token-{name}",
            lambda c, t=token: _token_client(c, t),
            errors.InvalidTokenError,
            rf"access token in the connection holds {re.escape(kind)}",
            r"paste the token again",
        )
        for name, token, kind in (
            ("lf", _SECRET + "\nrest", "a line break at position 22"),
            ("crlf", _SECRET + "\r\nrest", "a line break at position 22"),
            ("cr-first", "\r" + _SECRET, "a line break at position 1"),
            ("nul", _SECRET + "\x00", "a control character"),
            ("escape-char", _SECRET + "\x1b[0m", "a control character"),
            ("euro-sign", _SECRET + "\u20ac", "a non-ASCII character (U+20AC)"),
            ("latin1-accent", _SECRET + "\u00e9", "a non-ASCII character (U+00E9)"),
            ("zero-width-space", "sl.\u200b" + _SECRET, "a non-ASCII character (U+200B)"),
            ("no-break-space", _SECRET + "\u00a0x", "whitespace"),
            ("line-separator", _SECRET + "\u2028x", "whitespace"),
        )
    ),
    Row(
        "hook-access-token-crlf-in-connection",
        lambda c: _hook_call(c, extra={"refresh_token": None, "access_token": _SECRET + "\r\nX: y"}),
        _CONFIG,
        r"the access token holds a line break at position 22",
        r"paste it again as one line",
    ),
    Row(
        "hook-refresh-token-with-inner-newline",
        lambda c: _hook_call(c, extra={"refresh_token": "abc\ndef"}),
        _CONFIG,
        r"the refresh token holds a line break at position 4",
    ),
    Row(
        "hook-access-token-non-latin1",
        lambda c: _hook_call(c, extra={"refresh_token": None, "access_token": _SECRET + "\u2603"}),
        _CONFIG,
        r"the access token holds a non-ASCII character \(U\+2603\)",
    ),
    # ------------------------------------------------------------------ path rules (finding 11)
    Row(
        "client-upload-folder-name-trailing-space",
        lambda c: lambda: c.client.upload_file(c.src(), "/R/folder /x.txt"),
        errors.MalformedPathError,
        r"the name 'folder ' \(name 2 of 3\) ends with whitespace \(a space\)",
        r"remove it \('folder'\)",
    ),
    Row(
        "client-upload-backslash-in-name",
        lambda c: lambda: c.client.upload_file(c.src(), "/R/a\\b.txt"),
        errors.MalformedPathError,
        r"the name 'a\\\\b\.txt' \(name 2 of 2\) contains a backslash",
        r"separate folders with '/'",
    ),
    Row(
        "client-upload-backslash-in-folder",
        lambda c: lambda: c.client.upload_file(c.src(), "/R\\S/x.txt"),
        errors.MalformedPathError,
        r"\(name 1 of 2\) contains a backslash",
    ),
    Row(
        "client-upload-name-trailing-tab",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/x.csv\t"),
        errors.MalformedPathError,
        r"ends with whitespace \(a tab\)",
    ),
    Row(
        "client-upload-folder-trailing-no-break-space",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/x\u00a0/y.csv"),
        errors.MalformedPathError,
        r"ends with whitespace \(the whitespace character U\+00A0\)",
    ),
    Row(
        "client-upload-folder-trailing-newline",
        lambda c: lambda: c.client.upload_file(c.src(), "/data/a\n/y.csv"),
        errors.MalformedPathError,
        r"ends with whitespace \(a line break\)",
    ),
    Row(
        "client-mkdir-trailing-space",
        lambda c: lambda: c.client.create_folder("/newdir "),
        errors.MalformedPathError,
        r"the name 'newdir ' \(name 1 of 1\) ends with whitespace",
    ),
    Row(
        "client-download-folder-component-trailing-space",
        lambda c: lambda: c.client.download_file("/data /a.csv", c.work / "a.csv"),
        errors.MalformedPathError,
        r"the name 'data ' \(name 1 of 2\) ends with whitespace",
    ),
    Row(
        "client-upload-local-file-with-trailing-slash",
        lambda c: lambda: c.client.upload_file(str(c.src()) + "/", "/data/new.csv"),
        errors.LocalPathError,
        r"ends with '/', which names a folder, but .* is a file",
        r"drop the trailing '/'",
    ),
    Row(
        "client-download-id-path-into-folder-target",
        lambda c: lambda: c.client.download_file("id:abcdefghijk", str(c.work / "newdir") + "/"),
        errors.LocalPathError,
        r"names a folder \(it ends with '/'\).*has no name to use",
        r"give the full local file path",
    ),
    # ------------------------------------------------------------------ parallelism cap (finding 12)
    *(
        Row(
            f"client-upload-parallelism-{name}",
            lambda c, v=value: lambda: c.client.upload_file(c.src(), "/data/p.csv", parallelism=v),
            _BAD,
            problem,
        )
        for name, value, problem in (
            ("million", 10**6, r"parallelism must be from 1 to 64 \(the documented maximum\), got 1000000"),
            ("65", 65, r"parallelism must be from 1 to 64"),
            ("0", 0, r"parallelism must be from 1 to 64, got 0"),
            ("negative", -4, r"parallelism must be from 1 to 64, got -4"),
            ("string", "8", r"parallelism must be a whole number from 1 to 64, got str '8'"),
            ("float", 4.0, r"parallelism must be a whole number from 1 to 64, got float"),
            ("bool", True, r"parallelism must be a whole number from 1 to 64, got bool"),
        )
    ),
    Row(
        "client-download-parallelism-million",
        lambda c: lambda: c.client.download_file("/data/a.csv", c.work / "a.csv", parallelism=10**6),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    Row(
        "client-constructor-parallelism-million",
        lambda c: lambda: fast_client(c.emu, parallelism=10**6),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    Row(
        "client-download-folder-parallelism-million",
        lambda c: lambda: folders.download_folder(c.client, "/data", c.work / "o", parallelism=10**6),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    Row(
        "client-upload-folder-parallelism-million",
        lambda c: (
            c.src("up/a.csv")
            and (lambda: folders.upload_folder(c.client, c.work / "up", "/up", parallelism=10**6))
        ),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    Row(
        "hook-parallelism-million",
        lambda c: (
            lambda: __import__(
                "airflow_provider_dropbox.hooks.dropbox", fromlist=["DropboxHook"]
            ).DropboxHook(c.conn(), parallelism=10**6)
        ),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    Row(
        "hook-download-folder-parallelism-100",
        lambda c: lambda: c.hook().download_folder("/data", c.work / "o", parallelism=100),
        _BAD,
        r"parallelism must be from 1 to 64",
    ),
    # ------------------------------------------------------------------ client timeouts (finding 10)
    *(
        Row(
            f"client-{field}-{name}",
            lambda c, f=field, v=value: lambda: fast_client(c.emu, **{f: v}),
            _BAD,
            problem,
        )
        for field, name, value, problem in (
            ("timeout", "nan", float("nan"), r"timeout must be a finite number of seconds"),
            ("timeout", "inf", float("inf"), r"timeout must be a finite number of seconds"),
            ("timeout", "zero", 0, r"timeout must be more than 0"),
            ("timeout", "text", "soon", r"timeout must be a number of seconds, got 'soon'"),
            ("retry_deadline", "inf", float("inf"), r"retry_deadline must be a finite number"),
        )
    ),
    # ------------------------------------------------------------------ special files (finding 9)
    Row(
        "client-upload-named-pipe",
        lambda c: (lambda p: lambda: c.client.upload_file(p, "/data/pipe"))(_fifo_in(c, "pipe")),
        errors.LocalPathError,
        r"is a named pipe \(FIFO\), not a regular file",
    ),
    Row(
        "client-upload-dev-null",
        lambda c: lambda: c.client.upload_file("/dev/null", "/data/null"),
        errors.LocalPathError,
        r"is a character device, not a regular file",
    ),
    Row(
        "client-upload-proc-self-status",
        lambda c: lambda: c.client.upload_file("/proc/self/status", "/data/status"),
        errors.LocalPathError,
        r"size of 0 bytes but reading it gives data",
        r"copy it to a regular file",
    ),
    Row(
        "client-download-onto-named-pipe",
        lambda c: (lambda p: lambda: c.client.download_file("/data/a.csv", p))(_fifo_in(c, "dest-pipe")),
        errors.LocalPathError,
        r"is a named pipe \(FIFO\), not a regular file",
        r"remove it or choose another local path",
    ),
]

# A full-FS mirror writes what fits and its own state (pending intents, manifest) by design: for that row
# the check is that every file under a real name is complete.
_STATE_WRITES_OK = {"mirror-full-filesystem"}


def _params() -> Iterator[Any]:
    for row in ROWS:
        marks = []
        if row.mount:
            marks.append(needs_mount)
        if row.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=row.xfail))
        yield pytest.param(row, id=row.id, marks=marks)


@pytest.fixture
def ctx(seeded: EmulatorProcess, work: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ctx]:
    with fast_client(seeded) as client:
        c = Ctx(seeded, client, work, monkeypatch)
        with c.stack:
            yield c


def _strip_state(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if ".dropbox-mirror" not in k}


@pytest.mark.parametrize("row", list(_params()))
def test_bad_input(row: Row, ctx: Ctx) -> None:
    action = row.prepare(ctx)
    local_before = ctx.outputs()
    remote_before = remote_snapshot(ctx.client)
    with pytest.raises(row.exc) as info:
        action()
    message = str(info.value)
    assert re.search(row.problem, message, re.S), f"problem not named: {type(info.value).__name__}: {message}"
    if row.fix:
        assert re.search(row.fix, message, re.S), f"fix not named: {message}"
    local_after = ctx.outputs()
    if row.id in _STATE_WRITES_OK:
        # The mirror applies what fits and reports the rest (documented: partly applied, recoverable).
        # Every file it left under a real name must be complete; state and folders are its own business.
        for rel, (kind, size, _) in list(local_after.items()):
            if kind == "file" and ".dropbox-mirror" not in rel and rel not in local_before:
                remote = "/data/" + rel.split("/", 2)[2]
                assert size == len(SEED[unicodedata.normalize("NFC", remote)]), f"partial file {rel}"
        local_after = {k: v for k, v in local_before.items()}
    assert local_after == local_before, "local files changed"
    assert remote_snapshot(ctx.client) == remote_before, "remote account changed"
    assert temp_leftovers(ctx.work) == []


# ---------------------------------------------------------------------- inputs that must simply work


def test_emoji_and_unicode_names_round_trip(ctx: Ctx) -> None:
    """Emoji (astral plane, surrogate pairs in the JSON header) and NFD names go up and come back intact."""
    names = ["📁 reports/😀 data.csv", f"nfd/{NFD_NAME}", "日本語/ファイル.txt", "empty/zero bytes.bin"]
    for i, name in enumerate(names):
        src = ctx.src(f"u{i}.bin", f"payload {i}".encode() if i < 3 else b"")
        meta = ctx.client.upload_file(src, f"/unicode/{name}")
        assert meta["name"] == name.rsplit("/", 1)[1]
        out = ctx.work / "back" / name
        ctx.client.download_file(f"/unicode/{name}", out)
        assert out.read_bytes() == src.read_bytes()
    # the NFC spelling finds the file stored under the NFD name: one item, not two
    nfc_meta = ctx.client.get_metadata(f"/unicode/nfd/{NFC_NAME}")
    assert nfc_meta["size"] == len(b"payload 1")
    assert temp_leftovers(ctx.work) == []


def test_download_onto_a_symlink_never_writes_through_it(ctx: Ctx) -> None:
    """local_path is a symlink to a file elsewhere: the link is replaced, its target stays untouched."""
    outside = ctx.src("outside/precious.txt", b"do not touch")
    link = ctx.work / "dest" / "a.csv"
    link.parent.mkdir()
    link.symlink_to(outside)
    ctx.client.download_file("/data/a.csv", link)
    assert outside.read_bytes() == b"do not touch"
    assert not link.is_symlink() and link.read_bytes() == SEED["/data/a.csv"]


def test_mirror_never_writes_through_a_planted_symlink(ctx: Ctx) -> None:
    """A symlink inside the mirror where Dropbox has a folder: nothing is written outside the destination."""
    outside = ctx.work / "outside"
    outside.mkdir()
    dest = ctx.work / "m"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    mirror(ctx.client, "/data", dest, parallelism=2)
    assert list(outside.iterdir()) == []
    assert (dest / "sub").is_dir() and not (dest / "sub").is_symlink()
    assert (dest / "sub" / "b.txt").read_bytes() == SEED["/data/sub/b.txt"]
    assert temp_leftovers(dest) == []


def test_revoked_refresh_token(
    fresh_emulator: EmulatorProcess, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoke the refresh token on the server; client, hook and test_connection all say to re-authorize."""
    with fast_client(fresh_emulator) as c:
        src = work / "a.csv"
        src.write_bytes(b"a")
        c.upload_file(src, "/kept.csv")
        c.rpc("auth/token/revoke")  # revokes this access token and the refresh token it came from
    ctx = Ctx(fresh_emulator, fast_client(fresh_emulator), work, monkeypatch)
    with pytest.raises(errors.InvalidRefreshTokenError) as info:
        ctx.client.get_metadata("/kept.csv")
    assert "invalid or revoked" in str(info.value)
    assert "run the authorization helper again" in str(info.value)
    ok, message = ctx.hook().test_connection()
    assert not ok
    assert "invalid or revoked" in message and "airflow-dropbox-auth" in message


# ---------------------------------------------------------------------- operators through dag.test()


def _load_dags() -> Any:
    return load_dag_module(DAGS / "hardening_ops_dag.py")


@pytest.fixture
def run_op(
    airflow_db: None, ctx: Ctx, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> Callable[..., tuple[str, str]]:
    """Run one of the hardening DAGs with ``dag.test(run_conf=...)``; returns (dag run state, task output)."""
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(DAGS))
    conn = ctx.conn()

    def run(dag_attr: str, **conf: Any) -> tuple[str, str]:
        dag = getattr(_load_dags(), dag_attr)
        capfd.readouterr()
        dr = dag.test(run_conf={"conn": conn, **conf})
        out, err = capfd.readouterr()
        return str(dr.state), out + err

    return run


OP_ROWS = [
    (
        "upload-no-leading-slash",
        "upload_dag",
        {"remote": "reports/x.csv"},
        "MalformedPathError",
        r"must start with '/'.*did you mean",
    ),
    (
        "upload-empty-remote",
        "upload_dag",
        {"remote": ""},
        "MalformedPathError",
        r"root folder cannot be used",
    ),
    (
        "download-dotdot",
        "download_dag",
        {"remote": "/data/../file.txt"},
        "MalformedPathError",
        r"'\.\.' component",
    ),
    (
        "download-missing",
        "download_dag",
        {"remote": "/nope.csv"},
        "AirflowException",
        r"'/nope.csv' does not exist",
    ),
    ("delete-root", "delete_dag", {"remote": "/"}, "MalformedPathError", r"root folder cannot be used"),
    ("delete-glob-is-not-expanded", "delete_dag", {"remote": "/*"}, "PathNotFoundError", r"'/\*' not found"),
    ("mkdir-on-a-file", "mkdir_dag", {"remote": "/file.txt"}, "PathConflictError", r"a file already exists"),
    pytest.param(
        "mirror-remote-is-a-file",
        "mirror_dag",
        {"remote": "/file.txt"},
        "RemoteRootError",
        r"is a file, not a folder",
        id="mirror-remote-is-a-file",
    ),
    (
        "no-credentials-connection",
        "mkdir_dag",
        {"remote": "/newdir", "conn": "@noauth"},
        "DropboxConnectionConfigError",
        r"has no refresh token.*airflow-dropbox-auth",
    ),
    (
        "sensor-missing-folder",
        "sensor_dag",
        {"remote": "/nope"},
        "PathNotFoundError",
        r"'/nope' not found",
    ),
    (
        "sensor-on-a-file",
        "sensor_dag",
        {"remote": "/file.txt"},
        "NotAFolderError",
        r"is a file, not a folder",
    ),
    (
        "sensor-no-leading-slash",
        "sensor_dag",
        {"remote": "data"},
        "MalformedPathError",
        r"must start with '/'",
    ),
    (
        "sensor-garbage-cursor",
        "sensor_dag",
        {"remote": "/data", "cursor": "not-a-cursor"},
        "BadInputError",
        r"cursor",
    ),
    (
        "connection-id-not-defined",
        "mkdir_dag",
        {"remote": "/newdir", "conn": "no_such_dropbox_conn"},
        "",
        r"no_such_dropbox_conn.*(isn't defined|not defined|not found)",
    ),
    pytest.param(
        "connection-of-another-type",
        "mkdir_dag",
        {"remote": "/newdir", "conn": "@http"},
        "DropboxConnectionConfigError",
        r"type 'http'|of type http|not a Dropbox connection",
        id="connection-of-another-type",
    ),
    pytest.param(
        "unrendered-template-upload",
        "upload_dag",
        {"remote": "/reports/{{ ds }}.csv"},
        "",
        r"template",
        id="unrendered-template-upload",
    ),
    pytest.param(
        "unrendered-template-mkdir",
        "mkdir_dag",
        {"remote": "/reports/{{ ds }}"},
        "",
        r"template",
        id="unrendered-template-mkdir",
    ),
    pytest.param(
        "mirror-empty-remote-from-missing-param",
        "mirror_dag",
        {"remote": ""},
        "MirrorConfigError",
        r"is empty or blank; pass '/' to mirror the whole Dropbox",
        id="mirror-empty-remote-from-missing-param",
    ),
    pytest.param(
        "download-to-empty-local-path",
        "download_dag",
        {"remote": "/data/a.csv", "local": ""},
        "",
        r"local_path",
        id="download-to-empty-local-path",
    ),
    pytest.param(
        "upload-glob-of-the-whole-filesystem",
        "upload_dag",
        {"local": "/**", "remote": "/everything"},
        "",
        r"matches everything|whole file ?system|refus",
        id="upload-glob-of-the-whole-filesystem",
    ),
]


def _op_params() -> Iterator[Any]:
    for row in OP_ROWS:
        yield row if hasattr(row, "marks") else pytest.param(*row, id=row[0])


@pytest.mark.parametrize(("case", "dag_attr", "conf", "error", "pattern"), list(_op_params()))
def test_operator_bad_input(
    case: str,
    dag_attr: str,
    conf: dict[str, Any],
    error: str,
    pattern: str,
    ctx: Ctx,
    run_op: Callable[..., tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real task run: the task fails, its log shows the typed error and the hint; nothing changed."""
    src = ctx.src("in.csv")
    conf = dict(conf)
    conf.setdefault("local", str(src) if dag_attr == "upload_dag" else str(ctx.work / "out"))
    if conf["local"] == "":
        ctx.chdir()  # an empty path means the current directory: make it one we snapshot
    if conf.get("conn") == "@http":
        conn_id = f"hard_http_{uuid.uuid4().hex[:6]}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", "host": "example.com"})
        )
        conf["conn"] = conn_id
    if conf.get("conn") == "@noauth":
        conf["conn"] = ctx.conn(extra={"refresh_token": None})
    if "**" in str(conf.get("local")):
        real_glob = globmod.glob

        def guarded(pattern_: str, *a: Any, **kw: Any) -> list[str]:
            if pattern_.startswith("/**") or pattern_ == "/*":
                raise RuntimeError("test guard: the operator expanded a glob over the whole filesystem")
            return real_glob(pattern_, *a, **kw)

        monkeypatch.setattr(globmod, "glob", guarded)
    local_before = ctx.outputs()
    remote_before = remote_snapshot(ctx.client)
    state, output = run_op(dag_attr, **conf)
    assert state == "failed", f"task did not fail:\n{output[-3000:]}"
    if error:
        assert error in output, output[-3000:]
    assert re.search(pattern, output, re.S), output[-3000:]
    assert "test guard" not in output
    assert ctx.outputs() == local_before
    assert remote_snapshot(ctx.client) == remote_before
    assert temp_leftovers(ctx.work) == []
