"""Soak: random concurrent writes while a follower applies list_folder/continue pages by the documented rules.

At the end the follower's model must equal a fresh recursive listing, item for item (ids, revs, hashes).
This checks the journal as a whole: one deleted entry per subtree, moves as delete + adds, paging, and
parents before children, under concurrent writers.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from tests.emulator.helpers import Api

ROOT = "/soak"
NAMES = ["a", "B", "c"]


def _random_path(rng: random.Random) -> str:
    depth = rng.randint(1, 3)
    return ROOT + "".join("/" + rng.choice(NAMES) for _ in range(depth))


def _writer(api: Api, seed: int, ops: int) -> None:
    rng = random.Random(seed)
    for i in range(ops):
        op = rng.random()
        p = _random_path(rng)
        if op < 0.4:
            mode = rng.choice(["add", "overwrite"])
            api.upload_raw("files/upload", {"path": p + ".txt", "mode": mode}, f"{seed}-{i}".encode())
        elif op < 0.55:
            api.rpc("files/create_folder_v2", {"path": p})
        elif op < 0.7:
            api.rpc("files/delete_v2", {"path": p})
        elif op < 0.85:
            api.rpc(
                "files/move_v2",
                {"from_path": p, "to_path": _random_path(rng), "autorename": rng.random() < 0.5},
            )
        else:
            api.rpc("files/copy_v2", {"from_path": p, "to_path": _random_path(rng)})


def _apply(model: dict[str, dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    """The list_folder processing contract from the API docs."""
    for e in entries:
        key = e["path_lower"]
        parts = key.split("/")
        for i in range(2, len(parts)):
            model.setdefault("/".join(parts[:i]), {".tag": "folder", "implicit": True})
        if e[".tag"] == "deleted":
            for k in [k for k in model if k == key or k.startswith(key + "/")]:
                del model[k]
        elif e[".tag"] == "file":
            for k in [k for k in model if k.startswith(key + "/")]:
                del model[k]
            model[key] = e
        else:
            model[key] = e


def test_follower_converges_to_listing(faulty_api: Api) -> None:
    api = faulty_api
    api.mkdir(ROOT)
    res = api.ok("files/list_folder", {"path": ROOT, "recursive": True, "limit": 3})
    model: dict[str, dict[str, Any]] = {}
    _apply(model, res["entries"])
    cursor = res["cursor"]
    writers = [Api(api.emu, token=api.token) for _ in range(3)]
    threads = [threading.Thread(target=_writer, args=(w, seed, 60)) for seed, w in enumerate(writers)]
    for t in threads:
        t.start()
    follows = 0
    while any(t.is_alive() for t in threads) or follows == 0:
        page = api.ok("files/list_folder/continue", {"cursor": cursor})
        _apply(model, page["entries"])
        cursor = page["cursor"]
        follows += 1
    for t in threads:
        t.join()
    while True:
        page = api.ok("files/list_folder/continue", {"cursor": cursor})
        _apply(model, page["entries"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    truth, _ = api.list_all(ROOT, recursive=True)
    expected = {e["path_lower"]: e for e in truth}
    assert sorted(model) == sorted(expected)
    for key, e in expected.items():
        got = model[key]
        assert got.get("implicit") is None, f"{key} never listed explicitly"
        assert (got[".tag"], got.get("id"), got.get("rev"), got.get("content_hash")) == (
            e[".tag"],
            e.get("id"),
            e.get("rev"),
            e.get("content_hash"),
        ), key
