"""Focused runs: look only where something changed, so a run's cost follows the changes, not the tree.

The caller names the local paths that changed (a local-folder watcher's events); Dropbox's changes come
from the cursor. A focused run reads the index rows and walks the local subtrees of those paths only.
A changed path whose folder is new, gone or no longer a folder widens to that folder (a moved or deleted
folder is then seen whole). Named paths are kept in the index until a run ends cleanly, so a failed or
killed run's paths are looked at again by the next one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from airflow_provider_dropbox.casefold import path_key
from airflow_provider_dropbox.sync.errors import MirrorConfigError
from airflow_provider_dropbox.sync.two_way.index import SyncIndex
from airflow_provider_dropbox.sync.two_way.scan import outermost

PENDING = "local_pending"  # meta key: JSON list of local paths named but not yet synced, or "*" (walk all)
PENDING_LIMIT = 10_000  # beyond this many, the next run walks the whole folder instead


def check_local_changes(paths: Iterable[str]) -> list[str]:
    """Relative, "/"-separated paths inside the local folder; anything else is refused up front."""
    if isinstance(paths, str):
        raise MirrorConfigError(f"local_changes={paths!r}: pass a list of paths relative to the local folder")
    out: list[str] = []
    for p in paths:
        parts = str(p).replace(os.sep, "/").strip("/").split("/") if isinstance(p, str) else None
        if parts is None or os.path.isabs(p) or any(x in ("", ".", "..") for x in parts):
            raise MirrorConfigError(
                f"local_changes holds {p!r}: each entry must be a path relative to the local folder, without "
                "'..' or empty parts (as the local-folder watcher's events give them)"
            )
        out.append("/".join(parts))
    return out


def pending(meta: dict[str, str]) -> list[str] | None:
    """Paths an earlier run was told about and did not finish; ``None``: walk the whole folder."""
    raw = meta.get(PENDING)
    if not raw:
        return []
    if raw == "*":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return [str(p) for p in value] if isinstance(value, list) else None


def remember(index: SyncIndex, paths: list[str] | None) -> None:
    """Record the paths this run looks at before it changes anything (``None``: walk all next time)."""
    if paths is None or len(paths) > PENDING_LIMIT:
        index.write(meta={PENDING: "*"})
    elif paths:
        index.write(meta={PENDING: json.dumps(sorted(set(paths)))})


def scope(index: SyncIndex, root: str, local_paths: Iterable[str], remote_keys: Iterable[str]) -> list[str]:
    """Keys of the subtrees a focused run looks at: each changed path, widened to its outermost folder
    that is new, gone or no longer a folder on the local disk or in the index."""
    keys = set(remote_keys)
    known: dict[str, bool] = {}  # folder key -> the index and the disk both have it as a folder
    for rel in local_paths:
        parts = rel.split("/")
        top = len(parts)
        for i in range(1, len(parts)):
            key = path_key("/".join(parts[:i]))
            if key not in known:
                row = index.get(key)
                where = os.path.join(root, *parts[:i])
                known[key] = (
                    row is not None and row.is_dir and os.path.isdir(where) and not os.path.islink(where)
                )
            if not known[key]:
                top = i
                break
        keys.add(path_key("/".join(parts[:top])))
    return outermost(keys)
