"""Measures of prompt positions as arrays: neighbours, norms, margins, manifold percentile, coherence, repeats.

What reports, drift, comparison and replication all build on; no formatting here. The controls (the paper's
random vectors and sampled vocabulary rows) are made here too, so every reading can be set beside them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from probe.core.index import VocabIndex
from probe.core.tokens import frequency_ranks

if TYPE_CHECKING:
    from probe.core.models import LoadedModel

OFF_MANIFOLD_PERCENTILE = 1.0
"""A position whose top-1 cosine is below this percentile of the vocabulary's own is flagged off-manifold."""


@dataclass(frozen=True)
class PositionMeasures:
    """Raw per-position measures as arrays (what reports, drift and replication all build on)."""

    cosines: np.ndarray  # float32 [n, k]
    token_ids: np.ndarray  # int64 [n, k]
    norms: np.ndarray  # float32 [n]
    norm_ratio: np.ndarray
    margin: np.ndarray
    manifold_percentile: np.ndarray
    coherence: np.ndarray  # NaN when k == 1


def on_manifold(index: VocabIndex, top1: np.ndarray) -> np.ndarray:
    """bool [n]: whether each top-1 cosine is at or above :data:`OFF_MANIFOLD_PERCENTILE` of the vocabulary's own."""
    return index.manifold_percentile(top1) >= OFF_MANIFOLD_PERCENTILE


def neighbours(vectors: np.ndarray, index: VocabIndex, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cosines float32 [n, k], token ids int64 [n, k], on-manifold bool [n]) of each row: the light reading the
    map and the trajectories need (:func:`read_positions` gives every measure)."""
    cosines, ids = index.search(vectors, k)
    return cosines, ids, on_manifold(index, cosines[:, 0])


def read_positions(vectors: np.ndarray, index: VocabIndex, k: int) -> PositionMeasures:
    """Neighbours and distance measures for rows of ``vectors`` (float32 [n, d]).

    The margin needs the second neighbour, so at least 2 are always searched.
    """
    search_k = max(k, min(2, index.size))
    cosines, ids = index.search(vectors, search_k)
    norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
    margin = cosines[:, 0] - cosines[:, 1] if search_k > 1 else np.full(len(vectors), np.nan, np.float32)
    cosines, ids = cosines[:, :k], ids[:, :k]
    return PositionMeasures(
        cosines=cosines,
        token_ids=ids,
        norms=norms,
        norm_ratio=norms / max(index.mean_norm, 1e-12),
        margin=margin,
        manifold_percentile=index.manifold_percentile(cosines[:, 0]),
        coherence=neighbour_coherence(index, ids),
    )


def neighbour_coherence(index: VocabIndex, token_ids: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine among each row's neighbour embeddings (float32 [n]; NaN for k < 2)."""
    n, k = token_ids.shape
    if k < 2:
        return np.full(n, np.nan, dtype=np.float32)
    unique, inverse = np.unique(token_ids, return_inverse=True)
    rows = index.unit_rows(unique)[inverse.reshape(n, k)]  # [n, k, d]
    gram = np.einsum("nkd,njd->nkj", rows, rows)
    off_diagonal = gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)
    return (off_diagonal / (k * (k - 1))).astype(np.float32)


neighbor_coherence = neighbour_coherence
"""The American spelling, kept for scripts that use it."""


def duplicate_top1(top1: np.ndarray) -> list[list[int]]:
    """For each position, the other positions that share its top-1 token."""
    where: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(top1.tolist()):
        where[t].append(i)
    return [[j for j in where[t] if j != i] for i, t in enumerate(top1.tolist())]


def control_vectors(
    model: LoadedModel, index: VocabIndex, count: int, *, seed: int = 0, top_n: int = 5000
) -> dict[str, np.ndarray]:
    """The paper's controls: uniform [-0.5, 0.5] random vectors and rows sampled from the top-N vocabulary.

    Returns:
        {"random-uniform control": float32 [count, d], "sampled-vocab control": float32 [count, d]}.
    """
    rng = np.random.default_rng(seed)
    random = rng.uniform(-0.5, 0.5, size=(count, index.dim)).astype(np.float32)
    allowed = np.zeros(model.vocab_size, dtype=bool)
    allowed[index.token_ids] = True
    frequent = frequency_ranks(model.vocabulary, allowed)[:top_n]
    if frequent.size == 0:
        frequent = index.token_ids
    picks = rng.choice(frequent, size=min(count, frequent.size), replace=False)
    return {
        "random-uniform control": random,
        "sampled-vocab control": model.embeddings_numpy()[picks],
    }


def __getattr__(name: str) -> Any:
    if name == "Readings":  # its old name
        from probe.core.deprecation import renamed

        return renamed("probe.readings.measures.Readings", "probe.readings.measures.PositionMeasures")
    raise AttributeError(f"module 'probe.readings.measures' has no attribute {name!r}")
