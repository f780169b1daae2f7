"""The distribution registers as an Airflow provider the way Airflow discovers it (entry point + CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path


def test_entry_point_package_name_matches_the_distribution() -> None:
    dist = distribution("airflow-provider-dropbox")
    (entry,) = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    info = entry.load()()
    assert info["package-name"] == dist.metadata["Name"] == "airflow-provider-dropbox"
    assert info["connection-types"][0]["connection-type"] == "dropbox"


def test_airflow_providers_list_shows_it(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("airflow"))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [exe, "providers", "list", "-o", "plain"], env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr
    assert "airflow-provider-dropbox" in out.stdout
