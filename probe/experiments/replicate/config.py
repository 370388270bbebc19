"""``probe replicate``'s grid: what it trains (:class:`ReplicateConfig`), training it, and how long that takes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.core.models import LoadedModel
from probe.experiments.grid import RUNS, missing, run_grid
from probe.experiments.grid import estimate_seconds as grid_estimate
from probe.experiments.sweep import Plan, SweepSettings
from probe.formats.run import Run
from probe.tasks.forms import TaskForm
from probe.training.config import TrainConfig
from probe.training.inits import PAPER_INITS, Scale


@dataclass(frozen=True, kw_only=True)
class ReplicateConfig(SweepSettings):
    """What ``probe replicate`` trains and measures.

    The default regime makes prompts of every init move: AdamW at lr 0.01 with the random-uniform init scaled to
    the vocabulary's mean norm. Scaling changes no direction, so every cosine reading of the random init (its
    neighbours, the random-vector control) is the paper's; at the paper's [-0.5, 0.5] (norm about 5x the
    vocabulary's here) the same optimiser barely moves it (docs/replicate.md has the numbers).

    Attributes:
        inits: initialisations to compare.
        lengths: prompt lengths.
        k: neighbourhood size for the findings (the paper reads top-5).
        optimizer / init_scale: the training regime (see :class:`probe.training.config.TrainConfig`).
        The rest: :class:`probe.experiments.sweep.SweepSettings` (``task`` is the encoder task form,
        :data:`probe.tasks.forms.TASK_FORMS`).
    """

    inits: tuple[str, ...] = tuple(i.value for i in PAPER_INITS)
    lengths: tuple[int, ...] = (1, 5, 20, 100)
    k: int = 5
    bootstrap: int = 2000
    optimizer: str = "adamw"
    init_scale: Scale = "vocab-norm"
    task: TaskForm = "cosine"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """The ``--quick`` grid: lengths 5 and 20, 2 seeds, 60 steps, the final figures on 400 test rows."""
        return {"lengths": (5, 20), "seeds": (0, 1), "steps": 60, "test_size": 400}

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole grid."""
        return {
            f"{init}-p{length}-s{seed}": self.train_config(
                init=init, length=length, seed=seed, optimizer=self.optimizer, init_scale=self.init_scale
            )
            for init in self.inits
            for length in self.lengths
            for seed in self.seeds
        }

    def plan(self, out: Path, model: LoadedModel) -> Plan[Any]:
        return Plan(self, self.run_configs(), {"started": time.time()})  # the report says how long it all took


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
