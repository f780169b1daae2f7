"""An in-memory Dropbox with a change journal, for fast engine tests (emulator tests use the real client)."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_dropbox.client import errors
from airflow_provider_dropbox.sync.hashing import ContentHasher


def chash(data: bytes) -> str:
    h = ContentHasher()
    h.update(data)
    return h.hexdigest()


def lower(path: str) -> str:
    return unicodedata.normalize("NFC", path).lower()


@dataclass
class Node:
    display: str
    is_dir: bool
    data: bytes = b""
    rev: str = ""
    id: str = ""


class FakeDropbox:
    """Case-insensitive tree keyed by path_lower; every change goes to a journal that cursors index."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.journal: list[dict[str, Any]] = []
        self.epoch = 0
        self.calls: dict[str, int] = {}
        self.fail_downloads: set[str] = set()  # path_lower of files whose download raises
        self.fsync_args: list[bool] = []  # the fsync= of every download_file call
        self.page_size = 3  # entries per listing page: first runs stream over several pages
        self._n = 0

    # -- helpers ------------------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _meta(self, pl: str) -> dict[str, Any]:
        n = self.nodes[pl]
        base = {"name": n.display.rsplit("/", 1)[-1], "path_lower": pl, "path_display": n.display, "id": n.id}
        if n.is_dir:
            return {".tag": "folder", **base}
        return {".tag": "file", **base, "rev": n.rev, "size": len(n.data), "content_hash": chash(n.data)}

    def _next(self) -> str:
        self._n += 1
        return f"{self._n:09x}"

    def _ensure_parents(self, display: str) -> None:
        parts = display.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            pl = lower(d)
            if pl in self.nodes and not self.nodes[pl].is_dir:
                raise KeyError(f"{d} is a file")  # Dropbox answers path/conflict/file
            if pl not in self.nodes:
                self.nodes[pl] = Node(d, True, id=f"id:{self._next()}")
                self.journal.append(self._meta(pl))

    # -- mutations (test side) ------------------------------------------------------------------------
    def put(self, display: str, data: bytes) -> None:
        self._ensure_parents(display)
        pl = lower(display)
        old = self.nodes.get(pl)
        if old is not None and old.is_dir:
            self.delete(display)
        ident = old.id if old is not None and not old.is_dir else f"id:{self._next()}"
        self.nodes[pl] = Node(old.display if old else display, False, data, rev=self._next(), id=ident)
        self.journal.append(self._meta(pl))

    def mkdir(self, display: str) -> None:
        self._ensure_parents(display + "/x")
        pl = lower(display)
        if pl in self.nodes:
            return
        self.nodes[pl] = Node(display, True, id=f"id:{self._next()}")
        self.journal.append(self._meta(pl))

    def delete(self, display: str) -> None:
        pl = lower(display)
        gone = [k for k in self.nodes if k == pl or k.startswith(pl + "/")]
        if not gone:
            raise KeyError(display)
        name = self.nodes[pl].display
        for k in gone:
            del self.nodes[k]
        self.journal.append(
            {".tag": "deleted", "name": name.rsplit("/", 1)[-1], "path_lower": pl, "path_display": name}
        )

    def move(self, src: str, dst: str) -> None:
        spl, dpl = lower(src), lower(dst)
        moved = sorted(k for k in self.nodes if k == spl or k.startswith(spl + "/"))
        items = [(k, self.nodes[k]) for k in moved]
        self.delete(src)
        self._ensure_parents(dst)
        for k, n in items:
            rest = n.display[len(src) :]
            newd = dst + rest
            newpl = dpl + k[len(spl) :]
            self.nodes[newpl] = Node(
                newd, n.is_dir, n.data, rev=self._next() if not n.is_dir else "", id=n.id
            )
            self.journal.append(self._meta(newpl))

    def reset_cursors(self) -> None:
        self.epoch += 1

    # -- the MirrorClient protocol ---------------------------------------------------------------------
    def get_metadata(self, path: str) -> dict[str, Any]:
        self._count("get_metadata")
        pl = lower(path)
        if pl not in self.nodes:
            raise errors.PathNotFoundError(f"not found: {path}", route="files/get_metadata", path=path)
        return self._meta(pl)

    def _under(self, root: str, pl: str) -> bool:
        return root == "" or pl == root or pl.startswith(root + "/")

    def list_folder_snapshot(self, path: str, recursive: bool = True) -> tuple[list[dict[str, Any]], str]:
        self._count("list_folder")
        root = lower(path.rstrip("/"))
        if root and root not in self.nodes:
            raise errors.PathNotFoundError(f"not found: {path}", route="files/list_folder", path=path)
        entries = [
            self._meta(k) for k in sorted(self.nodes, key=lambda k: (k.count("/"), k)) if self._under(root, k)
        ]
        return entries, f"{self.epoch}|{root}|{len(self.journal)}"

    def list_folder_pages(
        self, path: str, recursive: bool = True
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Like Dropbox: ``page_size`` entries a page; a page's cursor continues with the rest of the listing
        and then the changes since it began (stateless, so another process can continue it too)."""
        entries, last = self.list_folder_snapshot(path, recursive)
        for start in range(0, max(len(entries), 1), self.page_size):
            page = entries[start : start + self.page_size]
            if start + self.page_size >= len(entries):
                yield page, last
            else:
                pl = page[-1]["path_lower"]
                yield page, f"{last}|{pl.count('/')}|{pl}"

    def list_changes(self, cursor: str) -> tuple[list[dict[str, Any]], str]:
        self._count("list_changes")
        epoch, root, seq, *rest = cursor.split("|", 4)
        if int(epoch) != self.epoch:
            raise errors.CursorResetError("reset", route="files/list_folder/continue")
        unlisted: list[dict[str, Any]] = []
        if rest:  # the rest of a listing, as things are now (the journal below brings it up to date)
            after = (int(rest[0]), rest[1])
            unlisted = [
                self._meta(k)
                for k in sorted(self.nodes, key=lambda k: (k.count("/"), k))
                if self._under(root, k) and k != root and (k.count("/"), k) > after
            ]
        entries = unlisted + [
            e
            for e in self.journal[int(seq) :]
            if self._under(root, e["path_lower"]) and e["path_lower"] != root
        ]
        return entries, f"{self.epoch}|{root}|{len(self.journal)}"

    def download_file(self, remote_path: str, local_path: str, *, fsync: bool = True) -> dict[str, Any]:
        self._count("download")
        self.fsync_args.append(fsync)
        pl = lower(remote_path)
        if pl in self.fail_downloads:
            raise errors.ServerError(f"injected failure for {remote_path}", route="files/download")
        n = self.nodes.get(pl)
        if n is None or n.is_dir:
            raise errors.PathNotFoundError(
                f"not found: {remote_path}", route="files/download", path=remote_path
            )
        tmp = f"{local_path}.fake-{hashlib.sha1(os.urandom(8)).hexdigest()[:6]}"
        with open(tmp, "wb") as fh:
            fh.write(n.data)
            if fsync:  # like the client: the mirror passes False and syncs each batch itself
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, local_path)
        return self._meta(pl)

    # -- for assertions --------------------------------------------------------------------------------
    def tree(self, root: str = "") -> dict[str, bytes | None]:
        """Relative display paths (case as the remote shows names) -> bytes (None for folders)."""
        rl = lower(root)
        out: dict[str, bytes | None] = {}
        for k, n in self.nodes.items():
            if self._under(rl, k) and k != rl:
                out[n.display[len(root) + 1 if root else 1 :]] = None if n.is_dir else n.data
        return out


def local_tree(root: str | os.PathLike[str]) -> dict[str, bytes | None]:
    """The destination's tree without the mirror's state folder."""
    out: dict[str, bytes | None] = {}
    base = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base).replace(os.sep, "/")
        rel = "" if rel == "." else rel
        if rel == "":
            dirnames[:] = [d for d in dirnames if d != ".dropbox-mirror"]
        for d in dirnames:
            out[f"{rel}/{d}" if rel else d] = None
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[f"{rel}/{f}" if rel else f] = fh.read()
    return out


class FakeClient(FakeDropbox):
    """The fake with the client's write calls, so the random-history generator drives it like the emulator."""

    def upload_file(self, local_path: str, remote_path: str, *, mode: str = "add") -> dict[str, Any]:
        with open(local_path, "rb") as fh:
            data = fh.read()
        try:
            self.put(remote_path, data)
        except KeyError as exc:
            raise errors.PathConflictError(str(exc), route="files/upload") from None
        return self._meta(lower(remote_path))

    def delete(self, display: str) -> None:  # type: ignore[override]
        try:
            super().delete(display)
        except KeyError as exc:
            raise errors.PathNotFoundError(str(exc), route="files/delete_v2") from None

    def move(self, src: str, dst: str) -> None:  # type: ignore[override]
        if lower(dst) in self.nodes:
            raise errors.PathConflictError(f"{dst} exists", route="files/move_v2")
        if lower(src) not in self.nodes:
            raise errors.PathNotFoundError(src, route="files/move_v2")
        try:
            super().move(src, dst)
        except KeyError as exc:
            raise errors.PathConflictError(str(exc), route="files/move_v2") from None

    def create_folder(self, display: str) -> None:
        try:
            self.mkdir(display)
        except KeyError as exc:
            raise errors.PathConflictError(str(exc), route="files/create_folder_v2") from None
