"""Path rules: case-insensitive keys (NFC + Dropbox's case folding), validation, autorename names."""

from __future__ import annotations

from airflow_provider_dropbox.casefold import fold_case, path_key

WRITE_PATH_PATTERN = r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)"
WRITE_PATH_OR_ID_PATTERN = r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)|(id:.*)"
PATH_OR_ID_PATTERN = r"/(.|[\r\n])*|id:.*|(ns:[0-9]+(/(.|[\r\n])*)?)"
READ_PATH_PATTERN = r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/(.|[\r\n])*)?)"
LIST_PATH_PATTERN = r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/(.|[\r\n])*)?)"

# Names the Dropbox desktop client ignores; the API refuses them with ``disallowed_name``.
DISALLOWED_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store", "icon\r", ".dropbox", ".dropbox.attr"})


norm = path_key
__all__ = ["fold_case", "norm"]


def malformed_reason(path: str) -> str | None:
    """Why an absolute ``/a/b`` path is malformed, or None when it is fine."""
    if not path.startswith("/"):
        return "path must start with '/'"
    if path.endswith("/"):
        return "path must not end with '/'"
    for comp in path[1:].split("/"):
        if comp == "":
            return "path has an empty component"
        if comp in (".", ".."):
            return "path has a '.' or '..' component"
        if comp != comp.rstrip(" \t\n"):
            return "path component ends with whitespace"
        if "\\" in comp:
            return "path component contains '\\'"
        if len(comp) > 255:
            return "path component is longer than 255 characters"
        if "\x00" in comp or "\x7f" in comp:
            return "path component contains NUL or DEL"
    return None


def is_disallowed(name: str) -> bool:
    return name.lower() in DISALLOWED_NAMES


def parent_key(key: str) -> str:
    return key.rsplit("/", 1)[0]


def basename(path: str) -> str:
    return path.rsplit("/", 1)[1]


def sort_key(key: str) -> str:
    """Depth-first order (every parent before its children): components compared one by one, which is plain
    string order once ``/`` becomes a character below any a name may hold (NUL is refused in names)."""
    return key.replace("/", "\x00")


def numbered_name(name: str, n: int, is_file: bool, label: str = "") -> str:
    """``doc.txt`` -> ``doc (1).txt`` (or ``doc (conflicted copy).txt`` when a label is given)."""
    stem, ext = name, ""
    if is_file and "." in name.lstrip("."):
        dot = name.rfind(".")
        stem, ext = name[:dot], name[dot:]
    if label:
        inner = label if n == 0 else f"{label} {n}"
    else:
        inner = str(n)
    return f"{stem} ({inner}){ext}"
