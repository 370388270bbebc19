"""The paper's prompt initialisations (Lester et al. 2021, section 3.2), plus initialising from text.

- ``random-uniform``: every entry uniform in [-scale, scale]; the paper uses scale 0.5.
- ``sampled-vocab``: rows of the embedding matrix drawn without replacement from the N most common tokens
  (N = 5000), ranked by English word frequency (wordfreq) on the token's surface form.
- ``class-label``: position i is label i's embedding, averaged over its sub-tokens; leftover positions are
  filled as in ``sampled-vocab``.
- ``text``: the embeddings of a text's tokens, cycled or cut to the prompt length.

On the scale of ``random-uniform``: a vector uniform in [-s, s]^d has norm about s * sqrt(d / 3). With the
paper's s = 0.5 that is 0.29 * sqrt(d): about 5.7 for the default model (d = 384), whose token embeddings
have a mean norm near 1.1, so such a prompt starts about five times longer than any token. ``scale=
"vocab-norm"`` picks s = mean_norm * sqrt(3 / d) so the prompt starts at the vocabulary's typical norm.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from probe.core.tokens import frequency_ranks, label_word_ids, text_list

if TYPE_CHECKING:
    from probe.core.models import LoadedModel

logger = logging.getLogger(__name__)


class InitMethod(str, Enum):
    """How a prompt's vectors start (values survive JSON as plain strings)."""

    RANDOM_UNIFORM = "random-uniform"
    SAMPLED_VOCAB = "sampled-vocab"
    CLASS_LABEL = "class-label"
    TEXT = "text"

    @classmethod
    def parse(cls, value: str | InitMethod) -> InitMethod:
        """Accept the enum or its string value.

        Raises:
            ValueError: unknown method, listing the known ones.
        """
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"init '{value}' is not known; expected one of {known}") from None


PAPER_INITS = (InitMethod.RANDOM_UNIFORM, InitMethod.SAMPLED_VOCAB, InitMethod.CLASS_LABEL)
Scale = float | Literal["vocab-norm"]


@dataclass(frozen=True)
class Initialisation:
    """Initial prompt vectors and what they were made from.

    Attributes:
        vectors: float32 [p, d].
        method: the :class:`InitMethod`.
        token_ids: per position, the vocabulary token ids whose embeddings it started as (empty for random).
        details: JSON-ready facts for the run manifest (seed, scale, top_n, labels used, ...).
    """

    vectors: np.ndarray
    method: InitMethod
    token_ids: list[list[int]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def candidate_tokens(model: LoadedModel, top_n: int) -> np.ndarray:
    """The ``top_n`` most frequent tokens that are not special, unused or non-printable (int64 ids)."""
    vocab = model.vocabulary
    allowed = ~vocab.special & ~vocab.unused & ~vocab.nonprintable
    return frequency_ranks(vocab, allowed)[:top_n]


def resolve_scale(scale: Scale, model: LoadedModel) -> float:
    """The numeric bound s of ``random-uniform`` (see the module docstring for ``vocab-norm``).

    Raises:
        ValueError: a non-positive number or an unknown word.
    """
    if scale == "vocab-norm":
        mean_norm = float(np.linalg.norm(model.embeddings_numpy(), axis=1).mean())
        return mean_norm * math.sqrt(3.0 / model.dim)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"init scale is {scale!r}; expected a positive number or 'vocab-norm'")
    return float(scale)


def initialise(
    method: InitMethod | str,
    model: LoadedModel,
    length: int,
    *,
    seed: int = 0,
    labels: list[str] | None = None,
    text: str | None = None,
    scale: Scale = 0.5,
    top_n: int = 5000,
) -> Initialisation:
    """Make the initial prompt.

    Args:
        method: one of :class:`InitMethod`.
        model: the model whose embedding space the prompt lives in.
        length: number of positions p.
        seed: all randomness comes from ``numpy.random.default_rng(seed)``.
        labels: class names (``class-label``).
        text: the text (``text``).
        scale: bound of ``random-uniform`` (number or "vocab-norm").
        top_n: how many frequent tokens ``sampled-vocab`` draws from.

    Returns:
        The :class:`Initialisation`.

    Raises:
        ValueError: bad length, missing labels or text, or more positions than candidate tokens.
    """
    method = InitMethod.parse(method)
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ValueError(f"prompt length is {length!r}; expected a positive integer")
    rng = np.random.default_rng(seed)
    embeddings = model.embeddings_numpy()
    details: dict[str, Any] = {"seed": seed}

    if method is InitMethod.RANDOM_UNIFORM:
        s = resolve_scale(scale, model)
        vectors = rng.uniform(-s, s, size=(length, model.dim)).astype(np.float32)
        details.update(scale=scale, bound=s)
        return Initialisation(vectors, method, [[] for _ in range(length)], details)

    if method is InitMethod.SAMPLED_VOCAB:
        ids = _sample_vocab(model, length, top_n, rng)
        details.update(top_n=top_n)
        return Initialisation(embeddings[ids].copy(), method, [[int(i)] for i in ids], details)

    if method is InitMethod.CLASS_LABEL:
        labels = text_list(labels, "labels")
        if not labels:
            raise ValueError("class-label init needs the class labels; pass labels= (the data set's label names)")
        used = labels[:length]
        if length < len(labels):
            warnings.warn(
                f"prompt length {length} is shorter than the {len(labels)} labels; only {used} start as labels",
                UserWarning,
                stacklevel=2,
            )
        token_ids = [label_word_ids(model.tokenizer, label) for label in used]
        rows = [embeddings[ids].mean(axis=0) for ids in token_ids]
        filler = _sample_vocab(model, length - len(used), top_n, rng) if length > len(used) else np.array([], int)
        rows += [embeddings[i] for i in filler]
        token_ids += [[int(i)] for i in filler]
        details.update(top_n=top_n, labels=used, label_positions=len(used))
        return Initialisation(np.stack(rows).astype(np.float32), method, token_ids, details)

    # TEXT
    if not text or not text.strip():
        raise ValueError("text init needs a non-empty text; pass text= (--init-text on the CLI)")
    text_ids = [
        i
        for i in model.tokenizer(text, add_special_tokens=False)["input_ids"]
        if i not in model.tokenizer.all_special_ids
    ]
    if not text_ids:
        raise ValueError(f"init text {text!r} tokenises to nothing; use words the tokenizer knows")
    cycled = [text_ids[i % len(text_ids)] for i in range(length)]
    details.update(text=text, text_tokens=len(text_ids))
    return Initialisation(embeddings[cycled].copy(), method, [[int(i)] for i in cycled], details)


def _sample_vocab(model: LoadedModel, count: int, top_n: int, rng: np.random.Generator) -> np.ndarray:
    if count == 0:
        return np.array([], dtype=np.int64)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
        raise ValueError(f"top_n is {top_n!r}; expected a positive integer")
    candidates = candidate_tokens(model, top_n)
    if count > candidates.size:
        raise ValueError(
            f"sampled-vocab needs {count} distinct tokens but only {candidates.size} frequent tokens qualify; "
            "raise top_n or shorten the prompt"
        )
    return rng.choice(candidates, size=count, replace=False)
