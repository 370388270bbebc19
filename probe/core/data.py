"""Labelled text: CSV / TSV / JSONL files, in-memory tables (:mod:`probe.core.frames`), and the bundled demo sets.

Two sets were written for probe, each 4 classes x 64 original sentences with a fixed split of 48 train and
16 test sentences per class:

- ``feelings`` (the default): joy, anger, fear, sadness, in sentences that describe a situation without naming
  the feeling. The frozen default model gets about half of the test set right by label-name cosine, so a
  trained prompt has room to show what it adds.
- ``topics``: science, sports, business, politics. The default model already gets ~97% zero-shot; useful to
  read domain words in the neighbours, not to show accuracy gains.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from probe.core.readers import file_format, rows_from_bytes

logger = logging.getLogger(__name__)

BUNDLED_SETS = ("feelings", "topics")
"""Names of the bundled data sets; pass one wherever a data path is expected."""
BUNDLED = "feelings"
"""The default data set."""
TARGET_CLASS = "<target>"
"""The one nominal class of data with free-text targets, so that splits and subsets treat it as any data."""


@dataclass(frozen=True)
class LabelledData:
    """Texts with class labels.

    Attributes:
        texts: the inputs.
        labels: one label name per text.
        label_names: the classes, in first-seen order (or as given).
        source: where the data came from.
        sha256: hash of the source bytes (empty for in-memory data).
        splits: the file's split column per row ("train", "test", ...), when it has one.
        target_texts: each text's free-text target (the target objective: its log-likelihood is what a prompt is
            read on), or None for classification. Such data has one nominal class, :data:`TARGET_CLASS`.
    """

    texts: list[str]
    labels: list[str]
    label_names: list[str]
    source: str = "<memory>"
    sha256: str = ""
    splits: list[str] | None = None
    target_texts: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels; they must pair up")
        if self.target_texts is not None and len(self.target_texts) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.target_texts)} targets; they must pair up")
        if not self.texts:
            raise ValueError(f"data set '{self.source}' is empty; expected labelled rows")
        unknown = sorted(set(self.labels) - set(self.label_names))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not in label_names {self.label_names}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def targets(self) -> list[int]:
        """Label indices into :attr:`label_names`."""
        position = {name: i for i, name in enumerate(self.label_names)}
        return [position[label] for label in self.labels]

    @property
    def loss_targets(self) -> list[int] | list[str]:
        """What a task's loss takes per row: the free-text targets when the data has them, else :attr:`targets`."""
        return self.targets if self.target_texts is None else self.target_texts

    def subset(self, indices: list[int], source: str | None = None) -> LabelledData:
        """The rows at ``indices`` with the same label names."""
        return LabelledData(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=self.label_names,
            source=source or self.source,
            sha256=self.sha256,
            splits=None if self.splits is None else [self.splits[i] for i in indices],
            target_texts=None if self.target_texts is None else [self.target_texts[i] for i in indices],
        )


@dataclass(frozen=True)
class DataSplits:
    """Train and test sets over the same labels."""

    train: LabelledData
    test: LabelledData


def load_labelled(
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    split_column: str = "split",
    target_column: str | None = None,
) -> LabelledData:
    """Load labelled text from CSV, TSV or JSONL.

    Args:
        path: the file, or a bundled set's name (``"feelings"``, ``"topics"``).
        text_column: column with the text.
        label_column: column with the label.
        split: keep only rows whose ``split_column`` equals this (e.g. "train").
        split_column: the split column's name.
        target_column: read free-text targets from this column instead of labels (see :func:`from_rows`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not UTF-8, missing columns, empty texts or labels, no rows, or fewer than 2 classes.
    """
    if str(path) in BUNDLED_SETS:
        blob = resources.files("probe").joinpath("bundled", f"{path}.csv").read_bytes()
        source, fmt = str(path), "csv"
    else:
        p = Path(path).expanduser()
        if p.is_dir():
            raise ValueError(f"data file '{path}' is a folder; give a .csv, .tsv or .jsonl file in it")
        if not p.is_file():
            raise FileNotFoundError(
                f"data file '{path}' does not exist; give a .csv, .tsv or .jsonl file, "
                f"or one of the bundled sets {', '.join(BUNDLED_SETS)}"
            )
        fmt = file_format(p)
        blob = p.read_bytes()
        source = str(p)
    rows = rows_from_bytes(blob, source, fmt)
    return from_rows(
        rows,
        source=source,
        sha256=hashlib.sha256(blob).hexdigest(),
        text_column=text_column,
        label_column=label_column,
        split=split,
        split_column=split_column,
        target_column=target_column,
    )


def from_rows(
    rows: list[dict[str, Any]],
    *,
    source: str,
    sha256: str = "",
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    split_column: str = "split",
    target_column: str | None = None,
) -> LabelledData:
    """Labelled data from rows (dicts of column -> value), checked as a file's rows are.

    Args:
        target_column: read free-text targets from this column instead of labels (the target objective; the
            label column is then not read).

    Raises:
        ValueError: missing columns, empty texts, labels or targets, no rows, or fewer than 2 classes.
    """
    wanted = label_column if target_column is None else target_column
    if not rows:
        raise ValueError(f"data '{source}' has no rows; expected columns '{text_column}' and '{wanted}'")
    columns = set().union(*rows)  # JSON Lines: a key the first object lacks is still a column
    _check_columns(source, columns, text_column, label_column, target_column)
    if split is not None:
        if split_column not in columns:
            raise ValueError(f"data '{source}' has no '{split_column}' column to pick split '{split}'")
        rows = [r for r in rows if str(r.get(split_column) or "").strip().lower() == split.strip().lower()]
        if not rows:
            raise ValueError(f"data '{source}' has no rows with {split_column}={split!r}")
    texts, values = [], []
    for n, row in enumerate(rows, 1):
        text, value = _cell(row.get(text_column), source, n, text_column), _cell(row.get(wanted), source, n, wanted)
        if text is None or not str(text).strip():
            raise ValueError(f"data '{source}' row {n} has an empty '{text_column}'")
        if value is None or not str(value).strip():
            raise ValueError(_empty_value(source, n, wanted, target_column is not None))
        texts.append(str(text).strip())
        values.append(str(value).strip())
    targets = None if target_column is None else values
    labels = values if targets is None else [TARGET_CLASS] * len(values)
    names = list(dict.fromkeys(labels))
    if len(names) < 2 and targets is None:
        raise ValueError(f"data '{source}' has a single class {names}; classification needs at least 2")
    splits = _split_values(rows, split_column, source) if split_column in columns else None
    if not sha256:  # in-memory rows: a digest of what they hold, so a change is noticed as a file's is
        digest = hashlib.sha256()
        for text, value, part in zip(texts, values, splits or [""] * len(texts), strict=True):
            digest.update(f"{text}\x00{value}\x00{part}\x01".encode())
        sha256 = digest.hexdigest()
    return LabelledData(texts, labels, names, source=source, sha256=sha256, splits=splits, target_texts=targets)


def _cell(value: Any, source: str, row: int, column: str) -> Any:
    """A JSON value as the text it stands for: a whole float as its integer (``1.0`` and ``1`` are one label).

    Raises:
        ValueError: an object or a list (its repr would be read as text, or as a class).
    """
    if isinstance(value, dict | list):
        raise ValueError(
            f"data '{source}' row {row} has a {type(value).__name__} in '{column}'; expected text or a number"
        )
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        return str(int(float(value)))  # a float, numpy's too
    return value


def _split_values(rows: list[dict[str, Any]], column: str, source: str) -> list[str]:
    """Each row's split, read as ``Train`` / ``test `` are meant (case and spaces aside).

    Raises:
        ValueError: a row without one (it would be left out of both sets without a word).
    """
    cells = [r.get(column) for r in rows]  # None or NaN (a DataFrame's empty cell): no split value
    values = ["" if v is None or v != v else str(v).strip().lower() for v in cells]
    if "" in values:
        raise ValueError(
            f"data '{source}' row {values.index('') + 1} has no '{column}' value; mark every row train or test "
            f"(others, such as dev, are left out), or drop the column for a seeded split"
        )
    return values


def _check_columns(
    source: str, columns: set[str], text_column: str, label_column: str, target_column: str | None
) -> None:
    if target_column is not None and target_column not in columns:
        raise ValueError(
            f"data '{source}' has no target column '{target_column}'; it has {sorted(columns)}. Name the column "
            "holding each text's target with --target-column (target_column=)"
        )
    missing = [c for c in (text_column, target_column or label_column) if c not in columns]
    if missing:
        raise ValueError(
            f"data '{source}' lacks column(s) {missing}; it has {sorted(columns)}. "
            "Name the columns with --text-column / --label-column (text_column= / label_column=)"
        )


def _empty_value(source: str, row: int, column: str, target: bool) -> str:
    if target:
        return (
            f"data '{source}' row {row} has an empty target '{column}'; expected a target text on every row (its "
            "log-likelihood is what the prompt is read on): fill it or drop the row"
        )
    return f"data '{source}' row {row} has an empty '{column}'"


def train_test(
    path: str | os.PathLike[str] = BUNDLED,
    *,
    text_column: str = "text",
    label_column: str = "label",
    test_fraction: float = 0.25,
    seed: int = 0,
    target_column: str | None = None,
) -> DataSplits:
    """Train and test sets of a labelled file: its own ``split`` column if it has one, else a seeded stratified
    split (:func:`split_data`).

    Raises:
        ValueError: a class has too few rows to appear in both sets.
    """
    data = load_labelled(path, text_column=text_column, label_column=label_column, target_column=target_column)
    return split_data(data, test_fraction=test_fraction, seed=seed)


def split_data(data: LabelledData, *, test_fraction: float = 0.25, seed: int = 0) -> DataSplits:
    """Train and test sets: the data's own split (rows marked ``train`` and ``test``; others such as ``dev`` are
    left out) when it has one, else a seeded split that keeps each class's share.

    Raises:
        ValueError: the training rows hold one class, or a class has too few rows to appear in both sets.
    """
    import random

    if data.splits is not None and not {"train", "test"} <= set(data.splits):  # errors.md 196
        found = sorted(set(map(str, data.splits)))
        raise ValueError(
            f"data '{data.source}' has a split column with the values {found[:6]}; expected rows marked 'train' and "
            "'test' (others, such as 'dev', are left out): name its held-out rows 'test', or drop the column for a "
            "seeded split"
        )
    if data.splits is not None:
        train = data.subset([i for i, s in enumerate(data.splits) if s == "train"], f"{data.source}:train")
        present = sorted(set(train.labels))
        if len(present) < 2 and data.target_texts is None:
            raise ValueError(
                f"data '{data.source}': its train rows (split column) hold the single class {present}; "
                "training needs at least 2 classes"
            )
        test = data.subset([i for i, s in enumerate(data.splits) if s == "test"], f"{data.source}:test")
        left = len(data) - len(train) - len(test)
        if left:
            others = sorted(set(data.splits) - {"train", "test"})
            logger.warning(
                "data '%s': %d rows with split %s left out (only train and test are read)", data.source, left, others
            )
        return _warn_overlap(DataSplits(train, test))
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction is {test_fraction}; expected a number between 0 and 1")
    rng = random.Random(seed)
    train_idx, test_idx = [], []
    for name in data.label_names:
        rows = [i for i, label in enumerate(data.labels) if label == name]
        if len(rows) < 2:
            raise ValueError(f"class '{name}' has {len(rows)} row(s) in '{data.source}'; each class needs at least 2")
        rng.shuffle(rows)
        cut = max(1, round(len(rows) * test_fraction))
        test_idx += rows[:cut]
        train_idx += rows[cut:]
    return _warn_overlap(
        DataSplits(
            data.subset(sorted(train_idx), f"{data.source}:train"), data.subset(sorted(test_idx), f"{data.source}:test")
        )
    )


_WARNED: set[str] = set()


def _warn_overlap(splits: DataSplits) -> DataSplits:
    """``splits``, after a warning (once per data) when test texts are also training texts: duplicate rows, whose
    test accuracy reads what was trained on."""
    seen = set(splits.train.texts)
    shared = sum(text in seen for text in splits.test.texts)
    key = splits.train.sha256 + splits.test.source
    if shared and key not in _WARNED:
        _WARNED.add(key)
        logger.warning(
            "data '%s': %d of %d test texts are also training texts (duplicate rows); their accuracy reads what was "
            "trained on: drop the duplicates",
            splits.test.source.removesuffix(":test"),
            shared,
            len(splits.test),
        )
    return splits
