"""fsspec filesystem so ``ObjectStoragePath("dropbox://<conn_id>@/folder/file.csv")`` works.

Built on ``DropboxHook`` (same connection, token refresh, retries, verified transfers). Reads download
the file once to a local temp file (verified against the content hash) and serve ranges from it; writes
go to a temp file and are uploaded on close, single request or upload session by size.

Modes (text variants behave like their binary ones): ``r`` reads; ``w`` replaces the file on close; ``x``
creates it and raises ``FileExistsError`` when it exists (at open, and again at close if another writer
created it meanwhile); ``a`` downloads the current content, appends, and uploads on close as an update of
the revision it read, so a change made by someone else in between is refused (``FileChangedError``)
instead of lost. ``+`` modes (read and write on one handle) have no safe meaning on Dropbox, which
replaces whole files, and are refused with ``ValueError``.

``glob`` compares patterns with Dropbox's case-insensitive keys (the server's ``path_lower``), like
``exists`` and ``ls`` do.

Registered twice, and both are needed: provider info ``filesystems`` (Airflow's ``get_fs``, which
passes the connection id) and the ``fsspec.specs`` entry point (fsspec otherwise maps ``dropbox`` to the
unrelated ``dropboxdrivefs`` package, which ObjectStoragePath would try to import first).
"""

from __future__ import annotations

import os
import tempfile
from datetime import timezone
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.client.errors import NotAFolderError, PathConflictError, PathNotFoundError

if TYPE_CHECKING:
    from airflow_provider_dropbox.hooks.dropbox import DropboxHook

schemes = ["dropbox"]
UTC = timezone.utc  # datetime.UTC is Python 3.11+; the package supports 3.10


class FileChangedError(OSError):
    """A file opened for append changed on Dropbox before close; nothing was written over it."""


_KINDS = {"r", "w", "a", "x"}


def _binary_mode(mode: str) -> str:
    """``rb``/``wb``/``ab``/``xb`` for any spelling of those modes; a clear ``ValueError`` for the rest."""
    chars = set(mode)
    kinds = chars & _KINDS
    if "+" in chars:
        raise ValueError(
            f"Dropbox files cannot be opened with mode {mode!r}: Dropbox replaces whole files, so reading "
            "and writing one handle has no safe meaning. Read with 'r', then write with 'w' or 'a'."
        )
    if len(kinds) != 1 or not chars <= _KINDS | {"b", "t"} or len(mode) != len(chars) or chars >= {"b", "t"}:
        raise ValueError(
            f"Invalid file mode {mode!r} for Dropbox; use one of r, w, a, x (optionally with b or t)"
        )
    return f"{kinds.pop()}b"


class DropboxFileSystem(AbstractFileSystem):
    """fsspec view of a Dropbox account through an Airflow ``dropbox`` connection.

    :param conn_id: Airflow connection id (default ``dropbox_default``).
    :param parallelism: Parallel parts for large transfers.
    """

    protocol = ("dropbox",)
    root_marker = "/"

    def __init__(self, conn_id: str | None = None, *, parallelism: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or "dropbox_default"
        self.parallelism = parallelism
        self._hook: DropboxHook | None = None

    @property
    def hook(self) -> DropboxHook:
        if self._hook is None:
            from airflow_provider_dropbox.hooks.dropbox import DropboxHook

            kwargs = {"parallelism": self.parallelism} if self.parallelism else {}
            self._hook = DropboxHook(dropbox_conn_id=self.conn_id, **kwargs)
        return self._hook

    # -- paths ----------------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("dropbox://"):
            rest = path[len("dropbox://") :]
            netloc, _sep, tail = rest.partition("/")
            path = "/" + tail if ("@" in netloc or not netloc) else "/" + rest
        elif path.startswith("dropbox:"):
            path = path[len("dropbox:") :]
        path = "/" + path.strip("/")
        while "//" in path:
            path = path.replace("//", "/")
        return path

    @staticmethod
    def _api(path: str) -> str:
        return "" if path in ("", "/") else path

    # -- metadata -------------------------------------------------------------------------------------------

    @staticmethod
    def _entry_info(entry: dict[str, Any]) -> dict[str, Any]:
        is_dir = entry.get(".tag") == "folder"
        return {
            "name": entry.get("path_display") or entry.get("path_lower"),
            "path_lower": entry.get("path_lower"),
            "size": 0 if is_dir else entry.get("size", 0),
            "type": "directory" if is_dir else "file",
            "id": entry.get("id"),
            "rev": entry.get("rev"),
            "content_hash": entry.get("content_hash"),
            "server_modified": entry.get("server_modified"),
            "client_modified": entry.get("client_modified"),
        }

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path == "/":
            return {"name": "/", "size": 0, "type": "directory"}
        try:
            meta = self.hook.get_metadata(path)
        except Exception as exc:
            if isinstance(exc, PathNotFoundError):
                raise FileNotFoundError(path) from exc
            raise
        if meta.get(".tag") == "deleted":
            raise FileNotFoundError(path)
        if ".tag" not in meta:
            meta = {**meta, ".tag": "folder" if "size" not in meta else "file"}
        return self._entry_info(meta)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        try:
            entries = [self._entry_info(e) for e in self.hook.list_folder(self._api(path), recursive=False)]
        except Exception as exc:
            if isinstance(exc, PathNotFoundError):
                raise FileNotFoundError(path) from exc
            if isinstance(exc, NotAFolderError):
                return [self.info(path)] if detail else [path]
            raise
        if not entries and path != "/":
            info = self.info(path)  # FileNotFoundError, or a file listed as itself
            if info["type"] == "file":
                return [info] if detail else [info["name"]]
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    def modified(self, path: str) -> Any:
        from datetime import datetime

        stamp = self.info(path).get("server_modified")
        if not stamp:
            raise IsADirectoryError(path)
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def checksum(self, path: str) -> Any:
        return self.info(path).get("content_hash") or super().checksum(path)

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """fsspec's glob, but matched against the server's ``path_lower`` like every other lookup."""
        import re
        from glob import has_magic

        from fsspec.utils import glob_translate

        ends_with_sep = str(path).endswith("/")
        path = self._strip_protocol(path)
        detail = kwargs.pop("detail", False)
        withdirs = kwargs.pop("withdirs", True)
        if not has_magic(path):
            return super().glob(path, maxdepth=maxdepth, detail=detail, withdirs=withdirs, **kwargs)
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        magic = min(i for i in (path.find("*"), path.find("?"), path.find("["), len(path)) if i >= 0)
        cut = path[:magic].rindex("/")
        root = path[: cut + 1]
        depth: int | None = path[cut + 1 :].count("/") + 1
        if "**" in path:
            depth = None if maxdepth is None else depth - (path[path.find("**") :].count("/") + 1) + maxdepth  # type: ignore[operator]
        found = self.find(root, maxdepth=depth, withdirs=withdirs, detail=True, **kwargs)
        folded = path_key(path + ("/" if ends_with_sep else ""))
        pattern = re.compile(glob_translate(folded), re.IGNORECASE)
        slash = ends_with_sep or path.endswith("/**")
        out = {}
        for name, info in sorted(found.items()):
            key = info.get("path_lower") or path_key(name)
            if pattern.match(key + "/" if slash and info["type"] == "directory" else key):
                out[name] = info
        return out if detail else list(out)

    # -- changes --------------------------------------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.hook.create_folder(self._strip_protocol(path), exist_ok=True)
        self.invalidate_cache()

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if path == "/":
            return
        if not exist_ok and self.exists(path):
            raise FileExistsError(path)
        self.hook.create_folder(path, exist_ok=True)

    def rmdir(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self.ls(path, detail=False):
            raise OSError(f"Directory not empty: {path}")
        self.hook.delete(path)

    def _rm(self, path: str) -> None:
        try:
            self.hook.delete(self._strip_protocol(path))
        except Exception as exc:
            if isinstance(exc, PathNotFoundError):
                raise FileNotFoundError(path) from exc
            raise

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        # Dropbox deletes a folder with its contents in one call: no need to walk it.
        for p in [path] if isinstance(path, str) else list(path):
            p = self._strip_protocol(p)
            if not recursive and self.isdir(p) and self.ls(p, detail=False):
                raise OSError(f"{p} is a non-empty folder; pass recursive=True")
            self._rm(p)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.hook.copy(self._strip_protocol(path1), self._strip_protocol(path2))

    def mv(
        self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any
    ) -> None:
        self.hook.move(self._strip_protocol(path1), self._strip_protocol(path2))

    def get_file(
        self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any
    ) -> None:
        if outfile is not None or os.path.isdir(lpath):
            super().get_file(rpath, lpath, callback=callback, outfile=outfile, **kwargs)
            return
        self.hook.download_file(self._strip_protocol(rpath), lpath)

    def put_file(
        self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        self.hook.upload_file(lpath, self._strip_protocol(rpath), mode="overwrite")

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DropboxFile:
        mode = _binary_mode(mode)
        return DropboxFile(self, self._strip_protocol(path), mode=mode, block_size=block_size or "default")

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        _binary_mode(mode)  # refuse '+' and unknown modes before fsspec's own, vaguer checks
        return super().open(path, mode=mode, **kwargs)


class DropboxFile(AbstractBufferedFile):
    """Read: one verified download to a temp file, ranges served from it. Write: upload on close."""

    def __init__(self, fs: DropboxFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        self._local: str | None = None
        self._spool: Any = None
        self._write_mode: Any = "overwrite"
        size = None
        existing: dict[str, Any] | None = None
        if mode != "wb":
            try:
                existing = fs.info(path)
            except FileNotFoundError:
                if mode == "rb":
                    raise
            if existing is not None and existing["type"] != "file":
                raise IsADirectoryError(path)
        if mode == "rb":
            size = existing["size"] if existing else None
        elif mode == "xb":
            if existing is not None:
                raise FileExistsError(path)
            self._write_mode = "add"
        elif mode == "ab":
            self._write_mode = {"update": existing["rev"]} if existing else "add"
        super().__init__(fs, path, mode=mode, size=size, cache_type="none", **kwargs)
        if mode == "ab" and existing is not None:
            fd, local = tempfile.mkstemp(prefix="dropbox-fs-")
            os.close(fd)
            try:
                fs.hook.download_file(path, local)  # verified; replaces ``local`` atomically
            except BaseException:
                os.unlink(local)
                raise
            self._spool = open(local, "ab")  # closed in _upload_chunk
            self.loc = self._spool.tell()

    def _fetch_range(self, start: int, end: int) -> bytes:
        if self._local is None:
            fd, local = tempfile.mkstemp(prefix="dropbox-fs-")
            os.close(fd)
            self.fs.hook.download_file(self.path, local)
            self._local = local
        with open(self._local, "rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))

    def _initiate_upload(self) -> None:
        if self._spool is None:  # append mode already holds the downloaded content
            self._spool = tempfile.NamedTemporaryFile(prefix="dropbox-fs-", delete=False)

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._spool is None:
            self._initiate_upload()
        self._spool.write(self.buffer.getvalue())
        if final:
            self._spool.close()
            try:
                self.fs.hook.upload_file(self._spool.name, self.path, mode=self._write_mode)
            except Exception as exc:
                if not isinstance(exc, PathConflictError):
                    raise
                if self.mode == "xb":
                    raise FileExistsError(
                        f"{self.path} was created by another writer; nothing written"
                    ) from exc
                raise FileChangedError(
                    f"{self.path} changed on Dropbox after it was opened for append; nothing was written "
                    "over it. Open it again to append to the new content."
                ) from exc
            finally:
                os.unlink(self._spool.name)
                self._spool = None
            self.fs.invalidate_cache()
        return True

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._local is not None:
                try:
                    os.unlink(self._local)
                except FileNotFoundError:
                    pass
                self._local = None


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> AbstractFileSystem:
    """Airflow ``filesystems`` entry: the filesystem for ``conn_id`` (``dropbox_default`` when None)."""
    return DropboxFileSystem(conn_id=conn_id or "dropbox_default", **(storage_options or {}))
