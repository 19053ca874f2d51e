"""Line and branch coverage per app, from the combined data of `make test`; fails under a floor.

python -m config.coverage_summary --fail-under 85
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import coverage


def per_app(files: dict[str, dict[str, dict[str, int]]]) -> dict[str, list[int]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for name, info in files.items():
        app = Path(name).parts[0]
        summary = info["summary"]
        row = totals[app]
        row[0] += summary["num_statements"]
        row[1] += summary["covered_lines"]
        row[2] += summary.get("num_branches", 0)
        row[3] += summary.get("covered_branches", 0)
    return dict(totals)


def percent(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-under", type=float, default=0.0, help="minimum line coverage of the whole project")
    args = parser.parse_args()
    cov = coverage.Coverage()
    cov.load()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cov.json_report(outfile=out.name)
        report = json.loads(Path(out.name).read_text())
    apps = per_app(report["files"])
    print(f"{'app':<12} {'lines':>8} {'line %':>7} {'branches':>9} {'branch %':>9}")  # noqa: T201
    grand = [0, 0, 0, 0]
    for app, (lines, covered, branches, covered_b) in sorted(apps.items()):
        grand = [a + b for a, b in zip(grand, (lines, covered, branches, covered_b), strict=True)]
        print(  # noqa: T201
            f"{app:<12} {lines:>8} {percent(covered, lines):>6.1f}% {branches:>9} {percent(covered_b, branches):>8.1f}%"
        )
    line_pct = percent(grand[1], grand[0])
    print(  # noqa: T201
        f"{'TOTAL':<12} {grand[0]:>8} {line_pct:>6.1f}% {grand[2]:>9} {percent(grand[3], grand[2]):>8.1f}%"
    )
    if line_pct < args.fail_under:
        print(f"line coverage {line_pct:.1f}% is under the floor of {args.fail_under:.1f}%", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
