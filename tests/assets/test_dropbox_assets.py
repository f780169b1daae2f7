"""``dropbox://`` asset URIs: validation and normalisation, factory, OpenLineage conversion, registration."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from airflow.sdk import Asset

from airflow_provider_dropbox.assets.dropbox import (
    convert_asset_to_openlineage,
    create_asset,
    normalize_path,
    sanitize_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param(
            "dropbox://dropbox_default/Inbox/Report.CSV",
            "dropbox://dropbox_default/inbox/report.csv",
            id="case",
        ),
        pytest.param("dropbox://conn/a//b/", "dropbox://conn/a/b", id="slashes"),
        pytest.param(
            "dropbox://conn@/Folder/x.csv", "dropbox://conn/folder/x.csv", id="objectstorage-spelling"
        ),
        pytest.param("dropbox://conn", "dropbox://conn/", id="root"),
        pytest.param("dropbox://conn/My%20Files/a b.txt", "dropbox://conn/my%20files/a%20b.txt", id="spaces"),
        pytest.param("dropbox://conn/x?b=2&a=1#frag", "dropbox://conn/x", id="query-fragment"),
    ],
)
def test_sanitize_uri_normalises(uri: str, expected: str) -> None:
    assert urllib.parse.urlunsplit(sanitize_uri(urllib.parse.urlsplit(uri))) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("dropbox:///folder/file", "must contain a connection id", id="no-conn"),
        pytest.param("dropbox://user:pw@host/x", "only the connection id", id="userinfo"),
        pytest.param("dropbox://bad conn/x", "may contain only", id="bad-conn-id"),
        pytest.param("dropbox://conn/a/../b", "must not contain '..'", id="dotdot"),
    ],
)
def test_sanitize_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sanitize_uri(urllib.parse.urlsplit(uri))


def test_nfc_and_case_make_one_asset() -> None:
    decomposed = "/Cafe\u0301/X.csv"
    assert normalize_path(decomposed) == "/caf\u00e9/x.csv"


def test_provider_handler_normalises_assets_in_dags() -> None:
    """Registered through provider info ``asset-uris``: Asset() itself applies it at parse time."""
    assert Asset("dropbox://dropbox_default/Inbox/").uri == "dropbox://dropbox_default/inbox"
    with pytest.raises(ValueError, match="connection id"):
        Asset("dropbox:///Inbox")


def test_create_asset() -> None:
    asset = create_asset(path="/Reports/Q1.csv", conn_id="team", extra={"k": "v"})
    assert asset.uri == "dropbox://team/reports/q1.csv"
    assert asset.extra == {"k": "v"}


def test_convert_asset_to_openlineage(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.openlineage.facet as facet

    class Dataset:
        def __init__(self, namespace: str, name: str) -> None:
            self.namespace, self.name = namespace, name

    monkeypatch.setattr(facet, "Dataset", Dataset, raising=False)
    ol: Any = convert_asset_to_openlineage(Asset("dropbox://team/My%20Files/a.csv"), None)
    assert (ol.namespace, ol.name) == ("dropbox://team", "/my files/a.csv")


def test_provider_info_registers_everything() -> None:
    from airflow_provider_dropbox.get_provider_info import get_provider_info

    info = get_provider_info()
    modules = {k: info[k][0]["python-modules"] for k in ("operators", "sensors", "triggers")}
    assert modules == {
        "operators": [
            "airflow_provider_dropbox.operators.dropbox",
            "airflow_provider_dropbox.operators.mirror",
            "airflow_provider_dropbox.operators.two_way",
            "airflow_provider_dropbox.operators.dropbox_extra",
        ],
        "sensors": ["airflow_provider_dropbox.sensors.dropbox"],
        "triggers": [
            "airflow_provider_dropbox.triggers.dropbox",
            "airflow_provider_dropbox.triggers.local_folder",
        ],
    }
    assert info["filesystems"] == ["airflow_provider_dropbox.fs.dropbox"]
    (uris,) = info["asset-uris"]
    assert uris["schemes"] == ["dropbox"] and uris["handler"].endswith("sanitize_uri")


# -- a literal '%' in a Dropbox name stays distinct --------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "other"),
    [
        pytest.param("/a%20b.csv", "/a b.csv", id="encoded-space"),
        pytest.param("/x%41.csv", "/xa.csv", id="encoded-letter"),
        pytest.param("/x%41.csv", "/xA.csv", id="encoded-letter-upper"),
        pytest.param("/d%2Fe.csv", "/d/e.csv", id="encoded-slash"),
        pytest.param("/p%25q.csv", "/p%q.csv", id="encoded-percent"),
        pytest.param("/r%2E%2E/s", "/r../s", id="encoded-dots"),
    ],
)
def test_percent_in_dropbox_names_stays_distinct(literal: str, other: str) -> None:
    assert create_asset(path=literal).uri != create_asset(path=other).uri
    assert normalize_path(literal) != normalize_path(other)


@pytest.mark.parametrize(
    "path", ["/a%20b.csv", "/x%41.csv", "/100%.csv", "/%", "/a b/c%2Fd", "/Ünï%C3%BC/ÿ.txt", "/p%25q"]
)
def test_percent_round_trips(path: str) -> None:
    """Dropbox path -> URI -> handler -> OpenLineage name gives the path back; the handler is idempotent."""
    uri = create_asset(path=path).uri
    assert "%25" in uri  # the literal '%' is encoded, not taken as an escape
    again = urllib.parse.urlunsplit(sanitize_uri(urllib.parse.urlsplit(uri)))
    assert again == uri
    assert Asset(uri=uri).uri == uri
    decoded = urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    assert decoded == normalize_path(path)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        pytest.param("dropbox://c/a%20b.csv", "/a b.csv", id="uri-escape-is-a-space"),
        pytest.param("dropbox://c/a%2520b.csv", "/a%20b.csv", id="uri-escaped-percent"),
        pytest.param("dropbox://c/x%41.csv", "/xA.csv", id="uri-escape-is-a-letter"),
    ],
)
def test_uri_escapes_decode_once(uri: str, path: str) -> None:
    """A hand-written URI is decoded exactly once: it names the same asset as create_asset(path)."""
    assert Asset(uri=uri).uri == create_asset(path=path, conn_id="c").uri
