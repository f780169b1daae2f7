"""Incremental runs work on a slice of the index (sync/partial.py), and decide exactly what a run that loads
the whole index decides.

Two destinations mirror the same fake Dropbox through random histories: one with the slice, one with the
slice switched off (the whole-index path). After every round the plans, the reports' counts, the files on
disk and the index rows must be identical. The names include case-fold collisions Dropbox keeps apart
("straße" / "strasse", "ﬁle" / "file"), so the collision layout is exercised through the slice too.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dropbox.client import errors
from airflow_provider_dropbox.sync import engine, mirror
from airflow_provider_dropbox.sync.index import MirrorIndex
from tests.sync.fakes import FakeClient, local_tree

ROOT = "/Src"
FILES = ["a.txt", "straße.txt", "strasse.txt", "STRASSE.md", "ﬁle.bin", "file.bin", "x", "Notes.md"]
DIRS = ["d", "maß", "mass", "Sub", "ﬁles", "files"]


def _index_rows(dest: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        state = index.load()
        return dict(state.manifest), dict(state.remote.entries)
    finally:
        index.close()


class _Ops:
    def __init__(self, fake: FakeClient, seed: int) -> None:
        self.fake, self.rng = fake, random.Random(seed)
        self.contents: list[bytes] = [b"same bytes"]

    def paths(self) -> tuple[list[str], list[str]]:
        nodes = self.fake.nodes
        pre = ROOT.lower() + "/"
        files = sorted(n.display for k, n in nodes.items() if k.startswith(pre) and not n.is_dir)
        dirs = sorted(n.display for k, n in nodes.items() if k.startswith(pre) and n.is_dir)
        return files, dirs

    def where(self, dirs: list[str]) -> str:
        return self.rng.choice([ROOT, *dirs])

    def data(self) -> bytes:
        if self.rng.random() < 0.3:
            return self.rng.choice(self.contents)  # the same content elsewhere: local copies
        data = self.rng.randbytes(self.rng.randint(0, 64))
        self.contents.append(data)
        return data

    def taken(self, path: str) -> bool:
        from tests.sync.fakes import lower

        return lower(path) in self.fake.nodes

    def step(self) -> None:
        try:
            self._step()
        except (KeyError, errors.DropboxError):  # a parent is a file now, or the like: skip this one
            pass

    def _step(self) -> None:
        files, dirs = self.paths()
        r, fake = self.rng, self.fake
        op = r.choices(["put", "edit", "mkdir", "delete", "move", "swap"], weights=[5, 2, 2, 2, 3, 1])[0]
        if op == "put" or not files:
            path = f"{self.where(dirs)}/{r.choice(FILES)}"
            if not self.taken(path):
                fake.put(path, self.data())
        elif op == "edit":
            fake.put(r.choice(files), self.data())
        elif op == "mkdir":
            path = f"{self.where(dirs)}/{r.choice(DIRS)}"
            if not self.taken(path) and path.count("/") < 5:
                fake.mkdir(path)
        elif op == "delete":
            fake.delete(r.choice(files + dirs))
        elif op == "move":
            src = r.choice(files + dirs)
            parent = self.where([d for d in dirs if not d.lower().startswith(src.lower() + "/") and d != src])
            name = src.rsplit("/", 1)[1]
            new = r.choice([name.swapcase(), r.choice(FILES if src in files else DIRS)])
            dst = f"{parent}/{new}"
            if dst.lower() == src.lower() and dst != src:
                fake.move(src, f"{ROOT}/tmp-case")
                fake.move(f"{ROOT}/tmp-case", dst)
            elif not self.taken(dst) and dst.count("/") < 6:
                fake.move(src, dst)
        elif op == "swap":
            src = r.choice(files)
            fake.delete(src)
            fake.mkdir(src)
            fake.put(f"{src}/{r.choice(FILES)}", self.data())


def _plan(report: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(sorted(a.items())) for a in report.plan)


STAMP = re.compile(r"conflicted copy [0-9TZ: -]+")


def _local(dest: Path) -> list[tuple[str, bytes | None]]:
    """The local tree with conflicted-copy stamps blanked (the two runs happen seconds apart)."""
    return sorted((STAMP.sub("conflicted copy *", p), v) for p, v in local_tree(dest).items())


def _edit_locally(rng: random.Random, dests: tuple[Path, Path]) -> None:
    """The same local edit in both destinations: a managed file changed, or a stranger file added."""
    # only names both destinations hold: a conflicted copy's name has its run's second in it, and the two
    # runs may straddle a second
    theirs = local_tree(dests[1])
    files = sorted(p for p, v in local_tree(dests[0]).items() if v is not None and p in theirs)
    if rng.random() < 0.5 and files:
        rel, data = rng.choice(files), b"local edit %d" % rng.randrange(10**6)
    else:
        rel, data = f"{rng.choice([*DIRS, ''])}/{rng.choice(FILES)}".lstrip("/"), b"stranger"
    for dest in dests:
        target = dest / rel
        if target.parent.is_dir() and not target.is_dir():
            target.write_bytes(data)
            # An edit that keeps the size inside the file system's clock tick of the mirror's own write
            # looks unchanged to any stat-based check; move the mtime on so both destinations see it alike.
            st = target.stat()
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.mark.parametrize("conflict", ["copy", "skip"])
@pytest.mark.parametrize("seed", range(8))
def test_slice_decides_what_the_whole_index_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, conflict: str
) -> None:
    fake = FakeClient()
    ops = _Ops(fake, seed)
    fake.mkdir(ROOT)
    for _ in range(25):
        ops.step()
    sliced, whole = tmp_path / "sliced", tmp_path / "whole"
    real = engine._incremental_slice
    modes: dict[str, int] = {}

    def only_for_sliced(client: Any, index: Any, remote: str, root: str, *args: Any) -> Any:
        if Path(root) == whole.resolve():
            return None
        out = real(client, index, remote, root, *args)
        key = "slice" if out is not None else "whole"
        modes[key] = modes.get(key, 0) + 1
        return out

    monkeypatch.setattr(engine, "_incremental_slice", only_for_sliced)
    for round_ in range(25):
        a = mirror(fake, ROOT, sliced, allow_empty_remote=True, parallelism=2, conflict=conflict)
        b = mirror(fake, ROOT, whole, allow_empty_remote=True, parallelism=2, conflict=conflict)
        assert a.ok and b.ok
        assert a.mode == b.mode
        assert _plan(a) == _plan(b), f"round {round_}: the slice planned differently"
        assert a.planned == b.planned and a.remote_files == b.remote_files
        # collisions and skipped entries: a slice reports those in the folders its changes touch
        assert set(map(str, a.collisions)) <= set(map(str, b.collisions))
        assert set(map(str, a.skipped)) <= set(map(str, b.skipped))
        assert _local(sliced) == _local(whole)
        manifest_a, remote_a = _index_rows(sliced)
        manifest_b, remote_b = _index_rows(whole)
        assert remote_a == remote_b
        assert {p: (m.is_dir, m.key, m.content_hash, m.size, m.rev) for p, m in manifest_a.items()} == {
            p: (m.is_dir, m.key, m.content_hash, m.size, m.rev) for p, m in manifest_b.items()
        }
        for _ in range(ops.rng.randint(0, 4)):
            ops.step()
        if ops.rng.random() < 0.4:
            _edit_locally(ops.rng, (sliced, whole))
    assert modes.get("slice", 0) >= 20  # the slice really ran (not the whole-index fallback)


def test_incremental_run_never_loads_the_whole_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClient()
    for d in range(5):
        for f in range(5):
            fake.put(f"{ROOT}/d{d}/f{f}.txt", f"{d}-{f}".encode())
    dest = tmp_path / "m"
    mirror(fake, ROOT, dest)

    def refuse(self: MirrorIndex) -> None:
        raise AssertionError("an incremental run loaded the whole index")

    children: list[str] = []
    real_children = MirrorIndex.remote_children

    def spy(self: MirrorIndex, parent: str) -> Any:
        children.append(parent)
        return real_children(self, parent)

    monkeypatch.setattr(MirrorIndex, "load", refuse)
    monkeypatch.setattr(MirrorIndex, "remote_children", spy)
    report = mirror(fake, ROOT, dest)
    assert report.mode == "incremental" and report.plan == [] and report.planned["unchanged"] == 30
    assert children == []
    fake.put(f"{ROOT}/d3/f1.txt", b"changed")
    fake.delete(f"{ROOT}/d1")
    report = mirror(fake, ROOT, dest)
    assert report.ok and report.mode == "incremental"
    assert sorted(children) == ["", "d3"]  # only the folders on the way to the changes
    assert report.planned == {"delete_file": 5, "delete_folder": 1, "download": 1, "unchanged": 23}
    assert report.remote_files == 20
    assert local_tree(dest)["d3/f1.txt"] == b"changed" and "d1" not in local_tree(dest)


def test_a_row_the_slice_cannot_place_is_left_out_never_judged(tmp_path: Path) -> None:
    """A manifest row whose key lies in a folder the slice did not load is not deleted as stale."""
    from airflow_provider_dropbox.sync.layout import Layout
    from airflow_provider_dropbox.sync.partial import load_manifest_slice, load_remote_slice

    fake = FakeClient()
    for d in ("a", "b"):
        for f in range(3):
            fake.put(f"{ROOT}/{d}/sub/f{f}.txt", b"x%d" % f)
    dest = tmp_path / "m"
    mirror(fake, ROOT, dest)
    index = MirrorIndex.open(str(dest / ".dropbox-mirror"))
    try:
        sliced = load_remote_slice(index, {"a/sub/f0.txt": "f0.txt"})
        assert sliced.expanded == {"a/sub"} and sliced.roots == {"a/sub": "a/sub"}
        assert sliced.decidable("a/sub/f1.txt") and sliced.decidable("a/sub/new.txt")
        assert not sliced.decidable("b/sub/f1.txt")  # b/sub was not loaded: unknown, not gone
        manifest, left_out = load_manifest_slice(
            index, sliced, ["a/sub/f0.txt"], Layout(), ["b/sub/f1.txt", "a/sub/f2.txt"]
        )
        assert set(manifest) == {"a/sub/f0.txt", "a/sub/f2.txt"} and left_out == 1
    finally:
        index.close()


def test_new_excludes_or_delete_stale_judge_every_row_once(tmp_path: Path) -> None:
    """Options that decide about every row (excludes, delete_stale) changed: the next run judges the whole
    index, not only the rows a change touches; the run after it is a slice again."""
    fake = FakeClient()
    for name in ("keep.txt", "cache.tmp", "sub/old.txt"):
        fake.put(f"{ROOT}/{name}", name.encode())
    dest = tmp_path / "m"
    mirror(fake, ROOT, dest)
    report = mirror(fake, ROOT, dest, exclude=["*.tmp"])
    assert [(a["op"], a["path"]) for a in report.plan] == [("forget", "cache.tmp")]
    fake.delete(f"{ROOT}/sub/old.txt")
    report = mirror(fake, ROOT, dest, exclude=["*.tmp"], delete_stale=False)
    assert report.plan == [] and report.planned["stale_kept"] == 1
    assert (dest / "sub" / "old.txt").exists()
    report = mirror(fake, ROOT, dest, exclude=["*.tmp"])
    assert [(a["op"], a["path"]) for a in report.plan] == [("delete_file", "sub/old.txt")]
    assert not (dest / "sub" / "old.txt").exists()
