"""``probe frontier``: soft accuracy against the faithfulness of the nearest-token reading, over λ x seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import option
from probe.cli.sweeps import OnePromptOptions, SweepCommand


@dataclass
class Frontier(SweepCommand, OnePromptOptions):
    """Sweep the faithfulness weight λ and measure what each prompt's nearest tokens keep of what it does."""

    name: ClassVar[str] = "frontier"
    summary: ClassVar[str] = "the accuracy-faithfulness frontier: train over faithfulness weights, score the readings"
    epilog: ClassVar[str] = (
        "It writes OUT/runs/ (one probe run per weight and seed; finished runs are skipped when it is run again), "
        "OUT/frontier.json, OUT/frontier.md and OUT/frontier.html. It prints its time estimate first. With "
        "--hard-lengths it also searches a real-token prompt of each length (probe harden --method search) from the "
        "run whose nearest tokens score best, each a point of the frontier."
    )
    sweep: ClassVar[str] = "probe.experiments.frontier"
    settings_class: ClassVar[str] = "FrontierConfig"

    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    out: str = option("probe-frontier", "folder for the runs and the report (default probe-frontier)")
    weights: list[float] | None = option(
        None, "faithfulness weights λ in [0, 1] (default 0 0.1 0.25 0.5 0.75 0.9 1)", nargs="+"
    )
    seeds: int | None = option(None, "seeds per weight (default 3; --quick: 1)", positive=True)
    quick: bool = option(False, "a first look: weights 0, 0.5, 1 x 1 seed x 60 steps, figures on 400 test rows")
    steps: int | None = option(None, "training steps per run (default 150; --quick: 60)", positive=True)
    test_size: int | None = option(None, "figures on a stratified subset of this many test rows", positive=True)
    hard_lengths: list[int] | None = option(
        None,
        "also a real-token prompt of each length (multiples of --length: 20 40 80), found by the exact search from the "
        "run whose nearest tokens score best, a point of the frontier (default: none)",
        nargs="+",
    )
    hard_steps: int | None = option(None, "steps of each of those searches (default 50)", positive=True)

    def own_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"weights": tuple(self.weights)} if self.weights else {}
        if self.hard_lengths:
            settings["hard_lengths"] = tuple(self.hard_lengths)
        if self.hard_steps:
            settings["hard_steps"] = self.hard_steps
        return settings

    def describe(self, plan: Any) -> str:
        return f"the frontier over λ = {', '.join(f'{w:g}' for w in plan.settings.weights)}"
