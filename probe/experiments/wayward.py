"""``probe wayward``: the trust test for the nearest-token reading, on the user's own model and task.

After Khashabi et al. 2022 ("Prompt Waywardness"): prompts are trained with a projection term
(:func:`probe.training.readable.projection_loss`) that forces each position's nearest token onto a target: an
unrelated text, and the label names in another order. Beside each, an unconstrained prompt of the same seed. The
report gives what reading as the target costs in accuracy (paired over the test rows, with 95% intervals) and the
share of positions that read as the target. If a prompt can read as anything at little cost, its nearest tokens
alone say nothing about what it does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.data import BUNDLED
from probe.core.frames import as_splits
from probe.core.index import VocabIndex
from probe.core.io import atomic_write_json, atomic_write_text
from probe.core.models import LoadedModel, load_model
from probe.core.stats import example_draws, percentile_interval
from probe.experiments.grid import run_grid
from probe.formats.replicate_report import RUNS
from probe.formats.run import Run
from probe.formats.wayward_report import WAYWARD_JSON, WAYWARD_MD, WaywardReport
from probe.readings.explain.readout import Readout
from probe.training.config import TrainConfig, check_weight
from probe.training.readable import projection_targets

UNRELATED = (
    "the old lighthouse keeper painted his wooden boat blue every spring",
    "grandmother knitted a green scarf while the kettle boiled on the stove",
)
"""Default targets, unrelated to any label set; the first that shares no word with the labels is used."""
LITTLE = 0.02
"""Khashabi et al.'s figure for GPT-2: prompts within about 2% of the best accuracy while reading as any text."""


@dataclass(frozen=True)
class WaywardConfig:
    """What ``probe wayward`` trains: per seed, an unconstrained prompt and one per target (see :class:`TrainConfig`
    for the training settings; ``project_weight`` is γ and ``temperature`` τ of the projection term)."""

    model: str = "default"
    data: Any = BUNDLED
    text: str | None = None
    init: str = "class-label"
    length: int = 20
    steps: int = 150
    lr: float = 0.01
    seeds: tuple[int, ...] = (0,)
    project_weight: float = 0.1
    temperature: float = 0.1
    task: str = "cosine"
    test_size: int | None = None
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        check_weight(self.project_weight, "the projection weight")
        if self.project_weight == 0:
            raise ValueError("the projection weight is 0: nothing would pull the reading; give a positive weight")
        if not self.seeds:
            raise ValueError("wayward needs at least one seed")
        if self.text is not None and not self.text.strip():
            raise ValueError("the target text is empty; give some words (--text 'SOME WORDS') or leave it out")

    @classmethod
    def quick(cls, **overrides: Any) -> WaywardConfig:
        """The ``--quick`` look: one seed, 60 steps, the figures on 400 test rows."""
        return replace(cls(seeds=(0,), steps=60, test_size=400), **overrides)

    def targets(self, labels: list[str]) -> dict[str, str]:
        """Target name -> text: ``text`` (the given text, else an unrelated default) and ``labels`` (the label
        names in an order where none keeps its place)."""
        words = {w.lower() for label in labels for w in label.replace("/", " ").split()}
        text = self.text or next((t for t in UNRELATED if not words & set(t.split())), UNRELATED[0])
        order = list(range(len(labels)))
        order = order[1:] + order[:1]  # a rotation: no label keeps its place
        return {"text": text.strip(), "labels": " ".join(labels[i] for i in order)}

    def run_configs(self, labels: list[str]) -> dict[str, TrainConfig]:
        """Run name -> training config: ``free-sN`` and ``<target>-sN`` for every seed."""
        base = {
            "model": self.model,
            "data": self.data,
            "init": self.init,
            "length": self.length,
            "steps": self.steps,
            "lr": self.lr,
            "task": self.task,
            "test_size": self.test_size,
            "snapshot_every": max(1, self.steps // 2),
            "eval_every": self.steps,
            "eval_size": 100,
        }
        out = {}
        for seed in self.seeds:
            out[f"free-s{seed}"] = TrainConfig(**base, seed=seed)
            for name, text in self.targets(labels).items():
                out[f"{name}-s{seed}"] = TrainConfig(
                    **base,
                    seed=seed,
                    project_to=f"text:{text}",
                    project_weight=self.project_weight,
                    project_temperature=self.temperature,
                )
        return out


def plan(config: WaywardConfig, model: LoadedModel | None = None) -> tuple[dict[str, TrainConfig], LoadedModel]:
    """The runs to train, every target checked first (a text with no usable tokens is refused before anything
    is written)."""
    model = model or load_model(config.model, device="cpu")
    splits = as_splits(config.data, seed=config.seeds[0])
    index = VocabIndex.for_model(model)
    for text in config.targets(splits.train.label_names).values():
        projection_targets(f"text:{text}", model, index, config.length, [])
    return config.run_configs(splits.train.label_names), model


def wayward(
    config: WaywardConfig,
    out: str | os.PathLike[str],
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
) -> WaywardReport:
    """Train the runs (skipping finished ones) into ``out/runs``, measure them, and write ``wayward.json`` and
    ``wayward.md`` into ``out``."""
    configs, model = plan(config)
    runs = run_grid(configs, Path(out) / RUNS, executor=executor, model=model, force=force, progress=progress)
    report = measure(config, dict(zip(configs, runs, strict=True)), model)
    write(report, Path(out))
    return report


def measure(config: WaywardConfig, runs: dict[str, Run], model: LoadedModel | None = None) -> WaywardReport:
    """Each target's accuracy cost against the unconstrained prompt of the same seed (paired over the test
    rows, averaged over seeds) and the share of positions whose nearest token is their target."""
    model = model or load_model(config.model, device="cpu")
    index = VocabIndex.for_model(model)
    readout = Readout.from_run(runs[f"free-s{config.seeds[0]}"], model)
    test = readout.splits.test
    draws = example_draws(len(test), n=config.bootstrap, seed=0, stream=3)

    def correct(run: Run) -> np.ndarray:
        return readout.outcome(run.latest_prompt().vectors, test)[0]

    free = {seed: correct(runs[f"free-s{seed}"]) for seed in config.seeds}
    free_accuracy = float(np.mean([c.mean() for c in free.values()]))
    rows = []
    for name, text in config.targets(readout.labels).items():
        wanted = index.token_ids[projection_targets(f"text:{text}", model, index, config.length, [])]
        accuracies, costs, draws_cost, top1, top5, control = [], [], [], [], [], []
        reading = ""
        for seed in config.seeds:
            run = runs[f"{name}-s{seed}"]
            right = correct(run)
            diff = free[seed] - right
            accuracies.append(right.mean())
            costs.append(diff.mean())
            draws_cost.append(diff[draws].mean(1))
            vectors = run.latest_prompt().vectors
            _, ids = index.search(vectors, 5)
            top1.append(np.mean(ids[:, 0] == wanted))
            top5.append(np.mean((ids == wanted[:, None]).any(1)))
            _, free_ids = index.search(runs[f"free-s{seed}"].latest_prompt().vectors, 1)
            control.append(np.mean(free_ids[:, 0] == wanted))
            if not reading:
                reading = " ".join(model.tokenizer.convert_ids_to_tokens(ids[:, 0].tolist()))
        cost = float(np.mean(costs))
        rows.append(
            {
                "target": name,
                "text": text,
                "runs": [str(runs[f"{name}-s{seed}"].path) for seed in config.seeds],
                "soft_accuracy": float(np.mean(accuracies)),
                "cost": cost,
                "cost_ci": percentile_interval(np.mean(draws_cost, axis=0)),
                "relative_cost": cost / free_accuracy if free_accuracy else float("nan"),
                "reads_as_target": float(np.mean(top1)),
                "reads_as_target_top5": float(np.mean(top5)),
                "unconstrained_reads_as_target": float(np.mean(control)),
                "reading": reading,
            }
        )
    context = {
        "model": model.name,
        "data": str(config.data) if isinstance(config.data, str) else "<memory>",
        "init": config.init,
        "length": config.length,
        "steps": config.steps,
        "seeds": list(config.seeds),
        "project_weight": config.project_weight,
        "temperature": config.temperature,
        "task": config.task,
        "test_rows": len(test),
        "free_runs": [str(runs[f"free-s{seed}"].path) for seed in config.seeds],
    }
    return WaywardReport(free_accuracy=free_accuracy, targets=rows, conclusion=_conclusion(rows[0]), context=context)


def _conclusion(text_row: dict[str, Any]) -> str:
    low, high = text_row["cost_ci"]
    return (
        f"If a prompt can read as “{text_row['text']}” at little cost, its nearest tokens alone are no evidence of "
        f"what it does: here {text_row['reads_as_target']:.0%} of its positions read as that text, at a cost of "
        f"{text_row['cost'] * 100:.1f} accuracy points [{low * 100:.1f}, {high * 100:.1f}]."
    )


def render(report: WaywardReport) -> str:
    """The markdown report."""
    c = report.context
    lines = [
        "# Prompt waywardness",
        "",
        f"Model `{c.get('model')}`, data `{c.get('data')}`, {c.get('init')} init, p={c.get('length')}, "
        f"{c.get('steps')} steps, seeds {c.get('seeds')}, task {c.get('task')}; {c.get('test_rows')} test rows. "
        f"Each target run adds γ={c.get('project_weight'):g} · the projection loss (τ={c.get('temperature'):g}) "
        "toward the target's tokens, cycled over the positions; the cost is the unconstrained prompt's accuracy "
        "minus the target run's, paired over the test rows (same seed), with a 95% bootstrap interval.",
        "",
        f"Unconstrained soft accuracy: {report.free_accuracy:.3f}.",
        "",
        "| target | text | reads as target (top-1 / top-5) | unconstrained reads as it | soft accuracy "
        "| cost, points [95% CI] | relative cost |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for r in report.targets:
        low, high = r["cost_ci"]
        lines.append(
            f"| {r['target']} | {r['text']} | {r['reads_as_target']:.0%} / {r['reads_as_target_top5']:.0%} | "
            f"{r['unconstrained_reads_as_target']:.0%} | {r['soft_accuracy']:.3f} | "
            f"{r['cost'] * 100:.1f} [{low * 100:.1f}, {high * 100:.1f}] | {r['relative_cost']:.1%} |"
        )
    lines += ["", "The readings (nearest token per position, first seed):", ""]
    lines += [f"- {r['target']}: `{r['reading']}`" for r in report.targets]
    lines += [
        "",
        f"Khashabi et al. 2022 report GPT-2 prompts within about {LITTLE:.0%} of the best accuracy while their "
        "projections read as arbitrary, even contradictory, text.",
        "",
        report.conclusion,
    ]
    return "\n".join(lines) + "\n"


def write(report: WaywardReport, out: Path) -> None:
    """``wayward.json`` and ``wayward.md`` into ``out``."""
    text = render(report)
    atomic_write_json(out / WAYWARD_JSON, report.to_dict())
    atomic_write_text(out / WAYWARD_MD, text)
