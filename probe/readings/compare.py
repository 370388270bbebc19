"""Compare two prompts of the same model: per-position cosine, neighbour overlap, and a position matching.

Positions of two independently trained prompts need not line up, so besides the same-index comparison the
positions are matched one-to-one by the Hungarian algorithm on cosine (scipy's linear_sum_assignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from probe.core.index import VocabIndex, normalize_rows
from probe.core.models import LoadedModel
from probe.core.results import Result
from probe.core.softprompt import SoftPrompt


@dataclass(frozen=True, repr=False)
class Comparison(Result):
    """Result of :func:`compare_prompts`.

    Attributes:
        by_position: one row per position i of A against position i of B (cosine, top-k Jaccard).
        matching: one row per matched pair (position in A, position in B, cosine, top-k Jaccard).
        mean_cosine: mean same-index cosine.
        mean_matched_cosine: mean cosine over the Hungarian matching.
        lengths: the positions of A and of B (when they differ, the same-position table reads the shorter's).
    """

    by_position: pd.DataFrame
    matching: pd.DataFrame
    mean_cosine: float
    mean_matched_cosine: float
    lengths: tuple[int, int] | None = None

    def headline(self) -> str:
        mean, matched = self.mean_cosine, self.mean_matched_cosine
        return f"{len(self.by_position)} positions, mean cosine {mean:.3f}, matched {matched:.3f}"

    def to_dataframe(self) -> pd.DataFrame:
        """The same-position table (tokens as text); the matching is :attr:`matching`."""
        return self.by_position

    def to_dict(self) -> dict[str, Any]:
        """Both tables as records, and the two means."""
        return {
            "mean_cosine": self.mean_cosine,
            "mean_matched_cosine": self.mean_matched_cosine,
            **({"lengths": list(self.lengths)} if self.lengths else {}),
            "by_position": self.by_position.to_dict("records"),
            "matching": self.matching.to_dict("records"),
        }

    def to_markdown(self) -> str:
        """Both tables with a one-line summary."""
        return "\n".join(
            [
                f"mean cosine by position {self.mean_cosine:.3f}; "
                f"after matching positions {self.mean_matched_cosine:.3f}",
                *([self._lengths_line(), ""] if self.lengths and self.lengths[0] != self.lengths[1] else [""]),
                "## Same position",
                "",
                self.by_position.to_markdown(index=False, floatfmt=".3f"),
                "",
                "## Matched positions (Hungarian on cosine)",
                "",
                self.matching.to_markdown(index=False, floatfmt=".3f"),
                "",
            ]
        )

    def _lengths_line(self) -> str:
        a, b = self.lengths or (0, 0)
        return (
            f"A has {a} positions and B {b}: the same-position table reads the first {min(a, b)} of each; the "
            "matching pairs each of the shorter's with one of the longer's."
        )


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(a.tolist()), set(b.tolist())
    return len(sa & sb) / len(sa | sb)


def compare_prompts(
    a: SoftPrompt | np.ndarray,
    b: SoftPrompt | np.ndarray,
    model: LoadedModel | VocabIndex,
    *,
    k: int = 5,
    display: list[str] | None = None,
) -> Comparison:
    """Compare prompt A with prompt B, position by position and after matching positions.

    Args:
        a / b: the prompts (or float32 [p, d] vectors).
        model: their model (its index and token text are used), or a prebuilt :class:`VocabIndex`.
        k: neighbours per position for the overlap.
        display: token text by id (default: the model's; with a bare index, ids are shown).

    Raises:
        ValueError: the prompts have different dimensions, or another than the model's.
    """
    from probe.core.io import expect

    expect(model, (LoadedModel, VocabIndex), "model", "a loaded model (probe.load_model(...)) or a VocabIndex")
    a, b = (p if isinstance(p, SoftPrompt) else SoftPrompt(vectors=p, source="<array>") for p in (a, b))
    if isinstance(model, VocabIndex):
        index = model
    else:
        index = VocabIndex.for_model(model)
        display = display or model.vocabulary.display
        a.check_dim(model.dim, model.name)
    if a.dim != b.dim:
        raise ValueError(f"prompts have dims {a.dim} and {b.dim}; compare prompts of the same model")
    if display is not None and len(display) < index.token_ids.max() + 1:
        raise ValueError(
            f"display has {len(display)} token texts; expected one per token id of the vocabulary "
            f"({index.token_ids.max() + 1}), or None (the model's)"
        )
    ua, ub = normalize_rows(a.vectors), normalize_rows(b.vectors)
    cos = ua @ ub.T
    _, ids_a = index.search(a.vectors, k)
    _, ids_b = index.search(b.vectors, k)
    name = (lambda t: display[t]) if display else str
    n = min(a.length, b.length)
    by_position = pd.DataFrame(
        {
            "position": np.arange(n),
            "cosine": cos[np.arange(n), np.arange(n)],
            "jaccard_topk": [_jaccard(ids_a[i], ids_b[i]) for i in range(n)],
            "top1_a": [name(t) for t in ids_a[:n, 0]],
            "top1_b": [name(t) for t in ids_b[:n, 0]],
        }
    )
    rows, cols = linear_sum_assignment(-cos)
    matching = pd.DataFrame(
        {
            "position_a": rows,
            "position_b": cols,
            "cosine": cos[rows, cols],
            "jaccard_topk": [_jaccard(ids_a[i], ids_b[j]) for i, j in zip(rows, cols, strict=True)],
            "top1_a": [name(t) for t in ids_a[rows, 0]],
            "top1_b": [name(t) for t in ids_b[cols, 0]],
        }
    )
    means = float(by_position["cosine"].mean()), float(matching["cosine"].mean())
    return Comparison(by_position, matching, *means, lengths=(a.length, b.length))
