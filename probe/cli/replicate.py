"""``probe replicate``: the paper's section-7 findings, measured."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from probe.cli.options import Command, emit, option


@dataclass
class Replicate(Command):
    """Measure the paper's findings on learned prompts (section 7)."""

    name: ClassVar[str] = "replicate"
    summary: ClassVar[str] = "measure the paper's findings on learned prompts (section 7)"

    quick: bool = option(False, "the quick grid: lengths 5 and 20 x 2 seeds x 60 steps, 400 test rows")
    out: str = option("probe-replicate", "folder for runs and the report (default probe-replicate)")
    model: str = option("default", "model name or folder (default: the bundled default)")
    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    seeds: list[int] | None = option(None, "seeds per (init, length)", nargs="+")
    lengths: list[int] | None = option(None, "prompt lengths", nargs="+", positive=True)
    steps: int | None = option(None, "training steps per run", positive=True)
    k: int = option(5, "neighbourhood size (default 5)", short="-k", positive=True)
    task: Literal["cosine", "verbaliser"] = option(
        "cosine", "encoder task form: cosine (sentence vs label names) or verbaliser (output position vs label token)"
    )
    test_size: int | None = option(
        None, "final figures on a stratified subset of this many test rows (default: all; --quick: 400)", positive=True
    )
    measure_only: bool = option(False, "only recompute the report from the saved runs")
    force: bool = option(False, "retrain runs in --out that were saved with other settings")
    no_progress: bool = option(False, "hide the progress bars")

    def run(self) -> int:
        from probe.experiments.replicate import REPORT_MD, ReplicateConfig, estimate_seconds, replicate, write_report

        overrides: dict[str, Any] = {"model": self.model, "data": self.data, "k": self.k, "task": self.task}
        if self.seeds:
            overrides["seeds"] = tuple(self.seeds)
        if self.lengths:
            overrides["lengths"] = tuple(self.lengths)
        if self.steps:
            overrides["steps"] = self.steps
        if self.test_size:
            overrides["test_size"] = self.test_size
        config = ReplicateConfig.quick(**overrides) if self.quick else ReplicateConfig(**overrides)
        if self.measure_only:
            text = write_report(config, self.out)
        else:
            seconds, missing = estimate_seconds(config, self.out)
            if missing:
                print(
                    f"training {missing} runs: about {seconds / 60:.0f} min on this machine "
                    f"(one step and one evaluation pass timed per length)",
                    file=sys.stderr,
                    flush=True,
                )
            text = replicate(config, self.out, progress=not self.no_progress, force=self.force)
        emit(text, None)
        print(f"wrote {self.out}/{REPORT_MD}", file=sys.stderr)
        return 0
