"""The hard prompt record (``hard-prompt.json``): the best real-token prompt ``probe explain`` found.

It holds token ids, their text and the accuracies measured beside it, and probe loads it as a prompt (the
embedding rows of its token ids). :class:`HardPrompt` is its one owner: the search writes it, the run folder,
the loader and the dashboard read it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.core.io import MAX_POSITIONS, atomic_write_json
from probe.core.names import CLASSIFICATION, DISCRETISED, HARD_PROMPT, SOFT, ZERO_SHOT
from probe.core.results import Result
from probe.core.softprompt import SoftPrompt
from probe.formats.files import Loader
from probe.formats.schema import FieldReader, read_json, token_ids

HARD_PROMPT_FILE = "hard-prompt.json"
HARD_PROMPT_FORMAT = 1
TOKEN_SEPARATOR = " · "


def shown_tokens(tokens: list[str]) -> str:
    """A prompt as its tokens, each visible (``outlets · ##koff · org``), not decoded subwords run together."""
    return TOKEN_SEPARATOR.join(tokens)


@dataclass(frozen=True, repr=False)
class HardPrompt(Result):
    """A prompt made of real tokens, with its test accuracy beside the soft prompt's.

    Attributes:
        model: the model's canonical name.
        token_ids / tokens / text: the prompt, as ids, as shown tokens and as decoded text.
        hard_prompt_accuracy: its test accuracy.
        soft_accuracy / discretised_accuracy / zero_shot_accuracy: the soft prompt's, its nearest tokens', and the
            frozen model's, on the same test rows.
        holdout_accuracy / start_holdout_accuracy: on the held-out training slice, for the prompt kept and at
            the start (the nearest tokens).
        changed_positions: positions whose token differs from the start (the nearest-token reading, unless a
            longer prompt or given ids started it).
        steps / best_step / seed: the search.
        task: the task every accuracy was measured under (None in files from before it was recorded).
        method: how it was found: "pez" (projected gradient; files from before the search say nothing) or
            "search" (exact coordinate search).
        word_share: the share of its tokens that are whole words (NaN in files from before it was measured).
        perplexity: its perplexity under the model, for causal LMs (NaN for other kinds and older files).
        hard_prompt_loss, soft_loss, discretised_loss, zero_shot_loss, holdout_loss, start_holdout_loss: the mean
            loss beside each accuracy, under an objective other than classification (NaN under classification and
            in older files). Under a caller's loss the accuracies are NaN: the losses are its figures.
    """

    model: str
    token_ids: list[int]
    tokens: list[str]
    text: str
    hard_prompt_accuracy: float
    soft_accuracy: float
    discretised_accuracy: float
    zero_shot_accuracy: float
    holdout_accuracy: float
    start_holdout_accuracy: float
    changed_positions: int
    steps: int
    best_step: int
    seed: int
    task: str | None = None
    method: str = "pez"
    word_share: float = math.nan
    perplexity: float = math.nan
    objective: str = CLASSIFICATION
    """What its accuracies measure (files without it: classification; the target objective: token accuracy)."""
    format: int = HARD_PROMPT_FORMAT
    hard_prompt_loss: float = math.nan
    soft_loss: float = math.nan
    discretised_loss: float = math.nan
    zero_shot_loss: float = math.nan
    holdout_loss: float = math.nan
    start_holdout_loss: float = math.nan

    def headline(self) -> str:
        if math.isnan(self.hard_prompt_accuracy) and not math.isnan(self.hard_prompt_loss):  # a caller's loss
            return f"{self.shown}, loss {self.hard_prompt_loss:.3f} (soft {self.soft_loss:.3f}); {self.readability()}"
        return (
            f"{self.shown}, accuracy {self.hard_prompt_accuracy:.3f} (soft {self.soft_accuracy:.3f}); "
            f"{self.readability()}"
        )

    def readability(self) -> str:
        """Its readability in words: the share of whole words, and the perplexity where it was measured."""
        words = "whole words unmeasured" if math.isnan(self.word_share) else f"{self.word_share:.0%} whole words"
        return words if math.isnan(self.perplexity) else f"{words}, perplexity {self.perplexity:.1f}"

    @property
    def shown(self) -> str:
        """The prompt as its tokens with a visible separator: what a person reads (``text`` runs subwords together)."""
        return shown_tokens(self.tokens)

    @property
    def accuracy(self) -> float:
        """The hard prompt's test accuracy (its earlier name)."""
        return self.hard_prompt_accuracy

    def accuracies(self) -> dict[str, float]:
        """Every accuracy it records, by measure name."""
        return {
            SOFT: self.soft_accuracy,
            DISCRETISED: self.discretised_accuracy,
            ZERO_SHOT: self.zero_shot_accuracy,
            HARD_PROMPT: self.hard_prompt_accuracy,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<hard prompt>", vocab_size: int | None = None) -> HardPrompt:
        """Read a hard prompt record of any version (the hard prompt's accuracy was once ``accuracy``).

        Raises:
            ValueError: a field of the wrong type, or token ids that are not integer ids in the vocabulary.
        """
        f = FieldReader(data, source, "hard prompt")
        ids = token_ids(f, "token_ids", vocab_size=vocab_size, max_count=MAX_POSITIONS)
        tokens = f.texts("tokens", [str(i) for i in ids])
        if len(tokens) != len(ids):
            raise f.error("tokens", f"{len(tokens)} tokens", f"one per token id ({len(ids)})")
        accuracy = f.number("hard_prompt_accuracy" if "hard_prompt_accuracy" in f.data else "accuracy", math.nan)
        lacked: dict[str, Any] = {"text": "", "changed_positions": 0, "steps": 0, "best_step": 0, "seed": 0}
        lacked |= {name: math.nan for name in ("soft_accuracy", "discretised_accuracy", "zero_shot_accuracy")}
        lacked |= {"holdout_accuracy": math.nan, "start_holdout_accuracy": math.nan}
        given = {"token_ids": ids, "tokens": tokens, "hard_prompt_accuracy": accuracy}
        return cls(**f.fields_of(cls, defaults=lacked, read=("accuracy",), **given))

    def to_markdown(self) -> str:
        """A short readable summary: the test accuracies, and the losses where the objective has them (a caller's
        loss has only those)."""
        by_loss = not math.isnan(self.soft_loss)
        only_loss = by_loss and math.isnan(self.soft_accuracy)
        columns = ["loss"] if only_loss else ["test accuracy", "loss"] if by_loss else ["test accuracy"]

        def row(name: str, accuracy: float, loss: float) -> str:
            figures = [loss] if only_loss else [accuracy, loss] if by_loss else [accuracy]
            return f"| {name} | " + " | ".join(f"{x:.3f}" for x in figures) + " |"

        held = (
            (self.start_holdout_loss, self.holdout_loss)
            if only_loss
            else (self.start_holdout_accuracy, self.holdout_accuracy)
        )
        measure = "loss" if only_loss else "accuracy"
        return "\n".join(
            [
                f"Hard prompt ({len(self.token_ids)} tokens by {self.method}, {self.changed_positions} changed from "
                f"its start, best at step {self.best_step} of {self.steps}): `{self.shown}` (decoded: `{self.text}`)",
                "",
                f"Readability: {self.readability()}.",
                "",
                "| prompt | " + " | ".join(columns) + " |",
                "|---|" + "---:|" * len(columns),
                row("soft", self.soft_accuracy, self.soft_loss),
                row("hard (this search)", self.hard_prompt_accuracy, self.hard_prompt_loss),
                row("nearest tokens (discretised)", self.discretised_accuracy, self.discretised_loss),
                row("zero-shot", self.zero_shot_accuracy, self.zero_shot_loss),
                "",
                f"Held-out slice of the training data ({measure}): {held[0]:.3f} at the start, {held[1]:.3f} for "
                "the prompt kept.",
            ]
        )

    def to_dataframe(self) -> Any:
        """One row per position: the token kept."""
        import pandas as pd

        return pd.DataFrame({"position": range(len(self.token_ids)), "token_id": self.token_ids, "token": self.tokens})


def save_hard_prompt(hard: HardPrompt, folder: str | os.PathLike[str]) -> Path:
    """Write ``hard-prompt.json`` into ``folder`` atomically; returns its path."""
    path = Path(folder) / HARD_PROMPT_FILE
    atomic_write_json(path, hard.to_dict())
    return path


def read_hard_prompt(path: str | os.PathLike[str], *, vocab_size: int | None = None) -> HardPrompt:
    """The hard prompt record in ``path``.

    Raises:
        ValueError: not a hard prompt probe wrote (naming the field that is wrong).
    """
    return HardPrompt.from_dict(read_json(path, what="hard prompt"), source=str(path), vocab_size=vocab_size)


def _is_hard_prompt(path: Path) -> bool:
    return path.is_file() and path.name.endswith(HARD_PROMPT_FILE)


def _load_hard_prompt(path: Path, key: str | None) -> list[SoftPrompt]:
    from probe.core.models import load_model

    try:
        model_name = str(FieldReader(read_json(path, what="hard prompt"), str(path), "hard prompt").text("model"))
    except ValueError as e:
        raise ValueError(f"'{path}' is not a hard prompt written by probe (needs 'model' and 'token_ids'): {e}") from e
    model = load_model(model_name, device="cpu")
    hard = read_hard_prompt(path, vocab_size=model.vocab_size)
    vectors = model.embeddings_numpy()[hard.token_ids]
    return [
        SoftPrompt(vectors=vectors, source=str(path), base_model=model.name, metadata={"hard_prompt": hard.to_dict()})
    ]


LOADER = Loader("hard-prompt", f"a {HARD_PROMPT_FILE} of token ids (probe explain)", _is_hard_prompt, _load_hard_prompt)
