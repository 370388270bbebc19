"""Position importance, by ablation: what accuracy and loss do when each position is removed, read as its
nearest token, or replaced by the mean vocabulary embedding (a neutral control), with paired bootstrap
intervals over the evaluation examples (:func:`probe.core.stats.paired_interval`).

It reads any objective through :meth:`Readout.outcome` (per example: correct, loss). Classification ranks the
positions by the accuracy drop; the target objective (token accuracy, mean negative log-likelihood of the target)
by the loss's rise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probe.core.data import LabelledData
from probe.core.names import CLASSIFICATION
from probe.core.progress import progress_bar
from probe.core.softprompt import SoftPrompt
from probe.core.stats import example_draws, paired_interval
from probe.formats.explain_record import ImportanceTable, PositionImportance
from probe.readings.explain.costs import check_rows
from probe.readings.explain.readout import Readout, prompt_of
from probe.readings.explain.standins import stand_in_rows


def importance(
    prompt: SoftPrompt | np.ndarray | Any,
    readout: Readout,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = False,
    budget_minutes: float | None = None,
) -> ImportanceTable:
    """Per position i: accuracy and mean loss with i removed, with i as its nearest token, with i as the mean
    vocabulary embedding; the drops from the soft prompt with paired bootstrap intervals; a ranking.

    Each variant is one batched pass over the test split (3p + 1 passes in all).

    Args:
        budget_minutes: refuse, before any pass, when the 3p + 1 passes would take longer (None: no budget).

    Raises:
        ValueError: a prompt of another dimension than the model's; the passes over ``budget_minutes``.
    """
    vectors = prompt_of(readout, prompt).vectors
    data = readout.splits.test
    p = vectors.shape[0]
    check_rows(readout, vectors, (3 * p + 1) * len(data), "importance", budget_minutes, less="fewer test rows")
    bar = progress_bar(3 * p + 1, "importance", enabled=progress)
    soft_correct, soft_loss = readout.outcome(vectors, data)
    bar.update(1)
    read_as = stand_in_rows(vectors, readout)
    draws = example_draws(len(data), n=bootstrap, seed=seed, stream=None)
    rows = []
    for i in range(p):
        variants = {}
        if p > 1:
            variants["removed"] = readout.outcome(np.delete(vectors, i, axis=0), data)
        else:  # the prompt one shorter is no prompt: the frozen model
            variants["removed"] = _no_prompt_outcome(readout, data)
        for name, row in (("nearest", read_as.nearest[i]), ("mean", read_as.mean)):
            changed = vectors.copy()
            changed[i] = row
            variants[name] = readout.outcome(changed, data)
        bar.update(3)
        values: dict[str, Any] = {}
        for name, (correct, loss) in variants.items():
            values[f"{name}_accuracy"] = float(correct.mean())
            values[f"{name}_loss"] = float(loss.mean())
            values[f"{name}_drop"] = float(soft_correct.mean() - correct.mean())
            values[f"{name}_drop_ci"] = paired_interval(soft_correct, correct, draws)
            values[f"{name}_loss_rise"] = float(loss.mean() - soft_loss.mean())
            values[f"{name}_loss_rise_ci"] = paired_interval(loss, soft_loss, draws)
        rows.append((i, values))
    bar.close()
    by_accuracy = readout.objective == CLASSIFICATION
    order = sorted(
        range(p),
        key=lambda i: (
            (-rows[i][1]["removed_drop"], -rows[i][1]["removed_loss_rise"])
            if by_accuracy
            else (-rows[i][1]["removed_loss_rise"], -rows[i][1]["removed_drop"])
        ),
    )
    rank = {i: r + 1 for r, i in enumerate(order)}
    positions = [
        PositionImportance(
            position=i,
            nearest_token=read_as.tokens[i],
            rank=rank[i],
            **values,
        )
        for i, values in rows
    ]
    return ImportanceTable(
        soft_accuracy=float(soft_correct.mean()),
        soft_loss=float(soft_loss.mean()),
        examples=len(data),
        positions=positions,
        bootstrap=bootstrap,
        task=readout.task_name,
        objective=readout.objective,
    )


def _no_prompt_outcome(readout: Readout, data: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    return readout.task(1).outcome(data, prompt=False)
