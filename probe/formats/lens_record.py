"""The layer lens's record (in ``explain.json``): per position and layer, the nearest contextual token."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from probe.core.results import Result
from probe.formats.schema import FieldReader


@dataclass(frozen=True)
class LensRow:
    """One position at one layer: the top-1 contextual token and its cosine, and the logit lens's token."""

    position: int
    layer: int
    token: str
    cosine: float
    logit_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<lens row>") -> LensRow:
        """Read one row of :meth:`LayerLens.to_dict`'s output."""
        return cls(**FieldReader(data, source, "layer lens row").fields_of(cls, defaults={"cosine": math.nan}))


@dataclass(frozen=True, repr=False)
class LayerLens(Result):
    """Positions x layers: the top-1 contextual token and its cosine (and the logit lens for causal LMs)."""

    rows: list[LensRow]
    input_tokens: list[str]
    holds_until: list[int]
    layers: int
    texts: int
    task: str | None = None
    """The task whose input the hidden states were read on."""

    @property
    def has_logit_lens(self) -> bool:
        """Whether the rows carry the logit lens (causal LMs with a final norm and an unembedding)."""
        return any(r.logit_token is not None for r in self.rows)

    def headline(self) -> str:
        logit = ", with the logit lens" if self.has_logit_lens else ""
        return f"{len(self.input_tokens)} positions x {self.layers} layers over {self.texts} texts{logit}"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (position, layer)."""
        return pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in dataclasses.fields(LensRow)])

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<lens>") -> LayerLens:
        """Read :meth:`to_dict`'s output (the first files lacked ``layers`` and ``texts``)."""
        f = FieldReader(data, source, "layer lens")
        rows = [LensRow.from_dict(r, source) for r in f.array("rows")]
        holds = f.array("holds_until", [])
        if not all(isinstance(h, int) and not isinstance(h, bool) for h in holds):
            raise f.error("holds_until", holds, "a list of layer numbers (-1: none)")
        lacked = {"input_tokens": [], "layers": 1 + max((r.layer for r in rows), default=-1), "texts": 0}
        return cls(**f.fields_of(cls, defaults=lacked, rows=rows, holds_until=list(holds)))

    def to_markdown(self) -> str:
        """Positions as rows, layers as columns: top-1 token (cosine), and the logit lens's token where there is
        one (``→ token``)."""
        table = self.to_dataframe()
        logit = " Cells read 'contextual token (cosine) → logit-lens token'." if self.has_logit_lens else ""
        lines = [
            f"Layer lens over {self.layers} layers (0 = embeddings output), hidden states averaged over "
            f"{self.texts} test texts. 'holds until': the last layer whose top-1 is still the input-embedding "
            f"reading (-1: not even the first).{logit}",
            "",
            "| pos | input reading | holds until | " + " | ".join(f"L{n}" for n in range(self.layers)) + " |",
            "|---:|---|---:|" + "---|" * self.layers,
        ]
        for p, token in enumerate(self.input_tokens):
            cells = table[table["position"] == p].sort_values("layer")
            lines.append(
                f"| {p} | {token} | {self.holds_until[p]} | "
                + " | ".join(
                    f"{r.token} ({r.cosine:.2f})" + (f" → {r.logit_token}" if r.logit_token is not None else "")
                    for r in cells.itertuples()
                )
                + " |"
            )
        return "\n".join(lines)
