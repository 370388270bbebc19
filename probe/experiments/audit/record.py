"""The ``probe audit`` report (``audit.json`` beside ``audit.md``): a planted shortcut's ground truth per run, and
per reading whether it finds the shortcut."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.formats.hard_prompt import shown_tokens
from probe.formats.schema import Record, objects

AUDIT_JSON = "audit.json"
AUDIT_MD = "audit.md"
AUDIT_FORMAT = 3
"""2: ``verdict`` and ``verdict_reason``; a run relies at the minimum effect (``context["min_effect"]``). 3: each
run's ``steps`` (its final step) and ``stopped`` (why training stopped: ``effect held`` or ``budget spent``), and
``context["max_steps"]`` (the step budget) and ``context["rounds"]`` (per round of training: ``steps``,
``relying``, ``planted``, ``flip_rates`` by run name). Older files lack them: read as they are."""
READINGS = ("nearest tokens", "layer lens", "hard prompt", "input attribution", "trigger scan")
"""The readings an audit asks, in the order it reports them."""
RUN_FIELDS = ("run", "share", "seed", "flip_rate", "clean_accuracy", "relies")
READING_FIELDS = ("name", "detection_rate", "false_alarm_rate", "spearman", "found")
RUN_NUMBERS = ("flip_rate", "flip_ci", "clean_accuracy", "reliance", "reliance_ci")
READING_NUMBERS = ("detection_rate", "detection_ci", "false_alarm_rate", "false_alarm_ci", "spearman")
"""Figures that may be undefined (NaN, written as null): read back as NaN."""
VERDICTS = ("conclusive", "inconclusive")
MIN_RELYING = 2
"""Planted runs that must rely on the marker before any reading is judged; fewer: the verdict is inconclusive."""
NOT_LEARNED = "the prompts did not learn the marker"
_NOT_JUDGED = (
    "No detection or false-alarm rate is given: a reading can only be judged against a shortcut the prompts use, "
    "and these did not learn it. What each reading found per run is listed below, as a detail, not a finding."
)


def judge(runs: list[dict[str, Any]], min_effect: float | None) -> tuple[str, str]:
    """(verdict, one-line reason) from the runs: conclusive when at least :data:`MIN_RELYING` planted runs rely on
    the marker; the reason counts them and gives the flip rates (``min_effect`` None: an audit written before
    the minimum effect)."""
    planted = [r for r in runs if r["share"] > 0]
    relying = sum(bool(r["relies"]) for r in planted)
    bar = "above the clean run (no minimum effect)" if min_effect is None else f"at least {min_effect:.2f} above"
    rates = ", ".join(f"{r['flip_rate']:.3f}" for r in planted) or "none"
    clean = ", ".join(f"{r['flip_rate']:.3f}" for r in runs if r["share"] == 0) or "none"
    reason = (
        f"{relying} of {len(planted)} planted runs rely on it (paired lower bound {bar} the clean run's); "
        f"flip rates {rates} planted, {clean} clean"
    )
    if relying >= MIN_RELYING:
        return "conclusive", reason
    return "inconclusive", f"{NOT_LEARNED}: {reason}"


@dataclass(frozen=True, repr=False)
class AuditReport(Record):
    """``runs``: one dict per run (at least :data:`RUN_FIELDS`); ``readings``: one dict per reading (at least
    :data:`READING_FIELDS`; ``found`` maps each run's folder to whether the reading found the marker)."""

    runs: list[dict[str, Any]] = field(metadata=objects(RUN_FIELDS, RUN_NUMBERS))
    readings: list[dict[str, Any]] = field(metadata=objects(READING_FIELDS, READING_NUMBERS))
    context: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    """``conclusive`` or ``inconclusive`` (:func:`judge`); left empty, it is judged from ``runs``."""
    verdict_reason: str = ""
    format: int = AUDIT_FORMAT
    what = "audit report"

    def __post_init__(self) -> None:
        if not self.verdict:  # an older file, or a report built in memory: judged from its runs
            verdict, reason = judge(self.runs, self.context.get("min_effect"))
            object.__setattr__(self, "verdict", verdict)
            object.__setattr__(self, "verdict_reason", self.verdict_reason or reason)
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict is {self.verdict!r}; expected one of {', '.join(VERDICTS)}")

    @property
    def conclusive(self) -> bool:
        """Whether enough planted runs rely on the marker to judge the readings."""
        return self.verdict == "conclusive"

    def headline(self) -> str:
        if not self.conclusive:
            return f"inconclusive: {self.verdict_reason}"
        relying = sum(bool(r["relies"]) for r in self.runs)
        found = ", ".join(f"{r['name']} {r['detection_rate']:.0%}" for r in self.readings)
        trained = self.trained_steps()
        after = f" after {trained} steps" if trained is not None else ""
        return f"{relying} of {len(self.runs)} runs rely on the marker{after}; detected by {found}"

    def trained_steps(self) -> int | None:
        """The steps every run was trained to (None: a report from before they were kept, or runs that differ)."""
        steps = {r.get("steps") for r in self.runs}
        return next(iter(steps)) if len(steps) == 1 and isinstance(next(iter(steps)), int) else None

    def training(self) -> str:
        """How long the runs trained and why they stopped, in one line ("" for a report from before it was kept)."""
        c, trained = self.context, self.trained_steps()
        stopped = {r.get("stopped") for r in self.runs}
        if trained is None or c.get("max_steps") is None or len(stopped) != 1:
            return ""
        planned, most, why = c.get("steps"), c["max_steps"], next(iter(stopped))
        grown = f"continued from {planned}" if trained != planned else "not continued"
        rounds = "; ".join(
            f"{r['relying']} of {r['planted']} planted runs relied after {r['steps']} steps"
            for r in c.get("rounds", [])
        )
        because = {
            "effect held": "every planted run relies on the marker at the minimum effect",
            "budget spent": f"the step budget ({most} steps per run, --max-steps) is spent",
        }.get(str(why), str(why))
        return f"every run trained {trained} steps ({grown}; budget {most}): stopped because {because} ({rounds})"

    def advice(self) -> str:
        """What to change so that the plant takes, in one line ("" when the verdict is conclusive)."""
        if self.conclusive:
            return ""
        c = self.context
        steps, share, lr, marker = c.get("steps"), c.get("share"), c.get("lr"), c.get("marker", "the marker")
        most = c.get("max_steps")
        if isinstance(most, int):  # the runs were trained on up to the budget: a larger budget is what gives more
            changes = [f"more steps (--max-steps {2 * most})"]
        else:
            changes = [f"more steps (--steps {2 * steps})" if isinstance(steps, int) else "more steps (--steps)"]
        if not isinstance(share, int | float) or share < 1:
            changes.append("a larger --share (up to 1)")
        changes.append(f"a rarer marker than '{marker}' (--marker)")
        changes.append(f"a higher learning rate (--lr {2 * lr:g})" if isinstance(lr, int | float) else "a higher --lr")
        planted = sum(r["share"] > 0 for r in self.runs)
        if planted < MIN_RELYING:
            changes.insert(0, f"more seeds (--seeds {MIN_RELYING} or more: {planted} planted run cannot decide it)")
        return "to make the plant take, try " + ", ".join(changes)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per reading."""
        return pd.DataFrame([{k: v for k, v in r.items() if k != "found"} for r in self.readings])

    def to_markdown(self) -> str:
        """The markdown report: the verdict, the ground truth, then each reading (its rates only when the
        verdict is conclusive)."""
        c = self.context
        effect = c.get("min_effect")
        bar = "above 0" if effect is None else f"at least {effect:.2f} (the minimum effect)"
        lines = [
            "# Audit: does a reading find a planted shortcut?",
            "",
            f"Model `{c.get('model')}`, data `{c.get('data')}`: the marker `{c.get('marker')}` appended to "
            f"{max(c.get('shares', [0])):.0%} of the `{c.get('into')}` training texts (and to none: share 0); "
            f"{c.get('init')} init, p={c.get('length')}, {c.get('steps')} steps, seeds {c.get('seeds')}; "
            "test texts clean.",
            "",
            f"**Verdict: {self.verdict}**: {self.verdict_reason}.",
        ]
        if training := self.training():
            lines += ["", f"Training: {training}."]
        if not self.conclusive:
            lines += ["", f"What to change: {self.advice()}."]
        lines += [
            "",
            "## Ground truth",
            "",
            "Flip rate: the other classes' test texts predicted as the planted class once the marker is appended (and "
            "not before). A planted run relies on the marker when the paired 95% lower bound of its flip rate minus "
            f"the clean run's of the same seed is {bar}. The readings are judged only when at least {MIN_RELYING} "
            "planted runs rely on it.",
            "",
            "| run | share | seed | steps | clean accuracy | flip rate [95% CI] | vs clean run [95% CI] | relies |",
            "|---|---:|---:|---:|---:|---|---|:---:|",
        ]
        for r in self.runs:
            lo, hi = r["flip_ci"]
            rlo, rhi = r.get("reliance_ci", (0.0, 0.0))
            steps = r.get("steps", c.get("steps", "–"))
            lines.append(
                f"| {Path(r['run']).name} | {r['share']:g} | {r['seed']} | {steps} | {r['clean_accuracy']:.3f} | "
                f"{r['flip_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r.get('reliance', 0):+.3f} [{rlo:+.3f}, {rhi:+.3f}] | "
                f"{'yes' if r['relies'] else 'no'} |"
            )
        lines += ["", "## Readings", ""]
        lines += self._rates_table() if self.conclusive else [_NOT_JUDGED]
        lines += [
            "",
            "Per run: the readings that found the marker, its rank in the trigger scan and in input attribution "
            "(planted class), the hard prompt, and the top 5 of each.",
            "",
        ]
        for r in self.runs:
            found = [g["name"] for g in self.readings if g.get("found", {}).get(r["run"])]
            # its tokens, each visible; reports from before they were kept show the decoded text
            hard = shown_tokens(r["hard_prompt_tokens"]) if "hard_prompt_tokens" in r else r["hard_prompt"]
            lines.append(
                f"- {Path(r['run']).name}: found by {', '.join(found) or 'none'}; scan rank {r['trigger_rank']}, "
                f"attribution rank {r['attribution_rank']}; scan top 5 {', '.join(r['scan_top'])}; attribution top "
                f"5 {', '.join(r['attribution_top'])}; hard prompt `{hard}`"
            )
        return "\n".join(lines) + "\n"

    def _rates_table(self) -> list[str]:
        """Per reading: detections on relying runs, false alarms on the others, Spearman (markdown lines)."""
        lines = [
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
        return lines


read_audit = AuditReport.read
