"""The release suite checks what scripts/check_release.sh built; it runs only from that script.

The script builds the sdist and the wheel and installs the wheel into clean virtualenvs under
``$DROPBOX_RELEASE_DIR``; a plain ``pytest`` run (no such directory) does not collect these tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

RELEASE_DIR = os.environ.get("DROPBOX_RELEASE_DIR")
if not RELEASE_DIR:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def release_dir() -> Path:
    assert RELEASE_DIR, "run scripts/check_release.sh"
    return Path(RELEASE_DIR)
