"""The ``probe frontier`` report (``frontier.json`` beside ``frontier.md``): soft accuracy against the faithfulness
of the nearest-token reading, one entry per run of the sweep over the faithfulness weight λ."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from probe.core.results import shown
from probe.formats.schema import Record, objects

FRONTIER_JSON = "frontier.json"
FRONTIER_MD = "frontier.md"
FRONTIER_FORMAT = 1
REQUIRED = (
    "run",
    "weight",
    "seed",
    "soft_accuracy",
    "discretised_accuracy",
    "agreement",
    "kl",
    "gain_retained",
    "pareto",
)
NUMBERS: tuple[str, ...] = ("soft_accuracy", "discretised_accuracy", "agreement", "kl", "gain_retained", "reading_gain")
NUMBERS += tuple(f"{name}_ci" for name in ("soft", "discretised", "agreement", "kl", "gain_retained", "reading_gain"))
NUMBERS += ("travel", "on_manifold")
"""A run's figures that may be undefined (NaN, written as null): read back as NaN, shown as '–'."""
HARD_REQUIRED = ("run", "length", "steps", "tokens", "accuracy", "agreement", "kl", "gain_retained", "seconds")
HARD_NUMBERS: tuple[str, ...] = ("accuracy", "accuracy_ci", "agreement", "agreement_ci", "kl", "gain_retained")
HARD_NUMBERS += ("gain_retained_ci", "word_share")
"""A hard prompt's figures that may be undefined."""


@dataclass(frozen=True, repr=False)
class FrontierReport(Record):
    """The sweep's runs (``runs``: one dict each, with at least :data:`REQUIRED`), the zero-shot accuracy, the
    aim it was measured against, and the context (model, data, steps, ...)."""

    zero_shot_accuracy: float
    runs: list[dict[str, Any]] = field(metadata=objects(REQUIRED, NUMBERS))
    context: dict[str, Any] = field(default_factory=dict)
    aim: dict[str, Any] = field(default_factory=dict)
    hard_prompts: list[dict[str, Any]] = field(default_factory=list, metadata=objects(HARD_REQUIRED, HARD_NUMBERS))
    """The exact search's hard prompt at each length asked for, from the run whose nearest tokens score best (files
    from before it was kept: none)."""
    format: int = FRONTIER_FORMAT
    what = "frontier report"

    def headline(self) -> str:
        pareto = sum(bool(r["pareto"]) for r in self.runs)
        return f"{len(self.runs)} runs, zero-shot {self.zero_shot_accuracy:.3f}, {pareto} on the Pareto set"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run."""
        return pd.DataFrame(self.runs)

    def to_markdown(self) -> str:
        """The markdown report: every run with its intervals, then the frontier against the aim."""
        c, aim = self.context, self.aim
        lines = [
            "# The accuracy–faithfulness frontier",
            "",
            f"Model `{c.get('model')}`, data `{c.get('data')}`, {c.get('init')} init, p={c.get('length')}, "
            f"{c.get('steps')} steps, task {c.get('task')}; {c.get('test_rows')} test rows; zero-shot "
            f"{self.zero_shot_accuracy:.3f}. Each run trains on (1 - λ) · loss(soft) + λ · loss(nearest tokens); its "
            "nearest-token reading is scored against its soft prompt (95% paired intervals over the test rows).",
            "",
            "| λ | seed | soft | nearest tokens | vs λ=0's nearest tokens | agreement | KL | gain retained "
            "| cos to init | on-manifold | Pareto |",
            "|---:|---:|---|---|---|---|---:|---|---:|---:|:---:|",
        ]
        for r in sorted(self.runs, key=lambda r: (r["weight"], r["seed"] or 0)):

            def cell(name: str, r: dict[str, Any] = r) -> str:
                value = r.get({"soft": "soft_accuracy", "discretised": "discretised_accuracy"}.get(name, name))
                low, high = r.get(f"{name}_ci") or (math.nan, math.nan)
                sign = "+" if name == "reading_gain" else ""
                if value is None or not math.isfinite(value):
                    return "–"  # undefined (a gain where the soft prompt is not above zero-shot): never inf
                return f"{value:{sign}.3f} [{shown(low, sign + '.3f')}, {shown(high, sign + '.3f')}]"

            lines.append(
                f"| {r['weight']:g} | {r['seed']} | {cell('soft')} | {cell('discretised')} | {cell('reading_gain')} | "
                f"{cell('agreement')} | "
                f"{r['kl']:.3f} | {cell('gain_retained')} | {r['travel']:.2f} | {r['on_manifold']:.0%} | "
                f"{'yes' if r['pareto'] else ''} |"
            )
        best = aim.get("best_within_reach")
        lines += ["", "## Against the aim", ""]
        lines.append(
            f"Aim: a point whose nearest tokens keep at least {aim['gain_retained']:.0%} of the gain and agree on "
            f"at least {aim['agreement']:.0%} of the test rows, with a soft accuracy within "
            f"{aim['soft_within'] * 100:.1f} points of the unconstrained runs' "
            f"({aim['unconstrained_soft_accuracy']:.3f})."
        )
        if best:
            lines.append(
                f"The best point within reach: λ={best['weight']:g}, seed {best['seed']}: gain retained "
                f"{shown(best['gain_retained'], '.2f')}, agreement {best['agreement']:.2f}, "
                f"soft {best['soft_accuracy']:.3f}."
            )
        lines.append(f"Runs meeting the aim: {len(aim['runs_meeting_it'])} of {len(self.runs)}.")
        lines += self._hard_lines()
        top = aim.get("most_constrained")
        if top:
            low, high = top["reading_gain_ci"]
            real = "measurably above" if low > 0 else "not measurably above"
            reads = np.mean([r["discretised_accuracy"] for r in self.runs if r["weight"] == top["weight"]])
            lines.append(
                f"The most constrained point (λ={top['weight']:g}, {top['seeds']} seed(s)) reads at {reads:.3f}: "
                f"{top['reading_gain']:+.3f} [{low:+.3f}, {high:+.3f}] against the unconstrained runs' nearest tokens "
                f"(paired per seed, pooled), {real} them."
            )
        return "\n".join(lines) + "\n"

    def _hard_lines(self) -> list[str]:
        """The hard prompts by length, scored against their run's soft prompt (nothing when none was searched)."""
        if not self.hard_prompts:
            return []
        first = self.hard_prompts[0]
        lines = [
            "",
            "## Real-token prompts by length",
            "",
            f"Exact coordinate search ({first['steps']} steps each) from `{first['run']}`, the run whose nearest "
            "tokens score best, its soft prompt the teacher; scored against that soft prompt on the same test rows.",
            "",
            "| length | accuracy | agreement | KL | gain retained | whole words | seconds |",
            "|---:|---|---|---:|---|---:|---:|",
        ]
        for h in self.hard_prompts:

            def cell(name: str, h: dict[str, Any] = h) -> str:
                low, high = h.get(f"{name}_ci") or (math.nan, math.nan)
                return f"{shown(h[name], '.3f')} [{shown(low, '.3f')}, {shown(high, '.3f')}]"

            lines.append(
                f"| {h['length']} | {cell('accuracy')} | {cell('agreement')} | {shown(h['kl'], '.3f')} | "
                f"{cell('gain_retained')} | {shown(h.get('word_share'), '.0%')} | {h['seconds']:.0f} |"
            )
        lines += ["", *(f"- L={h['length']}: `{' · '.join(h['tokens'])}`" for h in self.hard_prompts)]
        return lines


read_frontier = FrontierReport.read
