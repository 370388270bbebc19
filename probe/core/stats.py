"""Bootstrap and exact intervals and verdicts, written once for every reading that reports an interval.

Readings across training runs are clustered: the positions of one run share its seed, its data order and its
init, so they are not independent draws. :func:`cluster_draws` therefore resamples whole runs, within each cell
of runs that differ only by seed (init x length), and, when every run was scored on the same test examples,
resamples those examples too (one draw shared by all runs, so paired comparisons stay paired).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

Verdict = Literal["yes", "no", "unclear"]

CONFIDENCE = 0.95


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap ``draws`` (NaN, NaN when there are none)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return (float("nan"), float("nan"))
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def paired_interval(base: np.ndarray, variant: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """The percentile interval of mean(base - variant) over per-example values, resampled by ``draws``.

    Args:
        base / variant: float [N] per-example values on the same examples (e.g. correctness under two prompts).
        draws: int [n, N] resampled example indices (:func:`example_draws`), shared by every comparison that
            should stay paired.
    """
    diff = np.asarray(base, dtype=float) - np.asarray(variant, dtype=float)
    return percentile_interval(diff[draws].mean(axis=1))


def example_draws(size: int, *, n: int, seed: int = 0, stream: int | None = 1) -> np.ndarray:
    """int [n, size]: resampled example indices, the same for every call with this seed and stream.

    ``stream`` separates independent uses of one seed: the runs' cluster bootstrap uses 1, the paired
    comparisons of one prompt's variants None (the seed alone).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"bootstrap is {n!r}; expected a whole number of resamples, at least 1 (default 1000)")
    rng = np.random.default_rng(seed if stream is None else [seed, stream])
    return rng.integers(0, size, size=(n, size))


def cluster_draws(
    values: Sequence[np.ndarray],
    cells: Sequence[Hashable],
    *,
    n: int = 2000,
    seed: int = 0,
    aligned: bool = False,
) -> np.ndarray:
    """Bootstrap replicates of the pooled mean of ``values``, resampling whole runs within each cell.

    Args:
        values: one array per run: its per-position values (pooled: each position weighs the same), or, with
            ``aligned``, its per-example values on a shared test split (each run weighs the same).
        cells: each run's cell (e.g. ``(init, length)``); runs are drawn with replacement within their cell,
            so every replicate keeps the design's cell sizes. A cell of one run adds no between-run spread.
        n: replicates.
        seed: the runs' draw uses ``seed``; the examples' draw (``aligned``) uses :func:`example_draws` with it, so
            two calls with the same seed and the same split resample the same examples.
        aligned: the arrays are per-example values on the same examples: resample the examples as well.

    Returns:
        float [n] (all NaN when there are no values).
    """
    if len(values) != len(cells):
        raise ValueError(f"{len(values)} value arrays for {len(cells)} cells; give one cell per run")
    if not values:
        return np.full(n, np.nan)
    arrays = [np.asarray(v, dtype=float) for v in values]
    if aligned:
        sizes = {a.size for a in arrays}
        if len(sizes) != 1:
            raise ValueError(f"aligned values must cover the same examples; got lengths {sorted(sizes)}")
        picks = example_draws(sizes.pop(), n=n, seed=seed)
        sums = np.stack([a[picks].mean(axis=1) for a in arrays])  # [runs, n]: each run's mean on each draw
        counts = np.ones((len(arrays), n))
    else:
        sums = np.stack([np.full(n, np.nansum(a)) for a in arrays])
        counts = np.stack([np.full(n, np.isfinite(a).sum()) for a in arrays])
    rng = np.random.default_rng(seed)
    total, count = np.zeros(n), np.zeros(n)
    members: dict[Hashable, list[int]] = {}
    for i, cell in enumerate(cells):
        members.setdefault(cell, []).append(i)
    for runs in members.values():
        chosen = np.asarray(runs)[rng.integers(0, len(runs), size=(n, len(runs)))]  # [n, r]
        columns = np.arange(n)[:, None]
        total += sums[chosen, columns].sum(axis=1)
        count += counts[chosen, columns].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def pooled_mean(values: Sequence[np.ndarray], *, aligned: bool = False) -> float:
    """The point estimate :func:`cluster_draws` resamples: positions pooled, or (``aligned``) runs averaged."""
    arrays = [np.asarray(v, dtype=float) for v in values]
    if not arrays:
        return float("nan")
    if aligned:
        return float(np.mean([a.mean() for a in arrays]))
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    return float(finite.mean()) if finite.size else float("nan")


def verdict(margins: Sequence[tuple[float, float]], smallest_effect: float) -> Verdict:
    """The verdict on a claimed positive effect, from the intervals of (estimate - control), one per control.

    "yes" only when every interval excludes its control (lower bound above 0); "no" only when some interval
    excludes the claimed effect (upper bound below ``smallest_effect``, the smallest difference that would
    count); "unclear" otherwise, including when an interval is undefined.
    """
    if not margins or any(not (np.isfinite(lo) and np.isfinite(hi)) for lo, hi in margins):
        return "unclear"
    if all(lo > 0 for lo, _ in margins):
        return "yes"
    if any(hi < smallest_effect for _, hi in margins):
        return "no"
    return "unclear"


def proportion_interval(hits: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Clopper-Pearson interval of ``hits`` out of ``total`` (NaN, NaN without any)."""
    from scipy.stats import beta

    if total == 0:
        return (float("nan"), float("nan"))
    tail = (1 - confidence) / 2
    low = 0.0 if hits == 0 else float(beta.ppf(tail, hits, total - hits + 1))
    high = 1.0 if hits == total else float(beta.ppf(1 - tail, hits + 1, total - hits))
    return low, high


def gain_retained(soft: Any, stand_in: Any, zero_shot: Any) -> float:
    """(stand-in - zero-shot) / (soft - zero-shot): the share of the prompt's gain over zero-shot a stand-in keeps;
    NaN where an accuracy is unknown or the soft prompt is not above zero-shot (there is no gain to keep: never
    200%, never infinite). The one definition: :func:`gains_retained` is the same over arrays."""
    values = (soft, stand_in, zero_shot)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return float("nan")
    return float(gains_retained(np.asarray(soft), np.asarray(stand_in), np.asarray(zero_shot)))


def gains_retained(soft: np.ndarray, stand_in: np.ndarray, zero_shot: np.ndarray) -> np.ndarray:
    """:func:`gain_retained` elementwise (bootstrap draws, say): NaN wherever the soft accuracy is not above
    zero-shot or an accuracy is not finite."""
    soft, stand_in, zero_shot = (np.asarray(v, dtype=float) for v in (soft, stand_in, zero_shot))
    above = np.isfinite(soft) & np.isfinite(stand_in) & np.isfinite(zero_shot) & (soft > zero_shot)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(above, (stand_in - zero_shot) / np.where(above, soft - zero_shot, 1.0), np.nan)
