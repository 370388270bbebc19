"""Length-bucketed batches: group texts of similar length so a forward pass pads as little as it can.

A transformer's cost grows with the padded batch (rows x longest row), so a batch of random texts padded to
its longest one wastes much of its work. :func:`plan_batches` sorts the rows by length and cuts them into
contiguous groups by dynamic programming, minimising the padded tokens plus a fixed cost per forward pass
(``overhead`` tokens), within a token budget per batch. Evaluation uses it over a whole split; training uses
it inside one step's batch (micro-batches whose losses are recombined exactly), so a step still sees the
same examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchPlan:
    """Groups of row indices, each padded to its own longest row.

    Attributes:
        batches: row indices per batch, in the order they run.
        real_tokens: tokens the rows hold (sum of lengths, plus ``extra`` per row).
        padded_tokens: tokens the padded batches compute (rows x longest row, plus ``extra`` per row).
    """

    batches: list[np.ndarray]
    real_tokens: int
    padded_tokens: int

    @property
    def waste(self) -> float:
        """Share of computed tokens that are padding (0 = none)."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


def padding_waste(lengths: Sequence[int], batches: Sequence[Sequence[int]], extra: int = 0) -> float:
    """Share of padding when ``batches`` (row indices into ``lengths``) are each padded to their longest row."""
    real = padded = 0
    for rows in batches:
        sizes = [int(lengths[i]) + extra for i in rows]
        if sizes:
            real += sum(sizes)
            padded += len(sizes) * max(sizes)
    return 1.0 - real / padded if padded else 0.0


def plan_batches(
    lengths: Sequence[int],
    *,
    max_tokens: int,
    overhead: int = 64,
    extra: int = 0,
    max_rows: int = 256,
) -> BatchPlan:
    """Cut rows into length-sorted batches that minimise padded tokens + ``overhead`` per batch.

    Args:
        lengths: tokens per row.
        max_tokens: budget per batch (rows x longest row, with ``extra``); a single longer row still runs alone.
        overhead: fixed cost of one forward pass, in tokens: larger values favour fewer, fuller batches.
        extra: tokens every row carries besides its own (the soft prompt's positions).
        max_rows: the most rows in one batch.

    Returns:
        The :class:`BatchPlan`; its batches hold every row exactly once.

    Raises:
        ValueError: a non-positive budget or row cap, or a negative length.
    """
    if max_tokens <= 0 or max_rows <= 0:
        raise ValueError(f"max_tokens {max_tokens} and max_rows {max_rows} must be positive")
    size = np.asarray(lengths, dtype=np.int64) + extra
    if size.size and (np.asarray(lengths) < 0).any():
        raise ValueError("token lengths must be non-negative")
    order = np.argsort(size, kind="stable")
    sorted_size = size[order]
    n = len(order)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):  # batch = sorted rows [start, end), padded to sorted_size[end - 1]
        longest = sorted_size[end - 1]
        rows_cap = max(1, min(max_rows, int(max_tokens // max(int(longest), 1))))
        starts = np.arange(max(0, end - rows_cap), end)
        costs = best[starts] + (end - starts) * longest + overhead
        pick = int(np.argmin(costs))
        best[end], cut[end] = costs[pick], starts[pick]
    batches: list[np.ndarray] = []
    end = n
    while end > 0:
        start = int(cut[end])
        batches.append(order[start:end])
        end = start
    batches.reverse()
    padded = int(sum(len(b) * int(size[b].max()) for b in batches))
    return BatchPlan(batches=batches, real_tokens=int(size.sum()), padded_tokens=padded)
