"""The package's layers, read from the import statements: the HTTP client, the sync engines, the name
folding and the local folder watching stay free of Airflow; operators, sensors and triggers reach the
client only for its error types; no module imports another package's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "airflow_provider_dropbox"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import in ``path``, relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append((module, [alias.name for alias in node.names]))
    return out


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PKG / folder).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(PKG))


@pytest.mark.parametrize(
    "path",
    [*_modules("client", "sync"), *(PKG / m for m in ("casefold.py", "localwatch.py", "folderwatch.py"))],
    ids=_name,
)
def test_client_and_sync_never_import_airflow(path: Path) -> None:
    bad = [m for m, _ in _imports(path) if m == "airflow" or m.startswith("airflow.")]
    assert not bad, f"{path.relative_to(PKG)} imports {bad}: keep Airflow out of the client and the engines"


@pytest.mark.parametrize("path", _modules("operators", "sensors", "triggers"), ids=_name)
def test_airflow_layer_uses_the_client_only_for_errors(path: Path) -> None:
    bad = [
        m
        for m, _ in _imports(path)
        if m.startswith("airflow_provider_dropbox.client") and m != "airflow_provider_dropbox.client.errors"
    ]
    assert not bad, f"{path.relative_to(PKG)} imports {bad}: call the hook instead"


@pytest.mark.parametrize("path", _modules("."), ids=_name)
def test_no_private_names_from_another_package(path: Path) -> None:
    own = ".".join(path.relative_to(PKG.parent).parts[:2])
    bad = [
        f"{m}.{name}"
        for m, names in _imports(path)
        if m.startswith("airflow_provider_dropbox") and not m.startswith(own)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not bad, f"{path.relative_to(PKG)} imports private names {bad}"
