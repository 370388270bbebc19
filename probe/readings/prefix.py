"""A prefix read per layer: for each layer and prefix position, the real tokens whose own keys (and, apart, values)
at that layer are nearest by cosine, with the input-space report's off-manifold measures and a control.

The reference: each searchable vocabulary token run through the frozen model on its own, between the model's own
special tokens (``[CLS] t [SEP]`` for BERT, ``t`` alone for GPT-2), its key and value at each layer taken from the
model's cache, where attention reads them and where PEFT puts the prefix (heads side by side, ``kv_heads x
head_dim``). Given ``reference_texts``, a token's row is instead the mean of its keys (values) over its occurrences
in those texts. The tokens sit at their own positions, as the model runs text without a prompt: for absolute
positions (GPT-2, BERT) the position is in the hidden state a key is made from, while a prefix key has none; for
rotary models the cache holds keys rotated at the token's position, while a prefix key is unrotated, as at
position 0. A seq2seq model's prefix is read where PEFT puts it for the decoder's self-attention: a token's key
and value are the decoder's, the token given to the encoder (``t </s>`` for T5) and to the decoder after its start
token (T5's positions are relative, so no absolute position is folded in). The tensor's other slots, which PEFT
would give the cross-attention, do nothing (PEFT empties that cache: :mod:`probe.formats.prefix`). The search is
exact (FAISS inner product over unit rows, :class:`probe.core.index.VocabIndex`).

The measures are the input-space report's (:func:`probe.readings.measures.read_positions`): top-1 cosine, margin,
norm against the reference rows' mean, coherence, and the manifold percentile against the reference tokens' own
nearest-other-token cosines at that layer. The control: real tokens' keys and values in running text (the bundled
``topics`` texts unless given), read the same way; how often a real token's key finds itself as top-1 says how
far a reading of this kind can be trusted at that layer.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import numpy as np
import torch

from probe.core.index import TokenFilter, VocabIndex
from probe.core.io import CacheEntry, cache_file
from probe.core.models import LoadedModel
from probe.core.progress import progress_bar
from probe.core.tokens import text_list
from probe.formats.prefix import PARTS, Part, PrefixPrompt, check_layer, kv_geometry
from probe.readings.measures import read_positions
from probe.readings.prefix_report import PrefixLayerReading, PrefixReport, layer_reading
from probe.readings.reports import summarize

logger = logging.getLogger(__name__)

CONTROL_POSITIONS = 200
"""How many real-token occurrences (seeded sample) make each layer's control."""
MANIFOLD_SAMPLE = 2_000
"""How many reference tokens (seeded sample) give each layer's nearest-other-token cosines (2,000 rather than the
input-space report's 5,000: twelve references for a 6-layer model; 20 tokens still lie below the 1st percentile)."""
REFERENCE_FORMAT = 1


def _cache_argument(module: torch.nn.Module) -> str:
    """The name the model's forward takes a cache under (transformers 5 renamed ``past_key_values`` to ``cache``)."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def layer_kv(
    model: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: list[int]
) -> np.ndarray:
    """Each token's key and value at ``layers`` as the model's cache holds them: for a seq2seq model, in the
    decoder's self-attention (where PEFT puts the prefix), the same tokens read by the encoder and by the decoder
    after its start token (position t of the output is token t of ``input_ids``).

    Args:
        input_ids, attention_mask: int64 [batch, length].

    Returns:
        float32 [len(layers), 2, batch, length, kv_heads x head_dim].
    """
    from transformers import DynamicCache, EncoderDecoderCache

    device, extra = model.device, {}
    cache: Any = DynamicCache()
    if model.kind == "seq2seq":
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        start = torch.full((len(input_ids), 1), int(model.model.config.decoder_start_token_id))
        extra = {
            "decoder_input_ids": torch.cat([start, input_ids], 1).to(device),
            "decoder_attention_mask": torch.cat([torch.ones_like(start), attention_mask], 1).to(device),
        }
    with torch.inference_mode():
        model.model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            use_cache=True,
            **extra,
            **{_cache_argument(model.model): cache},
        )
    held, skip = (cache.self_attention_cache, 1) if extra else (cache, 0)  # the decoder's start token dropped
    out = []
    for layer in layers:
        cached: Any = held.layers[layer]  # a DynamicLayer: keys, values [B, H, T, hd]
        pair = [t[:, :, skip:].float().cpu().permute(0, 2, 1, 3).flatten(2) for t in (cached.keys, cached.values)]
        out.append(torch.stack(pair).numpy())  # [2, B, T, H*hd]
    return np.stack(out)


def vocabulary_reference(
    model: LoadedModel, token_ids: np.ndarray, layers: list[int], *, batch_size: int = 1024, use_cache: bool = True
) -> dict[int, np.ndarray]:
    """Every token's key and value alone between the model's special tokens, per layer, cached on disk per model,
    layer and token set (a drift over checkpoints, or another prefix of the model, reads them again for free).

    Returns:
        {layer: float32 [2, V, kv_heads x head_dim]}; rows of tokens not in ``token_ids`` are zero.
    """
    entries = _reference_entries(model, token_ids, layers)
    found: dict[int, np.ndarray] = {}
    for layer, entry in entries.items():
        arrays = entry.read(check=lambda a: a["kv"].shape[:2] == (2, model.vocab_size)) if use_cache else None
        if arrays is not None:
            found[layer] = arrays["kv"]
    missing = [layer for layer in layers if layer not in found]
    if missing:
        computed = _vocabulary_kv(model, token_ids, missing, batch_size)
        for i, layer in enumerate(missing):
            found[layer] = computed[i]
            if use_cache:
                entries[layer].write({"kv": computed[i]}, {"tokens": int(token_ids.size)})
    return found


def _reference_entries(model: LoadedModel, token_ids: np.ndarray, layers: list[int]) -> dict[int, CacheEntry]:
    key = {"format": REFERENCE_FORMAT, "fingerprint": model.fingerprint, "tokens": _digest(token_ids)}
    return {layer: cache_file("prefix-reference", {**key, "layer": layer}) for layer in layers}


def build_references(model: LoadedModel, layers: list[int], token_filter: TokenFilter | None = None) -> list[int]:
    """Build the vocabulary references of those of ``layers`` not on disk yet, in one pass over the vocabulary (one
    layer alone costs the same pass), so that reading any of them later is a cache read. Returns the layers built.
    An entry on disk is judged by its files here; a read still verifies it."""
    token_ids = np.flatnonzero((token_filter or TokenFilter()).allowed(model.vocabulary)).astype(np.int64)
    entries = _reference_entries(model, token_ids, layers)
    missing = [layer for layer, entry in entries.items() if not (entry.meta.is_file() and entry.arrays.is_file())]
    if missing:
        vocabulary_reference(model, token_ids, missing)
    return missing


def _digest(token_ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(token_ids, dtype=np.int64).tobytes()).hexdigest()[:24]


def _vocabulary_kv(model: LoadedModel, token_ids: np.ndarray, layers: list[int], batch_size: int) -> np.ndarray:
    specials = _template(model.tokenizer)
    at = specials.index(-1)
    reference: np.ndarray | None = None
    starts = range(0, len(token_ids), batch_size)
    for start in progress_bar(len(starts), "reference keys", unit="batch", iterable=starts):
        ids = token_ids[start : start + batch_size]
        batch = torch.tensor([[int(t) if s == -1 else s for s in specials] for t in ids])
        kv = layer_kv(model, batch, torch.ones_like(batch), layers)[:, :, :, at]  # [nl, 2, B, D]
        if reference is None:
            reference = np.zeros((*kv.shape[:2], model.vocab_size, kv.shape[-1]), np.float32)
        reference[:, :, ids] = kv
    assert reference is not None  # token_ids is never empty (VocabIndex refuses an empty filter)
    return reference


def _template(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts around a text, with -1 where the text goes (``[CLS, -1, SEP]`` for BERT)."""
    with_specials = list(tokenizer("a")["input_ids"])
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for start in range(len(with_specials) - len(bare) + 1):
        if with_specials[start : start + len(bare)] == bare:
            return [*with_specials[:start], -1, *with_specials[start + len(bare) :]]
    return [-1]  # a tokenizer that rewrites the text's own pieces: the token alone


def text_occurrences(
    model: LoadedModel, texts: list[str], layers: list[int], *, max_length: int = 64, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Each real token's key and value where it occurs in ``texts`` (special tokens left out).

    Returns:
        (token ids int64 [M], float32 [len(layers), 2, M, kv_heads x head_dim]).
    """
    special = set(model.tokenizer.all_special_ids)
    ids_out: list[np.ndarray] = []
    kv_out: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        batch = model.tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        kv = layer_kv(model, batch["input_ids"], batch["attention_mask"], layers)
        ids = batch["input_ids"].numpy()
        keep = batch["attention_mask"].numpy().astype(bool) & ~np.isin(ids, list(special))
        ids_out.append(ids[keep])
        kv_out.append(kv[:, :, keep])
    return np.concatenate(ids_out), np.concatenate(kv_out, axis=2)


def text_reference(model: LoadedModel, texts: list[str], layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each token's mean key and value over its occurrences in ``texts``.

    Returns:
        (float32 [len(layers), 2, V, D], counts int64 [V]).
    """
    ids, kv = text_occurrences(model, texts, layers)
    counts = np.bincount(ids, minlength=model.vocab_size)
    reference = np.zeros((*kv.shape[:2], model.vocab_size, kv.shape[-1]), np.float32)
    for i, token in enumerate(ids.tolist()):  # sums over repeats (a fancy-index += would keep one of them)
        reference[:, :, token] += kv[:, :, i]
    reference /= np.maximum(counts, 1)[None, None, :, None]
    return reference, counts


def per_layer_geometry(model: LoadedModel) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of the model's prefix: of its decoder's self-attention, for a seq2seq model.

    Raises:
        ValueError: a seq2seq model whose decoder has another number of layers than PEFT's prefix, or no start token.
    """
    geometry = kv_geometry(model.model.config)
    config = model.model.config
    if model.kind == "seq2seq":
        decoder = getattr(config, "num_decoder_layers", None) or geometry[0]
        if decoder != geometry[0] or getattr(config, "decoder_start_token_id", None) is None:
            raise ValueError(
                f"model '{model.name}' has {decoder} decoder layers to PEFT's prefix's {geometry[0]} (or no decoder "
                "start token): probe reads a seq2seq prefix in a decoder of the prefix's layers, started as T5's is"
            )
    return geometry


def check_prefix(prefix: PrefixPrompt, model: LoadedModel, layers: list[int] | None) -> list[int]:
    """The layers to read (default all), once the prefix is known to be this model's.

    Raises:
        TypeError: not a :class:`PrefixPrompt` (errors.md 147).
        ValueError: another model's geometry, or a layer it lacks (errors.md 140, 141).
    """
    if not isinstance(prefix, PrefixPrompt):
        raise TypeError(f"prefix is a {type(prefix).__name__}; expected a PrefixPrompt (probe.load_prefix(...))")
    geometry = per_layer_geometry(model)
    if geometry != (prefix.num_layers, prefix.num_heads, prefix.head_dim):
        raise ValueError(
            f"the prefix is {prefix.num_layers} layers x {prefix.num_heads} heads x {prefix.head_dim}; model "
            f"'{model.name}' is {geometry[0]} x {geometry[1]} x {geometry[2]}: read it with the model it was trained on"
        )
    return list(range(prefix.num_layers)) if layers is None else [check_layer(x, prefix.num_layers) for x in layers]


def prefix_layers(
    prefix: PrefixPrompt,
    model: LoadedModel,
    *,
    k: int = 5,
    layers: list[int] | None = None,
    reference_texts: list[str] | None = None,
    control_texts: list[str] | None = None,
    token_filter: TokenFilter | None = None,
    seed: int = 0,
) -> PrefixReport:
    """Nearest real tokens of every prefix position, layer by layer, for its keys and its values.

    Args:
        prefix: from :func:`probe.formats.prefix.load_prefix`.
        model: the model it was trained on (causal, encoder, or seq2seq: its decoder's self-attention).
        k: neighbours per position.
        layers: which layers (default all).
        reference_texts: take each token's mean key over these texts instead of the token alone.
        control_texts: the running text of the control (default the bundled ``topics`` texts).
        token_filter: which tokens may be neighbours (default: no special or unused tokens).
        seed: the manifold reference's and the control's sample.

    Returns:
        The :class:`PrefixReport`.

    Raises:
        ValueError: another model's prefix, a layer it does not have, or k out of range.
    """
    chosen = check_prefix(prefix, model, layers)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reference, token_ids, described = layer_references(model, chosen, token_filter, reference_texts)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= token_ids.size:
        raise ValueError(f"k is {k!r}; expected an integer from 1 to {token_ids.size} (searchable tokens)")
    seconds["reference"] = time.perf_counter() - started
    started = time.perf_counter()
    control_ids, control_kv = text_occurrences(model, _control_texts(control_texts), chosen)
    picks = np.random.default_rng(seed).permutation(np.flatnonzero(np.isin(control_ids, token_ids)))
    picks = np.sort(picks[:CONTROL_POSITIONS])
    seconds["control texts"] = time.perf_counter() - started
    readings: list[PrefixLayerReading] = []
    for li, layer in enumerate(chosen):
        started = time.perf_counter()
        for pi, part in enumerate(PARTS):
            index = layer_index(reference[li, pi], token_ids, model, seed)
            readings.append(
                _read_layer(prefix, model, index, layer, part, k, control_ids[picks], control_kv[li, pi, picks])
            )
        seconds[f"layer {layer}"] = time.perf_counter() - started
    return PrefixReport(
        model=model.name,
        fingerprint=model.fingerprint,
        source=prefix.source,
        peft_type=prefix.peft_type,
        k=k,
        length=prefix.length,
        num_layers=prefix.num_layers,
        reference=described,
        searchable_tokens=int(token_ids.size),
        layers=readings,
        seconds=seconds,
    )


def estimate_seconds(model: LoadedModel, layers: list[int], token_filter: TokenFilter | None = None) -> float:
    """How long :func:`prefix_layers` over ``layers`` should take on this machine: one batch of the reference's
    passes timed (counted only for layers probe's cache lacks) and one layer's index built and searched for its
    manifold reference on rows of the real shape (counted for each layer, keys and values); the control's pass over
    its texts is left out (a few seconds)."""
    allowed = (token_filter or TokenFilter()).allowed(model.vocabulary)
    token_ids = np.flatnonzero(allowed).astype(np.int64)
    seconds = 0.0
    if any(not entry.meta.is_file() for entry in _reference_entries(model, token_ids, layers).values()):
        specials = _template(model.tokenizer)
        batch = torch.tensor([[int(t) if s == -1 else s for s in specials] for t in token_ids[:64]])
        layer_kv(model, batch[:8], torch.ones_like(batch[:8]), layers)  # warm
        began = time.perf_counter()
        layer_kv(model, batch, torch.ones_like(batch), layers)
        seconds += (time.perf_counter() - began) * len(token_ids) / len(batch)
    _, heads, head_dim = kv_geometry(model.model.config)
    rows = np.random.default_rng(0).normal(size=(model.vocab_size, heads * head_dim)).astype(np.float32)
    began = time.perf_counter()
    layer_index(rows, token_ids, model, 0)
    return seconds + (time.perf_counter() - began) * len(layers) * len(PARTS)


def reference_bytes(model: LoadedModel, layers: int) -> int:
    """The memory the reference of ``layers`` layers holds, known before any pass: float32 [layers, 2, V, kv_heads x
    head_dim] twice (the layers read and their stack), as :func:`prefix_layers` and ``prefix_drift`` build it."""
    from probe.core.budget import array_bytes

    _, heads, head_dim = kv_geometry(model.model.config)
    return 2 * array_bytes(layers, 2, model.vocab_size, heads * head_dim)


def layer_references(
    model: LoadedModel, layers: list[int], token_filter: TokenFilter | None, reference_texts: list[str] | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The reference rows of ``layers`` (float32 [len(layers), 2, V, D]), the searchable token ids, and the
    reference in words: each token alone (cached), or its mean over ``reference_texts``."""
    allowed = (token_filter or TokenFilter()).allowed(model.vocabulary)
    if reference_texts is not None:
        reference, counts = text_reference(model, text_list(reference_texts, "reference_texts"), layers)
        token_ids = np.flatnonzero(allowed & (counts > 0)).astype(np.int64)
        return reference, token_ids, f"mean over {len(reference_texts)} texts"
    token_ids = np.flatnonzero(allowed).astype(np.int64)
    by_layer = vocabulary_reference(model, token_ids, layers)
    return np.stack([by_layer[x] for x in layers]), token_ids, "each token alone between the model's special tokens"


def layer_index(rows: np.ndarray, token_ids: np.ndarray, model: LoadedModel, seed: int) -> VocabIndex:
    """An exact cosine index over one layer's key (or value) rows, with its manifold reference."""
    index = VocabIndex(rows, token_ids, fingerprint=model.fingerprint)
    index.compute_manifold_reference(sample=MANIFOLD_SAMPLE, seed=seed)
    return index


def _read_layer(
    prefix: PrefixPrompt,
    model: LoadedModel,
    index: VocabIndex,
    layer: int,
    part: Part,
    k: int,
    control_ids: np.ndarray,
    control_rows: np.ndarray,
) -> PrefixLayerReading:
    readings = read_positions(prefix.vectors(layer, part), index, k)
    control = read_positions(control_rows, index, k)
    found_itself = float(np.mean(control.token_ids[:, 0] == control_ids)) if len(control_ids) else float("nan")
    return layer_reading(
        layer,
        part,
        readings,
        model.vocabulary.display,
        summary=summarize(f"prefix {part}s", readings),
        control=summarize(f"real tokens' {part}s in text", control),
        control_found_itself=found_itself,
        mean_norm=index.mean_norm,
    )


def _control_texts(texts: list[str] | None) -> list[str]:
    if texts is not None:
        return text_list(texts, "control_texts")
    from probe.core.data import load_labelled

    return list(load_labelled("topics").texts)[:64]
