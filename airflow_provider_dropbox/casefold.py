"""How Dropbox compares names: Unicode NFC, then case folding by older Unicode rules.

The one place the product (client, sync, operators, triggers) and the emulator fold a name. Dropbox
lower-cases with Python 2.5-era rules (Unicode 4.1, simple one-to-one mappings), as maestral documents in
``src/maestral/utils/path.py`` (``normalize``); docs/emulator.md lists the rule and examples. Prefer the
server's ``path_lower`` where a listing or metadata gives one; fold only paths a user typed."""

from __future__ import annotations

import unicodedata

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


def path_key(path: str) -> str:
    """The key Dropbox compares paths by (its ``path_lower``): Unicode NFC, then Dropbox's case folding.

    Use a server's ``path_lower`` where one is at hand; this is for keys of paths a user typed."""
    return fold_case(unicodedata.normalize("NFC", path))
