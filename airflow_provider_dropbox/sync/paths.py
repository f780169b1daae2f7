"""Path rules: remote keys, local names, collision keys, and the check that nothing escapes the destination.

Local paths inside the engine are relative POSIX strings (``"a/b.txt"``, ``""`` for the root); they become
absolute only through :func:`safe_local_path`, which every write and delete goes through at apply time.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import unicodedata

from airflow_provider_dropbox.sync.errors import MirrorConfigError, UnsafePathError

STATE_DIR_NAME = ".dropbox-mirror"
# Staging folders a run creates beside files on another mount inside the destination (see apply.py)
FOREIGN_STAGING_PREFIX = ".dropbox-mirror-staging-"


def normalize_remote_root(path: str) -> str:
    """``"/"`` is the Dropbox root (``""``); else ``/a/b`` without a trailing slash. Blank is an error."""
    if not isinstance(path, str) or not path.strip():
        # an empty templated parameter must not silently mean "the whole Dropbox"
        raise MirrorConfigError(
            f"remote_path {path!r} is empty or blank; pass '/' to mirror the whole Dropbox (or app folder), "
            "or a folder path like '/Reports'"
        )
    p = path.strip()
    if p == "/":
        return ""
    if p.startswith(("id:", "ns:", "rev:")):
        raise MirrorConfigError(f"remote_path {path!r}: use a /-rooted path for a mirror, not an id or rev")
    if not p.startswith("/"):
        p = "/" + p
    p = p.rstrip("/")
    if any(part in (".", "..") for part in p.split("/")[1:]):
        raise MirrorConfigError(
            f"remote_path {path!r} contains '.' or '..'; pass a plain /-rooted folder path"
        )
    return p


def remote_key(path_lower: str, root_lower: str) -> str | None:
    """Key of an entry relative to the mirror root (``""`` for the root itself); ``None`` if outside it."""
    if root_lower == "":
        if path_lower in ("", "/"):
            return ""
        return path_lower[1:] if path_lower.startswith("/") else None
    if path_lower == root_lower:
        return ""
    if path_lower.startswith(root_lower + "/"):
        return path_lower[len(root_lower) + 1 :]
    return None


def key_parent(key: str) -> str:
    return key.rpartition("/")[0]


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def is_under(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or inside it (relative POSIX paths; ``""`` is the root)."""
    return ancestor == "" or path == ancestor or path.startswith(ancestor + "/")


def invalid_name_reason(name: str) -> str | None:
    """Why a remote name cannot be a local name, or ``None`` (Dropbox should never send these)."""
    if name in ("", ".", ".."):
        return f"name {name!r} is not a valid file name"
    if "/" in name or "\x00" in name:
        return f"name {name!r} contains '/' or NUL"
    if len(os.fsencode(name)) > 255:
        return "name is longer than 255 bytes"
    return None


def collision_key(name: str) -> str:
    """Names that case-insensitive or normalising file systems (NTFS, APFS, SMB shares) would treat as one.

    Unicode canonical caseless match (NFD, casefold, NFC): stricter than any real file system, so a name
    that passes here is safe everywhere.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


NAME_MAX = 255  # bytes in one file name on every file system the mirror targets (ext4, xfs, APFS, NTFS)


def fit_name(stem: str, suffix: str, ext: str, limit: int = NAME_MAX) -> str:
    """``stem + suffix + ext`` cut to ``limit`` bytes by shortening the stem only (on a character boundary).

    The suffix carries what makes the name unique (a digest, a stamp and attempt number), the extension
    what opens it, so both are kept whole; an extension too long to keep counts as part of the stem."""
    if len(os.fsencode(suffix + ext)) > limit // 2:
        stem, ext = stem + ext, ""
    room = limit - len(os.fsencode(suffix + ext))
    encoded = os.fsencode(stem)
    if len(encoded) > room:
        stem = encoded[:room].decode("utf-8", "ignore") if _utf8(stem) else os.fsdecode(encoded[:room])
    return f"{stem}{suffix}{ext}"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a non-UTF-8 local name
        return False
    return True


def _split_ext(name: str) -> tuple[str, str]:
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".bashrc" style names
        return name, ""
    return stem, ext


def collision_name(name: str, key: str, attempt: int = 0) -> str:
    """Deterministic, stable new name for the loser of a collision: derived from its remote key only.

    Fits :data:`NAME_MAX` bytes (a long stem is shortened; the digest keeps shortened names apart)."""
    digest = hashlib.sha1(f"{key}\x00{attempt}".encode(), usedforsecurity=False).hexdigest()[:8]
    stem, ext = _split_ext(name)
    return fit_name(stem, f" (case conflict {digest})", ext)


def conflict_copy_name(name: str, stamp: str, attempt: int = 0) -> str:
    """``report (conflicted copy 2026-11-26 231500).txt``: the Dropbox/maestral convention users know.

    Fits :data:`NAME_MAX` bytes: a long stem is shortened, the extension kept; the caller bumps
    ``attempt`` until the name is free, so shortened names stay unique."""
    stem, ext = _split_ext(name)
    extra = f" {attempt}" if attempt else ""
    return fit_name(stem, f" (conflicted copy {stamp}{extra})", ext)


def check_relative(rel: str) -> list[str]:
    """Split a relative POSIX path, rejecting absolute paths, ``..``, ``.`` and empty components."""
    if rel.startswith("/") or os.path.isabs(rel):
        raise UnsafePathError(
            f"refusing absolute local path {rel!r}; mirror paths must stay inside the destination"
        )
    parts = rel.split("/")
    for part in parts:
        reason = invalid_name_reason(part)
        if reason:
            raise UnsafePathError(f"refusing local path {rel!r}: {reason}")
    return parts


def _inside(path_real: str, root_real: str) -> bool:
    return path_real == root_real or path_real.startswith(root_real.rstrip(os.sep) + os.sep)


def safe_local_path(root_real: str, rel: str) -> str:
    """Absolute path of ``rel`` under the destination, after checking its parent resolves inside it.

    Called right before every write, rename and delete, so a symlink planted after planning (or a
    directory swapped for a link) cannot redirect a write or delete outside the destination. The last
    component itself is never followed: we replace, unlink or rmdir it, which act on the link itself.
    """
    parts = check_relative(rel)
    if parts[0] == STATE_DIR_NAME:
        raise UnsafePathError(f"refusing to touch {rel!r}: {STATE_DIR_NAME} holds the mirror's own state")
    abs_path = os.path.join(root_real, *parts)
    # Fast path (one lstat per folder below the root instead of realpath's walk from "/"): if every folder
    # between the already-real root and the last component is a plain folder, the parent is inside.
    folder = root_real
    for part in parts[:-1]:
        folder = os.path.join(folder, part)
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                break  # a symlink (or a file): resolve it below
        except OSError:
            break
    else:
        return abs_path
    parent_real = os.path.realpath(os.path.dirname(abs_path))
    if not _inside(parent_real, root_real):
        raise UnsafePathError(
            f"refusing to write or delete {rel!r}: its parent resolves to {parent_real!r}, outside the "
            f"destination {root_real!r} (a symlink points out of the mirror); remove the symlink"
        )
    return abs_path


def check_private_dirs(root_real: str, *folders: str) -> None:
    """Refuse the mirror's own folders (state, staging) if one is a symlink or not a folder.

    ``folders`` is a chain below the (already real) destination, outermost first, so lstat alone proves
    the last one is inside it. The mirror writes its state, lock and partial downloads there; a link would
    send those writes (and the renames out of staging) wherever it points, outside the destination. A
    missing folder is fine: the caller creates it with ``mkdir``, which never follows a link."""
    for path in folders:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            continue
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise UnsafePathError(
            f"{path} is {what}; the mirror keeps its state and partial downloads there and never follows "
            f"it out of the destination {root_real!r}. Replace it with a plain folder (or remove it)"
        )


# Folders that hold the system or other people's files by definition: a mirror writes its files and its
# state folder there, and with ``adopt_local=True`` would delete everything else. A folder below them is fine.
_SYSTEM_DIRS = frozenset(
    {
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
        "/run", "/sbin", "/sys", "/tmp", "/usr", "/var", "/var/tmp",  # noqa: S108 (refused, not used)
        "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private", "/private/tmp",
    }
)  # fmt: skip


def _home_dirs() -> set[str]:
    homes = set()
    for home in (os.path.expanduser("~"), os.environ.get("HOME", "")):
        if home and home != "~" and os.path.isabs(home):
            homes.update({os.path.normpath(home), os.path.realpath(home)})
    return homes


def check_local_dir(local_dir: str) -> str:
    """The absolute destination, or :class:`MirrorConfigError` for a relative path or a dangerous root.

    Relative paths are refused because a worker's current directory is arbitrary (it differs between
    Celery workers, Kubernetes pods, the scheduler and ``airflow tasks test``). The file system root, the
    top-level system folders and the user's home itself are refused (also through a symlink): the mirror
    would spread files into them, and ``adopt_local=True`` would delete everything else there."""
    if local_dir.startswith("~"):
        raise MirrorConfigError(
            f"local_dir {local_dir!r} starts with '~', which the mirror does not expand (the worker's home "
            "may not be yours); pass an absolute folder path, e.g. '/data/dropbox/reports'"
        )
    if not os.path.isabs(local_dir):
        raise MirrorConfigError(
            f"local_dir {local_dir!r} is a relative path, which would land in the worker's current "
            "directory (it differs between workers, pods and the scheduler); pass an absolute folder "
            "path, e.g. '/data/dropbox/reports'"
        )
    local = os.path.abspath(local_dir)
    real = os.path.realpath(local)
    for candidate in dict.fromkeys((local, real)):
        what = None
        if os.path.dirname(candidate) == candidate:
            what = "the root of the file system"
        elif candidate in _SYSTEM_DIRS:
            what = "a top-level system folder"
        elif candidate in _home_dirs():
            what = "the user's home folder itself"
        if what:
            via = "" if candidate == local else f" (it resolves to {candidate!r})"
            raise MirrorConfigError(
                f"local_dir {local_dir!r} is {what}{via}; refusing to mirror into it: the mirror writes "
                "its files and its .dropbox-mirror folder there, and adopt_local=True would delete "
                "everything else in it. Pass a dedicated folder below it, e.g. "
                f"{os.path.join(local, 'dropbox-mirror')!r}"
            )
    return local
