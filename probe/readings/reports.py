"""Nearest-token reports: the k closest vocabulary tokens of every prompt position, and how far it sits.

A report says, per position: its neighbours with cosines; its norm against the vocabulary's; its top-1
cosine and the margin to the second; where that top-1 cosine falls among the vocabulary's own
nearest-neighbour cosines (the "token manifold" percentile); how tight its neighbours are as a group;
whether its top-1 token repeats elsewhere; which class labels it is near. A control (random vectors as in
the paper, and sampled vocabulary rows) shows what "no learned structure" looks like on the same measures.
No plotting here.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from probe.core.index import VocabIndex, normalize_rows
from probe.core.io import expect, to_jsonable
from probe.core.models import LoadedModel
from probe.core.names import check_accuracies, label, measure_name, with_old_keys
from probe.core.results import Result, json_indent
from probe.core.softprompt import SoftPrompt, as_prompt
from probe.core.tokens import label_token_ids, text_list
from probe.readings.measures import (
    OFF_MANIFOLD_PERCENTILE,
    PositionMeasures,
    control_vectors,
    duplicate_top1,
    neighbour_coherence,
    read_positions,
)

__all__ = [
    "FAITHFULNESS_CAVEAT",
    "OFF_MANIFOLD_PERCENTILE",
    "LabelHit",
    "NearestTokenReport",
    "Neighbour",
    "PositionMeasures",
    "PositionReading",
    "Summary",
    "control_vectors",
    "duplicate_top1",
    "label_token_ids",
    "nearest_tokens",
    "neighbour_coherence",
    "read_positions",
    "summarize",
]


FAITHFULNESS_CAVEAT = (
    "Nearest tokens describe where a prompt sits, not what it does: the reading can be unfaithful "
    "(Khashabi et al. 2022, 'Prompt Waywardness')."
)


@dataclass(frozen=True)
class Neighbour:
    """One neighbouring token of a prompt position."""

    rank: int
    token_id: int
    token: str
    cosine: float


Neighbor = Neighbour
"""The American spelling, kept for scripts that use it."""


@dataclass(frozen=True)
class LabelHit:
    """A class label with a token in a position's top-k."""

    label: str
    token: str
    rank: int


@dataclass(frozen=True)
class PositionReading:
    """Everything the report says about one prompt position."""

    position: int
    norm: float
    norm_ratio: float
    top1_cosine: float
    margin: float
    manifold_percentile: float
    on_manifold: bool
    coherence: float
    neighbours: list[Neighbour]
    repeats_at: list[int] = field(default_factory=list)
    label_hits: list[LabelHit] = field(default_factory=list)
    started_as: str | None = None
    """The token the position started as, where the prompt records it (a CPT adapter's ``cpt_token_ids``)."""
    cos_to_start: float | None = None
    """Cosine between the position and the embedding of the token it started as."""

    @property
    def neighbors(self) -> list[Neighbour]:
        """:attr:`neighbours` (the American spelling, kept for scripts that use it)."""
        return self.neighbours


@dataclass(frozen=True)
class Summary:
    """Averages over a set of vectors (the prompt or a control)."""

    name: str
    count: int
    mean_norm_ratio: float
    mean_top1_cosine: float
    mean_margin: float
    mean_manifold_percentile: float
    on_manifold_share: float
    mean_coherence: float
    duplicate_top1_share: float


@dataclass(frozen=True, repr=False)
class NearestTokenReport(Result):
    """Nearest tokens and distance measures for every position of one prompt.

    Convert with :meth:`to_dataframe`, :meth:`to_markdown`, :meth:`to_csv`, :meth:`to_json`.
    """

    model: str
    fingerprint: str
    k: int
    source: str
    step: int | None
    role: str | None
    vocab_mean_norm: float
    searchable_tokens: int
    positions: list[PositionReading]
    summary: Summary
    labels: list[str] = field(default_factory=list)
    controls: list[Summary] = field(default_factory=list)
    token_filter: dict[str, Any] = field(default_factory=dict)
    accuracies: dict[str, float] = field(default_factory=dict)
    """What the prompt does, where measured, by measure name (:mod:`probe.core.names`)."""
    task_id: int | None = None
    """A multitask prompt's task (its prompt is that task's)."""

    def headline(self) -> str:
        return f"{len(self.positions)} positions of {self.source!r}, k={self.k}, {self.model}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (see :meth:`to_json`). The keys of earlier versions are written beside the new
        ones, for scripts that parse them: each position's ``neighbors`` (``neighbours``), and the older keys of
        ``accuracies`` (:data:`probe.core.names.REPORT_KEYS_BEFORE`)."""
        out = to_jsonable(asdict(self))
        for position in out["positions"]:
            position["neighbors"] = position["neighbours"]
        out["accuracies"] = with_old_keys(out["accuracies"])
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """JSON with ``model``, ``k`` and ``positions`` (each with ``position``, ``norm``, ``neighbours``...)."""
        return json.dumps(self.to_dict(), indent=json_indent(indent), allow_nan=False)

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table: one row per (position, rank) with the position's measures repeated."""
        rows = []
        for p in self.positions:
            labels = ",".join(f"{h.label}@{h.rank}" for h in p.label_hits)
            for n in p.neighbours:
                rows.append(
                    {
                        "position": p.position,
                        "rank": n.rank,
                        "token_id": n.token_id,
                        "token": n.token,
                        "cosine": n.cosine,
                        "norm": p.norm,
                        "norm_ratio": p.norm_ratio,
                        "top1_cosine": p.top1_cosine,
                        "margin": p.margin,
                        "manifold_percentile": p.manifold_percentile,
                        "on_manifold": p.on_manifold,
                        "coherence": p.coherence,
                        "repeats_at": ",".join(map(str, p.repeats_at)),
                        "label_hits": labels,
                        **({"started_as": p.started_as, "cos_to_start": p.cos_to_start} if p.started_as else {}),
                    }
                )
        return pd.DataFrame(rows)

    def to_csv(self) -> str:
        """:meth:`to_dataframe` as CSV text."""
        buf = io.StringIO()
        self.to_dataframe().to_csv(buf, index=False)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A readable report: header, one table row per position, summary and controls, caveat."""
        step = f", step {self.step}" if self.step is not None else ""
        role = f", {self.role} prompt" if self.role else ""
        role += f", task {self.task_id}" if self.task_id is not None else ""
        lines = [
            f"# Nearest tokens: {self.source}{role}{step}",
            "",
            f"model `{self.model}` | {len(self.positions)} positions | k={self.k} | exact cosine over "
            f"{self.searchable_tokens} tokens | vocabulary mean norm {self.vocab_mean_norm:.3f}",
            "",
            *(
                [
                    "Test accuracy: "
                    + ", ".join(f"{label(name)} {value:.3f}" for name, value in self.accuracies.items()),
                    "",
                ]
                if self.accuracies
                else []
            ),
            "| pos | norm (x vocab) | top-1 cos | margin | manifold pct | coherence | neighbours (cosine) |",
            "|---:|---:|---:|---:|---:|---:|:---|",
        ]
        for p in self.positions:
            flags = []
            if not p.on_manifold:
                flags.append("off-manifold")
            if p.repeats_at:
                flags.append("repeats " + ",".join(map(str, p.repeats_at)))
            if p.label_hits:
                flags.append("labels " + ",".join(f"{h.label}@{h.rank}" for h in p.label_hits))
            if p.started_as is not None:
                flags.append(f"started as {_md(p.started_as)}, cos {p.cos_to_start:.2f}")
            neighbours = " · ".join(f"{_md(n.token)} {n.cosine:.2f}" for n in p.neighbours)
            note = f" ({'; '.join(flags)})" if flags else ""
            lines.append(
                f"| {p.position} | {p.norm:.2f} ({p.norm_ratio:.1f}x) | {p.top1_cosine:.3f} | {p.margin:.3f} | "
                f"{p.manifold_percentile:.0f} | {_fmt(p.coherence)} | {neighbours}{note} |"
            )
        lines += [
            "",
            "| set | n | norm x vocab | top-1 cos | margin | manifold pct | on-manifold | coherence | dup top-1 |",
            "|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in [self.summary, *self.controls]:
            lines.append(
                f"| {s.name} | {s.count} | {s.mean_norm_ratio:.2f} | {s.mean_top1_cosine:.3f} | "
                f"{s.mean_margin:.3f} | {s.mean_manifold_percentile:.0f} | {s.on_manifold_share:.0%} | "
                f"{_fmt(s.mean_coherence)} | {s.duplicate_top1_share:.0%} |"
            )
        lines += [
            "",
            "manifold pct: where the top-1 cosine falls among each vocabulary token's cosine to its own nearest "
            f"token (below {OFF_MANIFOLD_PERCENTILE:g} = off-manifold). coherence: mean pairwise cosine of the "
            "top-k neighbours.",
            "",
            f"_{FAITHFULNESS_CAVEAT}_",
            "",
        ]
        return "\n".join(lines)


def _md(token: str) -> str:
    return token.replace("|", "\\|").replace("`", "\\`") or "∅"


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def summarize(name: str, readings: PositionMeasures) -> Summary:
    """Average the measures of a set of readings."""
    dups = duplicate_top1(readings.token_ids[:, 0])
    on = readings.manifold_percentile >= OFF_MANIFOLD_PERCENTILE
    coherence = readings.coherence
    return Summary(
        name=name,
        count=len(readings.norms),
        mean_norm_ratio=float(readings.norm_ratio.mean()),
        mean_top1_cosine=float(readings.cosines[:, 0].mean()),
        mean_margin=float(np.nanmean(readings.margin)) if np.isfinite(readings.margin).any() else float("nan"),
        mean_manifold_percentile=float(readings.manifold_percentile.mean()),
        on_manifold_share=float(on.mean()),
        mean_coherence=float(np.nanmean(coherence)) if np.isfinite(coherence).any() else float("nan"),
        duplicate_top1_share=float(np.mean([bool(d) for d in dups])),
    )


def _reading_at(
    i: int, readings: PositionMeasures, display: list[str], label_ids: dict[str, set[int]], repeats: list[int]
) -> PositionReading:
    """Position ``i`` of ``readings`` as a report row: its neighbours as text, which labels they hold."""
    ids = readings.token_ids[i]
    hits = [
        LabelHit(label=label, token=display[t], rank=r + 1)
        for r, t in enumerate(ids.tolist())
        for label in label_ids
        if t in label_ids[label]
    ]
    return PositionReading(
        position=i,
        norm=float(readings.norms[i]),
        norm_ratio=float(readings.norm_ratio[i]),
        top1_cosine=float(readings.cosines[i, 0]),
        margin=float(readings.margin[i]),
        manifold_percentile=float(readings.manifold_percentile[i]),
        on_manifold=bool(readings.manifold_percentile[i] >= OFF_MANIFOLD_PERCENTILE),
        coherence=float(readings.coherence[i]),
        neighbours=[
            Neighbour(rank=r + 1, token_id=int(t), token=display[t], cosine=float(c))
            for r, (t, c) in enumerate(zip(ids.tolist(), readings.cosines[i].tolist(), strict=True))
        ],
        repeats_at=repeats,
        label_hits=hits,
    )


def nearest_tokens(
    prompt: SoftPrompt | np.ndarray | Any,
    model: LoadedModel,
    *,
    k: int = 5,
    labels: list[str] | None = None,
    index: VocabIndex | None = None,
    controls: bool = False,
    seed: int = 0,
    accuracies: dict[str, float] | None = None,
) -> NearestTokenReport:
    """Nearest-token report for every position of a prompt.

    Args:
        prompt: a :class:`SoftPrompt`, float32 [p, d] vectors, or a PEFT prompt-tuning model (its prompt now).
        model: the model the prompt belongs to (from :func:`probe.load_model`).
        k: neighbours per position.
        labels: class names; their tokens are marked where they appear in a position's top-k.
        index: a prebuilt :class:`VocabIndex` (default: the model's cached index).
        controls: add the paper's control (random vectors) and sampled vocabulary rows.
        seed: seed for the controls.
        accuracies: measured accuracies to carry in the report, by measure name (``soft_accuracy``, ...; older
            spellings are read too).

    Returns:
        The :class:`NearestTokenReport`.

    Raises:
        ValueError: wrong dimension, k out of range, or a label that tokenises to nothing.
    """
    labels = text_list(labels, "labels")
    expect(model, LoadedModel, "model", "a loaded model (probe.load_model(...))")
    prompt = as_prompt(prompt)
    prompt.check_dim(model.dim, model.name)
    if index is None:
        index = VocabIndex.for_model(model)
    if index.dim != model.dim:
        raise ValueError(f"index has dim {index.dim}, model '{model.name}' has dim {model.dim}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= index.size:
        raise ValueError(f"k is {k!r}; expected an integer from 1 to {index.size} (searchable tokens)")
    k = int(k)
    check_accuracies(accuracies)
    label_ids = {label: set(label_token_ids(model.tokenizer, label)) for label in labels}

    readings = read_positions(prompt.vectors, index, k)
    display = model.vocabulary.display
    repeats = duplicate_top1(readings.token_ids[:, 0])
    positions = [_reading_at(i, readings, display, label_ids, repeats[i]) for i in range(prompt.length)]
    starts = prompt.metadata.get("init_token_ids")
    if isinstance(starts, list) and len(starts) == prompt.length:  # where each position started (CPT)
        rows = normalize_rows(model.embeddings_numpy()[starts])
        cosines = np.einsum("pd,pd->p", normalize_rows(prompt.vectors), rows)
        positions = [
            replace(p, started_as=display[t], cos_to_start=float(c))
            for p, t, c in zip(positions, starts, cosines, strict=True)
        ]
    control_summaries = []
    if controls:
        count = max(prompt.length, 100)
        for name, vectors in control_vectors(model, index, count, seed=seed).items():
            control_summaries.append(summarize(name, read_positions(vectors, index, k)))
    return NearestTokenReport(
        model=model.name,
        fingerprint=model.fingerprint,
        k=k,
        source=prompt.source,
        step=prompt.step,
        role=prompt.role,
        vocab_mean_norm=index.mean_norm,
        searchable_tokens=index.size,
        positions=positions,
        summary=summarize("prompt", readings),
        labels=labels,
        controls=control_summaries,
        token_filter=asdict(index.token_filter),
        accuracies={measure_name(k): float(v) for k, v in (accuracies or {}).items() if v is not None},
        task_id=prompt.metadata.get("task_id"),
    )
