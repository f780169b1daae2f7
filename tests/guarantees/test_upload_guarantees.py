"""Upload guarantees the README makes, each defended by a test that fails when the guarantee is broken.

- ``skip_if_identical`` skips only when the content hash matches, never on size alone.
- Every upload request carries the ``content_hash`` of its bytes: a body corrupted on the way is refused and
  nothing corrupt is stored (single request and session chunks).
- The result check: when Dropbox's answer names a hash or size other than the local file's, the upload fails
  with ``ContentHashMismatchError`` (single, session finish and batch commit).
- Lost-answer recovery accepts only a remote file with exactly our bytes, never a different file that sits
  at the path (single commit and batch commit).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dropbox.client import DropboxClient
from airflow_provider_dropbox.client.content_hash import content_hash_bytes as content_hash
from airflow_provider_dropbox.client.errors import (
    BatchUploadError,
    ContentHashMismatchError,
    DropboxApiError,
    PathNotFoundError,
)
from tests.client.conftest import MakeClient, write_random
from tests.emulator_process import EmulatorProcess
from tests.guarantees.http_proxy import Tamper, tampering_proxy

MiB = 1024 * 1024


def remote_bytes(client: DropboxClient, remote: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"check-{os.urandom(4).hex()}"
    client.download_file(remote, target)
    return target.read_bytes()


# ----------------------------------------------------------------------------- skip_if_identical (1)


@pytest.mark.parametrize("mode", ["overwrite", "add"])
def test_same_size_different_content_is_uploaded(
    client: DropboxClient, remote_dir: str, tmp_path: Path, mode: str
) -> None:
    """Above the skip-check size, a file of the same size but other bytes must be sent, not skipped."""
    remote = f"{remote_dir}/same-size.bin"
    old = write_random(tmp_path / "old.bin", 5 * MiB)
    client.upload_file(tmp_path / "old.bin", remote, mode="overwrite")
    new = bytearray(old)
    new[-1] ^= 0xFF  # same size, one byte differs
    (tmp_path / "new.bin").write_bytes(new)
    if mode == "add":
        # "add" onto a different file is a conflict: it must be reported, not skipped as identical.
        with pytest.raises(DropboxApiError):
            client.upload_file(tmp_path / "new.bin", remote, mode="add")
        assert remote_bytes(client, remote, tmp_path) == old
        return
    meta = client.upload_file(tmp_path / "new.bin", remote, mode=mode)
    assert meta["content_hash"] == content_hash(bytes(new))
    assert remote_bytes(client, remote, tmp_path) == bytes(new)


def test_identical_content_is_skipped(
    client: DropboxClient, emulator: EmulatorProcess, remote_dir: str, tmp_path: Path
) -> None:
    """The other half: identical bytes cost one metadata call and no upload."""
    remote = f"{remote_dir}/same.bin"
    write_random(tmp_path / "a.bin", 5 * MiB)
    client.upload_file(tmp_path / "a.bin", remote, mode="overwrite")
    before = emulator.stats().get("/2/files/upload", 0)
    client.upload_file(tmp_path / "a.bin", remote, mode="overwrite")
    assert emulator.stats().get("/2/files/upload", 0) == before


# ------------------------------------------------------------- content_hash on every request (4)


def _corrupt_first(route: str, times: int = 1) -> tuple[Tamper, list[int]]:
    """A request hook that flips one body byte of the first ``times`` requests to ``route``."""
    done: list[int] = []

    def on_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
        if path.startswith(route) and len(done) < times and body:
            done.append(1)
            buf = bytearray(body)
            buf[len(buf) // 2] ^= 0xFF
            return bytes(buf)
        return body

    return Tamper(upstream="", on_request=on_request), done


@pytest.mark.parametrize(
    ("size", "route", "limit", "parallelism"),
    [
        (300 * 1024, "/2/files/upload", None, 1),
        (9 * MiB, "/2/files/upload_session/append_v2", 4 * MiB, 1),
        (9 * MiB, "/2/files/upload_session/start", 4 * MiB, 1),
        (9 * MiB, "/2/files/upload_session/append_v2", 4 * MiB, 2),
    ],
    ids=["single", "session-append", "session-start", "concurrent-append"],
)
def test_corrupted_upload_body_is_refused_and_nothing_corrupt_is_stored(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    remote_dir: str,
    tmp_path: Path,
    size: int,
    route: str,
    limit: int | None,
    parallelism: int,
) -> None:
    remote = f"{remote_dir}/corrupt-{size}-{parallelism}.bin"
    data = write_random(tmp_path / "f.bin", size)
    direct = make_client(emulator)
    tamper, done = _corrupt_first(route)
    tamper.upstream = emulator.base_url
    with tampering_proxy(tamper) as url:
        via = make_client(emulator, **_single_host(url))
        kwargs: dict[str, Any] = {"single_request_limit": limit, "chunk_size": 4 * MiB} if limit else {}
        try:
            meta = via.upload_file(tmp_path / "f.bin", remote, parallelism=parallelism, **kwargs)
        except ContentHashMismatchError:
            meta = None
    assert done, "the proxy never saw the request it was meant to corrupt"
    if meta is None:
        # Refused: nothing at all may sit at the path.
        with pytest.raises(PathNotFoundError):
            direct.get_metadata(remote)
    else:
        # Retried: what is stored must be the local bytes, exactly.
        assert remote_bytes(direct, remote, tmp_path) == data


def test_corrupted_overwrite_keeps_the_old_file(
    emulator: EmulatorProcess, make_client: MakeClient, remote_dir: str, tmp_path: Path
) -> None:
    remote = f"{remote_dir}/keep.bin"
    direct = make_client(emulator)
    old = write_random(tmp_path / "old.bin", 1000)
    direct.upload_file(tmp_path / "old.bin", remote)
    write_random(tmp_path / "new.bin", 2000)
    tamper, done = _corrupt_first("/2/files/upload")
    tamper.upstream = emulator.base_url
    with tampering_proxy(tamper) as url, pytest.raises(ContentHashMismatchError):
        make_client(emulator, **_single_host(url)).upload_file(tmp_path / "new.bin", remote, mode="overwrite")
    assert done
    assert remote_bytes(direct, remote, tmp_path) == old


def _single_host(url: str) -> dict[str, object]:
    from airflow_provider_dropbox.client import Endpoints

    return {"endpoints": Endpoints.single_host(url)}


# -------------------------------------------------------------------------- the result check (2)


def _disagree(route: str, field: str) -> Tamper:
    """A response hook that changes ``field`` in the JSON answer of ``route`` (every success entry)."""

    def change(meta: dict[str, object]) -> None:
        if field == "content_hash":
            meta["content_hash"] = "0" * 64
        else:
            meta["size"] = int(meta["size"]) + 1  # type: ignore[call-overload]

    def on_response(path: str, resp: requests.Response) -> bool:
        if path == route and resp.status_code == 200:
            body = json.loads(resp.content)
            for entry in body.get("entries", [body]):
                change(entry)
            resp._content = json.dumps(body).encode()
        return True

    return Tamper(upstream="", on_response=on_response)


@pytest.mark.parametrize("field", ["content_hash", "size"])
@pytest.mark.parametrize(
    ("route", "size", "limit"),
    [
        ("/2/files/upload", 1000, None),
        ("/2/files/upload_session/finish", 9 * MiB, 4 * MiB),
    ],
    ids=["single", "session"],
)
def test_upload_fails_when_dropbox_reports_other_bytes(
    emulator: EmulatorProcess,
    make_client: MakeClient,
    remote_dir: str,
    tmp_path: Path,
    field: str,
    route: str,
    size: int,
    limit: int | None,
) -> None:
    write_random(tmp_path / "f.bin", size)
    tamper = _disagree(route, field)
    tamper.upstream = emulator.base_url
    kwargs: dict[str, Any] = {"single_request_limit": limit, "chunk_size": 4 * MiB} if limit else {}
    with tampering_proxy(tamper) as url, pytest.raises(ContentHashMismatchError, match=r"f\.bin"):
        make_client(emulator, **_single_host(url)).upload_file(
            tmp_path / "f.bin", f"{remote_dir}/f.bin", parallelism=1, **kwargs
        )


@pytest.mark.parametrize("field", ["content_hash", "size"])
def test_batch_upload_reports_the_entry_dropbox_stored_differently(
    emulator: EmulatorProcess, make_client: MakeClient, remote_dir: str, tmp_path: Path, field: str
) -> None:
    pairs = []
    for i in range(3):
        write_random(tmp_path / f"{i}.bin", 1000 + i)
        pairs.append((tmp_path / f"{i}.bin", f"{remote_dir}/{i}.bin"))
    tamper = _disagree("/2/files/upload_session/finish_batch_v2", field)
    tamper.upstream = emulator.base_url
    with tampering_proxy(tamper) as url, pytest.raises(BatchUploadError) as info:
        make_client(emulator, **_single_host(url)).upload_files(pairs)
    assert sorted(info.value.failures) == sorted(r for _, r in pairs)
    assert all(isinstance(e, ContentHashMismatchError) for e in info.value.failures.values())


# ------------------------------------------------------------------ lost-answer recovery (5)


def _lose_answer_after(route: str, intruder: DropboxClient, remote: str, other: Path) -> Tamper:
    """Forward the first request to ``route`` (the server commits), let another writer replace ``remote``
    with ``other``'s bytes, then drop the answer: the client cannot know its commit happened."""
    dropped: list[int] = []

    def on_response(path: str, resp: requests.Response) -> bool:
        if path == route and not dropped:
            dropped.append(1)
            intruder.upload_file(other, remote, mode="overwrite", skip_if_identical=False)
            return False
        return True

    return Tamper(upstream="", on_response=on_response)


def test_lost_single_commit_does_not_accept_a_different_file(
    emulator: EmulatorProcess, make_client: MakeClient, remote_dir: str, tmp_path: Path
) -> None:
    remote = f"{remote_dir}/lost.bin"
    direct = make_client(emulator)
    write_random(tmp_path / "ours.bin", 3000)
    theirs = write_random(tmp_path / "theirs.bin", 3000)
    tamper = _lose_answer_after("/2/files/upload", direct, remote, tmp_path / "theirs.bin")
    tamper.upstream = emulator.base_url
    with tampering_proxy(tamper) as url, pytest.raises(DropboxApiError):
        make_client(emulator, **_single_host(url)).upload_file(tmp_path / "ours.bin", remote)
    assert remote_bytes(direct, remote, tmp_path) == theirs


def test_lost_single_commit_accepts_our_own_file(
    emulator: EmulatorProcess, make_client: MakeClient, remote_dir: str, tmp_path: Path
) -> None:
    """The other half: when the lost commit stored our bytes, the upload succeeds."""
    remote = f"{remote_dir}/lost-ok.bin"
    ours = write_random(tmp_path / "ours.bin", 3000)
    dropped: list[int] = []

    def on_response(path: str, resp: requests.Response) -> bool:
        if path == "/2/files/upload" and not dropped:
            dropped.append(1)
            return False
        return True

    with tampering_proxy(Tamper(upstream=emulator.base_url, on_response=on_response)) as url:
        meta = make_client(emulator, **_single_host(url)).upload_file(tmp_path / "ours.bin", remote)
    assert dropped
    assert meta["content_hash"] == content_hash(ours)


def test_lost_batch_commit_does_not_accept_a_different_file(
    emulator: EmulatorProcess, make_client: MakeClient, remote_dir: str, tmp_path: Path
) -> None:
    direct = make_client(emulator)
    pairs = []
    for i in range(3):
        write_random(tmp_path / f"{i}.bin", 2000)
        pairs.append((tmp_path / f"{i}.bin", f"{remote_dir}/{i}.bin"))
    theirs = write_random(tmp_path / "theirs.bin", 2000)
    victim = pairs[1][1]
    tamper = _lose_answer_after(
        "/2/files/upload_session/finish_batch_v2", direct, victim, tmp_path / "theirs.bin"
    )
    tamper.upstream = emulator.base_url
    with tampering_proxy(tamper) as url, pytest.raises(BatchUploadError) as info:
        make_client(emulator, **_single_host(url)).upload_files(pairs)
    assert list(info.value.failures) == [victim]
    assert sorted(m["path_display"] for m in info.value.succeeded) == [pairs[0][1], pairs[2][1]]
    assert remote_bytes(direct, victim, tmp_path) == theirs
