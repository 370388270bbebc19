"""``probe wayward``: can this model's prompts read as anything at little cost? (Khashabi et al. 2022)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import option
from probe.cli.sweeps import OnePromptOptions, SweepCommand


@dataclass
class Wayward(SweepCommand, OnePromptOptions):
    """Train prompts whose nearest tokens are forced onto a target and measure what it costs them."""

    name: ClassVar[str] = "wayward"
    summary: ClassVar[str] = "the trust test: force the reading onto an unrelated text and onto permuted labels"
    epilog: ClassVar[str] = (
        "Per seed it trains an unconstrained prompt and one per target (the --text, and the label names in another "
        "order) into OUT/runs/ (finished runs are skipped when it is run again), and writes OUT/wayward.json and "
        "OUT/wayward.md. It prints its time estimate first."
    )
    sweep: ClassVar[str] = "probe.experiments.wayward"
    settings_class: ClassVar[str] = "WaywardConfig"

    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    out: str = option("probe-wayward", "folder for the runs and the report (default probe-wayward)")
    text: str | None = option(
        None, "the unrelated target text (default: a sentence that shares no word with the labels)"
    )
    seeds: int | None = option(None, "seeds (default 1)", positive=True)
    quick: bool = option(False, "a first look: 60 steps, figures on 400 test rows")
    steps: int | None = option(None, "training steps per run (default 150; --quick: 60)", positive=True)
    test_size: int | None = option(None, "figures on a stratified subset of this many test rows", positive=True)
    project_weight: float = option(
        0.1, "γ, the weight of the projection term (default 0.1: the reading moves at almost no cost; 1 forces it)"
    )
    project_temperature: float = option(0.1, "τ of the projection softmax (default 0.1)")

    def own_settings(self) -> dict[str, Any]:
        return {"text": self.text, "project_weight": self.project_weight, "temperature": self.project_temperature}

    def describe(self, plan: Any) -> str:
        return f"the trust test at γ = {plan.settings.project_weight:g}"
