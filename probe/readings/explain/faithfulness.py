"""Faithfulness of every prompt that stands in for the soft one: does reading it as words keep what it does?

Each stand-in (the nearest-token discretisation, the hard prompt, any vectors given) is scored against the soft
prompt on the same test rows, under the same task:

- accuracy;
- agreement: the share of examples where its prediction equals the soft prompt's;
- KL divergence between the class distributions, mean over examples, KL(soft ‖ stand-in);
- gain retained: (accuracy - zero-shot) / (soft - zero-shot), the share of what the prompt adds that it keeps.

Every score comes with a paired percentile-bootstrap interval over the examples (one resample shared by all
stand-ins and by the soft prompt, :func:`probe.core.stats.example_draws`).

Under the target objective (free-text targets, :mod:`probe.tasks.target`) the same scores are read per target
token: accuracy is token accuracy; agreement the share of target tokens where the stand-in's next-token argmax is
the soft prompt's; KL(soft ‖ stand-in) of the next-token distributions, mean over the target's tokens; the loss is
the mean negative log-likelihood of the target; gain retained is (zero-shot loss - loss) / (zero-shot loss - soft
loss). The distributions are compared a slice of examples at a time, so memory stays bounded by the slice.

Under a caller's loss (:class:`probe.tasks.user.LossTask`) only the loss and the gain retained on it are defined:
accuracy, agreement and KL are NaN (there is no distribution to compare), never a figure made up for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from probe.core.data import LabelledData
from probe.core.names import CLASSIFICATION, USER_LOSS
from probe.core.stats import example_draws, gains_retained, percentile_interval
from probe.formats.faithfulness_record import Faithfulness, StandIn
from probe.readings.explain.costs import check_rows
from probe.readings.explain.readout import Readout, prompt_of
from probe.readings.explain.standins import stand_in_rows
from probe.tasks.evaluation import zero_shot_predictions
from probe.tasks.target import TargetTask


def _softmax(scores: np.ndarray, scale: float) -> np.ndarray:
    z = scores * scale
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def score_stand_ins(
    prompt: Any,
    readout: Readout,
    *,
    stand_ins: dict[str, np.ndarray] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    per_example: dict[str, np.ndarray] | None = None,
    budget_minutes: float | None = None,
) -> Faithfulness:
    """Score the prompt's stand-ins against it (see the module docstring).

    Args:
        prompt: the soft prompt (a :class:`SoftPrompt`, vectors, or a PEFT model).
        readout: the model, data and task it was trained with (:class:`Readout`).
        stand_ins: name -> vectors (float32 [p', d]) of other stand-ins, such as a hard prompt's token rows; the
            nearest-token discretisation (``discretised``) is always scored.
        bootstrap: resamples of the examples.
        seed: seeds the resamples.
        per_example: when given, filled with each prompt's correctness (float 0/1 [test rows]) by name: ``soft``,
            ``zero-shot`` and every stand-in (for paired comparisons across prompts on the same rows).
        budget_minutes: refuse, before any pass, when the passes (the soft prompt, the frozen model and every
            stand-in over the test rows) would take longer (None: no budget).

    Raises:
        ValueError: the passes over ``budget_minutes``.
    """
    vectors = prompt_of(readout, prompt).vectors
    test = readout.splits.test
    passes = 3 + len(stand_ins or {})
    check_rows(readout, vectors, passes * len(test), "faithfulness", budget_minutes, less="fewer test rows")
    if readout.objective != CLASSIFICATION:
        return _target_stand_ins(vectors, readout, stand_ins or {}, bootstrap, seed, per_example)
    targets = np.asarray(test.targets)
    scale = readout.task(vectors.shape[0]).logit_scale
    soft = readout.scores(vectors, test)
    zero = zero_shot_predictions(readout.task(1), test.texts) == targets  # cached per model, task and rows
    nearest = stand_in_rows(vectors, readout).nearest
    others = {"discretised": nearest, **(stand_ins or {})}
    draws = example_draws(len(test), n=bootstrap, seed=seed, stream=2)
    soft_p = _softmax(soft, scale)
    soft_right = (soft.argmax(1) == targets).astype(float)
    soft_loss = readout.task(vectors.shape[0]).example_losses(soft, test.targets)
    zero_right = zero.astype(float)
    rows = []
    if per_example is not None:
        per_example |= {"soft": soft_right, "zero-shot": zero_right}
    for name, rows_vectors in others.items():
        scores = readout.scores(rows_vectors, test)
        p = _softmax(scores, scale)
        right = (scores.argmax(1) == targets).astype(float)
        loss = readout.task(rows_vectors.shape[0]).example_losses(scores, test.targets)
        agree = (scores.argmax(1) == soft.argmax(1)).astype(float)
        if per_example is not None:
            per_example[name] = right
        kl = (soft_p * (np.log(np.maximum(soft_p, 1e-12)) - np.log(np.maximum(p, 1e-12)))).sum(1)

        def gain(idx: Any, right: np.ndarray = right) -> np.ndarray:
            # NaN where the soft prompt is not above zero-shot (core.stats: one definition, never 200% or inf)
            return gains_retained(soft_right[idx].mean(-1), right[idx].mean(-1), zero_right[idx].mean(-1))

        rows.append(_stand_in(name, {"accuracy": right, "agreement": agree, "kl": kl, "loss": loss}, gain, draws))
    return Faithfulness(
        soft_accuracy=float(soft_right.mean()),
        zero_shot_accuracy=float(zero_right.mean()),
        examples=len(test),
        stand_ins=rows,
        bootstrap=bootstrap,
        task=readout.task_name,
        soft_ci=percentile_interval(soft_right[draws].mean(1)),
        soft_loss=float(soft_loss.mean()),
    )


def _stand_in(name: str, per_example: dict[str, np.ndarray], gain: Any, draws: np.ndarray) -> StandIn:
    """A stand-in's means and percentile intervals of its per-example scores (accuracy, agreement, kl, loss) and
    of ``gain(rows)``, its gain retained on those rows."""
    figures: dict[str, Any] = {}
    for key, values in per_example.items():
        figures[key], figures[f"{key}_ci"] = float(values.mean()), percentile_interval(values[draws].mean(1))
    whole = np.arange(draws.shape[1])
    return StandIn(
        name=name, gain_retained=float(gain(whole)), gain_retained_ci=percentile_interval(gain(draws)), **figures
    )


SLICE = 32
"""Examples whose next-token distributions are held at once when a stand-in is compared with the soft prompt."""


def _target_stand_ins(
    vectors: np.ndarray,
    readout: Readout,
    stand_ins: dict[str, np.ndarray],
    bootstrap: int,
    seed: int,
    per_example: dict[str, np.ndarray] | None,
) -> Faithfulness:
    """:func:`score_stand_ins` under the target objective (see the module docstring)."""
    test = readout.splits.test
    nearest = stand_in_rows(vectors, readout).nearest
    (soft_right, soft_loss), others = _compare(readout, vectors, {"discretised": nearest, **stand_ins}, test)
    zero_right, zero_loss = readout.task(1).outcome(test, prompt=False)
    draws = example_draws(len(test), n=bootstrap, seed=seed, stream=2)
    if per_example is not None:
        per_example |= {"soft": soft_right, "zero-shot": zero_right}
    rows = []
    for name, (right, loss, agree, kl) in others.items():
        if per_example is not None:
            per_example[name] = right

        def gain(idx: Any, loss: np.ndarray = loss) -> np.ndarray:
            # the share of the loss's improvement over zero-shot kept: gain retained on the negated losses
            return gains_retained(-soft_loss[idx].mean(-1), -loss[idx].mean(-1), -zero_loss[idx].mean(-1))

        rows.append(_stand_in(name, {"accuracy": right, "agreement": agree, "kl": kl, "loss": loss}, gain, draws))
    return Faithfulness(
        soft_accuracy=float(soft_right.mean()),
        zero_shot_accuracy=float(zero_right.mean()),
        examples=len(test),
        stand_ins=rows,
        bootstrap=bootstrap,
        task=readout.task_name,
        soft_ci=percentile_interval(soft_right[draws].mean(1)),
        objective=readout.objective,
        soft_loss=float(soft_loss.mean()),
        zero_shot_loss=float(zero_loss.mean()),
    )


def _compare(
    readout: Readout, soft: np.ndarray, others: dict[str, np.ndarray], data: LabelledData
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The soft prompt's per-example (token accuracy, loss), float [2, N], and each stand-in's (token accuracy,
    loss, argmax agreement with the soft prompt, KL(soft ‖ it)), float [4, N], each a mean over the target's tokens.
    One pass of the soft prompt and one of each stand-in, :data:`SLICE` examples' distributions at a time."""
    if readout.objective == USER_LOSS:  # a loss alone: no token distributions to compare
        nothing = np.full(len(data), np.nan)
        losses = {name: readout.outcome(vectors, data)[1] for name, vectors in others.items()}
        mine = np.stack(readout.outcome(soft, data))
        return mine, {name: np.stack([nothing, loss, nothing, nothing]) for name, loss in losses.items()}
    mine, out = np.zeros((2, len(data))), {name: np.zeros((4, len(data))) for name in others}
    for begin in range(0, len(data), SLICE):
        rows = list(range(begin, min(begin + SLICE, len(data))))
        part = data.subset(rows)
        soft_logp = {}
        for i, logp, wanted in _target_task(readout, soft).passes(part):
            soft_logp[i] = logp.clone()
            mine[:, rows[i]] = _token_figures(logp, wanted)
        for name, vectors in others.items():
            for i, logp, wanted in _target_task(readout, vectors).passes(part):
                ref = soft_logp[i]
                out[name][:, rows[i]] = [
                    *_token_figures(logp, wanted),
                    float((logp.argmax(-1) == ref.argmax(-1)).double().mean()),
                    float((ref.exp() * (ref - logp)).sum(-1).double().mean()),
                ]
    return mine, out


def _token_figures(logp: torch.Tensor, wanted: list[int]) -> tuple[float, float]:
    """(token accuracy, mean negative log-likelihood) of the wanted tokens under ``logp`` [T, V]."""
    w = torch.tensor(wanted, device=logp.device)
    steps = torch.arange(len(wanted), device=logp.device)
    return float((logp.argmax(-1) == w).double().mean()), float(-logp[steps, w].double().mean())


def _target_task(readout: Readout, vectors: np.ndarray) -> TargetTask:
    task = readout.set_prompt(vectors)
    assert isinstance(task, TargetTask), type(task)  # the readout's objective chose it
    return task
