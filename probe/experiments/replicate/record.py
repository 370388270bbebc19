"""The ``probe replicate`` report (``report.json`` beside ``report.md``): the paper's findings as typed records.

:class:`Finding` is one claim measured; :class:`ReplicateReport` holds the findings, the accuracy table and the
context they were measured in. The experiment writes it and the dashboard reads it; both format a finding's
numbers through :meth:`Finding.show`, so a share of positions is a percentage everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from probe.core.io import to_jsonable
from probe.core.names import DISCRETISED, SOFT, ZERO_SHOT
from probe.formats.schema import FieldReader, Record, objects
from probe.readings.reports import FAITHFULNESS_CAVEAT

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
REPORT_FORMAT = 1

Verdict = Literal["yes", "no", "unclear"]
PERCENT_FINDINGS = frozenset({2, 3, 4, 5})
"""Findings whose numbers are shares of positions (shown as percentages)."""
CONTRAST_FINDINGS = frozenset({6})
ACCURACY_NUMBERS = (SOFT, "low", "high", DISCRETISED, ZERO_SHOT, "cos_to_init")
"""Accuracy-table figures that may be undefined (NaN, written as null): read back as NaN."""
"""Findings whose estimate is a signed difference between two groups of runs."""


@dataclass
class Finding:
    """One finding as typed numbers: the estimate, its interval, its controls, the verdict, the runs it read.

    ``values`` holds the rest: ``at_init`` (the same reading on each run's step-0 snapshot), ``margins`` (the
    intervals of estimate - control that decide the verdict), ``by_init`` (the reading per init, with how far
    the positions travelled), and finding-specific numbers.
    """

    number: int = field(metadata={"minimum": 1})
    name: str
    paper: str
    measured: str
    verdict: Verdict
    runs_used: int
    estimate: float
    interval: tuple[float, float]
    init_control: float | None
    random_control: float | None
    values: dict[str, Any] = field(default_factory=dict)

    def show(self, x: float | None) -> str:
        """One of this finding's numbers as the report shows it: a percentage for shares, signed for contrasts."""
        if x is None or not math.isfinite(x):
            return "-"
        if self.number in PERCENT_FINDINGS:
            return f"{x:.0%}"
        return f"{x:+.3f}" if self.number in CONTRAST_FINDINGS else f"{x:.3f}"

    def show_estimate(self) -> str:
        """The estimate with its interval: ``0.307 [0.294, 0.321]``."""
        low, high = self.interval
        return f"{self.show(self.estimate)} [{self.show(low)}, {self.show(high)}]"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<finding>") -> Finding:
        """Read a finding (the verdict was once ``holds``)."""
        f = FieldReader(data, source, "finding")
        verdict = f.text("verdict", f.data.get("holds", "unclear"))
        if verdict not in ("yes", "no", "unclear"):
            raise f.error("verdict", verdict, "yes, no or unclear")
        lacked: dict[str, Any] = {"paper": "", "measured": "", "runs_used": 0, "estimate": math.nan}
        lacked |= {"interval": (math.nan, math.nan), "init_control": None, "random_control": None}
        return cls(**f.fields_of(cls, defaults=lacked, read=("holds",), verdict=verdict))


@dataclass(frozen=True, repr=False)
class ReplicateReport(Record):
    """The findings, the accuracy table (one row per init x length) and the context they were measured in."""

    context: dict[str, Any]
    findings: list[Finding]
    accuracy: list[dict[str, Any]] = field(metadata=objects((), ACCURACY_NUMBERS))
    format: int = REPORT_FORMAT
    what = "replicate report"
    lacked = {"context": {}, "findings": [], "accuracy": []}  # noqa: RUF012 (read, never changed)

    def headline(self) -> str:
        verdicts = ", ".join(f"{f.number}: {f.verdict}" for f in self.findings)
        return f"{len(self.findings)} findings ({verdicts})"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per finding: its number, name, verdict, estimate and interval."""
        return pd.DataFrame(
            [
                {"number": f.number, "finding": f.name, "verdict": f.verdict, "estimate": f.estimate}
                | {"low": f.interval[0], "high": f.interval[1], "runs": f.runs_used}
                for f in self.findings
            ]
        )

    def to_markdown(self) -> str:
        """The markdown report: every finding against its controls, what was measured, the accuracy table, and the
        caveats."""
        context, findings = self.context, self.findings
        table = pd.DataFrame(self.accuracy)
        regime = context.get("regime", {})
        lines = [
            "# Lester et al. (2021), section 7, measured",
            "",
            f"Model `{context['model']}`, data `{context['data']}`, task form {', '.join(context.get('task', []))}; "
            f"{context['runs']} runs: inits {', '.join(context['inits'])} x lengths {context['lengths']} x seeds "
            f"{context['seeds']}, {context['steps']} steps, optimizer {', '.join(regime.get('optimizer', []))} at lr "
            f"{', '.join(regime.get('lr', []))}, random-uniform scale {', '.join(regime.get('init_scale', []))}. "
            f"Neighbourhoods of k={context['k']} from the final snapshots. Intervals are 95%: "
            f"{context.get('resampling', '')}. Controls: {context['controls']}.",
            "",
            "How far the prompts moved (mean cosine of each position to its initial vector; 1 = did not move): "
            + ", ".join(f"{init} {cos:.2f}" for init, cos in context.get("travel", {}).items())
            + ".",
            "",
            'A verdict is "yes" only when every interval of (learned - control) is above 0, "no" only when one lies '
            'below the smallest effect that would count, and "unclear" otherwise. A finding holds for prompt tuning '
            "only beyond its init control: the same reading on each run's own step-0 snapshot.",
            "",
            "| # | finding | paper says | learned [95% CI] | at init | random control | verdict | runs |",
            "|---:|---|---|---|---:|---:|---|---:|",
        ]
        for f in findings:
            lines.append(
                f"| {f.number} | {f.name} | {f.paper} | {f.show_estimate()} | {f.show(f.init_control)} | "
                f"{f.show(f.random_control)} | {f.verdict} | {f.runs_used} |"
            )
        lines += ["", "## What was measured", ""]
        lines += [f"{f.number}. **{f.name}**: {f.measured}." for f in findings]
        lines += [
            "",
            "## Accuracy by init and length (test split)",
            "",
            table.to_markdown(index=False, floatfmt=".3f") if not table.empty else "(no runs)",
            "",
            "## Caveats",
            "",
            "- The default model is a 22M-parameter sentence encoder (all-MiniLM-L6-v2), not T5-XXL generating labels; "
            "the paper's claims are about much larger models. With the 'cosine' task form it classifies by cosine to "
            "label-name embeddings; the 'verbaliser' form makes an output position produce the label token.",
            f"- {FAITHFULNESS_CAVEAT}",
            "",
        ]
        return "\n".join(lines)

    def label(self, fallback: str = "report") -> str:
        """What the report measured, in a few words: data set (else ``fallback``), task form, steps
        (``ag_news · cosine · 60 steps``)."""
        name = Path(str(self.context.get("data", ""))).stem or fallback
        task = self.context.get("task")
        steps = self.context.get("steps")
        parts = [name]
        if isinstance(task, list) and task:
            parts.append(", ".join(map(str, task)))
        if isinstance(steps, list) and len(steps) == 1:
            parts.append(f"{steps[0]} steps")
        return " · ".join(parts)


read_report = ReplicateReport.read
