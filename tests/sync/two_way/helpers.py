"""Shared by the two-way tests: the Dropbox folder they sync and ways to read and write both sides."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_dropbox.client import DropboxClient
from tests.sync.conftest import local_hash_tree, remote_tree

ROOT = "/Two Way"


def put(client: DropboxClient, tmp: Path, rel: str, data: bytes) -> None:
    src = tmp / f"up-{abs(hash(rel))}"
    src.write_bytes(data)
    client.upload_file(src, f"{ROOT}/{rel}", mode="overwrite")


def remote_bytes(client: DropboxClient, tmp: Path, rel: str) -> bytes:
    out = tmp / f"down-{abs(hash(rel))}"
    client.download_file(f"{ROOT}/{rel}", out)
    return out.read_bytes()


def local_files(dest: Path) -> dict[str, bytes]:
    out = {}
    for p in dest.rglob("*"):
        rel = p.relative_to(dest).as_posix()
        if p.is_file() and not rel.startswith(".dropbox-sync"):
            out[rel] = p.read_bytes()
    return out


def same_trees(client: DropboxClient, dest: Path) -> None:
    local = {k: v for k, v in local_hash_tree(dest).items() if not k.startswith(".dropbox-sync")}
    assert local == remote_tree(client, ROOT)
