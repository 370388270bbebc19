"""Budgets on a reading's time and memory, given by the user: every long reading estimates both before it works
and refuses, in one line naming the option that lifts it, what would pass a budget.

A budget is ``--budget-minutes M`` / ``--budget-gb G`` on the command line, else ``$PROBE_BUDGET_MINUTES`` /
``$PROBE_BUDGET_GB``; unset (the default), nothing is refused. The estimates are the readings' own: the time from
their timed passes (:func:`probe.readings.explain.record.estimate_seconds`, the sweeps' ``estimate``), the memory
from the arrays whose size is known before the work (:func:`array_bytes`): the vocabulary index, the layer lens's
contextual vocabulary, a prefix's per-layer reference keys and values.
"""

from __future__ import annotations

import math
import os

MINUTES_ENV = "PROBE_BUDGET_MINUTES"
GB_ENV = "PROBE_BUDGET_GB"
MINUTES_FLAG = "--budget-minutes"
MINUTES_ARGUMENT = "budget_minutes="
"""The time budget as the library's readings take it (``explain(..., budget_minutes=4)``)."""
GB_FLAG = "--budget-gb"
GB = 1e9
FLOAT32 = 4


def _positive(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} is {value!r}; expected a positive number")
    return float(value)


def _from_env(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"${name} is {text!r}; expected a positive number (or unset: no budget)")
    return value


def budget_minutes(given: float | None = None) -> float | None:
    """The time budget in minutes: ``given`` (``--budget-minutes``), else ``$PROBE_BUDGET_MINUTES``, else None.

    Raises:
        ValueError: the budget is not a positive number.
    """
    return _positive(given, MINUTES_FLAG) if given is not None else _from_env(MINUTES_ENV)


def budget_gb(given: float | None = None) -> float | None:
    """The memory budget in GB: ``given`` (``--budget-gb``), else ``$PROBE_BUDGET_GB``, else None.

    Raises:
        ValueError: the budget is not a positive number.
    """
    return _positive(given, GB_FLAG) if given is not None else _from_env(GB_ENV)


def check_time(
    seconds: float, what: str, *, minutes: float | None = None, less: str = "", flag: str = MINUTES_FLAG
) -> None:
    """Refuse ``what`` when its estimate ``seconds`` passes the time budget (``minutes`` or the environment's).

    Args:
        seconds: the reading's estimate.
        what: the reading, as the message names it (``probe explain``).
        minutes: ``--budget-minutes`` as given (None: ``$PROBE_BUDGET_MINUTES``, else no budget).
        less: how to ask for less work, said after the option that lifts the budget.
        flag: the option that lifts it as the caller names it (``--budget-minutes``; a library function's
            ``budget_minutes=``).

    Raises:
        ValueError: over the budget, in one line naming ``flag``.
    """
    budget = budget_minutes(minutes)
    if budget is None or seconds <= budget * 60:
        return
    source = flag if minutes is not None else f"${MINUTES_ENV}"
    lift = f"{flag}{math.ceil(seconds / 60)}" if flag.endswith("=") else f"{flag} {math.ceil(seconds / 60)}"
    raise ValueError(
        f"{what} would take about {seconds / 60:.1f} min, over the time budget of {budget:g} min ({source}); "
        f"raise it with {lift}" + (f", or {less}" if less else "")
    )


def check_memory(nbytes: float, what: str, *, gb: float | None = None, less: str = "") -> None:
    """Refuse ``what`` when its estimated memory ``nbytes`` passes the memory budget (``gb`` or the environment's).

    Raises:
        ValueError: over the budget, in one line naming ``--budget-gb``.
    """
    budget = budget_gb(gb)
    if budget is None or nbytes <= budget * GB:
        return
    source = GB_FLAG if gb is not None else f"${GB_ENV}"
    raise ValueError(
        f"{what} would hold about {nbytes / GB:.2f} GB, over the memory budget of {budget:g} GB ({source}); "
        f"raise it with {GB_FLAG} {math.ceil(nbytes / GB * 10) / 10:g}" + (f", or {less}" if less else "")
    )


def array_bytes(*shape: int, itemsize: int = FLOAT32) -> int:
    """Bytes of an array of ``shape`` (float32 unless told)."""
    return math.prod(shape) * itemsize


def shown_gb(nbytes: float) -> str:
    """A memory estimate as the estimate lines print it (``0.05 GB``)."""
    return f"{nbytes / GB:.2f} GB"
