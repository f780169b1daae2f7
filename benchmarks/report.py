"""Render a results file from ``benchmarks.run --out`` as Markdown tables (used for BENCHMARKS.md).

.venv/bin/python -m benchmarks.report results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        f"Run: `{data['command']}` on {m['date_utc']}, {data['seconds'] / 60:.0f} min.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}."
        + (f" Product commit `{m['commit']}`." if m.get("commit") else "")
        + (
            f" Free page reporting `min_free_ms` {m['page_reporting_min_free_ms']}."
            if "page_reporting_min_free_ms" in m
            else ""
        ),
        "",
        "| suite | measurement | value | goal | met | detail |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for row in data["comparisons"]:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        detail = row["detail"].replace("|", "\\|")
        value = _value(row["value"])
        lines.append(f"| {row['suite']} | {row['metric']} | {value} | {row['goal']} | {met} | {detail} |")
    lines += ["", "Every variant (median of the interleaved runs; RSS = peak growth during the trial):", ""]
    lines += [
        "| variant | median s | min s | max s | MiB/s | CPU s (median) | emulator CPU s (median) "
        "| RSS growth MiB (max) | errors |"
    ]
    lines += ["| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in data["variants"].items():
        if "runs" not in s:
            continue
        mib_s = f"{s['mib_s']:.0f}" if "mib_s" in s else "-"
        if "median_s" not in s:
            lines.append(f"| {name} | - | - | - | - | - | - | - | {s['errors']} |")
            continue
        cpu = [r["cpu_s"] for r in s["runs"] if "cpu_s" in r]
        cpu_s = f"{statistics.median(cpu):.1f}" if cpu else "-"
        emu = [r["emu_cpu_s"] for r in s["runs"] if "emu_cpu_s" in r]  # older files do not have it
        emu_s = f"{statistics.median(emu):.1f}" if emu else "-"
        lines.append(
            f"| {name} | {s['median_s']:.2f} | {s['min_s']:.2f} | {s['max_s']:.2f} | {mib_s} | {cpu_s} | "
            f"{emu_s} | {s['rss_growth_mib_max']:.0f} | {s['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    for name in argv:  # one file per ``--only`` run is fine: each renders its own tables
        print(render(json.loads(Path(name).read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
