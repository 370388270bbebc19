"""The Audit page's data: a ``probe audit`` report and its tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from probe.experiments.audit.record import AUDIT_JSON, AuditReport, read_audit


def audit_report(folder: str) -> AuditReport | None:
    """The report in ``folder``, or None when there is none."""
    path = Path(folder) / AUDIT_JSON
    return read_audit(path) if path.is_file() else None


def ground_truth(report: AuditReport) -> pd.DataFrame:
    """One row per run: its share, seed, clean accuracy, flip rate with its interval, and whether it relies."""
    rows = []
    for r in report.runs:
        low, high = r.get("flip_ci") or (float("nan"), float("nan"))
        rows.append(
            {
                "run": Path(r["run"]).name,
                "share": r["share"],
                "seed": r["seed"],
                "steps": r.get("steps", report.context.get("steps")),
                "clean accuracy": r["clean_accuracy"],
                "flip rate": r["flip_rate"],
                "flip low": low,
                "flip high": high,
                "relies": "yes" if r["relies"] else "no",
            }
        )
    return pd.DataFrame(rows)


def readings_table(report: AuditReport) -> pd.DataFrame:
    """One row per reading: detections on relying runs, false alarms on the others, Spearman with the flip rate."""
    return pd.DataFrame(
        [
            {
                "reading": g["name"],
                "detected": g.get("detected", ""),
                "detection rate": g["detection_rate"],
                "false alarms": g.get("false_alarms", ""),
                "false-alarm rate": g["false_alarm_rate"],
                "Spearman": g["spearman"],
            }
            for g in report.readings
        ]
    )


def found_table(report: AuditReport) -> pd.DataFrame:
    """One row per run: whether each reading found the marker (a per-run detail, shown when no rate is given)."""
    return pd.DataFrame(
        [
            {"run": Path(r["run"]).name, "share": r["share"]}
            | {g["name"]: "yes" if g.get("found", {}).get(r["run"]) else "no" for g in report.readings}
            for r in report.runs
        ]
    )
