"""Remote tree change processing, local layout (collisions, bad names), path safety, state and lock files."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_dropbox.sync.errors import LockHeldError, LockLostError, StateError, UnsafePathError
from airflow_provider_dropbox.sync.index import MirrorIndex
from airflow_provider_dropbox.sync.layout import build_layout, make_exclude
from airflow_provider_dropbox.sync.lock import MirrorLock
from airflow_provider_dropbox.sync.paths import collision_key, normalize_remote_root, safe_local_path
from airflow_provider_dropbox.sync.remote import RemoteTree
from airflow_provider_dropbox.sync.state import (
    Managed,
    MirrorState,
    Pending,
    load_state,
    save_pending,
    save_state,
)
from tests.sync.fakes import FakeDropbox


def f(path: str, h: str = "h") -> dict[str, object]:
    return {".tag": "file", "name": path.rsplit("/", 1)[-1], "path_lower": path.lower(), "path_display": path,
            "content_hash": h, "rev": "1", "size": 1}  # fmt: skip


def d(path: str) -> dict[str, object]:
    return {
        ".tag": "folder",
        "name": path.rsplit("/", 1)[-1],
        "path_lower": path.lower(),
        "path_display": path,
    }


def gone(path: str) -> dict[str, object]:
    return {
        ".tag": "deleted",
        "name": path.rsplit("/", 1)[-1],
        "path_lower": path.lower(),
        "path_display": path,
    }


def shape(tree: RemoteTree) -> dict[str, tuple[str, bool, str | None]]:
    return {k: (e.name, e.is_dir, e.content_hash) for k, e in tree.entries.items()}


# -- remote tree ----------------------------------------------------------------------------------------
def test_children_before_parents_and_names_fixed_later() -> None:
    t = RemoteTree.from_listing([f("/R/Sub/Deep/x.txt"), d("/R/Sub")], "/r")
    assert shape(t) == {
        "sub": ("Sub", True, None),
        "sub/deep": ("Deep", True, None),  # synthesised from path_display, until its own entry arrives
        "sub/deep/x.txt": ("x.txt", False, "h"),
    }
    assert t.entries["sub/deep"].synthetic


def test_one_delete_removes_the_subtree_and_events_apply_in_order() -> None:
    t = RemoteTree.from_listing([d("/R/A"), f("/R/A/1"), d("/R/A/B"), f("/R/A/B/2"), f("/R/keep")], "/r")
    touched = t.apply_changes([gone("/R/A"), d("/R/a"), f("/R/a/new", "n")], "/r")
    assert shape(t) == {"a": ("a", True, None), "a/new": ("new", False, "n"), "keep": ("keep", False, "h")}
    assert {"a", "a/1", "a/b", "a/b/2", "a/new"} <= touched
    # a file replaces a folder (children go), a folder replaces a file
    t.apply_changes([f("/R/a", "file-now"), d("/R/keep")], "/r")
    assert shape(t) == {"a": ("a", False, "file-now"), "keep": ("keep", True, None)}
    # entries outside the root and the root itself are ignored; deleting the root empties the tree
    t.apply_changes([f("/Other/x"), d("/R")], "/r")
    assert set(t.entries) == {"a", "keep"}
    t.apply_changes([gone("/R")], "/r")
    assert t.entries == {} and t.children == {}


@pytest.mark.parametrize("seed", range(20))
def test_changes_replayed_on_the_old_tree_give_the_new_listing(seed: int) -> None:
    rng = random.Random(seed)
    fake = FakeDropbox()
    names = ["a", "B", "c.txt", "D.bin"]

    def rand_path() -> str:
        return "/R/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))

    for _ in range(10):
        try:
            fake.put(rand_path(), rng.randbytes(3))
        except KeyError:
            pass
    entries, cursor = fake.list_folder_snapshot("/R")
    tree = RemoteTree.from_listing(entries, "/r")
    for _ in range(15):
        op = rng.choice(["put", "put", "delete", "move", "mkdir"])
        existing = [n.display for k, n in fake.nodes.items() if k.startswith("/r/")]
        try:
            if op == "put":
                fake.put(rand_path(), rng.randbytes(3))
            elif op == "mkdir":
                fake.mkdir(rand_path())
            elif op == "delete" and existing:
                fake.delete(rng.choice(existing))
            elif op == "move" and existing:
                src, dst = rng.choice(existing), rand_path()
                if not (dst.lower() + "/").startswith(src.lower() + "/") and dst.lower() not in fake.nodes:
                    fake.move(src, dst)
        except KeyError:
            pass
    changes, _ = fake.list_changes(cursor)
    tree.apply_changes(changes, "/r")
    expected = RemoteTree.from_listing(fake.list_folder_snapshot("/R")[0], "/r")
    assert shape(tree) == shape(expected)


def test_tree_round_trips_through_json() -> None:
    t = RemoteTree.from_listing([d("/R/A"), f("/R/A/1")], "/r")
    back = RemoteTree.from_json(json.loads(json.dumps(t.to_json())))
    assert shape(back) == shape(t) and back.children == t.children


# -- layout ---------------------------------------------------------------------------------------------
def test_collisions_are_deterministic_and_stable() -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    entries = [f("/R/ss.txt"), f("/R/\u00df.txt"), f(f"/R/{nfc}"), d(f"/R/{nfd}X"), f("/R/Other")]
    # different remote keys on purpose (path_lower as a server that does not normalise would send them)
    entries[3]["path_lower"] = f"/r/{nfd}x"
    a = build_layout(RemoteTree.from_listing(entries, "/r"))
    b = build_layout(RemoteTree.from_listing(list(reversed(entries)), "/r"))
    assert a.paths.keys() == b.paths.keys() and a.collisions == b.collisions
    assert len(a.collisions) == 1  # ß.txt vs ss.txt; "café" and "caféX" differ
    renamed = a.collisions[0]["renamed"]["\u00df.txt"]
    assert renamed.startswith("\u00df (case conflict ") and renamed.endswith(").txt")
    # adding another colliding name does not rename the existing loser
    c = build_layout(RemoteTree.from_listing([*entries, f("/R/SS.TXT-ignored")], "/r"))
    assert c.collisions[0]["renamed"]["\u00df.txt"] == renamed


def test_nfc_and_nfd_names_collide() -> None:
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    e1, e2 = f(f"/R/{nfc}"), f(f"/R/{nfd}")
    e2["path_lower"] = f"/r/{nfd}"  # a server that keeps both as different names
    layout = build_layout(RemoteTree.from_listing([e1, e2], "/r"))
    assert collision_key(nfc) == collision_key(nfd)
    assert len(layout.paths) == 2 and layout.collisions[0]["kept"] == nfc


def test_bad_names_and_state_dir_and_excludes() -> None:
    entries = [f("/R/ok"), f("/R/.."), f("/R/.dropbox-mirror"), f("/R/x.tmp"), d("/R/cache"), f("/R/cache/a")]
    nondl = f("/R/paper.paper")
    nondl["is_downloadable"] = False
    layout = build_layout(RemoteTree.from_listing([*entries, nondl], "/r"), make_exclude(["*.tmp", "cache"]))
    names = sorted(layout.paths)
    assert "ok" in names and ".." not in names and ".dropbox-mirror" not in names
    assert any(n.startswith(".dropbox-mirror (case conflict ") for n in names)
    assert not any(n.startswith(("x.tmp", "cache")) for n in names)
    reasons = {s["remote"]: s["reason"] for s in layout.skipped}
    assert "not a valid file name" in reasons[".."] and "not downloadable" in reasons["paper.paper"]


def test_excludes_ignore_case_like_dropbox_and_folder_uploads() -> None:
    # Dropbox names are case-insensitive: "*.TMP" must leave out "x.tmp", and "Cache" the folder "cache".
    excluded = make_exclude(["*.TMP", "Cache", "docs/*.Bak"])
    assert excluded("x.tmp") and excluded("A/B/Y.Tmp")
    assert excluded("cache") and excluded("cache/deep/a.txt") and excluded("sub/CACHE/a")
    assert excluded("Docs/old.bak") and not excluded("sub/docs/old.bak")
    assert not excluded("x.tmpl") and not excluded("cachet/a")


# -- paths ----------------------------------------------------------------------------------------------
def test_safe_local_path(tmp_path: Path) -> None:
    root = str(tmp_path.resolve())
    assert safe_local_path(root, "a/b.txt") == os.path.join(root, "a", "b.txt")
    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "./a", "", ".dropbox-mirror/state.json"):
        with pytest.raises(UnsafePathError):
            safe_local_path(root, bad)
    outside = tmp_path.parent / f"outside-{os.getpid()}"
    outside.mkdir(exist_ok=True)
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside the destination"):
        safe_local_path(root, "link/x.txt")
    (tmp_path / "inner").mkdir()
    (tmp_path / "link2").symlink_to(tmp_path / "inner")
    assert safe_local_path(root, "link2/x.txt")  # a link that stays inside is fine
    (tmp_path / "deep" / "er").mkdir(parents=True)  # plain folders first, then a link out
    (tmp_path / "deep" / "er" / "out").symlink_to(outside)
    for escaping in ("deep/er/out/x.txt", "deep/er/out/sub/x.txt", "link/sub/x.txt"):
        with pytest.raises(UnsafePathError, match="outside the destination"):
            safe_local_path(root, escaping)
    assert safe_local_path(root, "deep/er/x.txt") == os.path.join(root, "deep", "er", "x.txt")
    assert safe_local_path(root, "new/folder/x.txt")  # not created yet: inside


def test_normalize_remote_root() -> None:
    assert normalize_remote_root("/") == "" and normalize_remote_root(" / ") == ""
    for blank in ("", "  ", None):
        with pytest.raises(ValueError, match="empty or blank"):
            normalize_remote_root(blank)  # type: ignore[arg-type]
    assert normalize_remote_root("Photos/") == "/Photos"
    with pytest.raises(ValueError, match=r"'\.\.'"):
        normalize_remote_root("/a/../b")


# -- state ----------------------------------------------------------------------------------------------
def test_state_round_trip_and_atomic_write(tmp_path: Path) -> None:
    st = MirrorState(remote_path="/R", root_lower="/r", cursor="c1")
    st.remote = RemoteTree.from_listing([d("/R/A"), f("/R/A/1")], "/r")
    st.manifest = {"A": Managed(True, "a"), "A/1": Managed(False, "a/1", "h", 1, 2, "rev")}
    st.pending = {"A/2": Pending("create", False, "a/2", "h2", "r2")}
    save_state(str(tmp_path), st)
    save_pending(str(tmp_path), "run-1", st.pending)
    back = load_state(str(tmp_path))
    assert (
        back is not None
        and back.cursor == "c1"
        and back.manifest == st.manifest
        and back.pending == st.pending
    )
    assert sorted(os.listdir(tmp_path / ".dropbox-mirror")) == ["index.sqlite3"]  # closed: no WAL left
    index = MirrorIndex.open(str(tmp_path / ".dropbox-mirror"))
    index.write(clear_pending=True)  # what a committing run does in its final transaction
    index.close()
    assert load_state(str(tmp_path)).pending == {}  # type: ignore[union-attr]
    (tmp_path / ".dropbox-mirror" / "index.sqlite3").write_bytes(b"{not a database" * 100)
    with pytest.raises(StateError, match=r"index\.sqlite3.*full_rescan=True"):
        load_state(str(tmp_path))


# -- lock -----------------------------------------------------------------------------------------------
def test_lock_excludes_a_second_run_and_is_released(tmp_path: Path) -> None:
    a = MirrorLock(str(tmp_path))
    a.acquire()
    info = json.loads((tmp_path / "lock").read_text())
    assert info["host"] == socket.gethostname() and info["pid"] == os.getpid()
    with pytest.raises(LockHeldError, match="Another mirror run holds"):
        MirrorLock(str(tmp_path)).acquire()
    b = MirrorLock(str(tmp_path), timeout=2)
    threading.Timer(0.3, a.release).start()
    b.acquire()  # waits for a, then gets it
    b.release()
    assert not (tmp_path / "lock").exists()


def test_heartbeat_keeps_a_long_run_fresh_and_takeover_is_noticed(tmp_path: Path) -> None:
    a = MirrorLock(str(tmp_path), stale_after=0.6, heartbeat=0.1)
    a.acquire()
    time.sleep(1.0)  # longer than stale_after: the heartbeat keeps it fresh
    with pytest.raises(LockHeldError):
        MirrorLock(str(tmp_path), stale_after=0.6).acquire()
    # someone else takes it over (as if our heartbeat had stalled): we notice and refuse to commit
    (tmp_path / "lock").write_text(
        json.dumps({"host": "h2", "pid": 1, "token": "other", "heartbeat": time.time()})
    )
    with pytest.raises(LockLostError):
        a.check()
    a.release()
    assert (tmp_path / "lock").exists()  # the new owner's lock is not removed


@pytest.mark.parametrize("round_", range(10))
def test_only_one_of_many_racers_takes_over_a_stale_lock(tmp_path: Path, round_: int) -> None:
    (tmp_path / "lock").write_text(json.dumps({"host": "gone", "pid": 1, "token": "old", "heartbeat": 0}))
    winners: list[MirrorLock] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        lock = MirrorLock(str(tmp_path), stale_after=60)
        barrier.wait()
        try:
            lock.acquire()
        except LockHeldError:
            return
        winners.append(lock)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert json.loads((tmp_path / "lock").read_text())["token"] == winners[0].token
    winners[0].release()
    assert sorted(os.listdir(tmp_path)) == []
