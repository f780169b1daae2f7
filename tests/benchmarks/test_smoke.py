"""The benchmark scripts still run: ``python -m benchmarks.run --quick`` (tiny sizes, one round).

Only proves that every suite runs end to end against real emulators and writes its JSON; the numbers at
these sizes mean nothing (the real ones are in BENCHMARKS.md). Runs in the normal suite (not marked slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITES = {
    "throughput",
    "memory",
    "parallel",
    "chunks",
    "longpoll",
    "mirror",
    "diagnose",
    "wan",
    "profile",
    "emulator",
    "scale",
    "many_files",
}


def test_quick_run_covers_every_suite(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert "suite_errors" not in results["notes"]
    assert {row["suite"] for row in results["comparisons"]} == SUITES
    for name, variant in results["variants"].items():
        if "runs" in variant:
            assert variant["errors"] == 0, (name, variant["runs"])
            assert variant["median_s"] > 0
    # the incremental mirror counts requests through the emulator's stats
    incremental = [row for row in results["comparisons"] if row["metric"].startswith("incremental")]
    assert incremental and incremental[0]["met"] is True, incremental
    assert "== mirror" in proc.stdout and "goal" in proc.stdout  # the printed table


def test_cli_rejects_unknown_suite() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
