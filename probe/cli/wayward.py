"""``probe wayward``: can this model's prompts read as anything at little cost? (Khashabi et al. 2022)"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import emit, option
from probe.cli.sweeps import SweepOptions, announce, check_executor, sweep_settings


@dataclass
class Wayward(SweepOptions):
    """Train prompts whose nearest tokens are forced onto a target and measure what it costs them."""

    name: ClassVar[str] = "wayward"
    summary: ClassVar[str] = "the trust test: force the reading onto an unrelated text and onto permuted labels"
    epilog: ClassVar[str] = (
        "Per seed it trains an unconstrained prompt and one per target (the --text, and the label names in another "
        "order) into OUT/runs/ (finished runs are skipped when it is run again), and writes OUT/wayward.json and "
        "OUT/wayward.md. It prints its time estimate first."
    )

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

    def run(self) -> int:
        from probe.experiments.grid import estimate_seconds
        from probe.experiments.wayward import WaywardConfig, plan, render, wayward
        from probe.formats.replicate_report import RUNS

        overrides: dict[str, Any] = {"model": self.model, "data": self.data, "init": self.init, "length": self.length}
        overrides |= {"task": self.task, "text": self.text, "project_weight": self.project_weight}
        overrides["temperature"] = self.project_temperature
        overrides |= sweep_settings(self, "steps", "test_size")
        config = WaywardConfig.quick(**overrides) if self.quick else WaywardConfig(**overrides)
        check_executor(self.executor)
        configs, model = plan(config)  # a target with no usable tokens is refused here
        seconds, missing = estimate_seconds(configs, f"{self.out}/{RUNS}", model=model, scoring_passes=1)
        if missing:
            announce(
                f"training {missing} of {len(configs)} runs, then scoring them: about {max(1, round(seconds / 60))} "
                "min in one process on this machine (one step and one scoring pass timed)"
            )
        report = wayward(config, self.out, executor=self.executor, progress=not self.no_progress, force=self.force)
        emit(render(report), None)
        print(f"wrote {self.out}/wayward.md and wayward.json", file=sys.stderr)
        return 0
