"""What fitting the vocabulary map costs, known before the fit: the memory of its arrays and an estimate of its
time, checked against the user's budgets (:mod:`probe.core.budget`) by :func:`probe.readings.projection.fit_map`.

The time has three parts. The exact k-nearest-neighbour graph is timed here: 256 sample rows are searched against
the whole sample and the time scaled to every row. UMAP's layout cannot be timed without compiling it, so it is
counted in edge-epochs (points x neighbours x epochs) at the rate of a warm fit on a 2-core machine, plus
compilation: none once this process has fitted a UMAP map, a few seconds in a fresh process whose Numba cache
holds UMAP's code (only part of it is cached), more with an empty cache (all measured by ``python
bench/map_cost.py``, bench/map_cost.md, which also sets the estimate beside the time taken). PCA, the fallback the
dashboard shows while UMAP fits (about a second), is not budgeted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from probe.core.budget import (
    FLOAT32,
    MINUTES_ARGUMENT,
    MINUTES_FLAG,
    budget_gb,
    budget_minutes,
    check_memory,
    check_time,
)
from probe.core.index import VocabIndex
from probe.core.io import cache_root


class MapConfig(Protocol):
    """What a map's cost depends on (:class:`probe.readings.projection.MapConfig` has it)."""

    @property
    def method(self) -> str: ...
    @property
    def n_neighbors(self) -> int: ...
    @property
    def n_epochs(self) -> int | None: ...


EDGE_EPOCH_SECONDS = 1.6e-7
"""Seconds of a warm fit per point, neighbour and epoch (bench/map_cost.md: 11.7 s for 10,000 tokens x 15 x 500)."""
COMPILE_SECONDS = 20.0
"""What a fresh process's first UMAP fit adds with an empty Numba cache (bench/map_cost.md)."""
CACHED_COMPILE_SECONDS = 6.5
"""What it adds when Numba's cache holds UMAP's cached functions (the rest still compile; bench/map_cost.md)."""
TIMED_ROWS = 256
"""Rows whose neighbour search is timed to estimate the whole graph's."""
SPARE = 10
"""Candidates beyond ``n_neighbors`` the exact graph asks FAISS for (``projection._exact_knn``)."""


_FITTED = [False]
"""Whether this process has fitted a UMAP map (its Numba code is compiled)."""


def mark_fitted() -> None:
    """Note that this process has fitted a UMAP map (``projection._fit`` calls it)."""
    _FITTED[0] = True


def compiled() -> bool:
    """Whether Numba's cache (``$NUMBA_CACHE_DIR``, else probe's) holds UMAP's cached functions."""
    root = Path(os.environ.get("NUMBA_CACHE_DIR") or cache_root() / "numba")
    return root.is_dir() and any(root.glob("umap*/layouts*.nbi"))


def compile_seconds() -> float:
    """What compiling UMAP adds to the next fit in this process."""
    return 0.0 if _FITTED[0] else CACHED_COMPILE_SECONDS if compiled() else COMPILE_SECONDS


def map_bytes(rows: int, dim: int, config: MapConfig) -> int:
    """Bytes a UMAP fit holds at its peak: the unit sample in float32 and float64 and the graph's float64 block, the
    neighbour candidates (ids and distances), UMAP's symmetrised graph (ids and weights, both directions) and the
    layout."""
    k = min(config.n_neighbors + SPARE, rows)
    sample = rows * dim * (FLOAT32 + 8) + min(rows, 1024) * k * dim * 8
    graph = rows * k * (8 + 4 + 8) + 2 * rows * config.n_neighbors * (4 + 4 + 4) * 2
    return int(sample + graph + rows * 2 * FLOAT32)


def map_seconds(x: np.ndarray, config: MapConfig) -> float:
    """Estimated seconds to fit a UMAP map of ``config`` on the unit rows ``x`` (the graph timed, the layout
    counted)."""
    k = min(config.n_neighbors + SPARE, len(x))
    started = time.perf_counter()
    VocabIndex(x).search(x[:TIMED_ROWS], k)
    graph = (time.perf_counter() - started) * len(x) / min(TIMED_ROWS, len(x))
    epochs = config.n_epochs or (500 if len(x) <= 10_000 else 200)  # UMAP's own default
    layout = len(x) * config.n_neighbors * epochs * EDGE_EPOCH_SECONDS
    return graph + layout + compile_seconds()


def check_map_budget(x: np.ndarray, config: MapConfig, *, minutes: float | None, gb: float | None) -> None:
    """Refuse a UMAP fit of ``config`` on the unit rows ``x``, before it starts, when its memory passes ``gb`` or
    its time ``minutes`` (None: ``$PROBE_BUDGET_GB`` / ``$PROBE_BUDGET_MINUTES``, which ``probe dashboard
    --budget-gb / --budget-minutes`` set; else no budget, and nothing is timed). A PCA map is not refused.

    Raises:
        ValueError: over a budget, in one line naming what lifts it.
    """
    if config.method == "pca":
        return
    what = f"the UMAP map of {len(x):,} tokens"
    less = "fit it on fewer tokens (MapConfig(n_vocab=...)) or use method='pca'"
    if budget_gb(gb) is not None:
        check_memory(map_bytes(len(x), x.shape[1], config), what, gb=gb, less=less)
    if budget_minutes(minutes) is not None:
        flag = MINUTES_ARGUMENT if minutes is not None else MINUTES_FLAG
        check_time(map_seconds(x, config), what, minutes=minutes, less=less, flag=flag)
