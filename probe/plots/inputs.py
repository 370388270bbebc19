"""What a figure builder takes, checked where it enters: the tidy table a reading gives (a DataFrame; a dict of them
for :func:`probe.plots.loss_curves`). Anything else, or a table without a column the builder draws, is one line
naming the table the builder expects (it was pandas' KeyError or an AttributeError from inside plotly code)."""

from __future__ import annotations

import functools
import inspect
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
        signature = inspect.signature(builder)
        first = next(iter(signature.parameters))

        @functools.wraps(builder)
        def checked(*args: Any, **kwargs: Any) -> Any:
            given = signature.bind_partial(*args, **kwargs).arguments  # by position or by name alike
            data = given.get(first)
            tables = list(data.values()) if isinstance(data, dict) and per_run else [data]
            if per_run is not isinstance(data, dict) or not all(isinstance(t, pd.DataFrame) for t in tables):
                raise TypeError(f"{builder.__name__} takes {source}; got a {type(data).__name__}")
            try:
                return builder(*args, **kwargs)
            except KeyError as e:
                frames: list[pd.DataFrame] = [v for v in [*tables, *given.values()] if isinstance(v, pd.DataFrame)]
                columns = sorted({str(c) for t in frames for c in t.columns})
                key = e.args[0] if e.args else ""
                listed = re.search(r": \[([^\]]*)\]$", str(key))  # pandas lists them: "... DataFrame: ['rank']"
                missing = listed.group(1) if listed else repr(key) if " " not in str(key) else f"({key})"
                raise ValueError(
                    f"{builder.__name__}: the table has no column {missing} (the tables have {columns[:8]}); expected "
                    f"{source}"
                ) from None

        return checked  # type: ignore[return-value]

    return wrap
