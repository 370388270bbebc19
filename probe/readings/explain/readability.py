"""How readable a hard prompt is, measured: the share of its tokens that are whole words, and for a causal LM its
perplexity under the model itself (lower reads more like text the model has seen).

A whole word is defined in :func:`probe.core.tokens.whole_words` (alphabetic, an English word, not a piece of a
longer word). The search can trade faithfulness for it (``readability_weight`` in :mod:`.search`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from probe.core.models import LoadedModel
from probe.core.tokens import whole_words

_MASKS: dict[int, tuple[object, np.ndarray]] = {}


def word_mask(model: LoadedModel) -> np.ndarray:
    """bool [V]: which of the model's tokens are whole words (built once per vocabulary)."""
    vocabulary = model.vocabulary
    cached = _MASKS.get(id(vocabulary))
    if cached is None or cached[0] is not vocabulary:
        cached = (vocabulary, whole_words(vocabulary))
        _MASKS[id(vocabulary)] = cached
    return cached[1]


def word_share(model: LoadedModel, token_ids: Sequence[int] | np.ndarray) -> float:
    """The share of ``token_ids`` that are whole words (0 to 1; NaN for an empty prompt)."""
    ids = np.asarray(token_ids, dtype=np.int64)
    return float(word_mask(model)[ids].mean()) if ids.size else math.nan


def prompt_perplexity(model: LoadedModel, token_ids: Sequence[int] | np.ndarray) -> float:
    """The prompt's perplexity under a causal LM: exp of its tokens' mean negative log-likelihood, each given the
    ones before it (the first given the tokenizer's start token, when it has one). NaN for other model kinds,
    whose outputs are not a distribution over the next token."""
    if model.kind != "causal" or len(token_ids) == 0:
        return math.nan
    ids = [int(i) for i in token_ids]
    bos = model.tokenizer.bos_token_id
    rows = ([bos] if bos is not None else []) + ids
    if len(rows) < 2:
        return math.nan
    with torch.inference_mode():
        logits = model.model(input_ids=torch.tensor([rows], device=model.device)).logits[0].float()
    logp = logits[:-1].log_softmax(-1)
    wanted = torch.tensor(rows[1:], device=logp.device)
    nll = -logp[torch.arange(len(rows) - 1, device=logp.device), wanted].mean()
    return float(torch.exp(nll))
