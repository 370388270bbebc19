"""Faithfulness of every prompt that stands in for the soft one: does reading it as words keep what it does?

Each stand-in (the nearest-token discretisation, the hard prompt, any vectors given) is scored against the soft
prompt on the same test rows, under the same task:

- accuracy;
- agreement: the share of examples where its prediction equals the soft prompt's;
- KL divergence between the class distributions, mean over examples, KL(soft ‖ stand-in);
- gain retained: (accuracy - zero-shot) / (soft - zero-shot), the share of what the prompt adds that it keeps.

Every score comes with a paired percentile-bootstrap interval over the examples (one resample shared by all
stand-ins and by the soft prompt, :func:`probe.core.stats.example_draws`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probe.core.softprompt import as_prompt
from probe.core.stats import example_draws, gains_retained, percentile_interval
from probe.formats.faithfulness_record import Faithfulness, StandIn
from probe.readings.explain.readout import Readout
from probe.tasks.evaluation import zero_shot_predictions


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
    """
    vectors = as_prompt(prompt).vectors
    test = readout.splits.test
    targets = np.asarray(test.targets)
    scale = readout.task(vectors.shape[0]).logit_scale
    soft = readout.scores(vectors, test)
    zero = zero_shot_predictions(readout.task(1), test.texts) == targets  # cached per model, task and rows
    nearest = readout.model.embeddings_numpy()[readout.nearest_ids(vectors)]
    others = {"discretised": nearest, **(stand_ins or {})}
    draws = example_draws(len(test), n=bootstrap, seed=seed, stream=2)
    soft_p = _softmax(soft, scale)
    soft_right = (soft.argmax(1) == targets).astype(float)
    zero_right = zero.astype(float)
    rows = []
    if per_example is not None:
        per_example |= {"soft": soft_right, "zero-shot": zero_right}
    for name, rows_vectors in others.items():
        scores = readout.scores(rows_vectors, test)
        p = _softmax(scores, scale)
        right = (scores.argmax(1) == targets).astype(float)
        agree = (scores.argmax(1) == soft.argmax(1)).astype(float)
        if per_example is not None:
            per_example[name] = right
        kl = (soft_p * (np.log(np.maximum(soft_p, 1e-12)) - np.log(np.maximum(p, 1e-12)))).sum(1)

        def gain(idx: Any, right: np.ndarray = right) -> np.ndarray:
            # NaN where the soft prompt is not above zero-shot (core.stats: one definition, never 200% or inf)
            return gains_retained(soft_right[idx].mean(-1), right[idx].mean(-1), zero_right[idx].mean(-1))

        whole = np.arange(len(test))
        rows.append(
            StandIn(
                name=name,
                accuracy=float(right.mean()),
                accuracy_ci=percentile_interval(right[draws].mean(1)),
                agreement=float(agree.mean()),
                agreement_ci=percentile_interval(agree[draws].mean(1)),
                kl=float(kl.mean()),
                kl_ci=percentile_interval(kl[draws].mean(1)),
                gain_retained=float(gain(whole)),
                gain_retained_ci=percentile_interval(gain(draws)),
            )
        )
    return Faithfulness(
        soft_accuracy=float(soft_right.mean()),
        zero_shot_accuracy=float(zero_right.mean()),
        examples=len(test),
        stand_ins=rows,
        bootstrap=bootstrap,
        task=readout.task_name,
        soft_ci=percentile_interval(soft_right[draws].mean(1)),
    )
