"""Hardening suites: bad input, faults, security. Fixtures plus the RELIABILITY.md report hook."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator_process import EmulatorProcess, start_emulator
from tests.hardening import report as _report
from tests.ops_fixtures import airflow_db  # noqa: F401  (session fixture: `airflow db migrate` once)


@pytest.fixture(scope="module")
def hemu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator per test module, so whole-account snapshots see only this module's writes."""
    emu = start_emulator(tmp_path_factory.mktemp("hardening-emulator"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The local area a case may touch; snapshotted before and after."""
    w = tmp_path / "work"
    w.mkdir()
    return w


def _suite_of(nodeid: str) -> str | None:
    if not nodeid.startswith("tests/hardening/"):
        return None
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count outcomes per suite file for the totals in RELIABILITY.md."""
    suite = _suite_of(report.nodeid)
    if suite is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.when == "setup" and report.failed:
            outcome = "error"
        else:
            outcome = report.outcome
        _report.OUTCOMES.add(suite, outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("RELIABILITY_REPORT")
    if target and (_report.FAULT_ROWS or _report.OUTCOMES.by_suite):
        written = _report.write_report(target, _report.command_line())
        print(f"\nreliability report written to {written}")
