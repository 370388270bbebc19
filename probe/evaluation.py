"""Accuracy of a prompted task, measured where it is read and paid for once.

- :func:`accuracy`: the soft prompt; :func:`discretised_accuracy`: each position replaced by its nearest
  token's embedding (the prompt "read as words").
- :func:`zero_shot_accuracy`: the frozen model without a prompt. It does not depend on the prompt, so its
  predictions are cached on disk per model, task and texts (a verified cache keyed by their sha256).
- :func:`eval_subset`: a fixed, seeded, stratified share of a split, for the evaluations during training;
  the final figures are always measured on the whole split.

Every pass runs through :meth:`probe.tasks.Task.predict`: tokenised once, length-bucketed, inference mode.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from probe.cache import read_cache, write_cache
from probe.data import LabelledData
from probe.tasks import Task, prompt_parameter
from probe.util import cache_root

if TYPE_CHECKING:
    from probe.index import VocabIndex

logger = logging.getLogger(__name__)

ZERO_SHOT_FORMAT = 1


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
    weight = prompt_parameter(task.peft_model)
    saved = weight.detach().clone()
    _, ids = index.search(saved.float().cpu().numpy(), 1)
    embeddings = task.model.embeddings[ids[:, 0]]
    try:
        with torch.no_grad():
            weight.copy_(embeddings.to(weight.device, weight.dtype))
        return accuracy(task, texts, targets)
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
        "labels": list(task.label_names),
        "max_length": task.max_length,
        "texts_sha256": digest.hexdigest(),
    }


def zero_shot_predictions(task: Task, texts: list[str], *, cache: bool = True) -> np.ndarray:
    """int [N]: the frozen model's predictions, read from probe's cache when this model saw these texts.

    Args:
        task: the task (only its model, kind, labels and max_length matter; the prompt does not).
        texts: the inputs.
        cache: read and write the on-disk cache (``$PROBE_CACHE_DIR/zero-shot``).
    """
    key = _zero_shot_key(task, texts)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = cache_root() / "zero-shot"
    meta_path, arrays_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    if cache:
        hit = read_cache(meta_path, arrays_path, key)
        if hit is not None and len(hit[1]["predictions"]) == len(texts):
            return hit[1]["predictions"]
    predictions = task.zero_shot(texts)
    if cache:
        try:
            write_cache(meta_path, arrays_path, {"predictions": predictions.astype(np.int64)}, key)
        except OSError as e:  # a read-only cache costs time, not correctness
            logger.warning("could not cache zero-shot predictions in %s: %s", folder, e)
    return predictions


def zero_shot_accuracy(task: Task, texts: list[str], targets: list[int], *, cache: bool = True) -> float:
    """Accuracy of the frozen model without a prompt (cached per model, task and texts)."""
    return float((zero_shot_predictions(task, texts, cache=cache) == np.asarray(targets)).mean())


def eval_subset(data: LabelledData, size: int, seed: int) -> LabelledData:
    """A fixed, seeded, stratified subset of ``size`` rows (all of ``data`` when it has no more).

    Each class keeps its share of the rows (largest remainders), at least one row when it has any; rows keep
    their order in ``data``. The same (data, size, seed) always gives the same rows.

    Raises:
        ValueError: ``size`` is not positive.
    """
    if size <= 0:
        raise ValueError(f"evaluation subset size is {size}; expected a positive number of rows")
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
