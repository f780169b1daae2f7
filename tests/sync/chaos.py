"""Random remote mutations for the convergence tests (creates, edits, deletes, moves, case-only renames,
file/folder swaps, duplicates, unicode names), applied through the real client."""

from __future__ import annotations

import os
import random
import tempfile
import unicodedata

from airflow_provider_dropbox.client import DropboxClient, errors
from tests.sync.conftest import remote_tree
from tests.sync.fakes import chash

# No two of these (or their swapcase) fold to the same name, so the mirror never has to rename for a
# collision here; collisions have their own test. NFD and NFC forms, CJK, emoji, spaces, parentheses.
FILE_NAMES = [
    "a.txt",
    "B.bin",
    "notes.md",
    "caf\u00e9.txt",
    unicodedata.normalize("NFD", "na\u00efve.txt"),
    "\u65e5\u672c\u8a9e.txt",
    "emoji-\U0001f600.dat",
    "space name.txt",
    "R\u00e9sum\u00e9 (final).pdf",
    "x",
    "\u00dcber.csv",
]
DIR_NAMES = ["Dir", "data", "\u03a9mega", "\u6df1\u3044", "sub dir", "\u00c4rger"]
SIZES = [0, 1, 17, 500, 4096, 70_000]


class Chaos:
    def __init__(self, client: DropboxClient, root: str, seed: int, workdir: str) -> None:
        self.client = client
        self.root = root
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.hashes: set[str] = set()  # every content ever uploaded (to spot partial files)
        self.contents: list[bytes] = []
        self.log: list[str] = []

    # -- primitives ---------------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _content(self) -> bytes:
        if self.contents and self.rng.random() < 0.2:
            return self.rng.choice(self.contents)  # same bytes elsewhere: exercises local copies
        data = self.rng.randbytes(self.rng.choice(SIZES))
        self.contents.append(data)
        return data

    def upload(self, rel: str, data: bytes | None = None) -> None:
        data = self._content() if data is None else data
        self.hashes.add(chash(data))
        fd, tmp = tempfile.mkstemp(dir=self.workdir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            self.client.upload_file(tmp, self._abs(rel), mode="overwrite")
        finally:
            os.unlink(tmp)

    def tree(self) -> dict[str, str | None]:
        return remote_tree(self.client, self.root)

    # -- one random operation -----------------------------------------------------------------------
    def step(self) -> None:
        tree = self.tree()
        files = sorted(p for p, h in tree.items() if h is not None)
        folders = ["", *sorted(p for p, h in tree.items() if h is None)]
        lowered = {p.lower() for p in tree}
        r = self.rng
        op = r.choices(
            ["create", "edit", "delete", "move", "case", "swap", "mkdir"], weights=[6, 3, 2, 3, 2, 1, 1]
        )[0]

        def fresh(parent: str, pool: list[str]) -> str | None:
            for _ in range(6):
                cand = f"{parent}/{r.choice(pool)}" if parent else r.choice(pool)
                if unicodedata.normalize("NFC", cand).lower() not in {
                    unicodedata.normalize("NFC", p).lower() for p in lowered
                }:
                    return cand
            return None

        if op == "create" or (op in ("edit", "delete", "case", "swap") and not files):
            parent = r.choice(folders)
            if r.random() < 0.3:  # a new folder on the way
                sub = fresh(parent, DIR_NAMES)
                parent = sub or parent
            target = fresh(parent, FILE_NAMES)
            if target:
                self.log.append(f"create {target}")
                self.upload(target)
        elif op == "edit":
            target = r.choice(files)
            self.log.append(f"edit {target}")
            self.upload(target)
        elif op == "delete":
            target = r.choice(files + folders[1:])
            self.log.append(f"delete {target}")
            self.client.delete(self._abs(target))
        elif op == "move":
            src = r.choice(files + folders[1:])
            dst_parent = r.choice([f for f in folders if not (f == src or f.startswith(src + "/"))])
            dst = fresh(dst_parent, DIR_NAMES if tree[src] is None else FILE_NAMES)
            if dst:
                self.log.append(f"move {src} -> {dst}")
                self.client.move(self._abs(src), self._abs(dst))
        elif op == "case":
            src = r.choice(files + folders[1:])
            parent, _, name = src.rpartition("/")
            new_name = name.swapcase() if name.swapcase() != name else name.upper() + "_"
            tmp = f"{parent}/case-tmp-{r.randrange(10**6)}" if parent else f"case-tmp-{r.randrange(10**6)}"
            dst = f"{parent}/{new_name}" if parent else new_name
            self.log.append(f"case {src} -> {dst}")
            self.client.move(self._abs(src), self._abs(tmp))
            self.client.move(self._abs(tmp), self._abs(dst))
        elif op == "swap":
            if r.random() < 0.5 or len(folders) == 1:
                target = r.choice(files)
                self.log.append(f"swap file->folder {target}")
                self.client.delete(self._abs(target))
                self.upload(f"{target}/{r.choice(FILE_NAMES)}")
            else:
                target = r.choice(folders[1:])
                self.log.append(f"swap folder->file {target}")
                self.client.delete(self._abs(target))
                self.upload(target)
        elif op == "mkdir":
            target = fresh(r.choice(folders), DIR_NAMES)
            if target:
                self.log.append(f"mkdir {target}")
                self.client.create_folder(self._abs(target))

    def round(self, max_ops: int = 4) -> None:
        for _ in range(self.rng.randint(1, max_ops)):
            try:
                self.step()
            except errors.DropboxApiError as exc:  # e.g. a retried move whose first try had committed
                self.log.append(f"  (ignored {type(exc).__name__}: {exc})")
