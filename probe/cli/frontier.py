"""``probe frontier``: soft accuracy against the faithfulness of the nearest-token reading, over λ x seeds."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import emit, option
from probe.cli.sweeps import SweepOptions, announce, check_executor, sweep_settings


@dataclass
class Frontier(SweepOptions):
    """Sweep the faithfulness weight λ and measure what each prompt's nearest tokens keep of what it does."""

    name: ClassVar[str] = "frontier"
    summary: ClassVar[str] = "the accuracy-faithfulness frontier: train over faithfulness weights, score the readings"
    epilog: ClassVar[str] = (
        "It writes OUT/runs/ (one probe run per weight and seed; finished runs are skipped when it is run again), "
        "OUT/frontier.json, OUT/frontier.md and OUT/frontier.html. It prints its time estimate first."
    )

    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    out: str = option("probe-frontier", "folder for the runs and the report (default probe-frontier)")
    weights: list[float] | None = option(
        None, "faithfulness weights λ in [0, 1] (default 0 0.1 0.25 0.5 0.75 0.9 1)", nargs="+"
    )
    seeds: int | None = option(None, "seeds per weight (default 3; --quick: 1)", positive=True)
    quick: bool = option(False, "a first look: weights 0, 0.5, 1 x 1 seed x 60 steps, figures on 400 test rows")
    steps: int | None = option(None, "training steps per run (default 150; --quick: 60)", positive=True)
    test_size: int | None = option(None, "figures on a stratified subset of this many test rows", positive=True)

    def run(self) -> int:
        from probe.experiments.frontier import FrontierConfig, frontier, render
        from probe.experiments.grid import estimate_seconds
        from probe.formats.replicate_report import RUNS

        overrides: dict[str, Any] = {"model": self.model, "data": self.data, "init": self.init, "length": self.length}
        overrides["task"] = self.task
        if self.weights:
            overrides["weights"] = tuple(self.weights)
        overrides |= sweep_settings(self, "steps", "test_size")
        config = FrontierConfig.quick(**overrides) if self.quick else FrontierConfig(**overrides)
        check_executor(self.executor)
        runs = config.run_configs()
        seconds, missing = estimate_seconds(runs, f"{self.out}/{RUNS}", scoring_passes=2)
        if missing:
            announce(
                f"training {missing} of {len(runs)} runs and scoring every run's reading: about "
                f"{max(1, round(seconds / 60))} min in one process on this machine (one step and one scoring "
                "pass timed)"
            )
        report = frontier(config, self.out, executor=self.executor, progress=not self.no_progress, force=self.force)
        emit(render(report), None)
        print(f"wrote {self.out}/frontier.md, frontier.json, frontier.html", file=sys.stderr)
        return 0
