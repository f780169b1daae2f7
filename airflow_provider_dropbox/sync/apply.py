"""Apply a plan in phases, so nothing is deleted unless everything before it succeeded.

1. set aside conflicting local files (renames, nothing lost); create folders; record adoptions.
2. downloads and local copies on a bounded thread pool. Every file is fetched into the staging folder
   (``.dropbox-mirror/staging``, same file system), verified by the client, then ``os.replace``d onto its
   real name, so a partial file never has a real name, even after kill -9. Files are not fsynced one by
   one: :meth:`Applier.make_durable` flushes the batch placed since the last checkpoint (files, then their
   folders) right before each state write, so the state never records a file whose data is not on disk.
3. deletes (files, then folders deepest first) -- only if phases 1-2 had no error.
4. deferred work (a file and a folder that swapped places) -- only after the deletes made room.

Every write, rename and delete resolves its path through :func:`safe_local_path` right before acting.
"""

from __future__ import annotations

import errno
import inspect
import itertools
import logging
import os
import queue
import shutil
import stat
import threading
import time
import zipfile
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from airflow_provider_dropbox.client import errors as client_errors
from airflow_provider_dropbox.client.download import set_client_modified
from airflow_provider_dropbox.sync import durable
from airflow_provider_dropbox.sync.hashing import ContentHasher, file_content_hash
from airflow_provider_dropbox.sync.paths import (
    FOREIGN_STAGING_PREFIX,
    check_private_dirs,
    check_relative,
    conflict_copy_name,
    is_under,
    join,
    key_parent,
    safe_local_path,
)
from airflow_provider_dropbox.sync.plan import Action, Plan
from airflow_provider_dropbox.sync.state import Managed
from airflow_provider_dropbox.sync.zipped import ZipGroup, direct_members, zip_groups

_COPY_CHUNK = 1024 * 1024
_UNDOWNLOADABLE = {"restricted_content", "unsupported_file", "unsupported_content_type"}
_DELETES = ("delete_file", "delete_folder", "set_aside")
CHECKPOINT_EVERY = 5.0  # seconds between manifest checkpoints during long transfer phases
QUEUED_PER_WORKER = 16  # transfers submitted ahead per worker (about 0.5 s of small files at 20 ms latency)


def _hashed_copy(src: IO[bytes], tmp: str) -> tuple[str, int]:
    """Copy ``src`` into the new file ``tmp``; returns the Dropbox content hash and the byte count."""
    hasher = ContentHasher()
    copied = 0
    with open(tmp, "xb") as out:
        while chunk := src.read(_COPY_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            copied += len(chunk)
    return hasher.hexdigest(), copied


class Downloader(Protocol):
    def download_file(self, remote_path: str, local_path: str) -> dict[str, Any]: ...


SyncBatch = Callable[[Sequence[str], Sequence[str], int], None]  # (files, folders, width): see durable.py


def _takes_fsync(fn: Callable[..., Any]) -> bool:
    """Whether ``download_file`` takes ``fsync=`` (``DropboxClient`` does; a minimal MirrorClient may not)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "fsync" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclass
class ApplyResult:
    done: Counter[str] = field(default_factory=Counter)
    bytes_downloaded: int = 0
    bytes_copied: int = 0
    zipped: int = 0  # downloads served from a folder zip (counted in ``done["download"]`` too)
    errors: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    kept_folders: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    deletes_skipped: int = 0
    deferred_skipped: int = 0


class _Stop(Exception):
    """Raised inside workers once the run must stop (lock lost)."""


class Applier:
    def __init__(
        self,
        client: Downloader,
        root: str,
        staging: str,
        manifest: dict[str, Managed],
        remote_path_of: Callable[[str], str],
        *,
        parallelism: int,
        conflict: str,
        adopt_local: bool = False,
        logger: logging.Logger,
        should_stop: Callable[[], bool] = lambda: False,
        checkpoint: Callable[[dict[str, Managed | None]], None] | None = None,
        checkpoint_every: float | None = None,
        sync_batch: SyncBatch | None = None,
        register_staging: Callable[[str], None] | None = None,
        zip_small_files: bool = True,
    ) -> None:
        self.client = client
        self.root = root
        self.staging = staging
        self.manifest = manifest
        self.remote_path_of = remote_path_of
        self.parallelism = max(1, parallelism)
        self.conflict = conflict
        self.adopt_local = adopt_local
        self.log = logger
        self.should_stop = should_stop
        self.checkpoint = checkpoint
        self.checkpoint_every = CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
        self.sync_batch: SyncBatch = sync_batch or durable.make_durable
        # the client's own per-file fsync is skipped: make_durable() flushes each batch before its state
        self._download_kwargs: dict[str, Any] = {"fsync": False} if _takes_fsync(client.download_file) else {}
        self.result = ApplyResult()
        # folders of many small files come as one zip when the client can fetch one (zipped.py)
        self._zip = zip_small_files and callable(getattr(client, "download_zip", None))
        self.touched_dirs: set[str] = set()  # folders whose entries changed since the last make_durable()
        self._unsynced: list[str] = []  # files placed since the last make_durable()
        self._mu = threading.Lock()
        self._stamp = time.strftime("%Y-%m-%d %H%M%S", time.gmtime())
        self._blocked: set[str] = set()
        self._not_aside: set[str] = set()
        self._seq = itertools.count()
        # Staging on other mounts inside the destination: target folder -> staging folder on its device.
        # ``register_staging`` records a new one durably before it is created, so a crashed run's leftovers
        # are found and removed by the next run.
        self.register_staging = register_staging
        self._stage_at: dict[str, str] = {}
        self._foreign: dict[str, str] = {}  # staging folder (absolute) -> its relative path
        self._staging_dev: int | None = None
        self._token = os.urandom(4).hex()

    # -- bookkeeping --------------------------------------------------------------------------------
    def _record(self, path: str, value: Managed | None) -> None:
        with self._mu:
            if value is None:
                self.manifest.pop(path, None)
            else:
                self.manifest[path] = value

    def _fail(self, a: Action, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG and a.op not in _DELETES:
            # a permanent limit of this file system, not a failed run: skip it (and keep deleting)
            self.log.warning("Skipping %r: the path is too long for this file system", a.path)
            with self._mu:
                self.result.skipped.append({"remote": a.key or a.path, "reason": "path too long locally"})
            return
        msg = f"{type(exc).__name__}: {exc}"
        self.log.error("Mirror %s %r failed: %s", a.op, a.path, msg)
        with self._mu:
            self.result.errors.append({"op": a.op, "path": a.path, "error": msg})

    def _conflict(self, path: str, reason: str, kept_as: str | None = None) -> None:
        entry = {"path": path, "reason": reason}
        if kept_as:
            entry["kept_as"] = kept_as
        self.log.warning(
            "Mirror conflict at %r: %s%s", path, reason, f" (kept as {kept_as!r})" if kept_as else ""
        )
        with self._mu:
            self.result.conflicts.append(entry)

    def _done(self, op: str) -> None:
        with self._mu:
            self.result.done[op] += 1

    def _check_stop(self) -> None:
        if self.should_stop():
            raise _Stop("the mirror lock was lost")

    def _abs(self, rel: str) -> str:
        path = safe_local_path(self.root, rel)
        with self._mu:
            self.touched_dirs.add(os.path.dirname(path))
        return path

    def _tmp(self, rel: str) -> str:
        """A fresh temp path on the same device as the target ``rel`` (unique within the run).

        The staging folder (``.dropbox-mirror/staging``, emptied under the lock before each run) is
        re-checked each time: a symlink swapped in for it must not take a download out of the destination.
        A target on another mount inside the destination gets a staging folder on that mount, so the
        final rename never crosses devices (EXDEV)."""
        folder = self._staging_for(rel)
        return os.path.join(folder, f"{os.getpid()}-{next(self._seq)}.part")

    def _staging_for(self, rel: str) -> str:
        # a plain join (no lstat per component): it is only the cache key and the device probe; a staging
        # folder outside the root's device is created only after safe_local_path (_foreign_staging), and
        # the file itself is placed through safe_local_path (_place)
        parent = os.path.dirname(os.path.join(self.root, *check_relative(rel)))
        with self._mu:
            folder = self._stage_at.get(parent)
        if folder is None:
            folder = self.staging
            try:
                if self._staging_dev is None:
                    self._staging_dev = os.stat(self.staging).st_dev
                dev = os.stat(parent).st_dev
            except FileNotFoundError:
                dev = None  # created later in this run (or gone): the rename falls back if need be
            if dev is not None and dev != self._staging_dev:
                top = parent
                while (
                    top != self.root
                    and os.path.dirname(top) != self.root
                    and os.stat(os.path.dirname(top)).st_dev == dev
                ):
                    top = os.path.dirname(top)
                folder = self._foreign_staging(top)
            if dev is not None:
                with self._mu:
                    self._stage_at[parent] = folder
        self._check_staging(folder)
        return folder

    def _foreign_staging(self, where: str) -> str:
        """``<where>/.dropbox-mirror-staging-<token>``: registered first, then created (never a link)."""
        folder = os.path.join(where, f"{FOREIGN_STAGING_PREFIX}{self._token}")
        with self._mu:
            if folder in self._foreign:
                return folder
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            safe_local_path(self.root, rel)  # its parent resolves inside the destination
            if self.register_staging is not None:
                self.register_staging(rel)
            os.mkdir(folder, 0o700)
            self._foreign[folder] = rel
            self.touched_dirs.add(where)
        return folder

    def _check_staging(self, folder: str) -> None:
        if folder == self.staging:
            check_private_dirs(self.root, os.path.dirname(self.staging), self.staging)
        else:
            check_private_dirs(self.root, folder)

    def drop_foreign_staging(self) -> None:
        """Remove the staging folders made on other mounts (empty once their files were placed)."""
        with self._mu:
            folders, self._foreign = list(self._foreign), {}
            self._stage_at = {p: f for p, f in self._stage_at.items() if f == self.staging}
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
            with self._mu:
                self.touched_dirs.add(os.path.dirname(folder))

    # -- single actions -------------------------------------------------------------------------------
    def _set_aside(self, a: Action) -> None:
        try:
            self._do_set_aside(a)
        except Exception:
            with self._mu:
                self._not_aside.add(a.path)
            raise

    def _guard_aside(self, a: Action) -> None:
        """Never write over a conflicting local item we failed to set aside."""
        for q in self._not_aside:
            if is_under(a.path, q):
                raise FileExistsError(errno.EEXIST, "a conflicting local item could not be set aside", q)

    def _do_set_aside(self, a: Action) -> None:
        src = self._abs(a.path)
        parent, name = key_parent(a.path), a.path.rsplit("/", 1)[-1]
        attempt = 0
        while True:
            new_rel = join(parent, conflict_copy_name(name, self._stamp, attempt))
            dst = self._abs(new_rel)
            if not os.path.lexists(dst):
                break
            attempt += 1
        os.rename(src, dst)
        with self._mu:
            for p in [p for p in self.manifest if p != a.path and is_under(p, a.path)]:
                del self.manifest[p]
        self._conflict(a.path, a.reason, kept_as=new_rel)
        self._done("set_aside")

    def _create_folder(self, a: Action) -> None:
        self._guard_aside(a)
        path = self._abs(a.path)
        try:
            os.makedirs(path)  # parents too: someone may have removed a folder we still trust
        except FileExistsError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise
        self._record(a.path, Managed(True, a.key or ""))
        self._done("create_folder")

    def _adopt(self, a: Action) -> None:
        path = self._abs(a.path)
        if a.is_dir:
            self._record(a.path, Managed(True, a.key or ""))
        else:
            st = os.lstat(path)
            self._record(
                a.path, Managed(False, a.key or "", a.content_hash, st.st_size, st.st_mtime_ns, a.rev)
            )
        self._done("adopt")

    def _place(self, tmp: str, a: Action, meta: dict[str, Any] | None, content_hash: str | None) -> None:
        # resolve again right before exposing the file: a symlink may have appeared during the transfer
        self._guard_aside(a)
        target = self._abs(a.path)
        parent = os.path.dirname(target)
        # No isdir() checks first: rename(2) itself refuses a folder in the way (a link is replaced, not
        # followed) and reports a missing parent. Each syscall is a GIL hand-off, which costs more than the
        # call itself at 8 threads (docs/mirror.md, Transfers), so the common case makes only this one.
        try:
            os.replace(tmp, target)
        except IsADirectoryError:
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", a.path) from None
        except FileNotFoundError:  # parent removed locally while the remote still has it: recreate
            os.makedirs(parent, exist_ok=True)
            self._replace(tmp, target, parent)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self._replace(tmp, target, parent)
        st = os.lstat(target)
        rev = (meta or {}).get("rev", a.rev)
        with self._mu:  # one step: a checkpoint that sees the manifest entry also syncs the file
            self._unsynced.append(target)
            self.touched_dirs.add(parent)
            self.manifest[a.path] = Managed(False, a.key or "", content_hash, st.st_size, st.st_mtime_ns, rev)

    def _replace(self, tmp: str, target: str, parent: str) -> None:
        """``os.replace`` that survives a target on another mount than ``tmp`` (e.g. a bind mount the
        device check could not see): copy into a staging folder beside the target, then rename there.
        Later files for that folder are staged there directly."""
        try:
            os.replace(tmp, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        folder = self._foreign_staging(parent)
        self._check_staging(folder)
        with self._mu:
            self._stage_at[parent] = folder
        near = os.path.join(folder, f"{os.getpid()}-{next(self._seq)}.part")
        try:
            shutil.copyfile(tmp, near, follow_symlinks=False)
            shutil.copystat(tmp, near, follow_symlinks=False)  # keeps the mtime the download set
            os.replace(near, target)
        except BaseException:
            if os.path.lexists(near):
                os.unlink(near)
            raise
        os.unlink(tmp)

    def _download(self, a: Action) -> None:
        self._check_stop()
        self._guard_aside(a)
        tmp = self._tmp(a.path)
        placed = False
        try:
            # the client verifies the content hash and renames into tmp; it also sets the mtime
            try:
                remote = self.remote_path_of(a.key or "")
                meta = self.client.download_file(remote, tmp, **self._download_kwargs)
            except (client_errors.PathNotFoundError, client_errors.NotAFileError) as exc:
                # deleted or replaced by a folder after we listed: the next run's changes will say so
                self.log.info("Remote %r changed after listing (%s); leaving it to the next run", a.path, exc)
                self._done("vanished")
                return
            except client_errors.DropboxApiError as exc:
                tags = set(exc.tags) & _UNDOWNLOADABLE
                if not tags:
                    raise
                # Dropbox will never serve these bytes (DMCA, export-only formats): skip, don't block deletes
                self.log.warning(
                    "Skipping %r: Dropbox refuses to serve it (%s)", a.path, ", ".join(sorted(tags))
                )
                with self._mu:
                    self.result.skipped.append(
                        {"remote": a.key or a.path, "reason": f"not downloadable: {tags}"}
                    )
                return
            self._place(tmp, a, meta, meta.get("content_hash", a.content_hash))
            placed = True
        finally:
            if not placed and os.path.lexists(tmp):
                os.unlink(tmp)
        with self._mu:
            self.result.bytes_downloaded += int(meta.get("size", a.size) or 0)
        self._done("download")

    def _fetch_zip(self, g: ZipGroup) -> list[Action]:
        """Fetch ``g``'s files from one zip of their folder; returns the ones left to download one by one."""
        self._check_stop()
        folder = self.remote_path_of(g.folder)
        if not folder:  # the app folder's root cannot be zipped
            return list(g.actions)
        ztmp = self._tmp(g.actions[0].path)
        try:
            try:
                self.client.download_zip(folder, ztmp, max_bytes=g.max_bytes)  # type: ignore[attr-defined]
                zf = zipfile.ZipFile(ztmp)
            except (client_errors.DropboxApiError, OSError, zipfile.BadZipFile) as exc:
                self.log.info(
                    "Fetching %d file(s) of %r as one zip did not work (%s); downloading them one by one",
                    len(g.actions), folder, exc,
                )  # fmt: skip
                return list(g.actions)
            with zf:
                members = direct_members(zf)
                left: list[Action] = []
                for a in g.actions:
                    info = members.get((a.key or "").rpartition("/")[2])
                    try:
                        if info is None or info.file_size != a.size or not self._unzip(zf, info, a):
                            left.append(a)
                    except (zipfile.BadZipFile, zlib.error, EOFError):
                        left.append(a)
                    except _Stop:
                        raise
                    except Exception as exc:
                        self._fail(a, exc)
        finally:
            if os.path.lexists(ztmp):
                os.unlink(ztmp)
        if left:
            self.log.info("%d file(s) of %r not in its zip as listed; downloading them", len(left), folder)
        return left

    def _unzip(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, a: Action) -> bool:
        """Place one zip member as ``a`` if its bytes hash to the listed content hash."""
        self._check_stop()
        self._guard_aside(a)
        tmp = self._tmp(a.path)
        placed = False
        try:
            with zf.open(info) as src:
                digest, _ = _hashed_copy(src, tmp)
            if digest != a.content_hash:
                return False
            set_client_modified(tmp, {"client_modified": a.modified})
            self._place(tmp, a, None, a.content_hash)
            placed = True
        finally:
            if not placed and os.path.lexists(tmp):
                os.unlink(tmp)
        with self._mu:
            self.result.bytes_downloaded += a.size
            self.result.zipped += 1
        self._done("download")
        return True

    def _copy_source(self, src: str, tmp: str) -> tuple[str, int] | None:
        """Copy a regular file into ``tmp``, hashing it; ``None`` if it is gone or no longer a file."""
        try:
            fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # e.g. replaced by a folder earlier in this run
            os.close(fd)
            return None
        with os.fdopen(fd, "rb") as fin:
            got = _hashed_copy(fin, tmp)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        return got

    def _copy_local(self, a: Action) -> None:
        self._check_stop()
        src = self._abs(a.source or "")
        tmp = self._tmp(a.path)
        try:
            got = self._copy_source(src, tmp)
            if got is not None and got[0] == a.content_hash:
                self._place(tmp, a, None, a.content_hash)
                with self._mu:
                    self.result.bytes_copied += got[1]
                self._done("copy_local")
                return
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        self.log.info("Local source %r for %r changed or vanished; downloading instead", a.source, a.path)
        self._download(a)

    def _delete_file(self, a: Action) -> None:
        path = self._abs(a.path)
        m = self.manifest.get(a.path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._record(a.path, None)
            self._done("delete_file")
            return
        if (
            not self.adopt_local
            and m is not None
            and not m.is_dir
            and (st.st_size, st.st_mtime_ns) != (m.size, m.mtime_ns)
        ):
            # modified between planning and now: never destroy it
            if file_content_hash(path) != m.content_hash:
                self._record(a.path, None)
                self._conflict(a.path, "modified locally while the run was planning; left alone")
                return
        os.unlink(path)
        self._record(a.path, None)
        self._done("delete_file")

    def _delete_folder(self, a: Action, needed: bool) -> None:
        path = self._abs(a.path)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if needed and self.conflict == "copy":
                self._set_aside(
                    Action("set_aside", a.path, reason="folder holds files the mirror did not write")
                )
            elif needed:
                self._blocked.add(a.path)
                self._conflict(
                    a.path, "folder holds files the mirror did not write; left alone (conflict=skip)"
                )
            else:
                self.log.info("Keeping folder %r: it holds files the mirror does not manage", a.path)
                with self._mu:
                    self.result.kept_folders.append(a.path)
            self._record(a.path, None)
            return
        self._record(a.path, None)
        self._done("delete_folder")

    # -- phases ---------------------------------------------------------------------------------------
    def make_durable(self) -> None:
        """Flush the files placed and the folders changed since the last call: call it before every state
        write that records them (raises DestinationError if the disk refuses)."""
        with self._mu:
            files, self._unsynced = self._unsynced, []
            folders, self.touched_dirs = sorted(self.touched_dirs), set()
        self.sync_batch(files, folders, self.parallelism)

    def _checkpoint(self) -> None:
        assert self.checkpoint is not None
        with self._mu:  # a consistent view: every placed file in these rows is in the batch below
            take = getattr(self.manifest, "take_changes", None)
            rows: dict[str, Managed | None] = take() if take is not None else dict(self.manifest)
        self.make_durable()  # outside the lock: the workers keep downloading meanwhile
        self.checkpoint(rows)

    def _run_serial(self, actions: list[Action], fn: Callable[[Action], None]) -> None:
        for a in actions:
            if self.should_stop():
                raise _Stop("the mirror lock was lost")
            try:
                fn(a)
            except _Stop:
                raise
            except Exception as exc:
                self._fail(a, exc)

    def _run_transfers(self, actions: list[Action]) -> None:
        """Run downloads and copies on the pool, keeping only a few queued (not one future per file: 10,000
        queued futures cost ~20 MiB), with a checkpoint every ``checkpoint_every`` seconds. Folder zips
        go first; what a zip did not deliver is downloaded one by one before the rest."""
        if not actions:
            return
        groups, singles = zip_groups(actions) if self._zip else ([], actions)
        last = time.monotonic()
        width = min(self.parallelism, len(groups) + len(singles))
        todo: Iterator[Action | ZipGroup] = iter([*groups, *singles])
        left: deque[Action] = deque()  # files a zip did not deliver
        stopped = False
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="mirror") as pool:
            running: dict[Future[Any], Action | ZipGroup] = {}
            finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # O(1) per completion

            def submit_next() -> None:
                item: Action | ZipGroup | None = left.popleft() if left else next(todo, None)
                if item is None:
                    return
                if isinstance(item, ZipGroup):
                    fut: Future[Any] = pool.submit(self._fetch_zip, item)
                else:
                    fut = pool.submit(self._copy_local if item.op == "copy_local" else self._download, item)
                running[fut] = item
                fut.add_done_callback(finished.put)

            for _ in range(width * QUEUED_PER_WORKER):  # enough queued to cover a checkpoint's pause
                submit_next()
            try:
                while running:
                    fut = finished.get()
                    item = running.pop(fut)
                    try:
                        got = fut.result()
                    except _Stop:
                        stopped = True
                    except Exception as exc:
                        for a in item.actions if isinstance(item, ZipGroup) else (item,):
                            self._fail(a, exc)
                    else:
                        if isinstance(item, ZipGroup):
                            left.extend(got)
                    while not stopped and len(running) < width * QUEUED_PER_WORKER:
                        before = len(running)
                        submit_next()  # refill, so a zip's leftovers run as wide as the pool
                        if len(running) == before:
                            break
                    if self.checkpoint is not None and time.monotonic() - last > self.checkpoint_every:
                        self._checkpoint()
                        last = time.monotonic()
            except BaseException:  # e.g. the disk refused an fsync: don't start the queued downloads
                for fut in running:
                    fut.cancel()
                raise
        if stopped:
            raise _Stop("the mirror lock was lost")

    def run(self, plan: Plan) -> ApplyResult:
        acts = plan.actions
        now = [a for a in acts if not a.deferred]
        later = [a for a in acts if a.deferred]
        swaps = {a.path for a in later}
        res = self.result
        try:
            self._run_serial([a for a in now if a.op == "set_aside"], self._set_aside)
            self._run_serial([a for a in now if a.op == "create_folder"], self._create_folder)
            self._run_serial([a for a in now if a.op == "adopt"], self._adopt)
            for a in now:
                if a.op == "forget":
                    self._record(a.path, None)
                    self._done("forget")
                elif a.op == "conflict":
                    self._conflict(a.path, a.reason)
            try:
                self._run_transfers([a for a in now if a.op in ("download", "copy_local")])
            finally:
                self.drop_foreign_staging()  # before the deletes: a folder to delete may hold one

            deletes = [a for a in acts if a.op in ("delete_file", "delete_folder")]
            if res.errors:
                res.deletes_skipped = len(deletes)
                res.deferred_skipped = len(later)
                if deletes or later:
                    self.log.warning(
                        "Not deleting %d path(s) and postponing %d: %d action(s) failed in this run",
                        len(deletes), len(later), len(res.errors),
                    )  # fmt: skip
                return res
            self._run_serial([a for a in deletes if a.op == "delete_file"], self._delete_file)
            folders = sorted(
                (a for a in deletes if a.op == "delete_folder"), key=lambda a: a.path, reverse=True
            )
            self._run_serial(folders, lambda a: self._delete_folder(a, a.path in swaps))

            def unblocked(a: Action) -> bool:
                for b in self._blocked:
                    if is_under(a.path, b):
                        self._conflict(a.path, "blocked by a local folder the mirror did not write")
                        return False
                return True

            later = [a for a in later if unblocked(a)]
            if res.errors:
                res.deferred_skipped = len(later)
                return res
            self._run_serial(
                sorted((a for a in later if a.op == "create_folder"), key=lambda a: a.path),
                self._create_folder,
            )
            try:
                self._run_transfers([a for a in later if a.op in ("download", "copy_local")])
            finally:
                self.drop_foreign_staging()
        except _Stop as exc:
            with self._mu:
                res.errors.append({"op": "run", "path": "", "error": f"stopped: {exc}"})
        return res
