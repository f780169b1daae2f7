"""A local file that changes while it is uploaded (issue 13 findings 2, 3 and 9).

An upload must never report success for bytes that were not the file's content at one moment. Each case
changes the file from the upload's own progress callback (called as bytes are read for the socket), so the
change lands at a known point of every path: single request, sequential session, concurrent session, and
the batch behind folder and glob uploads. Either the upload is sent again and Dropbox ends up with the file
as it now is, or a ``LocalFileChangedError`` says the file changed and no mixed version was committed.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_dropbox.client import DropboxClient, content_hash_bytes, content_hash_file, folders
from airflow_provider_dropbox.client.errors import (
    BatchUploadError,
    LocalFileChangedError,
    LocalPathError,
    PathNotFoundError,
)
from tests.emulator_process import EmulatorProcess
from tests.hardening.helpers import MiB, fast_client

CHUNK = 4 * MiB
SIZE = 16 * MiB


@pytest.fixture
def client(hemu: EmulatorProcess) -> Iterator[DropboxClient]:
    with fast_client(hemu) as c:
        yield c


def _data(seed: int, size: int = SIZE) -> bytes:
    block = bytes((seed * 7 + i) % 251 for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


def _when(at: int, change: Callable[[], None], *, times: int = 1) -> Callable[[int, int], None]:
    """A progress callback that runs ``change`` when an attempt's bytes cross ``at`` (``times`` attempts)."""
    state = {"last": 0, "left": times}

    def progress(done: int, total: int) -> None:
        if done < state["last"]:  # a new attempt starts from 0
            state["last"] = 0
        if state["last"] < at <= done and state["left"] > 0:
            state["left"] -= 1
            change()
        state["last"] = done

    return progress


def _rewrite(path: Path, data: bytes) -> Callable[[], None]:
    def change() -> None:
        with open(path, "r+b") as fh:  # in place: same inode
            fh.write(data)

    return change


def _append(path: Path, data: bytes) -> Callable[[], None]:
    def change() -> None:
        with open(path, "ab") as fh:
            fh.write(data)

    return change


def _shrink(path: Path, size: int) -> Callable[[], None]:
    return lambda: os.truncate(path, size)


def _replace(path: Path, data: bytes) -> Callable[[], None]:
    def change() -> None:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a new inode under the same name

    return change


def _remote(client: DropboxClient, remote: str) -> bytes:
    out = b""
    with client.download_response("files/download", {"path": remote}, path=remote) as resp:
        out = resp.content
    return out


MODES = {
    "single": {"single_request_limit": 150 * MiB},
    "sequential": {"single_request_limit": CHUNK, "chunk_size": CHUNK, "parallelism": 1},
    "concurrent": {"single_request_limit": CHUNK, "chunk_size": CHUNK, "parallelism": 4},
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", ["rewrite-same-size", "grow", "shrink", "replace"])
def test_change_mid_upload_ends_with_the_file_as_it_now_is(
    client: DropboxClient, tmp_path: Path, mode: str, kind: str
) -> None:
    """Half way through, the file changes once; the result is its new content, never a mix."""
    src = tmp_path / f"{mode}-{kind}.bin"
    src.write_bytes(_data(1))
    change = {
        "rewrite-same-size": _rewrite(src, _data(2)),
        "grow": _append(src, _data(3, 3 * MiB + 5)),
        "shrink": _shrink(src, 6 * MiB + 3),
        "replace": _replace(src, _data(4, SIZE - 1)),
    }[kind]
    remote = f"/changes/{mode}-{kind}.bin"
    meta = client.upload_file(src, remote, mode="overwrite", progress=_when(SIZE // 2, change), **MODES[mode])
    final = src.read_bytes()
    assert meta["size"] == len(final)
    assert meta["content_hash"] == content_hash_bytes(final)
    assert _remote(client, remote) == final


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_a_file_that_keeps_changing_is_a_typed_error_and_nothing_is_committed(
    client: DropboxClient, tmp_path: Path, mode: str
) -> None:
    src = tmp_path / "busy.bin"
    src.write_bytes(_data(5))
    flip = iter(range(2, 100))
    remote = f"/changes/busy-{mode}.bin"
    with pytest.raises(LocalFileChangedError, match=r"changed while it was being uploaded") as info:
        client.upload_file(
            src,
            remote,
            progress=_when(SIZE // 2, lambda: _rewrite(src, _data(next(flip)))(), times=10),
            **MODES[mode],
        )
    assert "nothing was committed" in str(info.value)
    assert "written to" in str(info.value) or "content changed" in str(info.value)
    with pytest.raises(PathNotFoundError):
        client.get_metadata(remote)


def test_a_single_request_that_keeps_changing_names_the_complete_version_dropbox_holds(
    client: DropboxClient, tmp_path: Path
) -> None:
    src = tmp_path / "busy-single.bin"
    first = _data(6, 2 * MiB)
    src.write_bytes(first)
    flip = iter(range(7, 100))
    with pytest.raises(LocalFileChangedError, match=r"complete version the last attempt read"):
        client.upload_file(
            src,
            "/changes/busy-single.bin",
            progress=_when(MiB, lambda: _append(src, _data(next(flip), 1000))(), times=10),
        )
    held = _remote(client, "/changes/busy-single.bin")
    final = src.read_bytes()
    assert held.startswith(first)
    assert held == final[: len(final) - 1000]  # what the last attempt read: complete, not a mix


def test_growth_in_a_folder_upload_is_sent_again(client: DropboxClient, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "steady.txt").write_bytes(b"steady")
    grow = tree / "grow.bin"
    grow.write_bytes(_data(8, 3 * MiB))
    progress = _when(2 * MiB, _append(grow, b"tail" * 1000))
    real = client.upload_files

    def upload_files(pairs, **kwargs):  # type: ignore[no-untyped-def]
        return real(pairs, progress=progress, **kwargs)

    client.upload_files = upload_files  # type: ignore[method-assign]
    got = folders.upload_folder(client, tree, "/changes/tree", mode="overwrite", parallelism=2)
    by_name = {m["name"]: m for m in got}
    assert by_name["grow.bin"]["content_hash"] == content_hash_file(grow)
    assert by_name["grow.bin"]["size"] == grow.stat().st_size


def test_a_batch_file_that_keeps_changing_fails_alone(client: DropboxClient, tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(b"fine")
    b = tmp_path / "b.bin"
    b.write_bytes(_data(9, 2 * MiB))
    flip = iter(range(10, 100))
    with pytest.raises(BatchUploadError) as info:
        client.upload_files(
            [(a, "/changes/batch/a.bin"), (b, "/changes/batch/b.bin")],
            progress=_when(MiB, lambda: _rewrite(b, _data(next(flip), 2 * MiB))(), times=10),
        )
    failure = info.value.failures["/changes/batch/b.bin"]
    assert isinstance(failure, LocalFileChangedError)
    assert [m["name"] for m in info.value.succeeded] == ["a.bin"]
    with pytest.raises(PathNotFoundError):
        client.get_metadata("/changes/batch/b.bin")


# ---------------------------------------------------------------------- files that are not regular files


def test_proc_file_whose_size_stat_does_not_tell_is_refused(client: DropboxClient) -> None:
    with pytest.raises(LocalPathError, match=r"size of 0 bytes but reading it gives data"):
        client.upload_file("/proc/self/status", "/changes/status.txt")
    with pytest.raises(PathNotFoundError):
        client.get_metadata("/changes/status.txt")


@pytest.mark.parametrize("name", ["/proc/self/stat", "/proc/self/cmdline", "/proc/version"])
def test_other_proc_files_are_refused_too(client: DropboxClient, name: str) -> None:
    with pytest.raises(LocalPathError, match=r"/proc or /sys"):
        client.upload_file(name, "/changes/proc.txt")


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _sock(path: Path) -> Iterator[Path]:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def _no_hang(fn: Callable[[], object], fifo: Path | None = None, seconds: float = 10.0) -> BaseException:
    """Run ``fn``; it must raise within ``seconds``. A reader stuck on ``fifo`` is released afterwards."""
    result: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            result.append(exc)
        else:
            result.append(AssertionError("no error"))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive() and fifo is not None:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # let the stuck reader see EOF
        os.close(fd)
        t.join(5)
        raise AssertionError(f"hung for {seconds} s on the named pipe {fifo}")
    assert result, "still running"
    return result[0]


def test_upload_of_a_named_pipe_is_refused_without_waiting(client: DropboxClient, tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "pipe")
    err = _no_hang(lambda: client.upload_file(fifo, "/changes/pipe"), fifo)
    assert isinstance(err, LocalPathError) and "named pipe" in str(err), err


def test_upload_of_a_socket_or_device_names_the_kind(client: DropboxClient, tmp_path: Path) -> None:
    for path in _sock(tmp_path / "sock"):
        with pytest.raises(LocalPathError, match=r"is a socket, not a regular file"):
            client.upload_file(path, "/changes/sock")
    with pytest.raises(LocalPathError, match=r"is a character device, not a regular file"):
        client.upload_file("/dev/null", "/changes/null")


def test_download_folder_with_a_pipe_where_an_empty_file_goes_does_not_hang(
    client: DropboxClient, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    client.upload_file(empty, "/changes/job/_SUCCESS", mode="overwrite")
    out = tmp_path / "out"
    out.mkdir()
    fifo = _fifo(out / "_SUCCESS")
    err = _no_hang(lambda: folders.download_folder(client, "/changes/job", out), fifo)
    assert isinstance(err, LocalPathError), err
    assert "named pipe" in str(err) and "_SUCCESS" in str(err)
    assert not (out / "_SUCCESS").is_file()  # the pipe is left alone, not replaced


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_download_file_onto_a_special_file_is_refused(
    client: DropboxClient, tmp_path: Path, kind: str
) -> None:
    src = tmp_path / "s.txt"
    src.write_bytes(b"data")
    client.upload_file(src, "/changes/special.txt", mode="overwrite")
    if kind == "fifo":
        target = _fifo(tmp_path / "target")
        err = _no_hang(lambda: client.download_file("/changes/special.txt", target), target)
        assert isinstance(err, LocalPathError) and "named pipe" in str(err), err
        assert not target.is_file()
    else:
        for target in _sock(tmp_path / "target.sock"):
            with pytest.raises(LocalPathError, match=r"is a socket, not a regular file"):
                client.download_file("/changes/special.txt", target)
            assert target.is_socket()


def test_folder_upload_reports_special_files_it_leaves_out(
    client: DropboxClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = tmp_path / "mixed"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    _fifo(tree / "pipe")
    with caplog.at_level("WARNING"):
        got = folders.upload_folder(client, tree, "/changes/mixed", mode="overwrite")
    assert [m["name"] for m in got] == ["a.txt"]
    assert "not regular files" in caplog.text and "'pipe'" in caplog.text


def test_a_rewrite_inside_one_timestamp_tick_is_caught_by_the_hash_of_what_was_sent(tmp_path: Path) -> None:
    """When the stamps cannot tell (same size, same mtime/ctime tick), the content is hashed again and
    compared with the hash of the bytes that were sent."""
    from airflow_provider_dropbox.client import upload as upload_module

    src = tmp_path / "tick.bin"
    src.write_bytes(_data(20, 5 * MiB))
    f = upload_module._open_local(src, "/tick.bin", "files/upload")
    try:
        f.request_hash(0, f.size)  # what a request would carry
        _rewrite(src, _data(21, 5 * MiB))()
        f.stat = os.fstat(f.fd)  # as if the rewrite had landed in the same tick: stamps unchanged
        reason = f.change()
        assert reason is not None and "content changed" in reason, reason
    finally:
        f.close()
