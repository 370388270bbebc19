"""The commands that run a sweep (frontier, wayward, audit, replicate) as one class: the options they share, the
settings built from them, the executor checked before anything is timed or written, the estimate printed first,
then :func:`probe.experiments.sweep.run_sweep`. A sweep's command says only what is its own: its options, the
sweep it runs (``sweep``) and the settings those options give (:meth:`SweepCommand.own_settings`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, Literal

from probe.cli.options import Command, budget_minutes_option, emit, option


@dataclass(kw_only=True)
class SweepOptions(Command):
    """The options of every sweep command, listed after the command's own (``probe COMMAND --help``)."""

    model: str = option("default", "model name or folder (default: the bundled default)")
    task: Literal["cosine", "verbaliser"] = option("cosine", "encoder task form (default cosine)")
    executor: str = option("inline", "where the runs train: inline, processes:N, dask://HOST:PORT (default inline)")
    force: bool = option(False, "retrain runs in --out that were saved with other settings")
    no_progress: bool = option(False, "hide the progress bars")
    budget_minutes: float | None = budget_minutes_option()


@dataclass(kw_only=True)
class OnePromptOptions(SweepOptions):
    """The options of a sweep whose runs share one init and length."""

    init: str = option("class-label", "the init of every run (default class-label)")
    length: int = option(20, "prompt positions (default 20)", positive=True)
    text_column: str = option("text", "column with the text in --data (default text)")
    label_column: str = option("label", "column with the label in --data (default label)")


class SweepCommand:
    """What a sweep command does (mixed into its options dataclass): the subclass names its sweep's package
    (``sweep``) and turns its own options into settings (:meth:`own_settings`); ``out``, ``quick``, ``data``,
    ``steps`` and ``test_size`` are every sweep command's fields."""

    sweep: ClassVar[str]
    """The sweep's package (``probe.experiments.frontier``): its ``SWEEP`` and its settings class ``SETTINGS``."""
    settings_class: ClassVar[str]

    def own_settings(self) -> dict[str, Any]:
        """The settings this command's own options give, taken as they are (leave out one not given)."""
        return {}

    def settings(self) -> Any:
        """The sweep's settings from the options given: ``--quick`` first, then every option that was given."""
        opts: Any = self
        given: dict[str, Any] = {"model": opts.model, "data": opts.data, "task": opts.task}
        names = ("init", "length", "steps", "test_size", "text_column", "label_column")
        given |= {name: getattr(opts, name, None) for name in names}
        seeds = getattr(opts, "seeds", None)
        if isinstance(seeds, int):
            given["seeds"] = tuple(range(seeds))  # --seeds N: the seeds 0..N-1
        values = {k: v for k, v in given.items() if v is not None} | self.own_settings()
        cls = getattr(import_module(self.sweep), self.settings_class)
        return cls.quick(**values) if opts.quick else cls(**values)

    def describe(self, plan: Any) -> str:
        """What the estimate line says is being done (the sweep's name by default)."""
        return f"probe {self.sweep.rsplit('.', 1)[-1]}"

    def further(self, plan: Any) -> str:
        """What the estimate's "up to" is for, when the sweep may train further (its ``further_cost``)."""
        return "if the runs are trained further"

    def last_line(self, report: Any) -> str:
        """A line printed on stderr after the files are written ("" by default: none)."""
        return ""

    def run(self) -> int:
        from probe.core.budget import check_time
        from probe.core.models import load_model
        from probe.experiments.sweep import estimate, run_sweep

        opts: Any = self
        settings = self.settings()
        check_executor(opts.executor)
        sweep = import_module(self.sweep).SWEEP
        model = load_model(settings.model, device="cpu")
        plan = settings.plan(Path(opts.out), model)  # every input checked before anything is trained
        seconds, missing, further = estimate(sweep, plan, opts.out, model)
        upto = f", up to {max(1, round((seconds + further) / 60))} min {self.further(plan)}" if further > 0 else ""
        announce(
            f"{self.describe(plan)}: training {missing} of {len(plan.configs)} runs, then measuring every run: about "
            f"{max(1, round(seconds / 60))} min{upto} in one process on this machine (one step and one scoring pass "
            "timed)"
        )
        less = "ask for less (--quick, fewer --steps, --seeds or --test-size)"
        check_time(seconds + further, f"probe {self.sweep.rsplit('.', 1)[-1]}", minutes=opts.budget_minutes, less=less)
        written: list[str] = []
        progress, force = not opts.no_progress, opts.force
        report = run_sweep(
            sweep, plan, opts.out, model, executor=opts.executor, progress=progress, force=force, written=written
        )
        emit(report.to_markdown(), None)
        print(f"wrote {opts.out}/{', '.join(written)}", file=sys.stderr)
        if last := self.last_line(report):
            print(last, file=sys.stderr)
        return 0


def check_executor(spec: str) -> None:
    """Refuse an unknown executor or an unreachable scheduler (one line) before anything is timed or written."""
    from probe.experiments.grid import executor_for

    with executor_for(spec):
        pass


def announce(text: str) -> None:
    """The estimate, on stderr before the work starts."""
    print(text, file=sys.stderr, flush=True)
