"""A team set up through the admin route is kept with the tree; bad team specs are refused."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from tests.emulator_process import start_emulator


def test_team_survives_a_restart_and_can_be_dropped(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data")
    try:
        spec = {"name": "Acme", "members": [{"name": "Ann"}, {"name": "Bob", "admin": False}]}
        team = emu.admin("team", spec)
    finally:
        emu.stop()
    emu = start_emulator(tmp_path / "data")
    try:
        assert emu.admin("team", method="GET") == team
        emu.admin("team", None, method="DELETE")
        assert emu.admin("team", method="GET") is None
    finally:
        emu.stop()


@pytest.mark.parametrize(
    "spec",
    [{}, {"members": []}, {"members": [{"name": ""}]}, {"members": [{"name": "a/b"}]}, {"members": ["x"]}],
)
def test_bad_team_specs_are_400(tmp_path: Path, spec: dict[str, object]) -> None:
    emu = start_emulator(tmp_path / "data")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            emu.admin("team", spec)
        assert err.value.code == 400 and "bad team" in err.value.read().decode()
    finally:
        emu.stop()
