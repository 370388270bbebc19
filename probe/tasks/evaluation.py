"""Accuracy of a prompted task, measured where it is read and paid for once.

- :func:`accuracy`: the soft prompt; :func:`discretised_accuracy`: each position replaced by its nearest
  token's embedding (the prompt "read as words").
- :func:`zero_shot_accuracy`: the frozen model without a prompt. It does not depend on the prompt, so its
  predictions are cached on disk per model, task and texts (a verified cache keyed by their sha256).
- :func:`eval_subset`: a fixed, seeded, stratified share of a split, for the evaluations during training;
  the final figures are always measured on the whole split.

Every pass runs through :meth:`probe.tasks.kinds.Task.predict`: tokenised once, length-bucketed, inference mode.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from probe.core.data import LabelledData
from probe.core.io import cache_file
from probe.core.names import CLASSIFICATION
from probe.tasks.kinds import Task, prompt_parameter

if TYPE_CHECKING:
    from probe.core.index import VocabIndex

logger = logging.getLogger(__name__)

ZERO_SHOT_FORMAT = 2


def correctness(task: Task, texts: list[str], targets: list[int]) -> np.ndarray:
    """bool [B]: whether the prompted model labels each text correctly."""
    return np.asarray(task.predict(texts) == np.asarray(targets))


def accuracy(task: Task, texts: list[str], targets: list[int]) -> float:
    """Share of ``texts`` the prompted model labels correctly."""
    return float(correctness(task, texts, targets).mean())


def correct_bits(correct: np.ndarray) -> str:
    """Per-example correctness as a string of 0s and 1s (how runs record it; see :meth:`Run.final_correct`)."""
    return "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool))


def discretised_accuracy(task: Task, index: VocabIndex, texts: list[str], targets: list[int]) -> float:
    """Accuracy with each position replaced by its nearest token's embedding; the prompt is restored after."""
    with _nearest_tokens(task, index):
        return accuracy(task, texts, targets)


def figures(task: Task, data: LabelledData, *, prompt: bool = True) -> np.ndarray:
    """float [N]: each example's correctness under the task's objective (:meth:`Task.outcome`): 0/1 for
    classification, the share of target tokens that are the next-token argmax for the target objective."""
    if task.objective == CLASSIFICATION and prompt:
        return correctness(task, data.texts, data.targets).astype(np.float64)
    return task.outcome(data, prompt=prompt)[0]


def discretised_figure(task: Task, index: VocabIndex, data: LabelledData) -> float:
    """:func:`discretised_accuracy` under any objective (the target objective: token accuracy)."""
    with _nearest_tokens(task, index):
        return float(figures(task, data).mean())


def zero_shot_figure(task: Task, data: LabelledData) -> float:
    """The frozen model's accuracy under any objective: classification's cached :func:`zero_shot_accuracy`, the
    target objective's token accuracy."""
    if task.objective == CLASSIFICATION:
        return zero_shot_accuracy(task, data.texts, data.targets)
    return float(figures(task, data, prompt=False).mean())


@contextmanager
def _nearest_tokens(task: Task, index: VocabIndex) -> Iterator[None]:
    """The task's prompt with each position replaced by its nearest token's embedding, restored after."""
    weight = prompt_parameter(task.peft_model)
    saved = weight.detach().clone()
    _, ids = index.search(saved.float().cpu().numpy(), 1)
    embeddings = task.model.embeddings[ids[:, 0]]
    try:
        with torch.no_grad():
            weight.copy_(embeddings.to(weight.device, weight.dtype))
        yield
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def _zero_shot_key(task: Task, texts: list[str]) -> dict[str, object]:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return {
        "format": ZERO_SHOT_FORMAT,
        "model": task.model.fingerprint,
        "task": type(task).__name__,
        "identity": task.identity,  # a head's digest, a scoring function's key: two heads never share an entry
        "labels": list(task.label_names),
        "max_length": task.max_length,
        "texts_sha256": digest.hexdigest(),
    }


def zero_shot_predictions(
    task: Task, texts: list[str], *, cache: bool = True, cache_dir: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """int [N]: the frozen model's predictions, read from probe's cache when this model saw these texts.

    Args:
        task: the task (only its model, kind, labels and max_length matter; the prompt does not).
        texts: the inputs.
        cache: read and write the on-disk cache (``zero-shot`` in ``cache_dir`` or probe's cache folder).
        cache_dir: the cache folder (default: probe's).
    """
    entry = cache_file("zero-shot", _zero_shot_key(task, texts), cache_dir)
    labels = len(task.label_names)
    if cache:
        hit = entry.read(
            check=lambda a: a["predictions"].shape == (len(texts),) and _in_range(a["predictions"], labels)
        )
        if hit is not None:
            return hit["predictions"]
    predictions = task.zero_shot(texts)
    if cache:
        entry.write({"predictions": predictions.astype(np.int64)})
    return predictions


def _in_range(values: np.ndarray, size: int) -> bool:
    return values.size == 0 or (int(values.min()) >= 0 and int(values.max()) < size)


def zero_shot_accuracy(
    task: Task,
    texts: list[str],
    targets: list[int],
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> float:
    """Accuracy of the frozen model without a prompt (cached per model, task and texts)."""
    predictions = zero_shot_predictions(task, texts, cache=cache, cache_dir=cache_dir)
    return float((predictions == np.asarray(targets)).mean())


def eval_subset(data: LabelledData, size: int, seed: int) -> LabelledData:
    """A fixed, seeded, stratified subset of ``size`` rows (all of ``data`` when it has no more).

    Each class keeps its share of the rows (largest remainders), at least one row when it has any; rows keep
    their order in ``data``. The same (data, size, seed) always gives the same rows.

    Raises:
        ValueError: ``size`` is not positive.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
        raise ValueError(f"test_size is {size!r}; expected a whole, positive number of rows")
    if size >= len(data):
        return data
    rng = np.random.default_rng([seed, size])
    labels = np.asarray(data.labels)
    classes = list(dict.fromkeys(data.labels))
    counts = np.array([(labels == c).sum() for c in classes])
    quota = counts * size / len(data)
    take = np.minimum(np.maximum(np.floor(quota).astype(int), 1), counts)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    i = 0
    while take.sum() < size:  # hand the remaining rows to the largest remainders
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=int(t), replace=False) for c, t in zip(classes, take, strict=True)
    ]
    rows = sorted(int(r) for r in np.concatenate(chosen))
    return data.subset(rows, source=f"{data.source}[{len(rows)} of {len(data)}, seed {seed}]")
