"""Folder transfers built on ``DropboxClient``: download or upload every file under a folder, in parallel.

Everything is checked before the first byte moves: a remote name that would land outside ``local_dir``
(``..``, absolute, or through a symlink pointing elsewhere) fails the whole call: nothing is left half done.
A folder upload leaves out what ``exclude`` matches and, by default, the names Dropbox never syncs
(``desktop.ini``, ``.DS_Store``, ...), logging them, as the Dropbox desktop app and maestral do.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeAlias

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client.config import check_parallelism
from airflow_provider_dropbox.client.content_hash import content_hash_file
from airflow_provider_dropbox.client.errors import (
    DisallowedNameError,
    LocalConflictError,
    LocalPathError,
    LocalSourceMissingError,
    NotAFolderError,
    PathNotFoundError,
)
from airflow_provider_dropbox.client.paths import (
    DISALLOWED_NAMES,
    check_remote_path,
    disallowed_name,
    special_kind,
)
from airflow_provider_dropbox.client.progress import ProgressCallback
from airflow_provider_dropbox.client.upload import WriteMode

if TYPE_CHECKING:
    from airflow_provider_dropbox.client import DropboxClient

log = logging.getLogger(__name__)

Exclude: TypeAlias = str | Sequence[str] | None
"""One glob or several (``"*.tmp"``, ``[".git", "cache/*"]``); see ``exclude_matcher``."""
_NEVER_SYNCED = "desktop.ini, thumbs.db, .ds_store, Icon\\r, .dropbox, .dropbox.attr"


def exclude_matcher(exclude: Exclude) -> Callable[[str], bool]:
    """A test for relative POSIX paths: True when a glob of ``exclude`` matches the path, one of its folders
    or one of its names, case-insensitively as Dropbox compares names.

    So ``*.tmp`` leaves out ``a/b.tmp``, a bare name such as ``.git`` every ``.git`` folder with its files,
    and a path such as ``cache/*`` only ``cache`` at the top: the mirror's ``exclude`` rule, ignoring case.
    """
    if isinstance(exclude, str):
        exclude = [exclude]
    if exclude is not None and not all(isinstance(p, str) for p in exclude):
        raise TypeError(f"exclude must be a glob or a list of globs (strings), got {exclude!r}")
    patterns = [path_key(p.strip("/")) for p in exclude or () if p.strip("/")]

    def excluded(rel: str) -> bool:
        if not patterns:
            return False
        parts = path_key(rel).split("/")
        candidates = {"/".join(parts[: i + 1]) for i in range(len(parts))} | set(parts)
        return any(fnmatch.fnmatchcase(c, p) for p in patterns for c in candidates)

    return excluded


class UploadSelection:
    """Which local files a folder or glob upload sends, and what it left out (for one log line each).

    ``pattern`` keeps matching files; ``exclude`` drops files and whole folders; a name Dropbox never
    syncs (``paths.DISALLOWED_NAMES``) is skipped when ``skip_disallowed_names`` (the default), since such
    files are operating-system metadata no one means to upload; with False, ``check_upload_targets``
    refuses the whole upload instead.
    """

    def __init__(
        self, *, pattern: str | None = None, exclude: Exclude = None, skip_disallowed_names: bool = True
    ) -> None:
        self.pattern = pattern
        self.exclude = exclude
        self._excluded = exclude_matcher(exclude)
        self.skip_disallowed_names = skip_disallowed_names
        self.excluded: list[str] = []
        self.never_synced: list[str] = []
        self.not_regular: list[str] = []

    def keep_folder(self, rel: str) -> bool:
        """False for a folder to leave out with everything in it (``exclude``, or a never-synced name)."""
        if self._excluded(rel):
            self.excluded.append(f"{rel}/")
            return False
        if self.skip_disallowed_names and path_key(rel.rsplit("/", 1)[-1]) in DISALLOWED_NAMES:
            self.never_synced.append(f"{rel}/")
            return False
        return True

    def keep(self, rel: str) -> bool:
        """True for a file to upload; ``rel`` is its path relative to the folder (or the glob's base)."""
        if self.pattern is not None and not _matches(rel, self.pattern):
            return False
        if self._excluded(rel):
            self.excluded.append(rel)
            return False
        if self.skip_disallowed_names and disallowed_name(rel):
            self.never_synced.append(rel)
            return False
        return True

    def report(self, logger: Any, where: str) -> None:
        """Log what was left out, so a smaller upload than the folder is never silent.

        ``logger``: a ``logging.Logger`` or an operator's ``self.log`` (structlog in the Task SDK)."""
        if self.excluded:
            logger.info(
                "Left out %d path(s) under %s matching exclude=%r: %s",
                len(self.excluded),
                where,
                self.exclude,
                _shown(self.excluded),
            )
        if self.not_regular:
            logger.warning(
                "Skipped %d path(s) under %s that are not regular files (named pipes, sockets, devices, "
                "broken links): %s",
                len(self.not_regular),
                where,
                _shown(self.not_regular),
            )
        if self.never_synced:
            logger.info(
                "Skipped %d path(s) under %s with a name Dropbox never syncs (%s): %s; "
                "pass skip_disallowed_names=False to fail instead",
                len(self.never_synced),
                where,
                _NEVER_SYNCED,
                _shown(self.never_synced),
            )


def _shown(items: Sequence[str], limit: int = 10) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(repr(i) for i in items[:limit]) + more


def check_upload_targets(pairs: Iterable[tuple[str | os.PathLike[str], str]], *, route: str) -> None:
    """Refuse, before any request, a set of uploads that Dropbox would accept only in part.

    A name Dropbox refuses to store (``desktop.ini``, ``thumbs.db``, ``.ds_store``, ``Icon\\r``, ``.dropbox``,
    ``.dropbox.attr``: ``paths.DISALLOWED_NAMES``) fails the whole call with ``DisallowedNameError`` listing
    the files. Folder and glob uploads skip them earlier (``UploadSelection``) unless told not to, so this
    catches an explicitly named file, a remote folder with such a name, or ``skip_disallowed_names=False``.

    Two local files whose Dropbox paths differ only in case or Unicode normalization (``Report.csv`` and
    ``report.csv``; the NFC and NFD spellings of ``café.csv``) are one Dropbox path: the first commit wins and
    the second fails, leaving a partial upload. The same goes for a file whose path is a folder of another
    upload. Grouping uses the key Dropbox uses (``casefold.path_key``).
    """
    pairs = list(pairs)
    refused = [(os.fspath(local), name) for local, remote in pairs if (name := disallowed_name(remote))]
    if refused:
        shown = ", ".join(f"'{local}'" for local, _ in refused[:10])
        more = f"; and {len(refused) - 10} more" if len(refused) > 10 else ""
        raise DisallowedNameError(
            f"{len(refused)} file(s) have a name Dropbox does not store (desktop.ini, thumbs.db, .ds_store, "
            f"Icon\\r, .dropbox, .dropbox.attr): {shown}{more}; rename or delete them, or leave them out "
            "(exclude=, pattern=; folder and glob uploads skip them unless skip_disallowed_names=False); "
            "nothing was uploaded",
            route=route,
            path=refused[0][0],
        )
    by_key: dict[str, list[tuple[str, str]]] = {}
    folder_keys: dict[str, str] = {}
    for local, remote in pairs:
        key = path_key(remote)
        by_key.setdefault(key, []).append((os.fspath(local), remote))
        parent = key
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if not parent or parent in folder_keys:
                break
            folder_keys[parent] = os.fspath(local)
    clashes = [
        " and ".join(f"'{local}'" for local, _ in group) + f" -> '{group[0][1]}'"
        for group in by_key.values()
        if len(group) > 1
    ]
    clashes += [
        f"'{group[0][0]}' -> '{group[0][1]}' is also a folder of '{folder_keys[key]}'"
        for key, group in by_key.items()
        if key in folder_keys
    ]
    if clashes:
        shown = "; ".join(clashes[:10]) + (f"; and {len(clashes) - 10} more" if len(clashes) > 10 else "")
        raise LocalPathError(
            f"{len(clashes)} Dropbox path(s) would receive more than one local file: Dropbox treats names "
            f"that differ only in case or Unicode normalization (NFC/NFD) as the same name: {shown}; rename "
            "one of them or leave it out (pattern=, or a narrower glob); nothing was uploaded",
            route=route,
            path=clashes[0],
        )


def check_local_path_arg(
    local_path: str | os.PathLike[str],
    *,
    field: str,
    route: str,
    allow_root: bool = False,
    allow_relative: bool = True,
) -> None:
    """Refuse a blank local path (what a blank template renders to), ``/`` and, unless ``allow_relative``,
    a relative path.

    ``""`` silently means the worker's current directory, which differs between executors and is usually
    not where anyone wants files; ``/`` is the whole file system, never meant as an upload source nor as a
    folder to fill. Operators pass ``allow_relative=False``: a task's cwd is arbitrary (a temp folder, the
    scheduler's home, a pod's workdir), while a library caller chose its own.
    """
    raw = os.fspath(local_path)
    if not raw.strip():
        raise LocalPathError(
            f"{field} {raw!r} is empty or blank, which would mean the worker's current directory; a blank "
            "template (e.g. '{{ params.dest }}' with the param unset)? Pass an absolute local path",
            route=route,
            path=raw,
        )
    if not allow_root and os.path.normpath(raw).lstrip("/") == "" and raw.startswith("/"):
        raise LocalPathError(
            f"{field} {raw!r} is the root of the file system; refusing to read all of it or to fill it "
            "(a template such as "
            "'{{ params.dir }}/' with an empty value?). Pass the folder you mean",
            route=route,
            path=raw,
        )
    if not allow_relative and not os.path.isabs(raw):
        raise LocalPathError(
            f"{field} {raw!r} is a relative path: it would resolve against the worker's current directory, "
            "which differs between executors, workers and runs ('~' is not expanded either). Pass an "
            "absolute path, e.g. '/data/incoming' (a Variable or param can hold the base folder)",
            route=route,
            path=raw,
        )


def download_folder(
    client: DropboxClient,
    remote_dir: str,
    local_dir: str | os.PathLike[str],
    *,
    recursive: bool = True,
    pattern: str | None = None,
    overwrite: bool | str = True,
    parallelism: int = 8,
) -> list[str]:
    """Download the files under ``remote_dir`` into ``local_dir``, keeping the relative layout.

    :param client: The Dropbox client.
    :param remote_dir: Dropbox folder (``""`` or ``"/"`` for the root).
    :param local_dir: Local folder (created; not blank, not ``/``); no file is written outside it.
    :param recursive: Include subfolders.
    :param pattern: ``fnmatch`` glob on the relative path, case-insensitive as Dropbox (``*`` crosses ``/``).
    :param overwrite: ``True``/``"if_changed"`` replaces local files whose content differs;
        ``False``/``"never"`` keeps every existing local file; ``"error"`` raises ``LocalConflictError``
        naming them, before anything is written, if any local file would be replaced by different content.
    :param parallelism: Files downloaded at once.
    :return: Local paths written (files already identical, or kept because ``overwrite`` is False, are not).
    """
    policy = overwrite_policy(overwrite)
    check_local_path_arg(local_dir, field="local_dir", route="download_folder")
    check_parallelism(parallelism)
    root = check_remote_path(remote_dir, route="download_folder", allow_root=True)
    base = Path(local_dir)
    if base.exists() and not base.is_dir():
        raise LocalPathError(
            f"Local path '{base}' is a file, but download_folder needs a folder",
            route="download_folder",
            path=str(base),
        )
    if root and not root.startswith("/"):  # id:/ns: forms: entries are listed under the real path
        root = client.get_metadata(root)["path_lower"]
    entries = list(client.list_folder(root, recursive=recursive))
    plan: list[tuple[dict[str, Any], Path]] = []
    dirs: list[Path] = []
    for entry, rel in _relative_entries(root, entries):
        if pattern is not None and entry.get(".tag") == "file" and not _matches(rel, pattern):
            continue
        target = _local_target(base, rel)
        if entry.get(".tag") == "folder":
            dirs.append(target)
        elif entry.get(".tag") == "file":
            plan.append((entry, target))

    if policy == "error" and (conflicts := download_conflicts(plan)):
        raise LocalConflictError(conflicts)
    _make_dirs([base] if pattern is not None else [base, *dirs])  # empty folders too: same shape
    todo = [(entry, target) for entry, target in plan if _needs_download(entry, target, policy != "never")]
    log.info(
        "Downloading %d of %d files from Dropbox '%s' to %s", len(todo), len(plan), remote_dir or "/", base
    )

    def fetch(item: tuple[dict[str, Any], Path]) -> str:
        entry, target = item
        _make_dirs([target.parent])
        client.download_file(entry.get("path_display") or entry["path_lower"], target, parallelism=1)
        return str(target)

    return _run_parallel(fetch, todo, parallelism)


OVERWRITE_POLICIES = ("if_changed", "never", "error")


def overwrite_policy(overwrite: bool | str) -> str:
    """``"if_changed"``, ``"never"`` or ``"error"`` (``True``/``False`` mean if_changed/never)."""
    if overwrite is True:
        return "if_changed"
    if overwrite is False:
        return "never"
    if overwrite not in OVERWRITE_POLICIES:
        raise ValueError(f"overwrite must be one of {', '.join(OVERWRITE_POLICIES)}, not {overwrite!r}")
    return str(overwrite)


def download_file_to(
    client: DropboxClient,
    meta: Mapping[str, Any],
    local_path: str | os.PathLike[str],
    *,
    overwrite: bool | str = True,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Download the Dropbox file ``meta`` describes to ``local_path`` (an existing folder, or a path ending
    in the separator, receives it under its own name), unless the local file already has its content.

    :return: ``[local path]`` when written, ``[]`` when skipped (identical, or kept by ``"never"``).
    """
    policy = overwrite_policy(overwrite)
    raw = os.fspath(local_path)
    local = Path(raw)
    if local.is_dir() or raw.endswith(("/", os.sep)):
        local = local / str(meta["name"])
    if local.exists():
        if local.is_dir():
            raise LocalPathError(
                f"Local path '{local}' is a folder; give a file path or a folder to fill",
                route="download_file",
                path=str(local),
            )
        if same_content(local, meta):
            log.info("%s already has the same content; not downloaded again", local)
            return []
        if policy == "never":
            log.info("%s exists and overwrite='never'; kept", local)
            return []
        if policy == "error":
            raise LocalConflictError([str(local)])
    client.download_file(str(meta.get("path_display") or meta["path_lower"]), local, progress=progress)
    return [str(local)]


_GLOB_CHARS = ("*", "?", "[")


def _rooted_glob(pattern: str) -> bool:
    """True for an absolute glob whose first component is a wildcard (``/**``, ``/*/x.csv``, ``//*``)."""
    norm = os.path.normpath(pattern)
    if not norm.startswith("/"):
        return False
    first = norm.lstrip("/").split("/", 1)[0]
    return first == "" or any(ch in first for ch in _GLOB_CHARS)


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder not in ("", "/") else f"/{name}"


def _glob_base(pattern: str) -> str:
    """The folder a glob starts from (``/data`` for ``/data/**/*.csv``): ``exclude`` sees paths below it."""
    fixed: list[str] = []
    for part in pattern.split("/")[:-1]:
        if any(ch in part for ch in _GLOB_CHARS):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"


def plan_upload(
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    pattern: str | None = None,
    exclude: Exclude = None,
    skip_disallowed_names: bool = True,
    recursive: bool = True,
    route: str = "upload",
    logger: Any = None,
) -> list[tuple[Path, str]]:
    """``(local file, Dropbox path)`` pairs for what ``local_path`` designates, checked before any request.

    ``local_path`` is a file (``remote_path`` ending in ``/`` means "into this folder, same name"), a folder
    (its layout under ``remote_path``, filtered by ``pattern``) or a glob (each match into the
    ``remote_path`` folder). ``exclude`` and never-synced names are left out, with a log line on
    ``logger``. Refuses a glob rooted at ``/`` and, with ``check_upload_targets``, names Dropbox would
    store only in part."""
    logger = logger or log
    local = os.fspath(local_path)
    remote = str(remote_path)
    pairs: list[tuple[Path, str]]
    if any(ch in local for ch in _GLOB_CHARS) and not os.path.exists(local):
        if _rooted_glob(local):
            raise LocalPathError(
                f"local_path {local!r} is a glob rooted at '/': expanding it would walk the whole file "
                "system (every mount, /proc, network shares) and upload whatever matches; refusing. "
                "A template such as '{{ params.dir }}/**' with an empty value? Start the glob at the "
                "folder you mean, e.g. '/data/**/*.csv'",
                route=route,
                path=local,
            )
        selection = UploadSelection(exclude=exclude or None, skip_disallowed_names=skip_disallowed_names)
        base = _glob_base(local)
        matches = sorted(
            Path(p)
            for p in glob.glob(local, recursive=True)
            if os.path.isfile(p) and selection.keep(Path(os.path.relpath(p, base)).as_posix())
        )
        selection.report(logger, local)
        pairs = [(p, _join(remote, p.name)) for p in matches]
    elif (path := Path(local)).is_dir():
        selection = UploadSelection(
            pattern=pattern or None, exclude=exclude or None, skip_disallowed_names=skip_disallowed_names
        )
        files = sorted(local_files(path, recursive, selection, route=route))
        selection.report(logger, local)
        pairs = [(f, _join(remote, rel)) for f, rel in files]
    elif not path.exists():
        raise LocalSourceMissingError(
            f"Local path '{local}' does not exist (and is not a glob that matched)", route=route, path=local
        )
    else:
        pairs = [(path, _join(remote, path.name) if remote.endswith("/") else remote)]
    check_upload_targets(pairs, route=route)  # before any request: nothing partial
    return pairs


def upload_folder(
    client: DropboxClient,
    local_dir: str | os.PathLike[str],
    remote_dir: str,
    *,
    recursive: bool = True,
    pattern: str | None = None,
    exclude: Exclude = None,
    skip_disallowed_names: bool = True,
    mode: WriteMode = "add",
    parallelism: int = 8,
) -> list[dict[str, Any]]:
    """Upload the files under ``local_dir`` to ``remote_dir``, keeping the relative layout.

    :param client: The Dropbox client.
    :param local_dir: Local folder to read (not blank, not ``/``).
    :param remote_dir: Dropbox folder (``""`` or ``"/"`` for the root).
    :param recursive: Include subfolders.
    :param pattern: ``fnmatch`` glob on the relative path, case-insensitive (``*`` crosses ``/``).
    :param exclude: Glob(s) to leave out, matched on the relative path, its folders and its names
        (``"*.tmp"``, ``[".git", "cache/*"]``); excluded folders are not walked.
    :param skip_disallowed_names: Skip (and log) names Dropbox never syncs (``desktop.ini``,
        ``.DS_Store``, ...); False refuses the whole upload instead.
    :param mode: Dropbox write mode for every file.
    :param parallelism: Files uploaded at once.
    :return: Metadata of each uploaded file.

    Nothing is sent when two local names would be one Dropbox name (case, Unicode normalization), or a
    never-synced name is left with ``skip_disallowed_names=False``: see ``check_upload_targets``.
    """
    check_local_path_arg(local_dir, field="local_dir", route="upload_folder")
    check_parallelism(parallelism)
    root = check_remote_path(remote_dir, route="upload_folder", allow_root=True)
    base = Path(local_dir)
    if not base.is_dir():
        raise LocalPathError(
            f"Local folder '{base}' does not exist or is not a folder (upload_folder)",
            route="upload_folder",
            path=str(base),
        )
    planned = plan_upload(
        base,
        root or "/",
        pattern=pattern,
        exclude=exclude,
        skip_disallowed_names=skip_disallowed_names,
        recursive=recursive,
        route="upload_folder",
    )
    pairs = [(str(path), remote) for path, remote in planned]
    for _, remote in pairs:
        check_remote_path(remote, route="upload_folder")
    if not pairs:
        log.info("No files to upload from %s", base)
        return []
    log.info("Uploading %d files from %s to Dropbox '%s'", len(pairs), base, remote_dir or "/")
    return client.upload_files(pairs, mode=mode, parallelism=parallelism)


def _relative_entries(root: str, entries: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str]]:
    """``(entry, path relative to root)``, with each component spelled as its own entry's ``name``.

    Only the last component of ``path_display`` is reliably cased, so ancestors take the case of their own
    folder entries; the listed root itself is not yielded. The root's key comes from the server's own
    ``path_lower`` values (its first components), never from lower-casing ``root`` here: Dropbox folds case
    with older Unicode rules than Python's (no final sigma, one ``i`` for the dotted capital I).
    """
    entries = [e for e in entries if e.get(".tag") in ("file", "folder") and e.get("path_lower")]
    names = {e["path_lower"]: e["name"] for e in entries if e.get(".tag") == "folder"}
    depth = root.rstrip("/").count("/")
    root_lower = next(("/".join(e["path_lower"].split("/")[: depth + 1]) for e in entries), "")
    for entry in entries:
        lower: str = entry["path_lower"]
        if lower == root_lower or not lower.startswith(root_lower + "/"):
            continue
        parts = lower[len(root_lower) + 1 :].split("/")
        prefix = root_lower
        spelled = []
        for i, part in enumerate(parts):
            prefix = f"{prefix}/{part}"
            spelled.append(entry["name"] if i == len(parts) - 1 else names.get(prefix, part))
        yield entry, "/".join(spelled)


def _local_target(base: Path, rel: str) -> Path:
    """The local path for a remote relative path, refusing anything that would escape ``base``."""
    parts = rel.split("/")
    if (
        any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts)
        or PurePosixPath(rel).is_absolute()
    ):
        raise LocalPathError(
            f"Remote name '{rel}' cannot be written safely under '{base}' (empty, '.', '..', '\\' or NUL); "
            "nothing was downloaded",
            route="download_folder",
            path=rel,
        )
    target = base.joinpath(*parts)
    real_base = os.path.realpath(base)
    if os.path.commonpath([real_base, os.path.realpath(target)]) != real_base:
        raise LocalPathError(
            f"Local path '{target}' resolves outside '{base}' (a symlink points elsewhere); nothing was "
            "downloaded",
            route="download_folder",
            path=str(target),
        )
    return target


def _make_dirs(folders: Iterable[Path]) -> None:
    """Create local folders; a failure (read-only or full file system, permissions) is a LocalPathError."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalPathError(
                f"Cannot create the local folder '{folder}': {exc.strerror or exc}; "
                "pass a writable local_dir",
                route="download_folder",
                path=str(folder),
            ) from exc


def _needs_download(entry: Mapping[str, Any], target: Path, overwrite: bool) -> bool:
    if not target.exists() and not target.is_symlink():
        return True
    if target.is_dir():
        raise LocalPathError(
            f"Local path '{target}' is a folder, but Dropbox has a file '{entry.get('path_display')}' there",
            route="download_folder",
            path=str(target),
        )
    mode = target.stat().st_mode if target.exists() else 0
    if mode and not stat.S_ISREG(mode):
        # Never opened (a FIFO would block the hash forever) and never replaced (it may be in use).
        raise LocalPathError(
            f"Local path '{target}' is {special_kind(mode)}, but Dropbox has a file "
            f"'{entry.get('path_display')}' there; remove it or download elsewhere. Nothing was downloaded",
            route="download_folder",
            path=str(target),
        )
    if not overwrite:
        return False
    return not same_content(target, entry)


def same_content(local: Path, meta: Mapping[str, Any]) -> bool:
    """True when the local file already holds Dropbox's bytes: same size, same content hash.

    The one skip-if-identical test of folder and glob transfers (uploads and downloads alike); a
    special file (FIFO, device) is never opened."""
    try:
        st = local.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != meta.get("size") or not meta.get("content_hash"):
        return False
    return content_hash_file(local) == meta.get("content_hash")


METADATA_LOOKUPS_PER_FOLDER = 16
"""Up to this many files into one Dropbox folder: ask for each (``get_metadata``), don't list the folder."""


def split_identical(
    client: DropboxClient, pairs: Sequence[tuple[Path, str]]
) -> tuple[list[tuple[Path, str]], dict[str, dict[str, Any]]]:
    """Split ``(local, remote)`` upload pairs into those to send and those already on Dropbox unchanged.

    Returns ``(todo, skipped)``, ``skipped`` mapping the given remote path to Dropbox's metadata. A few
    files into a folder are looked up one by one (the answer belongs to the path asked for: no key is
    computed); many are matched against one listing of their folder by the server's ``path_lower`` and
    ``casefold.path_key`` of the path given, as Dropbox compares names (Greek final sigma, Turkish dotted
    I), never by Python's ``str.lower``."""
    found: dict[str, dict[str, Any]] = {}
    by_parent: dict[str, list[str]] = {}
    for _, remote in pairs:
        by_parent.setdefault(remote.rsplit("/", 1)[0], []).append(remote)
    for parent, remotes in sorted(by_parent.items()):
        try:
            if len(remotes) <= METADATA_LOOKUPS_PER_FOLDER:
                for remote in remotes:
                    try:
                        entry = client.get_metadata(remote)
                    except PathNotFoundError:
                        continue
                    if entry.get(".tag", "file") == "file":
                        found[remote] = entry
                continue
            listed = {
                e["path_lower"]: e
                for e in client.list_folder(parent, recursive=False)
                if e.get(".tag") == "file" and e.get("path_lower")
            }
            for remote in remotes:
                if (hit := listed.get(path_key(remote))) is not None:
                    found[remote] = hit
        except (PathNotFoundError, NotAFolderError):
            continue
    todo: list[tuple[Path, str]] = []
    skipped: dict[str, dict[str, Any]] = {}
    for local, remote in pairs:
        meta = found.get(remote)
        if meta is not None and same_content(local, meta):
            skipped[remote] = meta
        else:
            todo.append((local, remote))
    return todo, skipped


def download_conflicts(planned: Iterable[tuple[Mapping[str, Any], Path]]) -> list[str]:
    """Local files a download would replace with different content (``overwrite='error'``)."""
    return [
        str(target)
        for entry, target in planned
        if (target.exists() or target.is_symlink()) and not same_content(target, entry)
    ]


def local_files(
    base: Path, recursive: bool, selection: UploadSelection | None = None, *, route: str = "upload_folder"
) -> Iterator[tuple[Path, str]]:
    """Regular files under ``base`` that ``selection`` keeps, sorted, with their POSIX relative path.

    A kept file must stay inside ``base`` (a symlink pointing out of it is refused, naming it); folders the
    selection leaves out are not walked at all.
    """
    selection = selection or UploadSelection()
    real_base = os.path.realpath(base)
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        prefix = "" if rel_dir == "." else f"{rel_dir}/"
        dirnames[:] = (
            [] if not recursive else [d for d in sorted(dirnames) if selection.keep_folder(prefix + d)]
        )
        for name in sorted(filenames):
            path = Path(dirpath, name)
            rel = prefix + name
            if not selection.keep(rel):
                continue
            if os.path.commonpath([real_base, os.path.realpath(path)]) != real_base:
                raise LocalPathError(
                    f"Local file '{path}' is a symlink to outside '{base}'; refusing to upload it "
                    "(leave it out with exclude=)",
                    route=route,
                    path=str(path),
                )
            if path.is_file():
                yield path, rel
            else:  # a named pipe, socket, device or broken link: never opened, but never silent either
                selection.not_regular.append(rel)


def _matches(rel: str, pattern: str) -> bool:
    """``fnmatch`` ignoring case as Dropbox does (``casefold.path_key``: no final sigma, one dotted i)."""
    return fnmatch.fnmatchcase(path_key(rel), path_key(pattern))


def _run_parallel(func: Any, items: list[Any], parallelism: int) -> list[str]:
    if not items:
        return []
    if parallelism <= 1 or len(items) == 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(parallelism, len(items)), thread_name_prefix="dbx-folder"
    ) as pool:
        return list(pool.map(func, items))
