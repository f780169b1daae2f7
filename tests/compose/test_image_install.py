"""The image's install step, run as the Dockerfile runs it: the files its COPY lines copy, its exact
``pip install`` command with ``AIRFLOW_VERSION`` from the ``FROM`` tag, in a clean virtualenv. No Docker
engine runs here; this is the part of the build that can break on the provider's side (packaging metadata,
a dependency Airflow's pin cannot satisfy, a file the build needs but COPY leaves out)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _airflow_version(dockerfile: str) -> str:
    match = re.search(r"^FROM apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", dockerfile, re.MULTILINE)
    assert match, "FROM line without an Airflow version"
    return match.group(1)


def _copy_like_the_dockerfile(dockerfile: str, root: Path) -> Path:
    """Each ``COPY src... dest`` into ``root`` + dest; returns the install directory (/opt/provider)."""
    for line in dockerfile.splitlines():
        if not line.startswith("COPY"):
            continue
        parts = [p for p in line.split()[1:] if not p.startswith("--")]
        *sources, dest = parts
        target = root / dest.lstrip("/")
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, target if not dest.endswith("/") else target / src.name)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)
    return root / "opt" / "provider"


def _pip_command(dockerfile: str, version: str, root: Path) -> list[str]:
    runs = [line[4:] for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert len(runs) == 1, runs
    command = (
        runs[0].replace("${AIRFLOW_VERSION}", version).replace("/opt/provider", str(root / "opt/provider"))
    )
    return shlex.split(command)


def test_dockerfile_pip_install_step_in_a_clean_virtualenv(tmp_path: Path) -> None:
    dockerfile = DOCKERFILE.read_text()
    version = _airflow_version(dockerfile)
    provider_dir = _copy_like_the_dockerfile(dockerfile, tmp_path / "image")
    assert (provider_dir / "pyproject.toml").is_file()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    command = _pip_command(dockerfile, version, tmp_path / "image")
    assert command[:2] == ["pip", "install"]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    run = subprocess.run(
        [str(python), "-m", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, airflow_provider_dropbox as p;"
            "print(m.version('apache-airflow'));"
            "print([e.value for e in m.entry_points(group='apache_airflow_provider')"
            " if e.value.startswith('airflow_provider_dropbox')])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    airflow_version, entry = check.stdout.splitlines()[:2]
    assert airflow_version == version  # the pin held: the provider did not move Airflow
    assert "airflow_provider_dropbox" in entry  # registered as an Airflow provider
