"""Seeded batch sampling: the rows of step t depend only on (seed, t), so a resumed loop sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def seeded_batches(n: int, batch_size: int, seed: int, start: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (step, row indices) forever from ``start``; step t's batch depends only on (seed, t).

    Args:
        n: rows to draw from.
        batch_size: rows per batch (all of them when there are fewer), drawn without replacement.
        seed: the seed of the whole stream.
        start: the first step yielded.
    """
    step = start
    size = min(batch_size, n)
    while True:
        yield step, np.random.default_rng([seed, step]).choice(n, size=size, replace=False)
        step += 1
