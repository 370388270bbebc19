"""A prefix's drift per layer over checkpoints: at each step, layer and part (key, value), how near its positions
sit to real tokens' own keys and values (mean top-1 cosine, on-manifold share), which tokens are top-1, how many
changed since the step before, and how far each position moved from the first step (cosine to it).

Each layer's reference and index are built once and read for every checkpoint (the reference is cached on disk
per model and layer, :func:`probe.readings.prefix.vocabulary_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from probe.core.index import TokenFilter, normalize_rows
from probe.core.models import LoadedModel
from probe.core.results import Result
from probe.formats.prefix import PARTS, PrefixPrompt
from probe.readings.measures import on_manifold
from probe.readings.prefix import check_prefix, layer_index, layer_references


@dataclass(frozen=True)
class PrefixDriftRow:
    """One step's reading of one layer's keys (or values)."""

    step: int
    layer: int
    part: str
    mean_top1_cosine: float
    on_manifold_share: float
    top1_tokens: list[str]
    changed_top1: int
    """Positions whose top-1 token is not the step before's (0 at the first step)."""
    mean_cos_to_first: float
    """Mean over positions of the cosine between this step's vector and the first step's."""


@dataclass(frozen=True, repr=False)
class PrefixDrift(Result):
    """:func:`prefix_drift`'s rows, one per (step, layer, part)."""

    model: str
    source: str
    steps: list[int]
    rows: list[PrefixDriftRow]

    def headline(self) -> str:
        return f"{len(self.steps)} steps of {self.source!r}, {len({r.layer for r in self.rows})} layers"

    def to_dataframe(self) -> pd.DataFrame:
        frame = pd.DataFrame([r.__dict__ for r in self.rows])
        frame["top1_tokens"] = [" · ".join(t) for t in frame["top1_tokens"]]
        return frame


def prefix_drift(
    prefixes: dict[int, PrefixPrompt],
    model: LoadedModel,
    *,
    layers: list[int] | None = None,
    token_filter: TokenFilter | None = None,
    seed: int = 0,
) -> PrefixDrift:
    """How a prefix's keys and values moved per layer over its checkpoints.

    Args:
        prefixes: step -> the prefix at that step (``load_prefix`` of each of ``prefix_steps(folder)``).
        model: the model they belong to.
        layers: which layers (default all).
        token_filter: which tokens may be neighbours (default: no special or unused tokens).
        seed: the manifold references' sample.

    Raises:
        ValueError: no checkpoints, prefixes of different shapes, or what :func:`probe.prefix_layers` refuses.
    """
    if not prefixes:
        raise ValueError("no prefix checkpoints to read; expected step -> PrefixPrompt (probe.load_prefix)")
    steps = sorted(prefixes)
    first = prefixes[steps[0]]
    chosen = check_prefix(first, model, layers)
    for step in steps:
        check_prefix(prefixes[step], model, chosen)
        if prefixes[step].kv.shape != first.kv.shape:
            raise ValueError(
                f"the prefix at step {step} has shape {prefixes[step].kv.shape}, step {steps[0]}'s {first.kv.shape}"
            )
    reference, token_ids, _ = layer_references(model, chosen, token_filter, None)
    display = model.vocabulary.display
    rows = []
    for li, layer in enumerate(chosen):
        for pi, part in enumerate(PARTS):
            index = layer_index(reference[li, pi], token_ids, model, seed)
            start = normalize_rows(first.vectors(layer, part))
            previous: np.ndarray | None = None
            for step in steps:
                vectors = prefixes[step].vectors(layer, part)
                cosines, ids = index.search(vectors, 1)
                top1 = ids[:, 0]
                rows.append(
                    PrefixDriftRow(
                        step=step,
                        layer=layer,
                        part=part,
                        mean_top1_cosine=float(cosines[:, 0].mean()),
                        on_manifold_share=float(on_manifold(index, cosines[:, 0]).mean()),
                        top1_tokens=[display[t] for t in top1.tolist()],
                        changed_top1=0 if previous is None else int((top1 != previous).sum()),
                        mean_cos_to_first=float(np.einsum("pd,pd->p", normalize_rows(vectors), start).mean()),
                    )
                )
                previous = top1
    return PrefixDrift(model=model.name, source=first.source, steps=steps, rows=rows)
