"""The ``probe wayward`` report (``wayward.json`` beside ``wayward.md``): what it costs a prompt to read as a
target it does not do, one entry per target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from probe.formats.schema import Record, objects

WAYWARD_JSON = "wayward.json"
WAYWARD_MD = "wayward.md"
WAYWARD_FORMAT = 1
LITTLE = 0.02
"""Khashabi et al.'s figure for GPT-2: prompts within about 2% of the best accuracy while reading as any text."""
REQUIRED = ("target", "text", "runs", "soft_accuracy", "cost", "cost_ci", "reads_as_target")
NUMBERS = ("soft_accuracy", "cost", "cost_ci", "relative_cost", "reads_as_target", "reads_as_target_top5")
"""A target's figures that may be undefined (NaN, written as null): read back as NaN."""


@dataclass(frozen=True, repr=False)
class WaywardReport(Record):
    """The unconstrained prompts' accuracy (``free_accuracy``, mean over seeds), one dict per target (``targets``:
    at least :data:`REQUIRED`; ``cost`` is the paired accuracy drop against the unconstrained prompt of the same
    seed, in accuracy units), the closing sentence (``conclusion``) and the context."""

    free_accuracy: float
    targets: list[dict[str, Any]] = field(metadata=objects(REQUIRED, NUMBERS))
    conclusion: str
    context: dict[str, Any] = field(default_factory=dict)
    format: int = WAYWARD_FORMAT
    what = "wayward report"

    def headline(self) -> str:
        return self.conclusion

    def to_dataframe(self) -> pd.DataFrame:
        """One row per target."""
        return pd.DataFrame(self.targets)

    def to_markdown(self) -> str:
        """The markdown report: each target's cost and reading, then the conclusion."""
        c = self.context
        lines = [
            "# Prompt waywardness",
            "",
            f"Model `{c.get('model')}`, data `{c.get('data')}`, {c.get('init')} init, p={c.get('length')}, "
            f"{c.get('steps')} steps, seeds {c.get('seeds')}, task {c.get('task')}; {c.get('test_rows')} test rows. "
            f"Each target run adds γ={c.get('project_weight'):g} · the projection loss (τ={c.get('temperature'):g}) "
            "toward the target's tokens, cycled over the positions; the cost is the unconstrained prompt's accuracy "
            "minus the target run's, paired over the test rows (same seed), with a 95% bootstrap interval.",
            "",
            f"Unconstrained soft accuracy: {self.free_accuracy:.3f}.",
            "",
            "| target | text | reads as target (top-1 / top-5) | unconstrained reads as it | soft accuracy "
            "| cost, points [95% CI] | relative cost |",
            "|---|---|---|---:|---:|---|---:|",
        ]
        for r in self.targets:
            low, high = r["cost_ci"]
            lines.append(
                f"| {r['target']} | {r['text']} | {r['reads_as_target']:.0%} / {r['reads_as_target_top5']:.0%} | "
                f"{r['unconstrained_reads_as_target']:.0%} | {r['soft_accuracy']:.3f} | "
                f"{r['cost'] * 100:.1f} [{low * 100:.1f}, {high * 100:.1f}] | {r['relative_cost']:.1%} |"
            )
        lines += ["", "The readings (nearest token per position, first seed):", ""]
        lines += [f"- {r['target']}: `{r['reading']}`" for r in self.targets]
        lines += [
            "",
            f"Khashabi et al. 2022 report GPT-2 prompts within about {LITTLE:.0%} of the best accuracy while their "
            "projections read as arbitrary, even contradictory, text.",
            "",
            self.conclusion,
        ]
        return "\n".join(lines) + "\n"


read_wayward = WaywardReport.read
