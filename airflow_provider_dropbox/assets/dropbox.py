"""``dropbox://`` asset URIs: ``dropbox://<conn_id>/<path>``.

Dropbox paths are case-insensitive, so two spellings of one folder must be one asset: the handler
normalises the path like Dropbox's ``path_lower`` (Unicode NFC, then lower case). The ObjectStoragePath
spelling ``dropbox://<conn_id>@/<path>`` is accepted too and rewritten to the canonical form.

Dropbox names may contain ``%``. A Dropbox path is never percent-decoded (``normalize_path``); it is
percent-encoded, ``%`` included, when a URI is built from it (``create_asset``), and a URI path is decoded
exactly once (``sanitize_uri``). So ``/a%20b.csv`` and ``/a b.csv`` stay two assets, and the canonical
form is a fixed point of the handler.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
import urllib.parse
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

if TYPE_CHECKING:
    from urllib.parse import SplitResult

SCHEME = "dropbox"
_CONN_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def normalize_path(path: str) -> str:
    """Dropbox-style ``path_lower``: ``/``-rooted, no trailing or doubled slashes, NFC, lower case.

    ``path`` is a Dropbox path, not a URI path: a ``%`` in it is part of the name and is kept.
    """
    path = unicodedata.normalize("NFC", path or "/")
    if "\\" in path:
        raise ValueError(f"Dropbox path {path!r} must use '/' separators")
    if ".." in path.split("/"):
        raise ValueError(f"Dropbox path {path!r} must not contain '..'")
    path = posixpath.normpath("/" + path.lstrip("/"))
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path.lower()


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Validate and normalise a ``dropbox://conn_id/path`` URI (Airflow's ``asset-uris`` handler)."""
    netloc = uri.netloc
    if netloc.endswith("@"):  # ObjectStoragePath spelling: dropbox://conn_id@/path
        netloc = netloc[:-1]
    if "@" in netloc or ":" in netloc:
        raise ValueError(
            f"dropbox:// URI {urllib.parse.urlunsplit(uri)!r}: put only the connection id before the path"
        )
    if not netloc:
        raise ValueError(
            "URI format dropbox:// must contain a connection id, e.g. dropbox://dropbox_default/folder/file.csv"
        )
    if not _CONN_ID_RE.match(netloc):
        raise ValueError(
            f"dropbox:// URI connection id {netloc!r} may contain only letters, digits, '_', '-', '.'"
        )
    path = _quote(normalize_path(urllib.parse.unquote(uri.path)))
    return uri._replace(netloc=netloc, path=path, query="", fragment="")


def create_asset(
    *, path: str, conn_id: str = "dropbox_default", extra: dict[str, Any] | None = None
) -> Asset:
    """Build the asset for a Dropbox path; used by hook lineage (``add_input_asset(scheme="dropbox")``)."""
    return Asset(uri=f"{SCHEME}://{conn_id}{_quote(normalize_path(path))}", extra=extra)


def _quote(path: str) -> str:
    """Percent-encode a normalised Dropbox path for a URI; ``%`` itself becomes ``%25``."""
    return urllib.parse.quote(path, safe="/")


def asset_uri(path: str, conn_id: str = "dropbox_default") -> str:
    """Canonical URI string for ``path`` (what ``create_asset`` and operator lineage use)."""
    return create_asset(path=path, conn_id=conn_id).uri


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """OpenLineage dataset: namespace ``dropbox://<conn_id>``, name = the Dropbox path."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    parsed = urllib.parse.urlsplit(asset.uri)
    return OpenLineageDataset(namespace=f"{SCHEME}://{parsed.netloc}", name=urllib.parse.unquote(parsed.path))
