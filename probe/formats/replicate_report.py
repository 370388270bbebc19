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

from probe.core.io import to_jsonable
from probe.formats.schema import Fields, read_json

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
RUNS = "runs"
REPORT_FORMAT = 1

Verdict = Literal["yes", "no", "unclear"]
PERCENT_FINDINGS = frozenset({2, 3, 4, 5})
"""Findings whose numbers are shares of positions (shown as percentages)."""
CONTRAST_FINDINGS = frozenset({6})
"""Findings whose estimate is a signed difference between two groups of runs."""


@dataclass
class Finding:
    """One finding as typed numbers: the estimate, its interval, its controls, the verdict, the runs it read.

    ``values`` holds the rest: ``at_init`` (the same reading on each run's step-0 snapshot), ``margins`` (the
    intervals of estimate - control that decide the verdict), ``by_init`` (the reading per init, with how far
    the positions travelled), and finding-specific numbers.
    """

    number: int
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
        f = Fields(data, source, "finding")
        interval = f.data.get("interval") or [None, None]
        if not isinstance(interval, list | tuple) or len(interval) != 2:
            raise f.error("interval", interval, "an interval [low, high]")
        verdict = f.text("verdict", f.data.get("holds", "unclear"))
        if verdict not in ("yes", "no", "unclear"):
            raise f.error("verdict", verdict, "yes, no or unclear")
        return cls(
            number=f.integer("number", minimum=1),
            name=f.text("name"),
            paper=f.text("paper", ""),
            measured=f.text("measured", ""),
            verdict=verdict,
            runs_used=f.integer("runs_used", 0, minimum=0),
            estimate=_nan(f, "estimate"),
            interval=(_float(interval[0]), _float(interval[1])),
            init_control=f.number("init_control", None, optional=True),
            random_control=f.number("random_control", None, optional=True),
            values=f.mapping("values", {}),
        )


def _float(x: Any) -> float:
    return float("nan") if x is None or isinstance(x, bool) or not isinstance(x, int | float) else float(x)


def _nan(f: Fields, name: str) -> float:
    value = f.data.get(name)
    return float("nan") if value is None else float(f.number(name))


@dataclass(frozen=True)
class ReplicateReport:
    """The findings, the accuracy table (one row per init x length) and the context they were measured in."""

    context: dict[str, Any]
    findings: list[Finding]
    accuracy: list[dict[str, Any]]
    format: int = REPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``report.json``."""
        return {
            "format": self.format,
            "context": to_jsonable(self.context),
            "findings": [f.to_dict() for f in self.findings],
            "accuracy": to_jsonable(self.accuracy),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<report>") -> ReplicateReport:
        """Read a report of any version.

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = Fields(data, source, "replicate report")
        f.unknown({"format", "context", "findings", "accuracy"})
        rows = f.items("accuracy", [])
        if not all(isinstance(r, dict) for r in rows):
            raise f.error("accuracy", rows, "a list of table rows (objects)")
        return cls(
            context=f.mapping("context", {}),
            findings=[Finding.from_dict(x, source) for x in f.items("findings", [])],
            accuracy=list(rows),
        )

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


def read_report(path: str | Path) -> ReplicateReport:
    """The report in ``path`` (a ``report.json``).

    Raises:
        ValueError: not a report probe wrote (naming the field that is wrong).
    """
    return ReplicateReport.from_dict(read_json(path, what="replicate report"), source=str(path))
