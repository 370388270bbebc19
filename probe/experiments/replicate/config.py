"""``probe replicate``'s grid: what it trains (:class:`ReplicateConfig`), training it, and how long that takes."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from probe.core.data import BUNDLED
from probe.core.models import LoadedModel
from probe.experiments.grid import estimate_seconds as grid_estimate
from probe.experiments.grid import missing, run_grid
from probe.formats.replicate_report import RUNS
from probe.formats.run import Run
from probe.tasks.forms import TaskForm
from probe.training.config import TrainConfig
from probe.training.inits import PAPER_INITS, Scale


@dataclass(frozen=True)
class ReplicateConfig:
    """What ``probe replicate`` trains and measures.

    The default regime makes prompts of every init move: AdamW at lr 0.01 with the random-uniform init scaled to
    the vocabulary's mean norm. Scaling changes no direction, so every cosine reading of the random init (its
    neighbours, the random-vector control) is the paper's; at the paper's [-0.5, 0.5] (norm about 5x the
    vocabulary's here) the same optimiser barely moves it (docs/replicate.md has the numbers).

    Attributes:
        model / data: as in :class:`probe.training.trainer.TrainConfig`.
        inits: initialisations to compare.
        lengths: prompt lengths.
        seeds: seeds per (init, length).
        steps: training steps per run.
        k: neighbourhood size for the findings (the paper reads top-5).
        bootstrap: bootstrap resamples for the intervals.
        optimizer / lr / init_scale: the training regime (see :class:`probe.training.trainer.TrainConfig`).
        task: the encoder task form, "cosine" or "verbaliser" (:data:`probe.tasks.kinds.TASK_FORMS`).
        test_size: score the final figures on a seeded, stratified subset of this many test rows (None: all).
    """

    model: str = "default"
    data: Any = BUNDLED  # a path, a bundled set's name, or an in-memory table (probe.core.frames.Data)
    inits: tuple[str, ...] = tuple(i.value for i in PAPER_INITS)
    lengths: tuple[int, ...] = (1, 5, 20, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 150
    k: int = 5
    bootstrap: int = 2000
    optimizer: str = "adamw"
    lr: float = 0.01
    init_scale: Scale = "vocab-norm"
    task: TaskForm = "cosine"
    test_size: int | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> ReplicateConfig:
        """The ``--quick`` grid: lengths 5 and 20, 2 seeds, 60 steps, the final figures on 400 test rows."""
        return replace(cls(lengths=(5, 20), seeds=(0, 1), steps=60, test_size=400), **overrides)

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole grid."""
        out = {}
        for init in self.inits:
            for length in self.lengths:
                for seed in self.seeds:
                    out[f"{init}-p{length}-s{seed}"] = TrainConfig(
                        model=self.model,
                        data=self.data,
                        init=init,
                        length=length,
                        seed=seed,
                        steps=self.steps,
                        snapshot_every=max(1, self.steps // 2),
                        eval_every=self.steps,
                        eval_size=100,  # read at step 0 only, as a progress mark: the findings use the final test
                        optimizer=self.optimizer,  # type: ignore[arg-type]
                        lr=self.lr,
                        init_scale=self.init_scale,
                        task=self.task,
                        test_size=self.test_size,
                    )
        return out


def train_grid(
    config: ReplicateConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    force: bool = False,
    executor: Any = None,
) -> list[Run]:
    """Train (or reuse) every run of the grid under ``out/runs`` through ``executor`` (see
    :mod:`probe.experiments.grid`; ``force``: retrain runs saved with other settings, instead of refusing)."""
    return run_grid(config.run_configs(), Path(out) / RUNS, executor=executor, force=force, progress=progress)


def missing_runs(config: ReplicateConfig, out: str | os.PathLike[str]) -> dict[str, TrainConfig]:
    """The grid's runs that ``out/runs`` does not hold finished with the same settings."""
    return missing(config.run_configs(), Path(out) / RUNS)


def estimate_seconds(
    config: ReplicateConfig, out: str | os.PathLike[str], *, model: LoadedModel | None = None
) -> tuple[float, int]:
    """(seconds, runs): how long training the grid's missing runs should take on this machine (timed, not
    guessed: :func:`probe.experiments.grid.estimate_seconds`)."""
    return grid_estimate(config.run_configs(), Path(out) / RUNS, model=model)
