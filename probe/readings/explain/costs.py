"""Time budgets of the single readings in Python (``budget_minutes=``): the rows a reading will score, counted before
any is scored, times the seconds of one scored row on this machine (two passes over up to 64 test rows timed, as the
readings score them). A call given no budget times nothing and does not read ``$PROBE_BUDGET_MINUTES`` (the CLI's).
"""

from __future__ import annotations

import numpy as np

from probe.readings.explain.readout import Readout


def check_rows(
    readout: Readout, vectors: np.ndarray, rows: int, what: str, minutes: float | None, *, less: str, extra: float = 0.0
) -> None:
    """Refuse ``what``, before any of its work, when scoring ``rows`` rows (plus ``extra`` seconds) would take longer
    than ``minutes`` (None: no budget, nothing timed).

    Raises:
        ValueError: over the budget, in one line naming ``budget_minutes=`` and ``less``.
    """
    if minutes is None:
        return
    from probe.core.budget import MINUTES_ARGUMENT, check_time
    from probe.readings.explain.search import per_row_seconds

    seconds = rows * per_row_seconds(readout, vectors) + extra
    check_time(seconds, what, minutes=minutes, less=less, flag=MINUTES_ARGUMENT)


def input_rows(vectors: np.ndarray, readout: Readout, what: str) -> np.ndarray:
    """``vectors`` when they are input rows of the readout's model.

    Raises:
        ValueError: a prefix's keys and values (or another width), which ``what`` cannot read.
    """
    if vectors.shape[1] != readout.model.dim:
        raise ValueError(
            f"{what} reads a prompt of input rows (width {readout.model.dim}); this one has width {vectors.shape[1]} "
            "(a prefix's keys and values per layer): read a prefix with probe.importance, probe.score_stand_ins, "
            "probe.explain or probe.prefix_layers"
        )
    return vectors
