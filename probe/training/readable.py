"""Training a prompt toward a reading that does what it does (or, deliberately, toward one that does not).

- **The faithfulness term** (:func:`faithfulness_loss`): ``(1 - λ) · L(soft prompt) + λ · L(its nearest tokens)``.
  The nearest tokens are used in the forward pass and the gradient reaches the soft prompt straight through
  (PEZ's estimator, Wen et al. 2023; λ = 1 is PEZ), so the prompt and its reading are trained together.
- **A projection target** (:func:`projection_loss`), for waywardness (Khashabi et al. 2022): the mean over
  positions of the cross-entropy between each position's softmax over vocabulary cosines (temperature τ) and a
  target token: its init token (``init``), or the tokens of a text, cycled (``text:...``).

Both are functions a user adds to the loss of their own loop or ``Trainer.compute_loss``; probe's trainer uses
them when ``TrainConfig`` asks (``faithfulness_weight``, ``project_to``, ``project_weight``). Excluded tokens
(special, ``[unused]``) are never targets, and never a position's projection.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from probe.core.index import VocabIndex
from probe.core.models import LoadedModel
from probe.tasks.base import prompt_parameter
from probe.training.config import check_weight


@contextlib.contextmanager
def projected(peft_model: Any, embeddings: torch.Tensor) -> Iterator[None]:
    """Within this block the PEFT model's forward pass uses ``embeddings`` (float [p, d], the prompt's nearest
    tokens) in place of the prompt, and the gradient of anything computed reaches the prompt itself unchanged
    (the straight-through estimator)."""
    encoder = peft_model.prompt_encoder[peft_model.active_adapter]

    def swap(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        target = embeddings.to(output.device, output.dtype).expand_as(output)
        return output + (target - output).detach()

    handle = encoder.register_forward_hook(swap)
    try:
        yield
    finally:
        handle.remove()


def nearest_embeddings(peft_model: Any, index: VocabIndex, model: LoadedModel) -> torch.Tensor:
    """float [p, d]: the embedding of each prompt position's nearest searchable token, as it is now."""
    weight = prompt_parameter(peft_model)
    _, ids = index.search(weight.detach().float().cpu().numpy(), 1)
    return model.embeddings[ids[:, 0]]


def faithfulness_loss(
    peft_model: Any,
    loss_fn: Callable[[], torch.Tensor],
    model: LoadedModel,
    *,
    weight: float,
    index: VocabIndex | None = None,
) -> torch.Tensor:
    """``(1 - weight) · loss_fn()`` at the soft prompt plus ``weight · loss_fn()`` at its nearest tokens, the
    second's gradient passed straight through to the soft prompt.

    Args:
        peft_model: the PEFT prompt-tuning model being trained.
        loss_fn: computes the task loss of the current batch through ``peft_model`` (called once or twice).
        model: the frozen model (its vocabulary embeddings).
        weight: λ in [0, 1]; 0 is plain prompt tuning, 1 is PEZ.
        index: which tokens the prompt may be read as (default: the model's index).

    Raises:
        ValueError: a weight outside [0, 1].
    """
    check_weight(weight, "faithfulness weight", upper=1.0)
    if index is None:
        index = VocabIndex.for_model(model)
    total = torch.zeros(())
    if weight < 1:
        total = total + (1 - weight) * loss_fn()
    if weight > 0:
        with projected(peft_model, nearest_embeddings(peft_model, index, model)):
            total = total + weight * loss_fn()
    return total


def projection_loss(
    prompt: torch.Tensor, targets: torch.Tensor, vocabulary: torch.Tensor, *, temperature: float = 0.1
) -> torch.Tensor:
    """Mean over positions of the cross-entropy between each position's softmax over vocabulary cosines and its
    target token.

    Args:
        prompt: float [p, d], the prompt parameter (differentiable).
        targets: int64 [p], each position's target: an index into ``vocabulary``'s rows.
        vocabulary: float [n, d] unit rows of the tokens a position may be read as (excluded tokens left out).
        temperature: τ, dividing the cosines.

    Raises:
        ValueError: τ not a positive finite number (0 gave NaN, and a negative τ a loss that pushes each position
            away from its target), or tensors whose shapes do not fit (errors.md 198).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < math.inf:
        raise ValueError(f"temperature is {temperature!r}; expected a positive number (τ, default 0.1)")
    for name, value in (("prompt", prompt), ("targets", targets), ("vocabulary", vocabulary)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"projection_loss: {name} is a {type(value).__name__}; expected a torch tensor")
    if (
        prompt.ndim != 2
        or vocabulary.ndim != 2
        or prompt.shape[1] != vocabulary.shape[1]
        or targets.shape != (prompt.shape[0],)
    ):
        raise ValueError(
            f"projection_loss: prompt {tuple(prompt.shape)}, targets {tuple(targets.shape)}, vocabulary "
            f"{tuple(vocabulary.shape)}; expected [p, d], [p] and [n, d]"
        )
    cosines = F.normalize(prompt.float(), dim=-1) @ vocabulary.T.to(prompt.device)
    return F.cross_entropy(cosines / temperature, targets.to(prompt.device))


class ReadableTerms:
    """The faithfulness and projection terms of one training run, as its :class:`TrainConfig` asks (probe's
    trainer uses them; a user's own loop calls :func:`faithfulness_loss` and :func:`projection_loss`).

    Raises:
        ValueError: a projection target with no usable tokens (before anything is trained or written).
    """

    def __init__(
        self, config: Any, peft_model: Any, model: LoadedModel, index: VocabIndex, init_tokens: list[list[int]] | None
    ) -> None:
        self.weight, self.peft_model, self.model, self.index = config.faithfulness_weight, peft_model, model, index
        self.gamma, self.temperature = config.project_weight, config.project_temperature
        self.targets: tuple[torch.Tensor, torch.Tensor] | None = None
        if config.project_to is not None and config.project_weight > 0:
            rows = projection_targets(config.project_to, model, index, config.length, init_tokens or [])
            self.targets = (torch.from_numpy(rows), torch.from_numpy(index.unit))

    def passes(self) -> list[tuple[float, Any]]:
        """(share of the loss, a context to make it in) of each pass a micro-batch makes: the soft prompt, and,
        with a faithfulness weight λ, its nearest tokens (the gradient passed straight through to the prompt)."""
        passes: list[tuple[float, Any]] = []
        if self.weight < 1:
            passes.append((1.0 - self.weight, contextlib.nullcontext))
        if self.weight > 0:
            nearest = nearest_embeddings(self.peft_model, self.index, self.model)  # once per step
            passes.append((self.weight, lambda: projected(self.peft_model, nearest)))
        return passes

    def projection_term(self, prompt: torch.Tensor) -> torch.Tensor | None:
        """γ · the projection loss of ``prompt`` (the parameter) toward the targets, or None without a target."""
        if self.targets is None:
            return None
        targets, vocabulary = self.targets
        return self.gamma * projection_loss(prompt, targets, vocabulary, temperature=self.temperature)


def projection_targets(
    spec: str, model: LoadedModel, index: VocabIndex, length: int, init_tokens: list[list[int]]
) -> np.ndarray:
    """int64 [p]: each position's target as a row of ``index`` (its searchable tokens), for ``spec``:

    - ``init``: the token each position started as (its first, for an init of several);
    - ``text:...``: the tokens of that text, cycled over the positions.

    Raises:
        ValueError: an unknown spec, an init with no tokens, or a text with no usable (searchable) tokens.
    """
    if spec == "init":
        ids = [tokens[0] for tokens in init_tokens if tokens]
        if len(ids) < length:
            raise ValueError(
                "project_to 'init' needs every position to start as a token; this init has positions that do not "
                "(random-uniform): project to a text instead (text:...)"
            )
    elif spec.startswith("text:"):
        text = spec.removeprefix("text:").strip().strip('"')
        usable = set(index.token_ids.tolist())
        ids = [i for i in model.tokenizer(text, add_special_tokens=False)["input_ids"] if i in usable]
        if not ids:
            raise ValueError(
                f"project_to text {text!r} has no usable tokens (special or excluded tokens are never targets); "
                "use words the tokenizer knows"
            )
        ids = [ids[i % len(ids)] for i in range(length)]
    else:
        raise ValueError(f"project_to {spec!r} is not known; expected 'init' or 'text:...'")
    rows = np.searchsorted(index.token_ids, ids)
    rows = np.clip(rows, 0, index.size - 1)
    if not np.array_equal(index.token_ids[rows], ids):
        raise ValueError(f"project_to {spec!r}: some target tokens are excluded from the readings (special, [unused])")
    return rows.astype(np.int64)
