"""The two sides every effect of :mod:`.attribution` and :mod:`.triggers` compares: class probabilities (or, under a
loss objective, minus each text's own loss) through the prompt and on the frozen model, whose side is cached, and
their aggregation per unit (a word or a token) over the texts read.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from probe.core.data import TARGET_CLASS
from probe.core.io import cache_file
from probe.core.names import TARGET_LIKELIHOOD
from probe.core.progress import progress_bar
from probe.readings.explain.readout import Readout

LOSS_LABEL = "<loss>"
"""The one label of input attribution under a caller's loss: an effect is a change in minus the example's loss."""

CACHE_FORMAT = 1


def probabilities(readout: Readout, texts: list[str], vectors: np.ndarray | None, progress: str | None) -> np.ndarray:
    """float [N, L]: class probabilities of ``texts`` with the prompt ``vectors`` (None: the frozen model)."""
    length = 1 if vectors is None else vectors.shape[0]
    task = readout.task(length)
    if vectors is not None:
        readout.set_prompt(vectors)  # sets the prompt (and checks its dimension)
    chunk, out = 4096, []
    bar = progress_bar(len(texts), progress or "", enabled=progress is not None)
    for start in range(0, len(texts), chunk):
        scores = task.score_all(texts[start : start + chunk], prompt=vectors is not None) * task.logit_scale
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        out.append(p / p.sum(axis=1, keepdims=True))
        bar.update(min(chunk, len(texts) - start))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, len(readout.labels)), np.float32)


def zero_shot_probabilities(readout: Readout, texts: list[str], kind: str, progress: bool) -> np.ndarray:
    """The frozen model's probabilities of ``texts``, from probe's cache when it has them."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    key = {"format": CACHE_FORMAT, **readout.key(), "texts_sha256": digest, "rows": len(texts)}
    entry = cache_file(f"{kind}-zero-shot", key)
    hit = entry.read(
        check=lambda a: a["p"].shape == (len(texts), len(readout.labels)) and bool(np.isfinite(a["p"]).all())
    )
    if hit is not None:
        return hit["p"]
    p = probabilities(readout, texts, None, f"{kind}, frozen model" if progress else None)
    entry.write({"p": p.astype(np.float32)})
    return p.astype(np.float32)


def aggregate(labels: list[str], units: list[str], prompted: np.ndarray, zero: np.ndarray, texts: int) -> pd.DataFrame:
    """Effects per (unit, label) from per-variant effects [V, L], each a mean over all ``texts`` read (a text
    without the unit adds 0), so a unit is ranked by its influence on the split, and one text cannot put a rare
    word first; ``mean_where_present`` is the mean over the texts that hold it."""
    frame = pd.DataFrame({"unit": np.repeat(units, len(labels)), "label": np.tile(labels, len(units))})
    frame["prompted"] = prompted.reshape(-1)
    frame["zero_shot"] = zero.reshape(-1)
    table = frame.groupby(["unit", "label"], sort=True).agg(
        prompted=("prompted", "sum"), zero_shot=("zero_shot", "sum"), count=("prompted", "size")
    )
    table = table.reset_index()
    table["mean_where_present"] = (table["prompted"] - table["zero_shot"]) / table["count"]
    table[["prompted", "zero_shot"]] /= texts
    table["effect"] = table["prompted"] - table["zero_shot"]
    return table[["unit", "label", "effect", "prompted", "zero_shot", "count", "mean_where_present"]]


def minus_loss(readout: Readout, vectors: np.ndarray, rows: list[str], owners: list[int], prompt: bool) -> np.ndarray:
    """float [N]: minus the loss of each of ``rows`` read against the target (or label) of its owner, a test row,
    with the prompt ``vectors`` or on the frozen model."""
    data = dataclasses.replace(readout.splits.test.subset(owners), texts=rows)
    task = readout.set_prompt(vectors) if prompt else readout.task(1)
    return -task.outcome(data, prompt=prompt)[1]


def loss_label(readout: Readout) -> str:
    """The one label of an effects table under a loss objective."""
    return TARGET_CLASS if readout.objective == TARGET_LIKELIHOOD else LOSS_LABEL
