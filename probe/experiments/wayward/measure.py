"""``probe wayward``'s measurement (see the package): each target's accuracy cost against the unconstrained prompt
of the same seed, paired over the test rows, and the share of positions whose nearest token is their target."""

from __future__ import annotations

from typing import Any

import numpy as np

from probe.core.index import VocabIndex
from probe.core.models import LoadedModel, load_model
from probe.core.stats import example_draws, percentile_interval
from probe.experiments.wayward.config import WaywardConfig
from probe.experiments.wayward.record import WaywardReport
from probe.formats.run import Run
from probe.readings.explain.readout import Readout
from probe.training.readable import projection_targets


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
    context = config.context(model) | {"project_weight": config.project_weight, "temperature": config.temperature}
    context |= {"test_rows": len(test), "free_runs": [str(runs[f"free-s{seed}"].path) for seed in config.seeds]}
    return WaywardReport(free_accuracy=free_accuracy, targets=rows, conclusion=_conclusion(rows[0]), context=context)


def _conclusion(text_row: dict[str, Any]) -> str:
    low, high = text_row["cost_ci"]
    return (
        f"If a prompt can read as “{text_row['text']}” at little cost, its nearest tokens alone are no evidence of "
        f"what it does: here {text_row['reads_as_target']:.0%} of its positions read as that text, at a cost of "
        f"{text_row['cost'] * 100:.1f} accuracy points [{low * 100:.1f}, {high * 100:.1f}]."
    )
