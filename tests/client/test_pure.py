"""Pure parts of the client (no server): content hash, arg encoding, error decoding, retry rules, paths."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_dropbox.client import Credentials, Endpoints, RetryPolicy, encode_arg, errors
from airflow_provider_dropbox.client.auth import build_authorize_url, generate_pkce_pair, pkce_challenge
from airflow_provider_dropbox.client.content_hash import (
    BLOCK_SIZE,
    BlockHashBehind,
    ContentHasher,
    block_digests_of_range,
    combine,
    content_hash_bytes,
    content_hash_file,
)
from airflow_provider_dropbox.client.errors import api_error_from_response, has_tag, iter_tags
from airflow_provider_dropbox.client.paths import (
    check_local_destination,
    check_local_source,
    check_remote_path,
)
from airflow_provider_dropbox.client.progress import ProgressLogger
from airflow_provider_dropbox.client.retry import is_retryable

# Reference §4, data = b"A" * n (rclone dbhash_test.go).
VECTORS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42",
    2: "01e0655fb754d10418a73760f57515f4903b298e6d67dda6bf0987fa79c22c88",
    4096: "8620913d33852befe09f16fff8fd75f77a83160d29f76f07e0276e9690903035",
    4194303: "647c8627d70f7a7d13ce96b1e7710a771a55d41a62c3da490d92e56044d311fa",
    4194304: "d4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3",
    4194305: "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92",
    8388607: "83b30cf4fb5195b04a937727ae379cf3d06673bf8f77947f6a92858536e8369c",
    8388608: "e08b3ba1f538804075c5f939accdeaa9efc7b5c01865c94a41e78ca6550a88e7",
    8388609: "02c8a4aefc2bfc9036f89a7098001865885938ca580e5c9e5db672385edd303c",
}


@pytest.mark.parametrize("n", sorted(VECTORS))
def test_content_hash_vectors(n: int) -> None:
    assert content_hash_bytes(b"A" * n) == VECTORS[n]


@pytest.mark.parametrize("n", [4194303, 4194305, 8388609])
@pytest.mark.parametrize("step", [4095, 65537, BLOCK_SIZE - 1, BLOCK_SIZE + 1])
def test_content_hash_streaming_any_slicing(n: int, step: int) -> None:
    data = b"A" * n
    hasher = ContentHasher()
    for i in range(0, n, step):
        hasher.update(data[i : i + step])
    assert hasher.hexdigest() == VECTORS[n]


def test_official_block_vector_combines() -> None:
    # The milky-way-nasa.jpg block hashes from the docs only survive truncated; check combine() against
    # the algorithm instead: blocks joined in order, sha256 of the raw digests.
    blocks = [hashlib.sha256(bytes([i]) * 10).digest() for i in range(3)]
    assert combine(blocks) == hashlib.sha256(b"".join(blocks)).hexdigest()


def test_content_hash_file_of_a_file_that_shrinks_is_a_local_path_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The size is read once, then the bytes: a file truncated in between ends early. The stat is made to
    # report one byte more than the file holds, so the real read path hits that end of file.
    path = tmp_path / "growing.csv"
    path.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def fstat_one_byte_more(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((*st[:6], st.st_size + 1, *st[7:10]))

    monkeypatch.setattr("airflow_provider_dropbox.client.content_hash.os.fstat", fstat_one_byte_more)
    with pytest.raises(errors.LocalPathError, match="shrank while it was being hashed") as info:
        content_hash_file(path)
    assert info.value.path == str(path)


def test_block_digests_of_file_ranges_add_up(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"A" * 8388609)
    assert content_hash_file(path) == VECTORS[8388609]
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = block_digests_of_range(fd, 0, BLOCK_SIZE) + block_digests_of_range(fd, BLOCK_SIZE, 4194305)
    finally:
        os.close(fd)
    assert combine(parts) == VECTORS[8388609]


@contextlib.contextmanager
def _fd_of(tmp_path: Path, data: bytes) -> Iterator[int]:
    """A read-only fd of a file holding ``data``."""
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.parametrize("threads", [1, 2])
def test_hash_behind_returns_blocks_in_file_order_whatever_order_they_finish(
    tmp_path: Path, threads: int
) -> None:
    """Parts finish their blocks in any order (and two threads hash them in any order); the digests come back
    in file order, so the content hash is the file's."""
    with _fd_of(tmp_path, b"A" * 8388609) as fd:
        behind = BlockHashBehind(fd, 8388609, threads=threads)
        for index in (2, 0, 1):
            behind.done(index)
        assert combine(behind.digests()) == VECTORS[8388609]


def test_hash_behind_refuses_to_answer_with_a_block_missing(tmp_path: Path) -> None:
    """A block no writer reported is a bug to surface, never a content hash computed without it."""
    with _fd_of(tmp_path, b"A" * 8388609) as fd:
        behind = BlockHashBehind(fd, 8388609)
        behind.done(0)
        behind.done(2)
        with pytest.raises(RuntimeError, match=r"blocks \[1\] of 3 were never hashed"):
            behind.digests()


def test_hash_behind_reports_a_file_shorter_than_promised(tmp_path: Path) -> None:
    with _fd_of(tmp_path, b"A" * 100) as fd:
        behind = BlockHashBehind(fd, 200)
        behind.done(0)
        with pytest.raises(EOFError, match="ended at byte 100"):
            behind.digests()


def test_encode_arg_is_header_safe() -> None:
    # Dropbox JSON-encoding page: non-ASCII and DEL escaped; non-BMP as surrogate pairs.
    assert encode_arg({"field": "some_üñîcødé_and_\x7f"}) == (
        '{"field": "some_\\u00fc\\u00f1\\u00eec\\u00f8d\\u00e9_and_\\u007f"}'
    )
    assert encode_arg({"path": "/😀.txt"}) == '{"path": "/\\ud83d\\ude00.txt"}'
    encode_arg({"path": "/ü"}).encode("latin-1")  # requests needs latin-1-encodable headers


def _error(
    status: int, body: object, *, path: str | None = "/x/y.csv", route: str = "files/download", **kw: object
):
    text = json.dumps(body) if not isinstance(body, str) else body
    return api_error_from_response(
        route=route,
        status=status,
        body=body if not isinstance(body, str) else None,
        text=text,
        request_id="req-1",
        path=path,
        **kw,  # type: ignore[arg-type]
    )


def test_not_found_message_names_path_and_fix() -> None:
    err = _error(
        409, {"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}
    )
    assert isinstance(err, errors.PathNotFoundError)
    assert "'/x/y.csv' not found (files/download)" in str(err)
    assert "relative to the app folder" in str(err)
    assert err.request_id == "req-1" and err.status == 409 and err.route == "files/download"
    assert err.tags == ["path", "not_found"]


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            409,
            {"error_summary": "path/not_file/", "error": {".tag": "path", "path": {".tag": "not_file"}}},
            errors.NotAFileError,
        ),
        (
            409,
            {
                "error_summary": "path/malformed_path/",
                "error": {".tag": "path", "path": {".tag": "malformed_path"}},
            },
            errors.MalformedPathError,
        ),
        (
            409,
            {
                "error_summary": "path/conflict/file/..",
                "error": {
                    ".tag": "path",
                    "reason": {".tag": "conflict", "conflict": {".tag": "file"}},
                    "upload_session_id": "x",
                },
            },
            errors.PathConflictError,
        ),
        (
            409,
            {
                "error_summary": "path/insufficient_space/",
                "error": {".tag": "path", "reason": {".tag": "insufficient_space"}, "upload_session_id": "x"},
            },
            errors.InsufficientSpaceError,
        ),
        (409, {"error_summary": "reset/", "error": {".tag": "reset"}}, errors.CursorResetError),
        (
            401,
            {"error_summary": "expired_access_token/", "error": {".tag": "expired_access_token"}},
            errors.ExpiredAccessTokenError,
        ),
        (
            401,
            {"error_summary": "invalid_access_token/", "error": {".tag": "invalid_access_token"}},
            errors.AuthError,
        ),
        (
            400,
            'Error in call to API function "files/upload": HTTP header "Dropbox-API-Arg": could not decode',
            errors.BadInputError,
        ),
        (503, "oops", errors.ServerError),
        (422, {"error_summary": "invalid_root/", "error": {".tag": "invalid_root"}}, errors.BadInputError),
    ],
)
def test_error_classes(status: int, body: object, cls: type[errors.DropboxApiError]) -> None:
    err = _error(status, body)
    assert type(err) is cls
    assert "req-1" in str(err)


def test_folder_conflict_on_upload_is_not_a_file() -> None:
    body = {
        "error_summary": "path/conflict/folder/.",
        "error": {
            ".tag": "path",
            "reason": {".tag": "conflict", "conflict": {".tag": "folder"}},
            "upload_session_id": "x",
        },
    }
    assert isinstance(_error(409, body, route="files/upload", upload=True), errors.NotAFileError)
    assert type(_error(409, body, route="files/copy_v2")) is errors.PathConflictError


def test_rate_limit_wait_is_max_of_header_and_body() -> None:
    body = {
        "error_summary": "too_many_requests/",
        "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 2},
    }
    err = _error(429, body, retry_after_header=5.0)
    assert isinstance(err, errors.RateLimitError) and err.retry_after == 5.0
    err = _error(429, body, retry_after_header=1.0)
    assert isinstance(err, errors.RateLimitError) and err.retry_after == 2.0
    unavailable = _error(503, "Service Unavailable", retry_after_header=4.0)
    assert (
        isinstance(unavailable, errors.ServerError)
        and RetryPolicy(max_wait=0.1).wait_for(unavailable, 1) == 4.0
    )
    plain = _error(429, "too_many_requests", retry_after_header=3.0)
    assert isinstance(plain, errors.RateLimitError) and plain.retry_after == 3.0


def test_lock_contention_anywhere_in_tree_is_rate_limit() -> None:
    nested = {
        "error_summary": "path/too_many_write_operations/",
        "error": {".tag": "path", "path": {".tag": "too_many_write_operations"}},
    }
    err = _error(409, nested, route="files/upload_session/finish")
    assert isinstance(err, errors.RateLimitError) and is_retryable(err)
    flat = {"error_summary": "too_many_write_operations/", "error": {".tag": "too_many_write_operations"}}
    assert is_retryable(_error(409, flat, route="files/delete_v2"))


def test_upload_session_errors_keep_correct_offset() -> None:
    body = {
        "error_summary": "lookup_failed/incorrect_offset/..",
        "error": {
            ".tag": "lookup_failed",
            "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 12345},
        },
    }
    err = _error(409, body, route="files/upload_session/finish")
    assert isinstance(err, errors.UploadSessionError) and err.correct_offset == 12345
    body = {"error_summary": "incorrect_offset/", "error": {".tag": "incorrect_offset", "correct_offset": 7}}
    err = _error(409, body, route="files/upload_session/append_v2")
    assert isinstance(err, errors.UploadSessionError) and err.correct_offset == 7
    assert not is_retryable(err)


def test_iter_tags_compact_and_flattened() -> None:
    assert list(iter_tags("not_found")) == ["not_found"]
    tree = {".tag": "path", "reason": {".tag": "conflict", "conflict": {".tag": "file"}}}
    assert list(iter_tags(tree)) == ["path", "conflict", "file"]
    assert has_tag(
        {"entries": [], "x": {"reason": {".tag": "too_many_write_operations"}}}, "too_many_write_operations"
    )


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (requests.ConnectionError("reset"), True),
        (requests.ReadTimeout("slow"), True),
        (requests.exceptions.ChunkedEncodingError("cut"), True),
        (requests.exceptions.SSLError("bad cert"), False),
        (errors.ServerError("x", status=500), True),
        (errors.RateLimitError("x", status=429), True),
        (errors.BadInputError("x", status=400), False),
        (errors.AuthError("x", status=401), False),
        (errors.PathConflictError("x", status=409), False),
        (errors.InvalidRefreshTokenError("x", status=400), False),
        (ValueError("bug"), False),
    ],
)
def test_retry_classification(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


def test_retry_policy_waits_for_server_and_caps_backoff(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, max_attempts=4)
    assert all(0.005 <= policy.backoff(a) <= 0.05 for a in range(1, 30))
    assert policy.wait_for(errors.RateLimitError("x", retry_after=7.0), 1) == 7.0
    slept: list[float] = []
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, max_attempts=4, sleep=slept.append)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise errors.RateLimitError("limited", status=429, retry_after=2.0)
        return "ok"

    with caplog.at_level(logging.WARNING):
        assert policy.call("files/upload", flaky) == "ok"
    assert slept == [2.0, 2.0]
    retry_logs = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retry_logs) == 2 and "rate limited" in retry_logs[0].getMessage()


def test_retry_policy_gives_up_and_reraises_typed_error() -> None:
    policy = RetryPolicy(initial_wait=0.0, max_wait=0.0, max_attempts=3, sleep=lambda s: None)
    calls = []

    def down() -> None:
        calls.append(1)
        raise errors.ServerError("down", status=503)

    with pytest.raises(errors.ServerError):
        policy.call("x", down)
    assert len(calls) == 3

    def bad() -> None:
        calls.append(1)
        raise errors.BadInputError("bad", status=400)

    calls.clear()
    with pytest.raises(errors.BadInputError):
        policy.call("x", bad)
    assert len(calls) == 1


def test_retry_policy_deadline_stops_before_sleeping_past_it() -> None:
    policy = RetryPolicy(deadline=1.0, max_attempts=100, sleep=lambda s: None)
    calls = []

    def limited() -> None:
        calls.append(1)
        raise errors.RateLimitError("x", status=429, retry_after=5.0)

    with pytest.raises(errors.RateLimitError):
        policy.call("x", limited)
    assert len(calls) == 1


@pytest.mark.parametrize("bad", ["x/y.csv", "/x/y/", "/x//y", "/x/ ", "/x/../y", "", "/"])
def test_remote_path_checks(bad: str) -> None:
    with pytest.raises(errors.MalformedPathError) as info:
        check_remote_path(bad, route="files/upload")
    assert "files/upload" in str(info.value)


def test_remote_path_ok_and_root() -> None:
    assert check_remote_path("/a/ü 😀.txt") == "/a/ü 😀.txt"
    assert check_remote_path("id:abc") == "id:abc"
    assert check_remote_path("/", allow_root=True) == ""
    with pytest.raises(errors.MalformedPathError, match=r"did you mean '/x/y\.csv'"):
        check_remote_path("x/y.csv")


def test_local_path_checks(tmp_path: Path) -> None:
    with pytest.raises(errors.LocalPathError, match="does not exist"):
        check_local_source(tmp_path / "missing.csv")
    with pytest.raises(errors.LocalPathError, match="is a directory"):
        check_local_source(tmp_path)
    with pytest.raises(errors.LocalPathError, match="is a directory"):
        check_local_destination(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.LocalPathError, match="is a file"):
        check_local_destination(tmp_path / "file" / "child.txt")
    with pytest.raises(errors.LocalPathError, match=f"'{tmp_path / 'file'}' is a file"):
        check_local_destination(tmp_path / "file" / "missing" / "child.txt")  # named even when deeper
    assert check_local_destination(tmp_path / "new" / "child.txt") == tmp_path / "new" / "child.txt"
    assert check_local_destination(tmp_path / "file") == tmp_path / "file"  # an existing file is replaced


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials(app_key="key", app_secret="s3cret", refresh_token="r3fresh", access_token="sl.t0ken")
    text = repr(creds) + str(creds)
    assert "key" in text
    assert not any(secret in text for secret in ("s3cret", "r3fresh", "sl.t0ken"))


def test_endpoints_single_host() -> None:
    ep = Endpoints.single_host("http://127.0.0.1:9/")
    assert ep.api == ep.content == ep.notify == "http://127.0.0.1:9"
    assert ep.token == "http://127.0.0.1:9/oauth2/token"
    assert Endpoints().content == "https://content.dropboxapi.com"


def test_pkce_pair_and_authorize_url() -> None:
    verifier, challenge = generate_pkce_pair()
    assert 43 <= len(verifier) <= 128 and verifier.isalnum()
    assert challenge == pkce_challenge(verifier) and "=" not in challenge
    # RFC 7636 appendix B vector
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    url = build_authorize_url(
        "app-key", code_challenge=challenge, endpoints=Endpoints.single_host("http://h")
    )
    assert url.startswith("http://h/oauth2/authorize?")
    assert (
        "token_access_type=offline" in url
        and "code_challenge_method=S256" in url
        and "client_id=app-key" in url
    )


def test_progress_logger_logs_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = ProgressLogger("upload /a", interval=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO):
        now[0] = 1.0
        logger(10_000_000, 100_000_000)  # too early: within the interval
        now[0] = 10.0
        logger(50_000_000, 100_000_000)
        now[0] = 11.0
        logger(100_000_000, 100_000_000)  # the end always logs
        logger(100_000_000, 100_000_000)  # ...once
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "50.0%" in lines[0] and "5.0 MB/s" in lines[0] and "ETA 10 s" in lines[0]
    assert "100.0%" in lines[1] and "done" in lines[1]


def _reference_hash(data: bytes) -> str:
    # Reference §4, verbatim algorithm: the oracle for the streaming hasher.
    b = 4 * 1024 * 1024
    return hashlib.sha256(
        b"".join(hashlib.sha256(data[i : i + b]).digest() for i in range(0, len(data), b))
    ).hexdigest()


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * BLOCK_SIZE + 17),
    cuts=st.lists(st.integers(min_value=0, max_value=3 * BLOCK_SIZE + 17), max_size=6),
)
def test_streaming_hash_matches_reference_for_any_split(size: int, cuts: list[int]) -> None:
    data = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    hasher = ContentHasher()
    for lo, hi in itertools.pairwise(bounds):
        hasher.update(data[lo:hi])
    assert hasher.hexdigest() == _reference_hash(data)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, 'Invalid authorization value in HTTP header "Authorization": "Bearer sl.u.SECRET-1_x".'),
        (400, "proxy: bad request; request headers: authorization: basic U0VDUkVUOnNlY3JldA=="),
        (502, "upstream failed for body refresh_token=SECRET&client_secret=SECRET2&grant_type=refresh_token"),
        (503, '{"access_token": "sl.SECRET3"}'),
    ],
)
def test_credentials_quoted_by_a_server_are_redacted(status: int, text: str) -> None:
    """Finding #10: error messages built from server text never carry the credentials it quotes."""
    exc = api_error_from_response(
        route="files/x", status=status, body=None, text=text, request_id=None, path=None
    )
    assert "SECRET" not in str(exc) and "U0VDUkVU" not in str(exc)
    assert "***" in str(exc)


def test_redaction_keeps_ordinary_text() -> None:
    text = 'Expecting "Bearer <oauth2-access-token>"; path/not_found/.. in the app folder'
    assert errors.redact(text) == text
