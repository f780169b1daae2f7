"""The ``many_files`` suite runs end to end at tiny sizes (``--only many_files --quick``).

Proves the suite starts the write-lock model, runs both sides, counts lost and duplicated files on both, and
compares big transfers on a capped link and at loopback; the numbers at these sizes mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_many_files_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "many_files", "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--workdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert "suite_errors" not in results["notes"]
    rows = results["comparisons"]
    metrics = [row["metric"] for row in rows]
    assert any("lock model default" in m and "x faster" in m for m in metrics), metrics
    assert any("lock model off" in m for m in metrics), metrics
    assert any("Mbit/s per connection" in m for m in metrics) and any("loopback" in m for m in metrics)
    lost_rows = [row for row in rows if "lost / duplicated" in row["metric"]]
    assert len(lost_rows) == 4 and all(row["met"] for row in lost_rows), lost_rows
    for name, variant in results["variants"].items():
        assert variant["errors"] == 0, (name, variant["runs"])
        if "upload_folder" in name or "files_upload" in name:
            assert all(run["files"] == 40 for run in variant["runs"]), (name, variant["runs"])


def test_many_files_runs_only_the_conditions_asked_for_and_records_the_load(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "many_files", "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--many-files-parts", "off", "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    metrics = [row["metric"] for row in results["comparisons"]]
    assert metrics and all("lock model off" in m for m in metrics), metrics
    for key in ("load_average_at_start", "load_average_at_end"):
        assert len(results["notes"][key]["many_files"]) == 3, results["notes"]
