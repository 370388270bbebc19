"""``probe replicate``: the paper's section-7 findings, measured."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from probe.cli.options import emit, option
from probe.cli.sweeps import SweepCommand, SweepOptions, announce


@dataclass
class Replicate(SweepCommand, SweepOptions):
    """Measure the paper's findings on learned prompts (section 7)."""

    name: ClassVar[str] = "replicate"
    summary: ClassVar[str] = "measure the paper's findings on learned prompts (section 7)"
    sweep: ClassVar[str] = "probe.experiments.replicate"
    settings_class: ClassVar[str] = "ReplicateConfig"

    quick: bool = option(False, "the quick grid: lengths 5 and 20 x 2 seeds x 60 steps, 400 test rows")
    out: str = option("probe-replicate", "folder for runs and the report (default probe-replicate)")
    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    seeds: list[int] | None = option(None, "seeds per (init, length)", nargs="+")
    lengths: list[int] | None = option(None, "prompt lengths", nargs="+", positive=True)
    steps: int | None = option(None, "training steps per run", positive=True)
    k: int = option(5, "neighbourhood size (default 5)", short="-k", positive=True)
    test_size: int | None = option(
        None, "final figures on a stratified subset of this many test rows (default: all; --quick: 400)", positive=True
    )
    measure_only: bool = option(False, "only recompute the report from the saved runs")

    def own_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"k": self.k}
        if self.seeds:
            settings["seeds"] = tuple(self.seeds)
        if self.lengths:
            settings["lengths"] = tuple(self.lengths)
        return settings

    def describe(self, plan: Any) -> str:
        return "the paper's findings"

    def run(self) -> int:
        if not self.measure_only:
            return super().run()
        from probe.core.budget import check_time
        from probe.experiments.replicate import REPORT_MD, write_report

        def check(seconds: float) -> None:
            announce(
                f"reading the saved runs: about {max(1, round(seconds / 60))} min (one run's reading timed, times the "
                "runs; the findings computed from them after take seconds)"
            )
            less = "measure fewer runs (move some out of the runs folder)"
            check_time(seconds, "probe replicate --measure-only", minutes=self.budget_minutes, less=less)

        emit(write_report(self.settings(), self.out, check_seconds=check), None)
        print(f"wrote {self.out}/{REPORT_MD}", file=sys.stderr)
        return 0
