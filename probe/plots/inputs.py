"""What a figure builder takes, checked where it enters: the tidy table a reading gives (a DataFrame; a dict of them
for :func:`probe.plots.loss_curves`). Anything else, or a table without a column the builder draws, is one line
naming the table the builder expects (it was pandas' KeyError or an AttributeError from inside plotly code)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd

Builder = TypeVar("Builder", bound=Callable[..., Any])


def takes(source: str, *, per_run: bool = False) -> Callable[[Builder], Builder]:
    """Check a builder's first argument: a DataFrame as ``source`` gives it (``per_run``: a dict of them by run).

    Raises (from the builder):
        TypeError: another type. ValueError: a column the builder reads is missing.
    """

    def wrap(builder: Builder) -> Builder:
        @functools.wraps(builder)
        def checked(data: Any, *args: Any, **kwargs: Any) -> Any:
            tables = list(data.values()) if isinstance(data, dict) and per_run else [data]
            if per_run is not isinstance(data, dict) or not all(isinstance(t, pd.DataFrame) for t in tables):
                raise TypeError(f"{builder.__name__} takes {source}; got a {type(data).__name__}")
            try:
                return builder(data, *args, **kwargs)
            except KeyError as e:
                columns = sorted({str(c) for t in tables for c in t.columns})
                named = re.search(r"\[([^\]]*)\]$", str(e.args[0]))  # pandas lists them: "... DataFrame: ['rank']"
                missing = named.group(1) if named else repr(e.args[0])
                raise ValueError(
                    f"{builder.__name__}: the table has no column {missing} (it has {columns[:8]}); expected {source}"
                ) from None

        return checked  # type: ignore[return-value]

    return wrap
