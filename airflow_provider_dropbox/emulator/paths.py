"""Path rules: case-insensitive keys (NFC + Dropbox's case folding), validation, autorename names."""

from __future__ import annotations

import unicodedata

WRITE_PATH_PATTERN = r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)"
WRITE_PATH_OR_ID_PATTERN = r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)|(id:.*)"
PATH_OR_ID_PATTERN = r"/(.|[\r\n])*|id:.*|(ns:[0-9]+(/(.|[\r\n])*)?)"
READ_PATH_PATTERN = r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/(.|[\r\n])*)?)"
LIST_PATH_PATTERN = r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/(.|[\r\n])*)?)"

# Names the Dropbox desktop client ignores; the API refuses them with ``disallowed_name``.
DISALLOWED_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store", "icon\r", ".dropbox", ".dropbox.attr"})


# Case pairs Unicode 4.0 and 4.1 added (absent from the Unicode 3.2 table Python still ships): Greek
# U+03F7/9/A, Latin U+023B and U+023D, Georgian Asomtavruli, Glagolitic and Coptic capitals.
_CASED_IN_4_1 = ((0x03F7, 0x03FA), (0x023B, 0x023B), (0x023D, 0x023D), (0x10A0, 0x10C5), (0x2C00, 0x2C2E))
_COPTIC_4_1 = (0x2C80, 0x2CE3)
_fold_cache: dict[str, str] = {}


def _fold_char(c: str) -> str:
    """One code point, lower-cased the way Python 2.5 (Unicode 4.1, simple one-to-one mappings) did.

    Simple mappings only: no final sigma (capital sigma is always U+03C3), U+0130 (dotted capital I) gives
    one ``i`` (not ``i`` + U+0307). A pair counts only if both code points existed in Unicode 4.1,
    approximated as: both in the Unicode 3.2 table (``unicodedata.ucd_3_2_0``) or a pair 4.0/4.1 added. So
    U+A64A (5.1), U+1E9E capital sharp s (5.1) and Cherokee capitals (small letters 8.0) stay as they are."""
    low = c.lower()
    if low == c:
        return c
    low = low[0]  # only U+0130 has a longer (SpecialCasing) lower-case; its simple mapping is "i"
    cp = ord(c)
    if any(lo <= cp <= hi for lo, hi in _CASED_IN_4_1) or _COPTIC_4_1[0] <= cp <= _COPTIC_4_1[1]:
        return low
    old = unicodedata.ucd_3_2_0
    if old.category(c) == "Cn" or old.category(low) == "Cn":
        return c
    return low


def fold_case(text: str) -> str:
    """Dropbox's case folding of an (NFC) string: older Unicode rules, code point by code point."""
    if text.isascii():
        return text.lower()
    out = []
    for c in text:
        low = _fold_cache.get(c)
        if low is None:
            low = _fold_cache[c] = _fold_char(c)
        out.append(low)
    return "".join(out)


def norm(path: str) -> str:
    """The lookup key of a path (Dropbox's ``path_lower``): Unicode NFC, then Dropbox's case folding."""
    return fold_case(unicodedata.normalize("NFC", path))


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
