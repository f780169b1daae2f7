"""Remote and local path checks done before any request, so bad input fails fast and leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from airflow_provider_dropbox.client.errors import DisallowedNameError, LocalPathError, MalformedPathError

_ID_PREFIXES = ("id:", "rev:", "ns:")
MAX_NAME_LENGTH = 255
"""Dropbox refuses a file or folder name longer than this (answering only ``malformed_path``)."""
DISALLOWED_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store", "icon\r", ".dropbox", ".dropbox.attr"})
"""Names Dropbox refuses to store (``disallowed_name``), compared case-insensitively."""


def disallowed_name(path: str) -> str | None:
    """The first name in ``path`` that Dropbox refuses to store (``desktop.ini``, ...), or None."""
    return next((part for part in path.split("/") if part.lower() in DISALLOWED_NAMES), None)


def check_allowed_name(path: str, *, route: str = "") -> str:
    """Raise ``DisallowedNameError`` before any request when Dropbox would refuse a name in ``path``."""
    name = disallowed_name(path)
    if name is not None:
        raise DisallowedNameError(
            f"Dropbox does not store files or folders named {name!r} ({route or 'client'}: '{path}'); "
            "rename it or leave it out",
            route=route,
            path=path,
        )
    return path


def check_remote_path(path: str, *, route: str = "", allow_root: bool = False, allow_id: bool = True) -> str:
    """Return ``path`` if it is a usable Dropbox path, else raise ``MalformedPathError`` saying how to fix it.

    Rules (Dropbox docs): absolute with a leading '/', no trailing '/' or whitespace, no empty, '.' or '..'
    components. ``id:``, ``rev:`` and ``ns:`` forms pass through. The root ('' or '/') only where a folder
    listing makes sense (``allow_root``); it comes back as '' because that is how the API spells it."""
    if not isinstance(path, str):
        raise MalformedPathError(
            f"Dropbox path must be a string, got {type(path).__name__} ({route or 'client'})", route=route
        )
    if path in ("", "/"):
        if allow_root:
            return ""
        raise MalformedPathError(
            f"The Dropbox root folder cannot be used here ({route or 'client'}); give a path like "
            f"'/folder/file'",
            route=route,
            path=path,
        )
    if allow_id and path.startswith(_ID_PREFIXES):
        return path
    hint = "Dropbox paths look like '/folder/file.csv'"
    if not path.startswith("/"):
        raise MalformedPathError(
            f"Dropbox path '{path}' must start with '/' ({route or 'client'}); did you mean '/{path}'? "
            f"{hint}",
            route=route,
            path=path,
        )
    if path.endswith("/"):
        raise MalformedPathError(
            f"Dropbox path '{path}' must not end with '/' ({route or 'client'}); use '{path.rstrip('/')}'",
            route=route,
            path=path,
        )
    parts = path[1:].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise MalformedPathError(
            f"Dropbox path '{path}' has an empty, '.' or '..' component ({route or 'client'}); {hint}",
            route=route,
            path=path,
        )
    if "\x00" in path:
        raise MalformedPathError(f"Dropbox path {path!r} contains a NUL character", route=route, path=path)
    for i, part in enumerate(parts):
        problem = name_problem(part)
        if problem:
            raise MalformedPathError(
                f"Dropbox path {path!r}: the name {part!r} (name {i + 1} of {len(parts)}) {problem} "
                f"({route or 'client'})",
                route=route,
                path=path,
            )
        if len(part) > MAX_NAME_LENGTH:
            raise MalformedPathError(
                f"Dropbox path '{path}' has a name of {len(part)} characters ('{part[:40]}...'); Dropbox "
                f"allows at most {MAX_NAME_LENGTH} per file or folder name ({route or 'client'}); shorten it",
                route=route,
                path=path,
            )
    return path


def name_problem(name: str) -> str | None:
    """What is wrong with one file or folder name for Dropbox (the rule and the fix), or None.

    Dropbox refuses a name that ends with whitespace (a space, tab, line break, no-break space...) and one
    that holds a backslash or DEL; all come back from the server as a bare ``malformed_path``."""
    if name and name[-1].isspace():
        kind = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a carriage return"}.get(
            name[-1], f"the whitespace character U+{ord(name[-1]):04X}"
        )
        return (
            f"ends with whitespace ({kind}); Dropbox does not allow a file or folder name to end with "
            f"whitespace, so remove it ({name.rstrip()!r})"
        )
    if "\x7f" in name:
        return "contains the control character DEL (U+007F), which Dropbox does not allow in names; remove it"
    if "\\" in name:
        return (
            "contains a backslash '\\', which Dropbox does not allow in names (it is not a folder separator "
            "either: separate folders with '/')"
        )
    return None


def _check_no_nul(local_path: str | os.PathLike[str], route: str) -> None:
    """No OS accepts a NUL in a file name, and ``Path.exists()``/``is_dir()`` hide it (they answer False)."""
    raw = os.fspath(local_path)
    if "\x00" in raw:
        raise LocalPathError(
            f"Local path {raw!r} contains a NUL character ({route}); check how local_path is built",
            route=route,
            path=raw.replace("\x00", "\\x00"),
        )


def check_local_source(local_path: str | os.PathLike[str], *, route: str = "upload") -> Path:
    """A local file to read: must exist and be a regular file (not a directory)."""
    _check_no_nul(local_path, route)
    p = Path(local_path)
    raw = os.fspath(local_path)
    if raw.endswith(("/", os.sep)) and p.exists() and not p.is_dir():
        raise LocalPathError(
            f"Local path '{raw}' ends with '/', which names a folder, but '{p}' is a file ({route}); drop "
            "the trailing '/'",
            route=route,
            path=raw,
        )
    if not p.exists():
        raise LocalPathError(
            f"Local file '{p}' does not exist; check local_path ({route})", route=route, path=str(p)
        )
    if p.is_dir():
        raise LocalPathError(
            f"Local path '{p}' is a directory, but a file is expected ({route}); upload a folder with "
            "upload_folder, or name a file",
            route=route,
            path=str(p),
        )
    if not p.is_file():
        raise LocalPathError(
            f"Local path '{p}' is {special_kind(p.stat().st_mode)}, not a regular file ({route}); only "
            "regular files can be uploaded",
            route=route,
            path=str(p),
        )
    return p


def check_local_destination(local_path: str | os.PathLike[str], *, route: str = "download") -> Path:
    """A local file to (over)write: must not be an existing directory, and no parent may be a file.

    One ``stat`` in the common case (a mirror calls this per file): path lookup itself fails with ENOTDIR
    at the first parent that is not a folder, whatever follows it; only then are the parents walked to
    name it."""
    _check_no_nul(local_path, route)
    p = Path(local_path)
    try:
        mode = os.stat(p).st_mode
        is_dir = stat.S_ISDIR(mode)
    except NotADirectoryError:
        parent = next((q for q in reversed(p.parents) if q.exists() and not q.is_dir()), p.parent)
        raise LocalPathError(
            f"Local path '{parent}' is a file, so '{p}' cannot be created under it ({route})",
            route=route,
            path=str(p),
        ) from None
    except OSError:  # missing folders are created; anything else is reported by the write itself
        return p
    if is_dir:
        raise LocalPathError(
            f"Local path '{p}' is a directory, but a file path is expected ({route}); name the file, e.g. "
            f"'{p / 'name.ext'}'",
            route=route,
            path=str(p),
        )
    if not stat.S_ISREG(mode):
        raise LocalPathError(
            f"Local path '{p}' is {special_kind(mode)}, not a regular file ({route}); a download only "
            "replaces regular files, so remove it or choose another local path",
            route=route,
            path=str(p),
        )
    return p


def special_kind(mode: int) -> str:
    """'a named pipe (FIFO)', 'a socket', ... for a ``st_mode`` that is not a regular file or folder."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, route: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading only if it is a regular file; ``(fd, fstat)``.

    ``O_NONBLOCK`` makes opening a named pipe return at once instead of waiting for a writer (a check
    before the open could be raced by a swap), and the type is then checked on the open descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise LocalPathError(
            f"Cannot read local file '{os.fspath(path)}' ({exc.strerror}); check that it exists and its "
            f"permissions ({route})",
            route=route,
            path=os.fspath(path),
        ) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LocalPathError(
                f"Local path '{os.fspath(path)}' is {special_kind(st.st_mode)}, not a regular file "
                f"({route}); only regular files are read or hashed",
                route=route,
                path=os.fspath(path),
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st
