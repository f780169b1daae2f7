"""The built sdist and wheel, and the wheel installed alone into clean virtualenvs (scripts/check_release.sh).

Each virtualenv holds only the wheel, Airflow and their pinned dependencies: no checkout on ``sys.path``, no
dev extra. The checks run in that virtualenv's own interpreter and CLIs, the way a user's Airflow sees it.
"""

from __future__ import annotations

import ast
import configparser
import email
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENVS = ["airflow-3.3", "airflow-3.2", "py310"]
sys.path.insert(0, str(ROOT / "scripts"))
import seed_demo  # noqa: E402

# Pages other branches are writing at the same time; the README links them already.
WRITTEN_ELSEWHERE = {"docs/testing-your-dags.md"}
DEV = {"app_key": "dev-app-key", "app_secret": "dev-app-secret", "refresh_token": "dev-refresh-token"}


def source_version() -> str:
    tree = ast.parse((ROOT / "airflow_provider_dropbox" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            return str(ast.literal_eval(node.value))
    raise AssertionError("no __version__ in airflow_provider_dropbox/__init__.py")


def dist_file(release_dir: Path, suffix: str) -> Path:
    (found,) = sorted((release_dir / "dist").glob(f"*{suffix}"))
    return found


def venv_dir(release_dir: Path, name: str) -> Path:
    path = release_dir / name
    if name == "py310" and not path.exists():
        pytest.skip("no Python 3.10 on this machine (check_release.sh printed why)")
    assert (path / "bin" / "python").exists(), f"{path} was not built by scripts/check_release.sh"
    return path


def venv_env(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """The user's view: only the virtualenv on PATH, nothing of this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
    )
    env.update(extra)
    return env


def run(venv: Path, home: Path, *cmd: str, timeout: float = 300, **extra: str) -> str:
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        list(cmd),
        cwd=home,
        env=venv_env(venv, home, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


# Never shipped: caches, virtualenvs, build output, results, databases, logs (and tests: docs/development.md).
PRIVATE = re.compile(
    r"(^|/)(\.venv|tests|__pycache__|\.mypy_cache|\.ruff_cache|build|dist|demo-output|artifacts)/"
    r"|\.(pyc|db|sqlite|sqlite3|log)$"
)


# -- the distributions -------------------------------------------------------------------------------------


def test_wheel_holds_the_package_typing_marker_license_and_entry_points(release_dir: Path) -> None:
    wheel = dist_file(release_dir, ".whl")
    version = source_version()
    assert wheel.name == f"airflow_provider_dropbox-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"airflow_provider_dropbox-{version}.dist-info"
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
        license_text = zf.read(f"{info}/licenses/LICENSE").decode()
    assert "airflow_provider_dropbox/py.typed" in names
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "airflow_provider_dropbox").rglob("*.py")}
    assert package <= names, sorted(package - names)
    assert not [n for n in names if not n.startswith(("airflow_provider_dropbox/", info))]
    assert not [n for n in names if PRIVATE.search(n)]  # e.g. an emulator database left in the package
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.read_string(entry_points)
    assert (
        eps["apache_airflow_provider"]["provider_info"]
        == "airflow_provider_dropbox.get_provider_info:get_provider_info"
    )
    assert eps["console_scripts"]["airflow-dropbox-auth"] == "airflow_provider_dropbox.auth_cli:cli"
    assert eps["fsspec.specs"]["dropbox"] == "airflow_provider_dropbox.fs.dropbox:DropboxFileSystem"


def test_metadata_names_one_version_python_range_license_and_absolute_readme_links(release_dir: Path) -> None:
    with zipfile.ZipFile(dist_file(release_dir, ".whl")) as zf:
        meta = email.message_from_bytes(
            zf.read(f"airflow_provider_dropbox-{source_version()}.dist-info/METADATA")
        )
    assert meta["Name"] == "airflow-provider-dropbox"
    assert meta["Version"] == source_version()
    assert meta["Requires-Python"] == ">=3.10"
    assert "Programming Language :: Python :: 3.10" in meta.get_all("Classifier", [])
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
    assert meta["License-File"] == "LICENSE"
    assert meta["Description-Content-Type"] == "text/markdown"
    runtime = sorted(r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r)
    assert runtime == ["apache-airflow>=3.2", "requests>=2.31", "tenacity>=8.2"]
    readme = meta.get_payload()
    assert readme.strip() == (ROOT / "README.md").read_text().strip()
    # On a package index the README has no repository around it: every link and image must be absolute.
    targets = re.findall(r"\]\(([^)\s]+)", readme) + re.findall(r'src="([^"]+)"', readme)
    assert targets, "README links not found"
    relative = [t for t in targets if not t.startswith(("https://", "http://"))]  # "#x" has no target there
    assert not relative, relative
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL", []))
    assert urls["Source"].startswith("https://github.com/")
    assert urls["Changelog"] == f"{urls['Source']}/blob/main/CHANGELOG.md"
    # Links into the repository name files that exist (a moved doc would 404 on the package index).
    into_repo = [
        re.split(r"[?#]", t.split("/main/", 1)[1])[0] for t in targets if t.startswith(urls["Source"] + "/")
    ]
    assert len(into_repo) > 10
    missing = [t for t in into_repo if t and not (ROOT / t).exists() and t not in WRITTEN_ELSEWHERE]
    assert not missing, missing


def test_sdist_rebuilds_and_holds_nothing_private(release_dir: Path) -> None:
    sdist = dist_file(release_dir, ".tar.gz")
    top = f"airflow_provider_dropbox-{source_version()}/"
    with tarfile.open(sdist) as tf:
        names = {m.name.removeprefix(top) for m in tf.getmembers() if m.isfile()}
    for needed in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "PKG-INFO",
        "dags/dropbox_mirror.py",
    ):
        assert needed in names, needed
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "airflow_provider_dropbox").rglob("*.py")}
    assert package <= names, sorted(package - names)
    assert "airflow_provider_dropbox/py.typed" in names
    allowed = ("airflow_provider_dropbox/", "dags/", "docs/")
    loose = {"pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO"}
    assert not [n for n in names if n not in loose and not n.startswith(allowed)]
    # Tests stay in the repository (docs/development.md); no caches, virtualenvs, results, databases.
    assert not [n for n in names if PRIVATE.search(n)]


# -- the wheel installed alone -----------------------------------------------------------------------------

REGISTRATION = r"""
import importlib, inspect, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
import airflow, airflow_provider_dropbox
from airflow.providers_manager import ProvidersManager

DIST = "airflow-provider-dropbox"
pm = ProvidersManager()
info = pm.providers[DIST]
hook = pm.hooks["dropbox"]
pkg = airflow_provider_dropbox
modules = sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, "airflow_provider_dropbox."))
# Every module imports with only the wheel's declared dependencies; the pytest plugin is loaded by pytest,
# which a user running it has (it is not a runtime dependency).
TEST_ONLY = {"airflow_provider_dropbox.testing.pytest_plugin"}
for name in modules:
    if name not in TEST_ONLY:
        importlib.import_module(name)

def classes(kind):
    found = []
    for entry in info.data.get(kind, []):
        for mod in entry["python-modules"]:
            members = inspect.getmembers(importlib.import_module(mod), inspect.isclass)
            found += [f"{mod}.{n}" for n, c in members if c.__module__ == mod]
    return found

import fsspec
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "airflow": airflow.__version__,
    "package_file": airflow_provider_dropbox.__file__,
    "version": info.version,
    "hook": [hook.hook_class_name, hook.connection_testable, hook.connection_id_attribute_name],
    "field_behaviours": pm.field_behaviours.get("dropbox"),
    "operators": classes("operators"),
    "sensors": classes("sensors"),
    "triggers": sorted(t.trigger_class_name for t in pm.trigger if t.package_name == DIST),
    "asset": [getattr(f, "__name__", None) for f in (pm.asset_uri_handlers.get("dropbox"),
              pm.asset_factories.get("dropbox"), pm.asset_to_openlineage_converters.get("dropbox"))],
    "filesystems": [m for m in pm.filesystem_module_names if "dropbox" in m],
    "fsspec": fsspec.get_filesystem_class("dropbox").__module__,
    "modules": len(modules),
}))
"""


@pytest.fixture(scope="module", params=VENVS)
def installed(
    request: pytest.FixtureRequest, release_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    name = request.param
    yield name, venv_dir(release_dir, name), tmp_path_factory.mktemp(f"home-{name}")


def test_airflow_providers_list_shows_the_wheel(installed: tuple[str, Path, Path]) -> None:
    _, venv, home = installed
    rows = json.loads(run(venv, home, "airflow", "providers", "list", "-o", "json"))
    (row,) = [r for r in rows if r["package_name"] == "airflow-provider-dropbox"]
    assert row["version"] == source_version()


def test_provider_manager_registers_every_part(installed: tuple[str, Path, Path]) -> None:
    name, venv, home = installed
    got = json.loads(run(venv, home, "python", "-c", REGISTRATION).strip().splitlines()[-1])
    assert got["package_file"].startswith(str(venv)), got["package_file"]  # the wheel, not this checkout
    assert got["airflow"] == {"airflow-3.3": "3.3.2", "airflow-3.2": "3.2.2", "py310": "3.3.2"}[name]
    assert got["python"] == ("3.10" if name == "py310" else "3.11")
    assert got["version"] == source_version()
    assert got["hook"] == ["airflow_provider_dropbox.hooks.dropbox.DropboxHook", True, "dropbox_conn_id"]
    assert got["field_behaviours"]["relabeling"]["login"] == "App key"
    prefix = "airflow_provider_dropbox.operators."
    for op in (
        "DropboxUploadOperator",
        "DropboxChunkedUploadOperator",
        "DropboxDownloadOperator",
        "DropboxDeleteOperator",
        "DropboxCreateFolderOperator",
        "DropboxMoveOperator",
        "DropboxCopyOperator",
        "DropboxCreateSharedLinkOperator",
    ):
        assert f"{prefix}dropbox.{op}" in got["operators"], op
    assert f"{prefix}mirror.DropboxMirrorOperator" in got["operators"]
    assert f"{prefix}two_way.DropboxTwoWaySyncOperator" in got["operators"]
    assert "airflow_provider_dropbox.sensors.dropbox.DropboxChangeSensor" in got["sensors"]
    assert got["triggers"] == [
        "airflow_provider_dropbox.triggers.dropbox",
        "airflow_provider_dropbox.triggers.local_folder",
    ]
    assert got["asset"] == ["sanitize_uri", "create_asset", "convert_asset_to_openlineage"]
    assert got["filesystems"] == ["airflow_provider_dropbox.fs.dropbox"]
    assert got["fsspec"] == "airflow_provider_dropbox.fs.dropbox"
    assert got["modules"] > 40


def test_the_two_command_line_tools_run(installed: tuple[str, Path, Path]) -> None:
    _, venv, home = installed
    emulator = run(venv, home, "python", "-m", "airflow_provider_dropbox.emulator", "--help")
    assert "--data-dir" in emulator and "emulator" in emulator
    auth = run(venv, home, "airflow-dropbox-auth", "--help")
    assert "--app-key" in auth


LOCAL_WATCH = r"""
import asyncio, pathlib, sys, tempfile
from airflow_provider_dropbox.triggers.local_folder import LocalFolderChangeTrigger

async def main():
    folder = pathlib.Path(tempfile.mkdtemp())
    trigger = LocalFolderChangeTrigger(path=str(folder), settle_seconds=0.3, poll_interval=30)
    events = trigger.run()
    first = asyncio.ensure_future(events.__anext__())
    while not trigger._started:
        await asyncio.sleep(0.01)
    (folder / "a.txt").write_text("a")
    print(sorted((await asyncio.wait_for(first, 20)).payload["changed"]))
    await events.aclose()

asyncio.run(main())
"""


def test_the_local_folder_trigger_waits_out_its_debounce_on_every_python(
    installed: tuple[str, Path, Path],
) -> None:
    """The inotify watch waits for a file's quiet time with ``asyncio.wait_for``, whose timeout is not the
    builtin ``TimeoutError`` before Python 3.11: the wheel's trigger must report the file on 3.10 too."""
    _, venv, home = installed
    assert run(venv, home, "python", "-c", LOCAL_WATCH, timeout=120).strip().splitlines()[-1] == "['a.txt']"


DOC_BLOCKS = r"""
import pathlib, re, sys, traceback
failed = 0
for page in sys.argv[1:]:
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", pathlib.Path(page).read_text(), re.S)):
        try:
            code = compile(block, f"{page} python block {i + 1}", "exec")
            exec(code, {"__name__": "docs_block", "__file__": page})
        except Exception:
            failed += 1
            traceback.print_exc()
        print(page, i + 1, flush=True)
sys.exit(1 if failed else 0)
"""
USER_PAGES = [
    "README.md",
    "docs/connection.md",
    "docs/operators/transfer.md",
    "docs/operators/file-operations.md",
    "docs/sensors-and-triggers.md",
    "docs/assets-and-object-storage.md",
]


def test_every_python_block_of_the_user_guides_runs(installed: tuple[str, Path, Path]) -> None:
    """Each snippet builds its operators, sensors, assets and DAGs (no task runs, no request is made)."""
    _, venv, home = installed
    out = run(venv, home, "python", "-c", DOC_BLOCKS, *(str(ROOT / page) for page in USER_PAGES))
    assert len(out.splitlines()) >= 9, out


# -- the README and the example mirror DAG, from the wheel alone, against the wheel's emulator ---------------

README = (ROOT / "README.md").read_text()


def readme_connection(base_url: str) -> str:
    """The README's copy-paste AIRFLOW_CONN_DROPBOX_DEFAULT, pointed at this test's emulator port."""
    (value,) = re.findall(r"^export AIRFLOW_CONN_DROPBOX_DEFAULT='(.+)'$", README, re.MULTILINE)
    assert "http://127.0.0.1:8765" in value
    json.loads(value)
    return value.replace("http://127.0.0.1:8765", base_url)


def readme_first_dag() -> str:
    block = README.split("<!-- first-dag:", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


class Stack:
    def __init__(self, venv: Path, home: Path, base_url: str) -> None:
        self.venv, self.home, self.base_url = venv, home, base_url

    def airflow(self, *args: str, timeout: float = 600, **extra: str) -> str:
        env = {"AIRFLOW_CONN_DROPBOX_DEFAULT": readme_connection(self.base_url), "HOME": str(self.home)}
        return run(self.venv, self.home, "airflow", *args, timeout=timeout, **{**env, **extra})


@pytest.fixture(scope="module", params=VENVS)
def stack(
    request: pytest.FixtureRequest, release_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Emulator and Airflow both from one release virtualenv; sample files seeded; database migrated."""
    venv = venv_dir(release_dir, request.param)
    work = tmp_path_factory.mktemp("stack")
    home = work / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "dropbox_mirror.py").write_bytes((ROOT / "dags" / "dropbox_mirror.py").read_bytes())
    (home / "dags" / "dropbox_first_dag.py").write_text(readme_first_dag())
    emulator = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "airflow_provider_dropbox.emulator", "--port", "0",
         "--data-dir", str(work / "emulator-data")],
        cwd=work, env=venv_env(venv, home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        base_url = emulator.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        token = seed_demo._token(base_url, DEV["app_key"], DEV["app_secret"], DEV["refresh_token"])
        for path, data in seed_demo.SAMPLE_FILES.items():
            seed_demo.upload(base_url, token, path, data)
        cli = Stack(venv, home, base_url)
        cli.airflow("db", "migrate")
        yield cli
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def local_tree(root: Path) -> dict[str, bytes]:
    return {
        "/" + p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".dropbox-mirror" not in p.relative_to(root).parts
    }


def test_readme_connection_passes_airflow_connections_test(stack: Stack) -> None:
    out = stack.airflow("connections", "test", "dropbox_default", AIRFLOW__CORE__TEST_CONNECTION="Enabled")
    assert "Connection success!" in out, out


def test_example_mirror_dag_runs_with_airflow_dags_test(stack: Stack, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    log = stack.airflow("dags", "test", "dropbox_mirror", DROPBOX_MIRROR_LOCAL_PATH=str(mirror))
    assert "Dropbox mirror" in log, log[-2000:]
    assert local_tree(mirror) == seed_demo.SAMPLE_FILES, log[-2000:]


def test_readme_first_dag_uploads_and_mirrors_back(stack: Stack) -> None:
    log = stack.airflow("dags", "test", "dropbox_first_dag")
    work = stack.home / "dropbox-first-dag"
    assert local_tree(work / "mirror") == {"/report.csv": b"region,amount\nnorth,1200\n"}, log[-2000:]


def test_every_relative_link_in_the_docs_names_an_existing_file() -> None:
    """The docs ship in the sdist and are read on the repository's web view: a moved page breaks links."""
    pages = [
        *ROOT.glob("docs/**/*.md"),
        ROOT / "CHANGELOG.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "RELIABILITY.md",
    ]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("https://", "http://", "#", "mailto:")):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() and path.relative_to(ROOT).as_posix() not in WRITTEN_ELSEWHERE:
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert len(pages) > 10
    assert not broken, broken
