"""The per-layer prefix report: per layer and part (key, value), each position's nearest real tokens and measures,
the prefix's summary beside its control (real tokens' own keys or values in running text, read the same way).
No search here: :mod:`probe.readings.prefix` reads; this module holds and shows the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from probe.core.io import to_jsonable
from probe.core.results import Result, shown
from probe.readings.measures import PositionMeasures, duplicate_top1
from probe.readings.reports import FAITHFULNESS_CAVEAT, OFF_MANIFOLD_PERCENTILE, PositionReading, Summary, _reading_at


@dataclass(frozen=True)
class PrefixLayerReading:
    """One layer's keys (or values): every prefix position's reading, the summary and the control.

    Attributes:
        layer: the attention layer (0 first).
        part: "key" or "value".
        positions: each prefix position's neighbours and measures (as the input-space report's rows).
        summary: the prefix positions' averages.
        control: real tokens' keys (values) in running text, read against the same reference.
        control_found_itself: the share of those whose top-1 is the token itself (NaN without control rows).
        mean_norm: the reference rows' mean norm (what ``norm_ratio`` divides by).
    """

    layer: int
    part: str
    positions: list[PositionReading]
    summary: Summary
    control: Summary
    control_found_itself: float
    mean_norm: float


def layer_reading(
    layer: int,
    part: str,
    readings: PositionMeasures,
    display: list[str],
    *,
    summary: Summary,
    control: Summary,
    control_found_itself: float,
    mean_norm: float,
) -> PrefixLayerReading:
    """A layer's measures as report rows."""
    repeats = duplicate_top1(readings.token_ids[:, 0])
    positions = [_reading_at(i, readings, display, {}, repeats[i]) for i in range(len(readings.norms))]
    return PrefixLayerReading(layer, part, positions, summary, control, control_found_itself, mean_norm)


@dataclass(frozen=True, repr=False)
class PrefixReport(Result):
    """Nearest real tokens of a prefix's keys and values, layer by layer (:func:`probe.prefix_layers`).

    Convert with :meth:`to_dataframe`, :meth:`to_markdown`, :meth:`to_csv`, :meth:`to_json`.
    """

    model: str
    fingerprint: str
    source: str
    peft_type: str
    k: int
    length: int
    num_layers: int
    reference: str
    searchable_tokens: int
    layers: list[PrefixLayerReading]
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the time went: the reference keys and values (built or read from the cache), the control texts'
    pass, and each layer's search (indexes, manifold reference, prefix and control)."""

    def headline(self) -> str:
        read = sorted({r.layer for r in self.layers})
        return f"{self.peft_type} {self.source!r}: {self.length} positions x {len(read)} layers, k={self.k}"

    def layer(self, layer: int, part: str = "key") -> PrefixLayerReading:
        """The reading of one layer's keys or values.

        Raises:
            ValueError: a layer or part the report does not hold.
        """
        for reading in self.layers:
            if reading.layer == layer and reading.part == part:
                return reading
        held = sorted({r.layer for r in self.layers})
        raise ValueError(f"the report holds layers {held} (key and value); it has no {part} reading of layer {layer}")

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table: one row per (layer, part, position, rank) with the position's measures repeated."""
        rows = []
        for r in self.layers:
            for p in r.positions:
                for n in p.neighbours:
                    rows.append(
                        {
                            "layer": r.layer,
                            "part": r.part,
                            "position": p.position,
                            "rank": n.rank,
                            "token_id": n.token_id,
                            "token": n.token,
                            "cosine": n.cosine,
                            "norm_ratio": p.norm_ratio,
                            "top1_cosine": p.top1_cosine,
                            "margin": p.margin,
                            "manifold_percentile": p.manifold_percentile,
                            "on_manifold": p.on_manifold,
                            "coherence": p.coherence,
                        }
                    )
        return pd.DataFrame(rows)

    def to_markdown(self) -> str:
        """One line per layer and position (top-k tokens of its key and of its value), then each layer's prefix
        beside its control."""
        lines = [
            f"# Prefix per layer: {self.source} ({self.peft_type})",
            "",
            f"model `{self.model}` | {self.length} positions x {self.num_layers} layers | k={self.k} | exact cosine "
            f"over {self.searchable_tokens} tokens' own keys and values at each layer (reference: {self.reference})",
            "",
            "| layer | pos | key: nearest tokens (cosine) | key pct | value: nearest tokens (cosine) | value pct |",
            "|---:|---:|:---|---:|:---|---:|",
        ]
        for layer in sorted({r.layer for r in self.layers}):
            key, value = self.layer(layer, "key"), self.layer(layer, "value")
            for kp, vp in zip(key.positions, value.positions, strict=True):
                lines.append(
                    f"| {layer} | {kp.position} | {_neighbours(kp)} | {_pct(kp)} | {_neighbours(vp)} | {_pct(vp)} |"
                )
        lines += [
            "",
            "| layer | part | prefix top-1 cos | prefix on-manifold | control top-1 cos | control on-manifold | "
            "control found itself |",
            "|---:|:---|---:|---:|---:|---:|---:|",
        ]
        for r in self.layers:
            lines.append(
                f"| {r.layer} | {r.part} | {r.summary.mean_top1_cosine:.3f} | {r.summary.on_manifold_share:.0%} | "
                f"{r.control.mean_top1_cosine:.3f} | {r.control.on_manifold_share:.0%} | "
                f"{shown(r.control_found_itself, '.0%')} |"
            )
        lines += [
            "",
            "pct: where the top-1 cosine falls among each reference token's cosine to its nearest other token at that "
            f"layer (below {OFF_MANIFOLD_PERCENTILE:g} = off-manifold). control: real tokens' own keys and values in "
            "running text, read the same way; found itself: how often such a key's top-1 is its own token.",
            "",
            f"_{FAITHFULNESS_CAVEAT}_",
            "",
        ]
        return "\n".join(lines)

    def only(self, layers: list[int]) -> PrefixReport:
        """The report cut to ``layers``."""
        return replace(self, layers=[r for r in self.layers if r.layer in layers])


def _neighbours(p: PositionReading) -> str:
    text = " · ".join(f"{n.token.replace('|', chr(92) + '|') or '∅'} {n.cosine:.2f}" for n in p.neighbours)
    return text + ("" if p.on_manifold else " (off-manifold)")


def _pct(p: PositionReading) -> str:
    return f"{p.manifold_percentile:.0f}"
