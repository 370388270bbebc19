"""A sweep: a grid of training runs, measured together into one report. ``probe frontier``, ``wayward``, ``audit``
and ``replicate`` are each one package of :mod:`probe.experiments` holding its grid (``config.py``), its
measurement (``measure.py``), its record (``record.py``) and, where it has them, its figure and its dashboard
table; each exposes a :class:`Sweep`, and this module runs any of them the same way (:func:`run_sweep`).

A new sweep touches one folder: a settings dataclass (from :class:`SweepSettings`: its runs, what reading them
costs), a measurement, a record with ``to_json`` and ``to_markdown``, and its :class:`Sweep`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Generic, TypeVar

from probe.core.data import BUNDLED
from probe.core.io import atomic_write_text
from probe.core.models import LoadedModel
from probe.experiments.grid import RUNS, Cost, estimate_range, run_grid
from probe.formats.run import Run
from probe.training.config import TrainConfig

SettingsT = TypeVar("SettingsT", bound="SweepSettings")
ReportT = TypeVar("ReportT")


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    """What every sweep's runs share; a sweep's own settings add to these (see :meth:`train_config`).

    Attributes:
        model / data / steps / lr / task / test_size: as in :class:`probe.training.config.TrainConfig`.
        seeds: the seeds of each cell of the grid.
        bootstrap: resamples of the test rows for every interval.
    """

    model: str = "default"
    data: Any = BUNDLED
    steps: int = 150
    lr: float = 0.01
    task: str = "cosine"
    test_size: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError(f"{type(self).__name__} needs at least one seed")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """What ``--quick`` changes (a sweep overrides this)."""
        return {}

    @classmethod
    def quick(cls: type[SettingsT], **overrides: Any) -> SettingsT:
        """The ``--quick`` sweep: :meth:`quick_settings`, then ``overrides``."""
        return cls(**{**cls.quick_settings(), **overrides})

    def train_config(self, **fields: Any) -> TrainConfig:
        """One run's training config: these settings, a snapshot halfway and at the end, one evaluation on 100
        rows at the start as a progress mark (the report reads the final figures), and ``fields`` (the run's own:
        seed, init, length, weights, ...)."""
        base: dict[str, Any] = {"model": self.model, "data": self.data, "steps": self.steps, "lr": self.lr}
        base |= {"task": self.task, "test_size": self.test_size, "snapshot_every": max(1, self.steps // 2)}
        base |= {"eval_every": self.steps, "eval_size": 100}
        return TrainConfig(**(base | fields))

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config (a sweep's settings define it, or :meth:`plan`)."""
        raise NotImplementedError(f"{type(self).__name__} lists no runs")

    def plan(self, out: Path, model: LoadedModel) -> Plan[Any]:
        """The runs to train; every input checked first (nothing is written before this returns, but the data
        files a sweep plants)."""
        return Plan(self, self.run_configs(), {})

    def reading_cost(self, plan: Plan[Any]) -> Cost:
        """What measuring every run costs once they are trained, in passes the estimate times here."""
        return Cost()

    def further_cost(self, plan: Plan[Any]) -> Cost:
        """What training may add after the plan's runs (a sweep that continues its runs until an effect holds: the
        audit); the estimate gives it as an "up to"."""
        return Cost()

    def describe_data(self) -> str:
        """The data as a report names it (a path or a bundled set; ``<memory>`` for a table handed in)."""
        return str(self.data) if isinstance(self.data, str | os.PathLike) else "<memory>"

    def context(self, model: LoadedModel) -> dict[str, Any]:
        """What every sweep's report says it was measured on: the model, the data, the schedule, the seeds."""
        return {"model": model.name, "data": self.describe_data(), "steps": self.steps, "task": self.task} | {
            "seeds": list(self.seeds)
        }


@dataclass(frozen=True, kw_only=True)
class OnePromptSettings(SweepSettings):
    """Settings of a sweep whose runs share one init and one length (frontier, wayward, audit)."""

    init: str = "class-label"
    length: int = 20
    text_column: str = "text"
    label_column: str = "label"

    def columns(self) -> dict[str, Any]:
        """The data's text and label columns, as :func:`probe.core.frames.as_splits` takes them."""
        return {"text_column": self.text_column, "label_column": self.label_column}

    def train_config(self, **fields: Any) -> TrainConfig:
        return super().train_config(**({"init": self.init, "length": self.length} | self.columns() | fields))

    def context(self, model: LoadedModel) -> dict[str, Any]:
        return super().context(model) | {"init": self.init, "length": self.length}


@dataclass(frozen=True)
class Plan(Generic[SettingsT]):
    """What a sweep trains: its settings, the runs by name, and anything its measurement needs (``extra``)."""

    settings: SettingsT
    configs: dict[str, TrainConfig]
    extra: dict[str, Any]


SweepTraining = Callable[
    [Plan[SettingsT], Callable[[dict[str, TrainConfig]], dict[str, Run]], LoadedModel, bool],
    tuple[Plan[SettingsT], dict[str, Run]],
]
"""A sweep's own training (:attr:`Sweep.train`)."""


@dataclass(frozen=True)
class Sweep(Generic[SettingsT, ReportT]):
    """One kind of sweep (see the module docstring). Its settings plan the runs (:meth:`SweepSettings.plan`) and
    say what measuring them costs; ``measure`` reads the finished runs into the report, which is written as
    ``files`` (the record's JSON and markdown) and ``figures``.

    Attributes:
        name: the command's name (``frontier``).
        measure: ``(plan, runs by name, model, progress) -> report``.
        files: the report's JSON and markdown file names.
        figures: (HTML file name, dotted path of the function that draws it from the report) pairs; a figure of
            ``None`` is not written.
        train: how the plan's runs are trained, ``(plan, grid, model, progress) -> (plan as trained, runs by
            name)`` with ``grid`` training configs into finished runs; None: once, through the grid (the audit
            continues its runs in rounds).
    """

    name: str
    measure: Callable[[Plan[SettingsT], dict[str, Run], LoadedModel, bool], ReportT]
    files: tuple[str, str]
    figures: tuple[tuple[str, str], ...] = ()
    train: SweepTraining[SettingsT] | None = None

    def outputs(self, report: ReportT) -> dict[str, str]:
        """File name -> text of every file the report is written as (all rendered before any is written)."""
        from probe.plots.export import to_html

        record: Any = report
        texts = {self.files[0]: record.to_json() + "\n", self.files[1]: record.to_markdown()}
        for name, path in self.figures:
            module, _, function = path.rpartition(".")
            figure = getattr(import_module(module), function)(report)
            if figure is not None:
                texts[name] = to_html(figure, inline=False)
        return texts

    def run(
        self,
        settings: SettingsT,
        out: str | os.PathLike[str],
        *,
        executor: Any = None,
        progress: bool = True,
        force: bool = False,
        model: LoadedModel | None = None,
    ) -> ReportT:
        """Plan, train the runs ``out/runs`` does not hold finished (through ``executor``), measure every run, and
        write the report's files into ``out`` (the sweep's entry point: ``frontier = SWEEP.run``)."""
        from probe.core.models import load_model

        model = model or load_model(settings.model, device="cpu")
        plan = settings.plan(Path(out), model)
        return run_sweep(self, plan, out, model, executor=executor, progress=progress, force=force)

    def write(self, report: ReportT, out: str | os.PathLike[str]) -> list[str]:
        """Write the report's files into ``out`` (each atomically); their names."""
        files = self.outputs(report)
        for name, text in files.items():
            atomic_write_text(Path(out) / name, text)
        return list(files)


def estimate(
    sweep: Sweep[SettingsT, Any], plan: Plan[SettingsT], out: str | os.PathLike[str], model: LoadedModel
) -> tuple[float, int, float]:
    """(seconds, runs to train, further seconds): training the runs ``out`` does not hold finished, then measuring
    every run; and what continuing them may add (:meth:`SweepSettings.further_cost`; 0 for most sweeps)."""
    settings = plan.settings
    return estimate_range(
        plan.configs,
        Path(out) / RUNS,
        model=model,
        reading=settings.reading_cost(plan),
        further=settings.further_cost(plan),
    )


def run_sweep(
    sweep: Sweep[SettingsT, ReportT],
    plan: Plan[SettingsT],
    out: str | os.PathLike[str],
    model: LoadedModel,
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
    written: list[str] | None = None,
) -> ReportT:
    """Train the plan's runs into ``out/runs`` (finished ones kept, interrupted ones resumed) through
    ``executor``, measure them, and write the report's files into ``out`` (their names appended to ``written``
    when it is given)."""

    def grid(configs: dict[str, TrainConfig]) -> dict[str, Run]:
        runs = run_grid(configs, Path(out) / RUNS, executor=executor, model=model, force=force, progress=progress)
        return dict(zip(configs, runs, strict=True))

    if sweep.train is None:
        runs = grid(plan.configs)
    else:
        plan, runs = sweep.train(plan, grid, model, progress)
    report = sweep.measure(plan, runs, model, progress)
    names = sweep.write(report, out)
    if written is not None:
        written.extend(names)
    return report
