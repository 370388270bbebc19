"""``probe replicate``'s grid: what it trains (:class:`ReplicateConfig`), training it, and how long that takes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.data import BUNDLED
from probe.core.frames import as_splits
from probe.core.models import LoadedModel, load_model
from probe.formats.replicate_report import RUNS
from probe.formats.run import Run, is_run_folder
from probe.formats.runs import load_run
from probe.training.config import TaskForm, TrainConfig
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
        task: the encoder task form, "cosine" or "verbaliser" (:data:`probe.training.tasks.TASK_FORMS`).
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
    config: ReplicateConfig, out: str | os.PathLike[str], *, progress: bool = True, force: bool = False
) -> list[Run]:
    """Train (or reuse) every run of the grid under ``out/runs`` (``force``: retrain runs saved with other
    settings, instead of refusing)."""
    from probe.experiments.demo import ensure_runs  # the same skip-or-resume rule as the demo

    model = load_model(config.model, device="cpu")
    return ensure_runs(Path(out) / RUNS, config.run_configs(), model=model, progress=progress, force=force)


def missing_runs(config: ReplicateConfig, out: str | os.PathLike[str]) -> dict[str, TrainConfig]:
    """The grid's runs that ``out/runs`` does not hold finished with the same settings."""
    missing = {}
    for name, run_config in config.run_configs().items():
        path = Path(out) / RUNS / name
        if is_run_folder(path):
            run = load_run(path)
            if run.status == "finished" and run_config.same_as(run.manifest.config):
                continue
        missing[name] = run_config
    return missing


def estimate_seconds(
    config: ReplicateConfig, out: str | os.PathLike[str], *, model: LoadedModel | None = None
) -> tuple[float, int]:
    """(seconds, runs): how long training the grid's missing runs should take on this machine.

    Measured, not guessed: one training step is timed at each prompt length on the real data, and one evaluation
    pass per length on test rows; the grid's steps and evaluated rows are then added up (the zero-shot pass once).
    """
    import torch

    from probe.training.tasks import make_task, wrap_with_prompt

    missing = missing_runs(config, out)
    if not missing:
        return 0.0, 0
    model = model or load_model(config.model, device="cpu")
    first = next(iter(missing.values()))
    splits = as_splits(config.data, seed=first.seed)
    batch = splits.train.texts[: first.batch_size]
    targets = splits.train.targets[: first.batch_size]
    probe_rows = splits.test.texts[:64]
    test_rows = min(len(splits.test), config.test_size or len(splits.test))
    during = min(first.eval_size, test_rows)

    def timed(fn: Any) -> float:
        fn()  # warm: the first pass pays for allocation and kernel choice
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    per_length = {}
    for length in sorted({c.length for c in missing.values()}):
        vectors = np.zeros((length, model.dim), dtype=np.float32)
        vectors[:] = model.embeddings_numpy()[: length or 1].mean(0)
        task = make_task(model, wrap_with_prompt(model, vectors), splits.train.label_names, form=config.task)
        step = timed(lambda task=task: task.loss(batch, targets).backward())
        with torch.inference_mode():
            row = timed(lambda task=task: task.score_all(probe_rows)) / len(probe_rows)
        per_length[length] = (step, row)
        zero_row = row
    seconds = test_rows * zero_row  # the zero-shot pass, once per model and data (then cached)
    for run_config in missing.values():
        step, row = per_length[run_config.length]
        seconds += run_config.steps * step + (during + 2 * test_rows) * row + 2.0  # + loading and writing
    return seconds, len(missing)
