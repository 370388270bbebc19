"""``TrainConfig``: everything that defines a training run, recorded in the manifest, and the options of
``probe train`` (each field's help text is written once, in its metadata). Importing it needs no torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from probe.core.data import BUNDLED
from probe.core.frames import is_in_memory, is_table
from probe.tasks.forms import TASK_FORMS, TaskForm
from probe.training.inits import InitMethod, Scale

CONFIG_FORMAT = 1
Optimizer = Literal["adamw", "adafactor"]


def _help(default: Any, text: str, **meta: Any) -> Any:
    """A config field whose help text (shown by ``probe train --help``) is written here once."""
    return dataclasses.field(default=default, metadata={"help": text, **meta})


def parse_scale(text: str) -> float | str:
    """``--init-scale``: a number, or "vocab-norm"."""
    if text == "vocab-norm":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--init-scale {text!r} is neither a number nor 'vocab-norm'") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run: recorded in the manifest, and the options of ``probe train``.

    Each field's help text is in its metadata (``dataclasses.fields(TrainConfig)``).
    """

    model: str = _help("default", "model name or folder ('default' = bundled all-MiniLM-L6-v2)")
    data: Any = _help(
        BUNDLED,
        "CSV/TSV/JSONL with text and label columns, or a bundled set: feelings, topics (from Python also a pandas "
        "DataFrame, a datasets Dataset or DatasetDict)",
    )
    init: str = _help(InitMethod.SAMPLED_VOCAB.value, "random-uniform | sampled-vocab | class-label | text")
    length: int = _help(20, "prompt positions p (default 20)")
    steps: int = _help(150, "optimisation steps (default 150)")
    batch_size: int = _help(16, "texts per step (default 16)")
    optimizer: Optimizer = _help("adamw", "adamw, or adafactor (the paper's: constant lr, no parameter scaling)")
    lr: float = _help(0.01, "learning rate (default 0.01)")
    snapshot_every: int = _help(10, "write the prompt every S steps, and at step 0 and the last step (default 10)")
    eval_every: int = _help(
        50, "evaluate every E steps and at step 0, on the test subset; the last step uses the whole split"
    )
    eval_size: int = _help(200, "test rows evaluated during training (seeded, stratified; default 200)")
    eval_discrete: bool = _help(False, "also measure the discretised accuracy during training (always at the end)")
    seed: int = _help(0, "seeds the init, the batches, the split and the evaluation subset (default 0)")
    init_scale: Scale = _help(0.5, "random-uniform bound: a number (paper 0.5) or 'vocab-norm'", type=parse_scale)
    vocab_top_n: int = _help(5000, "sampled-vocab draws from this many most frequent tokens (default 5000)")
    init_text: str | None = _help(None, "the text of the 'text' init")
    text_column: str = _help("text", "column with the text in the data file (default text)")
    label_column: str = _help("label", "column with the label in the data file (default label)")
    target_column: str | None = _help(
        None,
        "train on free-text targets: this column holds each text's target, and the prompt is trained to raise its "
        "log-likelihood (causal and seq2seq models; the label column is not read)",
    )
    temperature: float = _help(0.05, "softmax temperature of the encoder task's cosine logits (default 0.05)")
    max_length: int = _help(128, "longest input in tokens (default 128)")
    task: TaskForm = _help(
        "cosine",
        "encoder models: 'cosine' (sentence embedding vs label names) or 'verbaliser' (output position vs label "
        "tokens)",
    )
    test_size: int | None = _help(
        None, "score the final figures on a seeded, stratified subset of this many test rows (default: all)"
    )
    faithfulness_weight: float = _help(
        0.0,
        "λ in [0, 1]: train on (1 - λ) · loss(soft) + λ · loss(nearest tokens), straight through (1 is PEZ; default 0)",
    )
    project_to: str | None = _help(
        None, "pull each position's projection toward a target: 'init' or 'text:SOME WORDS' (with --project-weight)"
    )
    project_weight: float = _help(0.0, "γ: weight of the projection term (default 0)")
    project_temperature: float = _help(0.1, "τ of the projection term's softmax over vocabulary cosines (default 0.1)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "init", InitMethod.parse(self.init).value)
        for name in (
            "length",
            "steps",
            "batch_size",
            "snapshot_every",
            "eval_every",
            "eval_size",
            "vocab_top_n",
            "max_length",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} is {value!r}; expected a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(
                f"seed is {self.seed!r}; expected a whole number from 0 (it seeds the init, batches and split)"
            )
        if self.test_size is not None and (
            isinstance(self.test_size, bool) or not isinstance(self.test_size, int) or self.test_size <= 0
        ):
            raise ValueError(f"test_size is {self.test_size!r}; expected a positive integer, or none for every row")
        scale = self.init_scale  # checked whatever the init (it was read only by random-uniform's)
        if scale != "vocab-norm" and (
            isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf
        ):
            raise ValueError(f"init_scale is {scale!r}; expected a positive number (the paper's 0.5) or 'vocab-norm'")
        if self.task not in TASK_FORMS:
            raise ValueError(f"task '{self.task}' is not known; expected one of {', '.join(TASK_FORMS)}")
        if not isinstance(self.eval_discrete, bool):
            raise ValueError(f"eval_discrete is {self.eval_discrete!r}; expected true or false")
        if self.optimizer not in ("adamw", "adafactor"):
            raise ValueError(f"optimizer '{self.optimizer}' is not known; expected 'adamw' or 'adafactor'")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (value > 0 and math.isfinite(value))
            ):
                raise ValueError(f"{name} is {value!r}; expected a positive number")
        if not (isinstance(self.data, str | os.PathLike) or is_table(self.data)):
            raise TypeError(
                f"data is a {type(self.data).__name__}; expected a file path, a bundled set's name, a pandas "
                "DataFrame, a datasets Dataset or DatasetDict"
            )
        _check_target(self)
        check_weight(self.faithfulness_weight, "faithfulness_weight", upper=1.0)
        check_weight(self.project_weight, "project_weight")
        if not (isinstance(self.project_temperature, int | float) and self.project_temperature > 0):
            raise ValueError(f"project_temperature is {self.project_temperature!r}; expected a positive number")
        if self.project_to is not None and not (self.project_to == "init" or self.project_to.startswith("text:")):
            raise ValueError(f"project_to is {self.project_to!r}; expected 'init' or 'text:SOME WORDS'")
        if self.project_weight > 0 and self.project_to is None:
            raise ValueError("project_weight needs a target: --project-to init or --project-to 'text:SOME WORDS'")
        if self.init == InitMethod.TEXT.value and not (self.init_text or "").strip():
            raise ValueError("init 'text' needs init_text (--init-text)")

    def columns(self) -> dict[str, Any]:
        """The data's columns, as :func:`probe.core.frames.as_splits` takes them."""
        return {"text_column": self.text_column, "label_column": self.label_column, "target_column": self.target_column}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the format version; data handed in memory is recorded as ``memory:<kind>:<sha>``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if is_in_memory(self.data):
            from probe.core.frames import as_splits, describe

            splits = as_splits(self.data, seed=self.seed, **self.columns())
            fields["data"] = describe(self.data, splits)
        return {"format": CONFIG_FORMAT, **fields}

    def same_as(self, recorded: dict[str, Any] | None) -> bool:
        """Whether a run recorded with config ``recorded`` (a manifest's ``config``) was made with these settings
        (in-memory data compared by its content)."""
        return recorded is not None and TrainConfig.from_dict(recorded).to_dict() == self.to_dict()

    def continues(self, recorded: dict[str, Any] | None) -> bool:
        """Whether these settings continue a run recorded with config ``recorded``: the same in everything but
        ``steps``, which are more (a finished run resumed to them trains on as if it had never stopped: batch t
        depends only on the seed and t, and the optimizer's state is saved with every snapshot)."""
        if recorded is None:
            return False
        before = TrainConfig.from_dict(recorded)
        return before.steps < self.steps and dataclasses.replace(before, steps=self.steps).to_dict() == self.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are warned about and ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            warnings.warn(f"ignoring unknown TrainConfig keys {unknown}", UserWarning, stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in known})


def _check_target(config: TrainConfig) -> None:
    """Refuse settings that need classes under free-text targets."""
    if config.target_column is not None and config.init == InitMethod.CLASS_LABEL.value:
        raise ValueError(
            f"init 'class-label' starts from the label words, but --target-column {config.target_column!r} trains on "
            "free-text targets, which have none; use --init sampled-vocab (the default) or --init text"
        )


def check_weight(weight: float, what: str, *, upper: float | None = None) -> None:
    """Refuse a weight that is not a finite number at least 0 (and at most ``upper``).

    Raises:
        ValueError: naming the weight and its range.
    """
    bound = f" and at most {upper:g}" if upper is not None else ""
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not np.isfinite(weight)
        or weight < 0
        or (upper is not None and weight > upper)
    ):
        raise ValueError(f"{what} is {weight!r}; expected a number of at least 0{bound}")
