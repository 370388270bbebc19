"""A prefix on a map, one layer at a time: the real tokens' own keys (or values) at that layer, the reference of
:mod:`probe.readings.prefix`, laid out in 2-D as the vocabulary map lays out input embeddings
(:func:`probe.readings.projection.fit_map`, cached per model, layer and part), and the prefix's positions at every
checkpoint placed among their nearest tokens there. The input-space map cannot show a prefix: its keys and values
are not input rows.
"""

from __future__ import annotations

import numpy as np

from probe.core.index import TokenFilter, VocabIndex
from probe.core.models import LoadedModel
from probe.formats.prefix import PARTS, Part, PrefixPrompt, check_layer
from probe.readings.prefix import REFERENCE_FORMAT, check_prefix, layer_index, layer_references, per_layer_geometry
from probe.readings.projection import MapConfig, VocabMap, fit_map


def layer_space(model: LoadedModel, layer: int, part: Part, *, seed: int = 0) -> tuple[np.ndarray, VocabIndex]:
    """The real tokens' ``part`` rows at ``layer`` (float32 [vocab, kv_heads x head_dim] by token id, zero for a
    token that is not searchable) and an exact cosine index over them, with its manifold reference.

    Raises:
        ValueError: a layer it does not have.
    """
    check_layer(layer, per_layer_geometry(model)[0])
    if part not in PARTS:
        raise ValueError(f"part is {part!r}; expected one of {list(PARTS)}")
    reference, token_ids, _ = layer_references(model, [layer], TokenFilter(), None)
    rows = reference[0, PARTS.index(part)]
    return rows, layer_index(rows, token_ids, model, seed)


def prefix_map(
    model: LoadedModel,
    layer: int,
    part: Part = "key",
    config: MapConfig | None = None,
    *,
    prefixes: list[PrefixPrompt] | None = None,
    budget_minutes: float | None = None,
    budget_gb: float | None = None,
) -> tuple[VocabMap, VocabIndex]:
    """The map of ``layer``'s ``part`` space (fitted once per model, layer and part, then read from probe's
    cache), and the index to read positions placed in it (:meth:`VocabMap.transform` places a prefix's rows).

    Args:
        model: the model the prefixes were trained on (causal, encoder, or seq2seq: its decoder's self-attention).
        layer / part: which layer, and its keys or its values.
        config: the map's settings (default :class:`MapConfig`: UMAP on the 10,000 most frequent tokens).
        prefixes: checked against the model and layer first (another model's prefix is refused).
        budget_minutes / budget_gb: as :func:`probe.readings.projection.fit_map`'s.

    Raises:
        ValueError: a layer or part it lacks, another model's prefix, or a fit over a budget.
    """
    for prefix in prefixes or []:
        check_prefix(prefix, model, [layer])
    rows, index = layer_space(model, layer, part)
    space = f"prefix {part}s at layer {layer} (reference format {REFERENCE_FORMAT})"  # a new reference, a new map
    vmap = fit_map(model, index, config, rows=rows, space=space, budget_minutes=budget_minutes, budget_gb=budget_gb)
    return vmap, index
