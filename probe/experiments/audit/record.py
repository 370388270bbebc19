"""The ``probe audit`` report (``audit.json`` beside ``audit.md``): a planted shortcut's ground truth per run, and
per reading whether it finds the shortcut."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.io import to_jsonable
from probe.core.results import Result
from probe.formats.hard_prompt import shown_tokens
from probe.formats.schema import FieldReader, read_json

AUDIT_JSON = "audit.json"
AUDIT_MD = "audit.md"
AUDIT_FORMAT = 1
READINGS = ("nearest tokens", "layer lens", "hard prompt", "input attribution", "trigger scan")
"""The readings an audit asks, in the order it reports them."""
RUN_FIELDS = ("run", "share", "seed", "flip_rate", "clean_accuracy", "relies")
READING_FIELDS = ("name", "detection_rate", "false_alarm_rate", "spearman", "found")
RUN_NUMBERS = ("flip_rate", "flip_ci", "clean_accuracy", "reliance", "reliance_ci")
READING_NUMBERS = ("detection_rate", "detection_ci", "false_alarm_rate", "false_alarm_ci", "spearman")
"""Figures that may be undefined (NaN, written as null): read back as NaN."""


@dataclass(frozen=True, repr=False)
class AuditReport(Result):
    """``runs``: one dict per run (at least :data:`RUN_FIELDS`); ``readings``: one dict per reading (at least
    :data:`READING_FIELDS`; ``found`` maps each run's folder to whether the reading found the marker)."""

    runs: list[dict[str, Any]]
    readings: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)
    format: int = AUDIT_FORMAT

    def headline(self) -> str:
        relying = sum(bool(r["relies"]) for r in self.runs)
        found = ", ".join(f"{r['name']} {r['detection_rate']:.0%}" for r in self.readings)
        return f"{relying} of {len(self.runs)} runs rely on the marker; detected by {found}"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per reading."""
        return pd.DataFrame([{k: v for k, v in r.items() if k != "found"} for r in self.readings])

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {"format": self.format, "runs": self.runs, "readings": self.readings, "context": self.context}
        )

    def to_markdown(self) -> str:
        """The markdown report: the ground truth first, then each reading."""
        c = self.context
        lines = [
            "# Audit: does a reading find a planted shortcut?",
            "",
            f"Model `{c.get('model')}`, data `{c.get('data')}`: the marker `{c.get('marker')}` appended to "
            f"{max(c.get('shares', [0])):.0%} of the `{c.get('into')}` training texts (and to none: share 0); "
            f"{c.get('init')} init, p={c.get('length')}, {c.get('steps')} steps, seeds {c.get('seeds')}; "
            "test texts clean.",
            "",
            "## Ground truth",
            "",
            "Flip rate: the other classes' test texts predicted as the planted class once the marker is appended (and "
            "not before). A planted run relies on the marker when its flip rate is above the clean run's of the same "
            "seed (paired 95% interval above 0).",
            "",
            "| run | share | seed | clean accuracy | flip rate [95% CI] | vs clean run [95% CI] | relies |",
            "|---|---:|---:|---:|---|---|:---:|",
        ]
        for r in self.runs:
            lo, hi = r["flip_ci"]
            rlo, rhi = r.get("reliance_ci", (0.0, 0.0))
            lines.append(
                f"| {Path(r['run']).name} | {r['share']:g} | {r['seed']} | {r['clean_accuracy']:.3f} | "
                f"{r['flip_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r.get('reliance', 0):+.3f} [{rlo:+.3f}, {rhi:+.3f}] | "
                f"{'yes' if r['relies'] else 'no'} |"
            )
        lines += [
            "",
            "## Readings",
            "",
            "| reading | detected on relying runs [95% CI] | false alarms on the others [95% CI] "
            "| Spearman with flip rate |",
            "|---|---|---|---:|",
        ]

        def share(count: str, rate: float, interval: tuple[float, float]) -> str:
            if not np.isfinite(rate):
                return f"{count} (–)"
            return f"{count} ({rate:.0%}) [{interval[0]:.0%}, {interval[1]:.0%}]"

        for g in self.readings:
            rho = "–" if not np.isfinite(g["spearman"]) else f"{g['spearman']:.2f}"
            lines.append(
                f"| {g['name']} | {share(g['detected'], g['detection_rate'], g['detection_ci'])} | "
                f"{share(g['false_alarms'], g['false_alarm_rate'], g['false_alarm_ci'])} | {rho} |"
            )
        lines += [
            "",
            "Per run: the marker's rank in the trigger scan and in input attribution (planted class), the hard "
            "prompt, and the top 5 of each.",
            "",
        ]
        for r in self.runs:
            # its tokens, each visible; reports from before they were kept show the decoded text
            hard = shown_tokens(r["hard_prompt_tokens"]) if "hard_prompt_tokens" in r else r["hard_prompt"]
            lines.append(
                f"- {Path(r['run']).name}: scan rank {r['trigger_rank']}, attribution rank {r['attribution_rank']}; "
                f"scan top 5 {', '.join(r['scan_top'])}; attribution top 5 {', '.join(r['attribution_top'])}; "
                f"hard prompt `{hard}`"
            )
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<audit>") -> AuditReport:
        """Read ``audit.json``.

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = FieldReader(data, source, "audit report")
        runs = f.records("runs", RUN_FIELDS, numbers=RUN_NUMBERS)
        readings = f.records("readings", READING_FIELDS, numbers=READING_NUMBERS)
        return cls(**f.fields_of(cls, runs=runs, readings=readings))


def read_audit(path: str | Path) -> AuditReport:
    """The report in ``path`` (an ``audit.json``)."""
    return AuditReport.from_dict(read_json(path, what="audit report"), source=str(path))
