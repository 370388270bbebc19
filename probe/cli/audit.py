"""``probe audit``: plant a known shortcut and measure which reading finds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import option
from probe.cli.sweeps import OnePromptOptions, SweepCommand


@dataclass
class Audit(SweepCommand, OnePromptOptions):
    """Plant a marker in one class's training texts, train on it and without it, and ask every reading."""

    name: ClassVar[str] = "audit"
    summary: ClassVar[str] = "ground truth for the readings: plant a shortcut, measure which reading finds it"
    epilog: ClassVar[str] = (
        "It writes OUT/data/ (the planted variants, share 0 and --share), OUT/runs/ (one probe run per share and "
        "seed; finished runs are skipped when it is run again; while a planted run does not rely on the marker, "
        "every run is trained on, up to --max-steps), OUT/audit.json, OUT/audit.md and OUT/audit.html. "
        "It prints its time estimate first, and its verdict last: conclusive, or 'inconclusive: the prompts did not "
        "learn the marker' with the flip rates and what to change (then no reading is judged)."
    )
    sweep: ClassVar[str] = "probe.experiments.audit"
    settings_class: ClassVar[str] = "AuditConfig"

    into: str = option(help="the class whose training texts get the marker (a label of --data)")
    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    marker: str | None = option(None, "the word to plant (default: a rare word that is one token of the model)")
    share: float = option(0.9, "share of the class's training texts that get the marker, in (0, 1] (default 0.9)")
    seeds: int | None = option(None, "seeds per share (default 3; --quick: 2)", positive=True)
    quick: bool = option(
        False,
        "a first look: 2 seeds x 60 steps (trained on up to 120 while the plant does not take), smaller lens, scan "
        "and hard-prompt search",
    )
    multi_token: bool = option(False, "plant a marker that is several tokens (the readings look for any of them)")
    out: str = option("probe-audit", "folder for the data, the runs and the report (default probe-audit)")
    steps: int | None = option(None, "training steps per run (default 150; --quick: 60)", positive=True)
    max_steps: int | None = option(
        None,
        "the step budget: while a planted run does not rely on the marker, every run is trained on (from its last "
        "snapshot, --steps more per round) up to this many steps (default 4 x --steps; --quick: 2 x; equal to "
        "--steps: no continuation)",
        positive=True,
    )
    test_size: int = option(400, "read every run on a stratified subset of this many test rows (default 400)")
    scan_tokens: int | None = option(None, "tokens in the trigger scan (default 10000; --quick: 2000)", positive=True)
    min_effect: float | None = option(
        None,
        "a planted run relies on the marker when the paired lower bound of its flip rate minus the clean run's is "
        "at least this (default 0.10); with fewer than 2 relying runs the verdict is inconclusive",
    )
    lr: float | None = option(None, "learning rate of every run (default 0.01)", positive=True)

    def own_settings(self) -> dict[str, Any]:
        settings = {"into": self.into, "marker": self.marker, "share": self.share, "multi_token": self.multi_token}
        settings["test_size"] = self.test_size or None  # 0: every test row
        given = {"scan_tokens": self.scan_tokens, "min_effect": self.min_effect, "lr": self.lr}
        given["max_steps"] = self.max_steps
        return settings | {k: v for k, v in given.items() if v is not None}

    def describe(self, plan: Any) -> str:
        return f"auditing the marker '{plan.extra['marker']}' in '{plan.settings.into}'"

    def further(self, plan: Any) -> str:
        return f"if the runs are trained on until the plant takes (to {plan.settings.most_steps} steps each)"

    def last_line(self, report: Any) -> str:
        """The verdict: the headline, and, when the plant did not take, how long the runs trained and what to
        change."""
        advice = report.advice()
        if not advice:
            return report.headline()
        training = report.training()
        return report.headline() + (f"; {training}" if training else "") + f"; {advice}"
