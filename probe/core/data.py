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

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BUNDLED_SETS = ("feelings", "topics")
"""Names of the bundled data sets; pass one wherever a data path is expected."""
BUNDLED = "feelings"
"""The default data set."""
MAX_FIELD_CHARS = 2**24
"""The longest CSV/TSV field read (a whole long document fits; csv's own default is 131,072)."""
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


def _rows_from_bytes(blob: bytes, path: str, fmt: str) -> list[dict[str, str]]:
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"'{path}' is not UTF-8 text (byte {e.start}); re-save it as UTF-8") from e
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"'{path}' line {n} is not JSON: {e}") from e
            except RecursionError as e:
                raise ValueError(f"'{path}' line {n} is nested too deeply to be a row of text and label") from e
            if not isinstance(row, dict):
                raise ValueError(f"'{path}' line {n} is a {type(row).__name__}; expected a JSON object")
            rows.append({str(k): v for k, v in row.items()})
        return rows
    if csv.field_size_limit() < MAX_FIELD_CHARS:  # csv's default (131,072) is shorter than a long document
        csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",")
    try:
        return list(reader)
    except csv.Error as e:
        raise ValueError(f"'{path}' is not a readable {fmt.upper()} file (line {reader.line_num}: {e})") from e


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv",):
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"'{path}' has suffix '{suffix}'; expected .csv, .tsv or .jsonl")


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
        if not p.is_file():
            raise FileNotFoundError(
                f"data file '{path}' does not exist; give a .csv, .tsv or .jsonl file, "
                f"or one of the bundled sets {', '.join(BUNDLED_SETS)}"
            )
        fmt = _format(p)
        blob = p.read_bytes()
        source = str(p)
    rows = _rows_from_bytes(blob, source, fmt)
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
    columns = set(rows[0])
    _check_columns(source, columns, text_column, label_column, target_column)
    if split is not None:
        if split_column not in columns:
            raise ValueError(f"data '{source}' has no '{split_column}' column to pick split '{split}'")
        rows = [r for r in rows if r.get(split_column) == split]
        if not rows:
            raise ValueError(f"data '{source}' has no rows with {split_column}={split!r}")
    texts, values = [], []
    for n, row in enumerate(rows, 1):
        text, value = row.get(text_column), row.get(wanted)
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
    splits = [str(r.get(split_column)) for r in rows] if split_column in columns else None
    if not sha256:  # in-memory rows: a digest of what they hold, so a change is noticed as a file's is
        digest = hashlib.sha256()
        for text, value, part in zip(texts, values, splits or [""] * len(texts), strict=True):
            digest.update(f"{text}\x00{value}\x00{part}\x01".encode())
        sha256 = digest.hexdigest()
    return LabelledData(texts, labels, names, source=source, sha256=sha256, splits=splits, target_texts=targets)


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
        return DataSplits(train, test)
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
    return DataSplits(
        data.subset(sorted(train_idx), f"{data.source}:train"),
        data.subset(sorted(test_idx), f"{data.source}:test"),
    )
