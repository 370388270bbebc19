"""The task a soft prompt is trained on, as a base class: tokenising once, length-bucketed passes, the loss.

The model kinds' own tasks, and ``make_task`` that picks one, are in :mod:`probe.tasks.kinds`. The PEFT
model prepends the prompt exactly as it does for PEFT users, so a saved adapter behaves the same.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from probe.core.batching import plan_batches
from probe.core.data import LabelledData
from probe.core.names import CLASSIFICATION
from probe.formats.files import PEFT_KINDS

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.core.models import LoadedModel

Target = int | str
"""What a task's loss takes per example: a class index (classification) or a target text (the target objective)."""

PEFT_TASK_TYPES = {kind: task_type for task_type, kind in PEFT_KINDS.items()}
"""probe's model kinds as PEFT task types."""


def wrap_with_prompt(model: LoadedModel, vectors: np.ndarray) -> PeftModel:
    """Wrap the frozen model with PEFT prompt tuning and set the prompt to ``vectors`` (float32 [p, d]); vectors of a
    prefix's width (:func:`prefix_width`, [p, layers x 2 x token_dim]) wrap it with PEFT prefix tuning instead.

    Seq2seq models get ``num_transformer_submodules=1``: input rows go on the encoder only (a multitask prompt's
    decoder rows are the task's: :attr:`Task.decoder_prompt`); a prefix is read per layer (:func:`attach_prompt`).
    """
    return attach_prompt(model.model, model, vectors, PEFT_TASK_TYPES[model.kind])


def attach_prompt(base: torch.nn.Module, model: LoadedModel, vectors: np.ndarray, task_type: str) -> PeftModel:
    """``base`` (``model``'s network, or a copy with a head) wrapped by PEFT as a ``task_type`` prompt of ``vectors``:
    prompt tuning for input rows [p, d], prefix tuning for a flat prefix [p, layers x 2 x token_dim], as PEFT's
    prefix encoder holds it (without a projection: a projected prefix is saved as the projection's output).

    Raises:
        ValueError: vectors of neither width.
    """
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    from probe.core.models import canonical_name

    p, width = int(vectors.shape[0]), int(vectors.shape[1])
    named: dict[str, Any] = {
        "task_type": task_type,
        "num_virtual_tokens": p,
        "base_model_name_or_path": canonical_name(model.name),
    }
    if width == model.dim:
        extra: dict[str, Any] = {"num_transformer_submodules": 1} if model.kind == "seq2seq" else {}
        config: Any = PromptTuningConfig(token_dim=model.dim, **named, **extra)
    elif width == prefix_width(model):
        config = PrefixTuningConfig(prefix_projection=False, **named)
    else:
        raise ValueError(
            f"prompt has width {width}; model '{model.name}' takes input rows of width {model.dim} or a prefix of "
            f"width {prefix_width(model)} (layers x 2 x token_dim): load the model the prompt was trained on"
        )
    with warnings.catch_warnings():
        # PEFT warns that it swaps our canonical name for the local folder; save_adapter writes the name back.
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(base, config)
    peft_model.eval()
    weight = prompt_parameter(peft_model)
    if tuple(weight.shape) != (p, width):
        raise ValueError(f"PEFT made a prompt of shape {tuple(weight.shape)} for vectors of shape {(p, width)}")
    with torch.no_grad():
        weight.copy_(torch.from_numpy(np.asarray(vectors, np.float32)).to(weight.device, weight.dtype))
    if width != model.dim and model.kind == "seq2seq":
        _prefix_per_layer(peft_model, model)
    return peft_model


def _prefix_per_layer(peft_model: PeftModel, model: LoadedModel) -> None:
    """Give a seq2seq model's PEFT prefix its keys and values per layer: decoder layer i's self-attention takes pair i
    of the flat prefix (:meth:`probe.formats.prefix.PrefixPrompt.flat`), and its cross-attention's cache starts empty,
    as PEFT leaves it. PEFT's own layout gives layer i pair ``2i mod layers``: with an even number of layers, layers
    i and i + layers/2 share one pair, so a prefix read as each layer's nearest real tokens could not be put back."""
    from transformers import DynamicCache, EncoderDecoderCache

    from probe.formats.prefix import kv_geometry

    layers, heads, head_dim = kv_geometry(model.model.config)
    weight = prompt_parameter(peft_model)

    def get_prompt(batch_size: int, task_ids: Any = None, max_cache_len: Any = None) -> EncoderDecoderCache:
        slots = weight.view(weight.shape[0], 2 * layers, heads, head_dim).permute(1, 2, 0, 3)  # [2L, H, n, hd]
        slots = slots.unsqueeze(1).expand(-1, batch_size, -1, -1, -1).to(model.model.dtype)  # as PEFT casts it
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        for layer in range(layers):
            cache.self_attention_cache.update(slots[2 * layer], slots[2 * layer + 1], layer)
        return cache

    peft_model.get_prompt = get_prompt  # type: ignore[method-assign,assignment]


def prefix_width(model: LoadedModel) -> int:
    """The width of a flat prefix of ``model``: layers x 2 x key-value heads x head dim (0 when its config names no
    geometry)."""
    from probe.formats.prefix import kv_geometry

    try:
        layers, heads, head_dim = kv_geometry(model.model.config)
    except ValueError:
        return 0
    return layers * 2 * heads * head_dim


def prompt_parameter(peft_model: PeftModel) -> torch.nn.Parameter:
    """The trainable prompt matrix [p, d] inside a PEFT model."""
    weight = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight  # type: ignore[union-attr]
    assert isinstance(weight, torch.nn.Parameter)
    return weight


EVAL_MAX_TOKENS = 8192
"""Token budget of one evaluation batch (rows x longest row, prompt included); chosen for CPU throughput."""
TRAIN_MAX_TOKENS = 4096
"""Token budget of one training micro-batch (activations are kept for backward)."""
PASS_OVERHEAD = 64
"""Fixed cost of one forward pass, in tokens, that the batch planner weighs against padding."""


@dataclass
class Task(ABC):
    """A task for one PEFT-wrapped model: classification over ``label_names`` (this class and its subclasses in
    :mod:`probe.tasks.kinds` and :mod:`probe.tasks.user`), or the free-text target objective
    (:class:`probe.tasks.target.TargetTask`, :attr:`objective`). The readings of what a prompt does call
    :meth:`outcome`, per example (correct, loss), which each objective gives.

    Texts are tokenised once per model (:meth:`LoadedModel.token_ids`); every pass runs on length-bucketed
    batches (:func:`probe.core.batching.plan_batches`), so no row is padded to a much longer one.
    Subclasses implement :meth:`_scores` (and :meth:`_loss` when the loss is not cross-entropy).
    """

    name: ClassVar[str] = "task"
    """The task form a reading under this task records (``cosine``, ``verbaliser``, ``generate``, ...)."""
    objective: ClassVar[str] = CLASSIFICATION
    """What the loss measures (:data:`probe.core.names.OBJECTIVES`); every reading records it."""

    model: LoadedModel
    peft_model: PeftModel
    label_names: list[str]
    max_length: int = 128
    temperature: float = 0.05
    eval_max_tokens: int = EVAL_MAX_TOKENS
    train_max_tokens: int = TRAIN_MAX_TOKENS
    identity: str = ""
    """What tells this task's scores apart beyond its class, model and labels (a head's digest, a scoring
    function's key): part of every cache key of its results."""
    decoder_prompt: np.ndarray | None = None
    """float32 [n, d]: rows PEFT puts before a seq2seq decoder's input (a multitask prompt's decoder half), held as
    learned in every pass, the frozen model's too; None: none (:class:`probe.tasks.kinds.Seq2SeqTask` reads them)."""

    def __post_init__(self) -> None:
        tok = self.model.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        self.device = self.model.device
        self.p = prompt_parameter(self.peft_model).shape[0]
        self._label_cache: dict[str, torch.Tensor] = {}
        self.train_forward: torch.nn.Module = self.peft_model
        """What differentiable passes call: the PEFT model, or the wrapper Accelerate prepared around it (DDP,
        FSDP, ...). Passes without gradients (evaluation) call the PEFT model itself, so one process alone can
        evaluate without a collective call."""

    # -- public API ---------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text as the task feeds it (memoised on the model)."""
        return self.model.token_ids(texts, max_length=self.max_length)

    def micro_batches(
        self, texts: list[str], targets: Sequence[Target]
    ) -> list[tuple[float, list[list[int]], list[Target]]]:
        """The batch as length-bucketed micro-batches: (share of the batch, token ids, targets) each.

        The shares sum to 1, so the shares times the micro-batches' mean losses sum to the batch's mean loss.
        """
        ids = self.tokenize(texts)
        plan = plan_batches(
            [len(x) for x in ids], max_tokens=self.train_max_tokens, overhead=PASS_OVERHEAD, extra=self.p
        )
        return [(len(rows) / len(ids), [ids[i] for i in rows], [targets[i] for i in rows]) for rows in plan.batches]

    def micro_loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        """Mean loss of one micro-batch of token ids (scalar, differentiable in the prompt)."""
        return self._loss(ids, targets)

    def loss(self, texts: list[str], targets: Sequence[Target]) -> torch.Tensor:
        """Mean training loss over the batch (scalar, differentiable in the prompt).

        ``targets`` are class indices, or target texts under the target objective (``data.loss_targets``).

        The batch runs as length-bucketed micro-batches whose mean losses are recombined by their sizes, so
        the value (and its gradient) is the one of the whole batch at once.
        """
        total = torch.zeros((), device=self.device)
        for share, ids, part_targets in self.micro_batches(texts, targets):
            total = total + self.micro_loss(ids, part_targets) * share
        return total

    def scores(self, texts: list[str], *, prompt: bool = True) -> torch.Tensor:
        """float [B, L]: how much each label fits each text (higher is better), in one pass."""
        return self._scores(self.tokenize(texts), prompt=prompt)

    def score_all(self, texts: list[str], *, prompt: bool = True) -> np.ndarray:
        """float32 [B, L]: label scores of every text, in length-bucketed batches under inference mode.

        Args:
            texts: the inputs.
            prompt: with the soft prompt (False: the frozen model alone, the zero-shot baseline).
        """
        ids = self.tokenize(texts)
        plan = plan_batches(
            [len(x) for x in ids],
            max_tokens=max(1, self.eval_max_tokens // self._rows_per_text()),
            overhead=PASS_OVERHEAD,
            extra=self.p if prompt else 0,
        )
        out = np.empty((len(ids), len(self.label_names)), dtype=np.float32)
        self.peft_model.eval()
        with torch.inference_mode():
            for rows in plan.batches:
                out[rows] = self._scores([ids[i] for i in rows], prompt=prompt).float().cpu().numpy()
        return out

    def predict(self, texts: list[str], *, prompt: bool = True) -> np.ndarray:
        """int [B]: predicted label index of each text (see :meth:`score_all`)."""
        return self.score_all(texts, prompt=prompt).argmax(axis=1)

    def outcome(self, data: LabelledData, *, prompt: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(correct [N] in [0, 1], loss [N]) of every example: what every reading of what a prompt does measures.

        For classification, whether the top label is the example's and its cross-entropy over the label scores
        (:meth:`example_losses`); the target objective gives its own (:mod:`probe.tasks.target`).

        Raises:
            ValueError: data with free-text targets, which classification cannot read.
        """
        if data.target_texts is not None:
            raise ValueError(
                f"data '{data.source}' has free-text targets, but the task {self.name!r} classifies over labels; "
                "read it under the target objective (--target-column, target_column=) on a causal or seq2seq model"
            )
        scores = self.score_all(data.texts, prompt=prompt)
        correct = (scores.argmax(1) == np.asarray(data.targets)).astype(np.float64)
        return correct, self.example_losses(scores, data.targets)

    def example_losses(self, scores: np.ndarray, targets: list[int]) -> np.ndarray:
        """float [B]: each example's cross-entropy over the label scores, as the training loss scales them."""
        logits = torch.from_numpy(scores) * self.logit_scale
        return F.cross_entropy(logits, torch.tensor(targets), reduction="none").numpy()

    @property
    def logit_scale(self) -> float:
        """What label scores are multiplied by to become the logits of the training loss."""
        return 1.0 / self.temperature

    def zero_shot(self, texts: list[str]) -> np.ndarray:
        """Predictions of the frozen model without any prompt (the untrained baseline)."""
        return self.predict(texts, prompt=False)

    # -- for subclasses -----------------------------------------------------------------------------

    def _rows_per_text(self) -> int:
        """Rows one text becomes in a scoring pass (generative tasks score every label as its own row)."""
        return 1

    @abstractmethod
    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        """float [B, L] label scores for token-id rows, with or without the prompt."""

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        logits = self._scores(ids) / self.temperature
        return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))

    def _prompted(self) -> torch.nn.Module:
        return self.train_forward if torch.is_grad_enabled() else self.peft_model

    def pad(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` on the model's device."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.model.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
