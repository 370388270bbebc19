"""A layer lens: where each prompt position sits inside the model, layer by layer, not only at its input.

The reference at layer l is a *contextual vocabulary*: each token's hidden state at l when the model reads
that token alone, between its special tokens (``[CLS] t [SEP]`` for BERT, ``t </s>`` for T5, ``t`` for GPT-2).
It is built once per model, in batches, over the ``top_n`` most frequent searchable tokens, and kept in probe's
verified cache. A position's hidden state at l is averaged over a sample of test texts read with the prompt.
It is matched to the layer's vocabulary by exact cosine (FAISS). For causal LMs the logit lens is added: the
final norm and the unembedding applied to each layer's state.

The table has one row per position and layer: the top-1 token and its cosine. For each position, the
*holds until* layer is the last layer at which the lens's top-1 is still the input-embedding reading (the
nearest token of the prompt vector itself).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from probe.core.index import VocabIndex, normalize_rows
from probe.core.io import cache_file
from probe.core.models import LoadedModel
from probe.core.softprompt import SoftPrompt
from probe.core.tokens import frequency_ranks
from probe.formats.explain_record import LayerLens, LensRow
from probe.readings.explain.costs import check_rows, input_rows
from probe.readings.explain.readout import Readout, prompt_of

LENS_FORMAT = 1
FINAL_NORMS = ("transformer.ln_f", "model.norm", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm")


def _hidden_states(model: LoadedModel, module: Any, **inputs: Any) -> tuple[torch.Tensor, ...]:
    """Every layer's hidden states (embeddings output first) of the model's reading stack."""
    if model.kind == "seq2seq":
        encoder = module.get_encoder() if hasattr(module, "get_encoder") else module.base_model.get_encoder()
        return encoder(**inputs, output_hidden_states=True).hidden_states
    return module(**inputs, output_hidden_states=True).hidden_states


def _special_template(model: LoadedModel) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (e.g. [CLS] ... [SEP], ... </s>, or none)."""
    tok = model.tokenizer
    bare = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []


@dataclass
class ContextualVocabulary:
    """Per layer, the unit hidden states of ``token_ids`` read alone: float32 [layers, n, d]."""

    token_ids: np.ndarray
    states: np.ndarray

    @property
    def layers(self) -> int:
        return int(self.states.shape[0])


def _vocabulary_entry(
    model: LoadedModel, index: VocabIndex, top_n: int, include: list[int] | None, cache_dir: Any
) -> tuple[np.ndarray, Any]:
    """The token ids of a contextual vocabulary (the ``top_n`` most frequent searchable ones and ``include``) and
    its entry in probe's cache."""
    allowed = np.zeros(model.vocab_size, dtype=bool)
    allowed[index.token_ids] = True
    ids = frequency_ranks(model.vocabulary, allowed)[:top_n]
    ids = np.unique(np.concatenate([ids, np.asarray(include or [], dtype=np.int64)])).astype(np.int64)
    key = {"format": LENS_FORMAT, "model": model.fingerprint, "kind": model.kind}
    key["ids_sha256"] = hashlib.sha256(ids.tobytes()).hexdigest()
    return ids, cache_file("lens", key, cache_dir)


def contextual_vocabulary(
    model: LoadedModel,
    index: VocabIndex,
    *,
    top_n: int = 10_000,
    include: list[int] | None = None,
    batch_size: int = 512,
    use_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> ContextualVocabulary:
    """Build (or read from probe's cache) the per-layer contextual vocabulary of the ``top_n`` most frequent tokens
    (and the token ids in ``include``, such as a suspected trigger).

    Raises:
        ValueError: ``top_n`` is not positive.
    """
    if top_n < 1:
        raise ValueError(f"top_n is {top_n}; expected a positive number of tokens")
    ids, entry = _vocabulary_entry(model, index, top_n, include, cache_dir)
    if use_cache:
        hit = entry.read(check=lambda a: np.array_equal(a["token_ids"], ids) and a["states"].ndim == 3)
        if hit is not None:
            return ContextualVocabulary(token_ids=hit["token_ids"], states=hit["states"].astype(np.float32))
    from probe.core.progress import progress_bar

    bar = progress_bar(len(range(0, len(ids), batch_size)), "lens vocabulary", enabled=progress)
    rows = []
    for start in range(0, len(ids), batch_size):
        bar.update(1)
        rows.append(_token_states(model, ids[start : start + batch_size]))
    raw = np.concatenate(rows, axis=1)
    # unit rows kept in float16 (half the disk; cosines move by < 1e-3), the same whether built or read back
    states = (raw / np.maximum(np.linalg.norm(raw, axis=2, keepdims=True), 1e-12)).astype(np.float16)
    if use_cache:
        entry.write({"token_ids": ids, "states": states})
    return ContextualVocabulary(token_ids=ids, states=states.astype(np.float32))


def _token_states(model: LoadedModel, ids: np.ndarray) -> np.ndarray:
    """float32 [L, len(ids), d]: each token's hidden state at every layer, alone between the model's specials."""
    before, after = _special_template(model)
    chunk = [([*before, int(t), *after], len(before)) for t in ids]
    width = max(len(c[0]) for c in chunk)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for i, (seq, _) in enumerate(chunk):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    with torch.inference_mode():
        hidden = _hidden_states(
            model, model.model, input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
        )
        where = torch.tensor([c[1] for c in chunk])
        picked = torch.stack([h[torch.arange(len(chunk)), where.to(h.device)] for h in hidden])  # [L, b, d]
    return picked.float().cpu().numpy()


def vocabulary_seconds(model: LoadedModel, index: VocabIndex, *, tokens: int = 10_000, batch_size: int = 512) -> float:
    """What building :func:`contextual_vocabulary` of ``tokens`` tokens should take on this machine (one batch
    timed); about nothing when probe's cache holds it."""
    import time

    ids, entry = _vocabulary_entry(model, index, tokens, None, None)
    if entry.meta.is_file() and entry.arrays.is_file():
        return 0.5
    sample = ids[: min(batch_size, len(ids))]
    _token_states(model, sample[:8])  # warm
    began = time.perf_counter()
    _token_states(model, sample)
    return (time.perf_counter() - began) * len(ids) / len(sample)


def vocabulary_bytes(model: LoadedModel, *, tokens: int = 10_000) -> int:
    """The memory :func:`contextual_vocabulary` of ``tokens`` tokens holds while it is built: float32 [layers + 1,
    tokens, dim] twice (the states and their unit rows), known before any pass."""
    from probe.core.budget import array_bytes
    from probe.formats.prefix import kv_geometry

    layers = kv_geometry(model.model.config)[0] + 1  # the embeddings' output and every layer's
    return 2 * array_bytes(layers, min(tokens, model.vocab_size), model.dim)


def _final_norm(module: Any) -> Any:
    for path in FINAL_NORMS:
        obj = module
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def _prompt_states(task: Any, model: LoadedModel, sample: list[str], p: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(float32 [layers, p, d] the prompt positions' hidden states averaged over ``sample``, and for causal LMs
    int [layers, p] the logit lens's token at each, else None)."""
    batch = task.pad(task.tokenize(sample))
    with torch.inference_mode():
        if model.kind == "seq2seq":
            out = task.peft_model(
                **batch,
                labels=torch.zeros((len(sample), 1), dtype=torch.long, device=model.device),
                output_hidden_states=True,
            )
            states = out.encoder_hidden_states
        else:
            states = task.peft_model(**batch, output_hidden_states=True).hidden_states
        per_layer = torch.stack([h[:, :p].float().mean(0) for h in states]).cpu().numpy()  # [L, p, d]
        logit_ids = None
        if model.kind == "causal":
            norm = _final_norm(model.model)
            head = model.model.get_output_embeddings()
            if norm is not None and head is not None:
                hidden = torch.from_numpy(per_layer).to(model.device)
                logit_ids = head(norm(hidden)).argmax(-1).cpu().numpy()  # [L, p]
    return per_layer, logit_ids


def lens_neighbours(
    prompt: SoftPrompt | np.ndarray | Any,
    readout: Readout,
    vocabulary: ContextualVocabulary,
    *,
    k: int = 5,
    texts: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, cosines), each [layers, p, k]: every position's ``k`` nearest contextual tokens at every layer."""
    vectors = prompt_of(readout, prompt).vectors
    readout.set_prompt(vectors)  # sets the prompt (and checks its dimension)
    task = readout.task(vectors.shape[0])
    per_layer, _ = _prompt_states(task, readout.model, readout.splits.test.texts[:texts], vectors.shape[0])
    layers = min(per_layer.shape[0], vocabulary.layers)
    ids = np.zeros((layers, vectors.shape[0], k), dtype=np.int64)
    cos = np.zeros((layers, vectors.shape[0], k), dtype=np.float32)
    for layer in range(layers):
        c, where = VocabIndex(vocabulary.states[layer]).search(normalize_rows(per_layer[layer]), k)
        ids[layer], cos[layer] = vocabulary.token_ids[where], c
    return ids, cos


def layer_lens(
    prompt: SoftPrompt | np.ndarray | Any,
    readout: Readout,
    *,
    texts: int = 32,
    tokens: int = 10_000,
    vocabulary: ContextualVocabulary | None = None,
    progress: bool = False,
    top_n: int | None = None,
    budget_minutes: float | None = None,
) -> LayerLens:
    """The layer lens of a prompt (see the module docstring).

    Args:
        prompt: the prompt (a :class:`SoftPrompt`, vectors, or a PEFT prompt-tuning model).
        readout: the model, data and task (:class:`Readout`).
        texts: test texts whose hidden states are averaged (``--lens-texts``).
        tokens: how many frequent tokens the contextual vocabulary holds (``--lens-tokens``).
        vocabulary: a contextual vocabulary already built.
        progress: show a progress bar while the contextual vocabulary is built.
        top_n: the earlier name of ``tokens``, kept for scripts that use it.
        budget_minutes: refuse, before any pass, when the texts' passes and building the contextual vocabulary
            (unless probe's cache holds it) would take longer (None: no budget).

    Raises:
        ValueError: a prompt of another dimension than the model's (a prefix), a non-positive number of texts, or
            the reading over ``budget_minutes``.
    """
    if isinstance(texts, bool) or not isinstance(texts, int) or texts < 1:  # a count, where other readings take texts
        raise ValueError(f"texts is {texts!r}; expected how many test texts to average over (a positive number)")
    model = readout.model
    vectors = input_rows(prompt_of(readout, prompt).vectors, readout, "the layer lens")
    tokens = top_n if top_n is not None else tokens
    if budget_minutes is not None and vocabulary is None:
        extra = vocabulary_seconds(model, readout.index, tokens=tokens)
        check_rows(readout, vectors, texts, "the layer lens", budget_minutes, less="fewer tokens", extra=extra)
    readout.set_prompt(vectors)  # sets the prompt (and checks its dimension)
    vocab = vocabulary or contextual_vocabulary(model, readout.index, top_n=tokens, progress=progress)
    task = readout.task(vectors.shape[0])
    p = vectors.shape[0]
    sample = readout.splits.test.texts[:texts]
    per_layer, logit_ids = _prompt_states(task, model, sample, p)
    layers = min(per_layer.shape[0], vocab.layers)
    display = model.vocabulary.display
    input_ids = readout.nearest_ids(vectors)
    rows, tops = [], np.zeros((layers, p), dtype=np.int64)
    for layer in range(layers):
        unit = normalize_rows(per_layer[layer])
        cos, where = VocabIndex(vocab.states[layer]).search(unit, 1)
        tops[layer] = vocab.token_ids[where[:, 0]]
        for i in range(p):
            rows.append(
                LensRow(
                    position=i,
                    layer=layer,
                    token=display[int(tops[layer, i])],
                    cosine=float(cos[i, 0]),
                    logit_token=display[int(logit_ids[layer, i])] if logit_ids is not None else None,
                )
            )
    holds = []
    for i in range(p):
        same = tops[:, i] == input_ids[i]
        holds.append(int(np.argmin(same)) - 1 if not same.all() else layers - 1)
    return LayerLens(
        rows=rows,
        input_tokens=[display[int(t)] for t in input_ids],
        holds_until=holds,
        layers=layers,
        texts=len(sample),
        task=readout.task_name,
    )
