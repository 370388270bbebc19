"""The Findings page's data: every ``probe replicate`` report in a folder and its subfolders, and the table that
sets them side by side (one row per finding, one column per report)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from probe.experiments.replicate.record import REPORT_JSON, REPORT_MD, ReplicateReport, read_report

logger = logging.getLogger(__name__)


@dataclass
class FindingsReport:
    """One ``probe replicate`` report found for the Findings page."""

    folder: Path
    label: str  # data set and task form, e.g. "ag_news · cosine"
    markdown: str
    report: ReplicateReport | None  # None for a report written before report.json existed, or an unreadable one


def findings_reports(folder: str | os.PathLike[str]) -> list[FindingsReport]:
    """Every replicate report in ``folder`` and in its direct subfolders (one per data set and task form, say),
    in folder order. An unreadable ``report.json`` is skipped with a warning: the markdown alone is still shown."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found: list[FindingsReport] = []
    for place in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        md = place / REPORT_MD
        if not md.is_file():
            continue
        report = None
        if (place / REPORT_JSON).is_file():
            try:
                report = read_report(place / REPORT_JSON)
            except (OSError, ValueError) as e:
                logger.warning("skipping %s: %s", place / REPORT_JSON, e)
        label = report.label(place.name) if report is not None else place.name
        if any(r.label == label for r in found):
            label = f"{label} ({place.name})"
        found.append(FindingsReport(place, label, md.read_text(encoding="utf-8", errors="replace"), report))
    return found


def findings_side_by_side(reports: list[FindingsReport]) -> pd.DataFrame:
    """One row per finding, one column per report: the verdict, the estimate and its interval, the init control."""
    rows: dict[str, dict[str, str]] = {}
    for found in reports:
        if found.report is None:
            continue
        for f in found.report.findings:
            tail = f"; at init {f.show(f.init_control)}" if f.init_control is not None else ""
            cell = f"{f.verdict}: {f.show_estimate()}{tail}" if f.estimate == f.estimate else f.verdict
            rows.setdefault(f"{f.number}. {f.name}", {})[found.label] = cell
        travel = found.report.context.get("travel", {})
        if isinstance(travel, dict) and travel:
            rows.setdefault("cos to init (1 = did not move)", {})[found.label] = ", ".join(
                f"{init} {cos:.2f}" for init, cos in travel.items()
            )
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=[r.label for r in reports])
    table.index.name = "finding"
    return table.fillna("").reset_index()
