"""Write docs/replicate.md from ``probe replicate`` report folders: the reports side by side, then each in full.

    python docs/findings.py FOLDER [FOLDER ...] [--intro FILE] [--out docs/replicate.md]

The side-by-side table is the dashboard's (``probe.experiments.replicate.table.findings_side_by_side``): one row
per finding, one
column per report (data set and task form), each cell the verdict, the estimate with its 95% interval and the
same reading on the runs' step-0 snapshots. ``--intro`` is markdown put before it (how the reports were made,
how long they took).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from probe.dashboard import findings as views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--intro", help="markdown file put before the table")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "replicate.md"))
    args = parser.parse_args()
    reports = [r for folder in args.folders for r in views.findings_reports(folder)[:1]]
    if not reports:
        raise SystemExit(f"no probe replicate report in {', '.join(args.folders)}")
    lines = ["# The paper's findings, measured by `probe replicate`", ""]
    if args.intro:
        lines += [Path(args.intro).read_text().strip(), ""]
    lines += [
        "## Side by side",
        "",
        "verdict: learned [95% CI]; at init: the same reading on the runs' step-0 snapshots.",
        "",
        views.findings_side_by_side(reports).to_markdown(index=False),
        "",
    ]
    for report in reports:
        body = report.markdown.split("\n", 1)[1].strip()  # the report's own title gives way to the label
        lines += [f"## {report.label}", "", body.replace("\n## ", "\n### "), ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
