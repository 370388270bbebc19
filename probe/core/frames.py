"""Data from memory: a pandas ``DataFrame``, a ``datasets.Dataset`` or a ``DatasetDict`` (splits by name), read
as a labelled file's rows are, wherever probe takes data (:func:`as_splits`).

A ``datasets`` class-label column is read by its names, so the labels are words the tokenizer knows.
"""

from __future__ import annotations

import os
from typing import Any

from probe.core.data import DataSplits, LabelledData, from_rows, split_data, train_test

Data = Any
"""What probe takes as data: a file path or bundled set's name, a pandas DataFrame, a ``datasets.Dataset`` or
``DatasetDict``, :class:`LabelledData` or :class:`DataSplits`."""
MEMORY = "memory:"
"""How a run's config records data it was handed in memory (``memory:<kind>:<sha256>``)."""


def is_table(data: Data) -> bool:
    """Whether ``data`` is an in-memory kind probe reads (see :data:`Data`)."""
    return isinstance(data, LabelledData | DataSplits) or bool(_kind(data))


def is_in_memory(data: Data) -> bool:
    """Whether ``data`` is an in-memory table rather than a path or a bundled set's name."""
    return not isinstance(data, str | os.PathLike)


def as_splits(
    data: Data,
    *,
    text_column: str = "text",
    label_column: str = "label",
    seed: int = 0,
    test_fraction: float = 0.25,
    target_column: str | None = None,
) -> DataSplits:
    """Train and test sets from any data probe takes (see :data:`Data`).

    A DatasetDict gives its ``train`` and ``test`` splits; any other table its ``split`` column if it has one,
    else a seeded stratified split (:func:`probe.core.data.split_data`). With ``target_column``, each row's
    free-text target is read from that column instead of a label (the target objective).

    Raises:
        TypeError: data of another type.
        ValueError: a table probe cannot read as labelled text (naming what is missing).
    """
    if isinstance(data, DataSplits):
        return data
    if isinstance(data, str | os.PathLike):
        if str(data).startswith(MEMORY):
            raise ValueError(
                f"this run was trained on data handed in memory ({data}); pass that data again "
                "(train(..., splits=...), Readout.from_run(run, data=...))"
            )
        return train_test(
            data,
            text_column=text_column,
            label_column=label_column,
            seed=seed,
            test_fraction=test_fraction,
            target_column=target_column,
        )
    columns: dict[str, Any] = {"text_column": text_column, "label_column": label_column, "target_column": target_column}
    if _kind(data) == "DatasetDict":
        parts = {name: data[name] for name in data}
        if not {"train", "test"} <= set(parts):
            raise ValueError(f"the DatasetDict has splits {sorted(parts)}; expected 'train' and 'test'")
        train = as_labelled(parts["train"], **columns)
        test = as_labelled(parts["test"], **columns)
        names = list(dict.fromkeys([*train.label_names, *test.label_names]))
        return DataSplits(_with_names(train, names, "train"), _with_names(test, names, "test"))
    labelled = data if isinstance(data, LabelledData) else as_labelled(data, **columns)
    return split_data(labelled, test_fraction=test_fraction, seed=seed)


def as_labelled(
    data: Data, *, text_column: str = "text", label_column: str = "label", target_column: str | None = None
) -> LabelledData:
    """Labelled data from a DataFrame or a ``datasets.Dataset`` (free-text targets from ``target_column``)."""
    kind = _kind(data)
    if isinstance(data, LabelledData):
        return data
    if kind == "DataFrame":
        rows = [_no_nan(r, (text_column, target_column or label_column)) for r in data.to_dict("records")]
    elif kind == "Dataset":
        rows = [dict(r) for r in data]
        names = getattr(data.features.get(label_column), "names", None)
        if names and target_column is None:  # a class-label column: ints stand for these names
            rows = [
                {**r, label_column: _class_name(r.get(label_column), names, n, label_column)}
                for n, r in enumerate(rows, 1)
            ]
    else:
        raise TypeError(
            f"data of type {type(data).__name__} is not something probe reads; give a file path, a bundled set's "
            "name, a pandas DataFrame, a datasets Dataset or DatasetDict"
        )
    return from_rows(
        rows, source=f"<{kind}>", text_column=text_column, label_column=label_column, target_column=target_column
    )


def _no_nan(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A DataFrame row with its missing cells (NaN, None, NaT) as None: refused as a file's empty cells are, never
    read as the text or class "nan"."""
    import pandas as pd

    return {k: None if k in columns and not isinstance(v, list | tuple) and pd.isna(v) else v for k, v in row.items()}


def _class_name(value: Any, names: list[str], row: int, column: str) -> str | None:
    """The name a ``datasets`` class-label value stands for (None, then refused, when missing).

    Raises:
        ValueError: a value outside the class names: -1 is ``datasets``' "no label", never the last class.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(names):
        what = " (no label)" if value == -1 else ""
        raise ValueError(
            f"data '<Dataset>' row {row} has {column} {value!r}{what}; expected a class from 0 to {len(names) - 1} "
            f"({', '.join(names)}); drop unlabelled rows first (dataset.filter(lambda r: r[{column!r}] >= 0))"
        )
    return names[value]


def describe(data: Data, splits: DataSplits) -> str:
    """What a run's config records as its data: the path as given, or ``memory:<kind>:<sha256>``."""
    if isinstance(data, str | os.PathLike):
        return str(data)
    return f"{MEMORY}{_kind(data) or type(data).__name__}:{splits.train.sha256[:16]}{splits.test.sha256[:16]}"


def data_name(data: Any) -> str:
    """Data as a message names it: a path or a set's name as given, split data by its source, else its type."""
    if isinstance(data, str | os.PathLike):
        return str(data)
    source = getattr(getattr(data, "train", None), "source", None)
    return source.removesuffix(":train") if isinstance(source, str) else type(data).__name__


def _kind(data: Data) -> str:
    for cls in type(data).__mro__:
        if cls.__name__ in ("DataFrame", "Dataset", "DatasetDict") and cls.__module__.split(".")[0] in (
            "pandas",
            "datasets",
        ):
            return cls.__name__
    return ""


def _with_names(data: LabelledData, names: list[str], split: str) -> LabelledData:
    return LabelledData(
        data.texts,
        data.labels,
        names,
        source=f"{data.source}:{split}",
        sha256=data.sha256,
        target_texts=data.target_texts,
    )
