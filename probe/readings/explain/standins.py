"""What each position of a prompt is read as: its nearest real token, and a neutral control, as rows the readout can
run in the prompt's place.

- Input rows (prompt tuning, P-tuning): each position's nearest searchable token's input embedding, and the mean
  searchable embedding.
- A prefix (prefix tuning, flat ``[p, layers x 2 x token_dim]``): at every layer, the position's key is replaced by
  the key of the real token nearest to it at that layer, and its value by the value of the token nearest to its
  value (the per-layer reference of :mod:`probe.readings.prefix`: each token alone between the model's special
  tokens); the control is the mean reference key and value of each layer. The token shown for a position is the
  one most often nearest over its layers' keys and values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from probe.core.index import VocabIndex
from probe.core.models import LoadedModel

if TYPE_CHECKING:
    from probe.readings.explain.readout import Readout


@dataclass(frozen=True)
class StandInRows:
    """The rows a prompt's positions are read as (float32, the prompt's width).

    Attributes:
        nearest: [p, w], each position as its nearest real token (for a prefix, per layer).
        mean: [w], the neutral control of any position.
        tokens: each position's nearest token, shown.
    """

    nearest: np.ndarray
    mean: np.ndarray
    tokens: list[str]


def stand_in_rows(vectors: np.ndarray, readout: Readout) -> StandInRows:
    """The nearest-token and control rows of ``vectors``: input rows or a flat prefix (see the module docstring)."""
    model = readout.model
    display = model.vocabulary.display
    if vectors.shape[1] == model.dim:
        ids = readout.nearest_ids(vectors)
        table = model.embeddings_numpy()
        return StandInRows(table[ids], table[readout.index.token_ids].mean(axis=0), [display[int(i)] for i in ids])
    return _prefix_rows(vectors, model)


def _prefix_rows(vectors: np.ndarray, model: LoadedModel) -> StandInRows:
    from probe.formats.prefix import flatten, kv_geometry, unflatten
    from probe.readings.prefix import layer_references

    layers, heads, head_dim = kv_geometry(model.model.config)
    kv = unflatten(vectors, num_layers=layers, num_heads=heads)  # [L, 2, H, n, hd]
    n = kv.shape[3]
    reference, token_ids, _ = layer_references(model, list(range(layers)), None, None)  # [L, 2, V, H*hd]
    nearest, mean = np.empty_like(kv), np.empty_like(kv)
    votes: list[Counter[int]] = [Counter() for _ in range(n)]
    for layer in range(layers):
        for part in range(2):
            rows = reference[layer, part]
            index = VocabIndex(rows, token_ids, fingerprint=model.fingerprint)
            queries = np.ascontiguousarray(kv[layer, part].transpose(1, 0, 2).reshape(n, -1))
            ids = index.search(queries, 1)[1][:, 0]
            nearest[layer, part] = rows[ids].reshape(n, heads, head_dim).transpose(1, 0, 2)
            mean[layer, part] = rows[token_ids].mean(axis=0).reshape(heads, 1, head_dim)
            for position, token in enumerate(ids):
                votes[position][int(token)] += 1
    display = model.vocabulary.display
    tokens = [display[count.most_common(1)[0][0]] for count in votes]
    return StandInRows(flatten(nearest), flatten(mean)[0], tokens)
