"""docs/testing-your-dags.md's example, run as a user would run it: the files are cut out of the page itself
(so the doc and this test cannot drift) and pytest runs them in a fresh directory, in a subprocess with its
own AIRFLOW_HOME."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXAMPLE = re.compile(r"<!-- example-file: (\S+) -->\n```python\n(.*?)```", re.S)
PAGES = {"docs/testing-your-dags.md": "2 passed", "README.md": "1 passed"}


def example_files(page: str) -> dict[str, str]:
    files = dict(EXAMPLE.findall((ROOT / page).read_text()))
    assert set(files) == {"conftest.py", "test_copy_report.py"}, files
    return files


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_documented_example_passes(tmp_path: Path, page: str) -> None:
    for name, text in example_files(page).items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert PAGES[page] in out, out[-3000:]
