"""Classification tasks a soft prompt is trained on, one per model kind, all through PEFT's wrappers.

- encoder: prompt-tuned sentence embeddings. The output is mean-pooled over the input tokens and classified
  by cosine to each label's embedding (label names encoded by the frozen model, no prompt).
- causal: the label text is the continuation after the input; the loss is on the label tokens only, and
  classification ranks the labels by log-likelihood.
- seq2seq: the prompt goes on the encoder, the label text is the decoder target; ranked like causal.

The PEFT model prepends the prompt exactly as it does for PEFT users, so a saved adapter behaves the same.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from probe.batching import plan_batches
from probe.prompts import PEFT_KINDS
from probe.tokens import label_word_ids

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.models import LoadedModel

PEFT_TASK_TYPES = {kind: task_type for task_type, kind in PEFT_KINDS.items()}
"""probe's model kinds as PEFT task types."""


def wrap_with_prompt(model: LoadedModel, vectors: np.ndarray) -> PeftModel:
    """Wrap the frozen model with PEFT prompt tuning and set the prompt to ``vectors`` (float32 [p, d]).

    Seq2seq models get ``num_transformer_submodules=1``: the prompt goes on the encoder only.
    """
    from peft import PromptTuningConfig, get_peft_model

    from probe.models import canonical_name

    extra: dict[str, Any] = {"num_transformer_submodules": 1} if model.kind == "seq2seq" else {}
    config = PromptTuningConfig(
        task_type=PEFT_TASK_TYPES[model.kind],
        num_virtual_tokens=int(vectors.shape[0]),
        token_dim=model.dim,
        base_model_name_or_path=canonical_name(model.name),
        **extra,
    )
    with warnings.catch_warnings():
        # PEFT warns that it swaps our canonical name for the local folder; save_adapter writes the name back.
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model.model, config)
    peft_model.eval()
    weight = prompt_parameter(peft_model)
    with torch.no_grad():
        weight.copy_(torch.from_numpy(np.asarray(vectors, np.float32)).to(weight.device, weight.dtype))
    return peft_model


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
    """A classification task over ``label_names`` for one PEFT-wrapped model.

    Texts are tokenised once per model (:meth:`LoadedModel.token_ids`); every pass runs on length-bucketed
    batches (:func:`probe.batching.plan_batches`), so no row is padded to a much longer one.
    Subclasses implement :meth:`_scores` (and :meth:`_loss` when the loss is not cross-entropy).
    """

    model: LoadedModel
    peft_model: PeftModel
    label_names: list[str]
    max_length: int = 128
    temperature: float = 0.05
    eval_max_tokens: int = EVAL_MAX_TOKENS
    train_max_tokens: int = TRAIN_MAX_TOKENS

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

    def micro_batches(self, texts: list[str], targets: list[int]) -> list[tuple[float, list[list[int]], list[int]]]:
        """The batch as length-bucketed micro-batches: (share of the batch, token ids, targets) each.

        The shares sum to 1, so the shares times the micro-batches' mean losses sum to the batch's mean loss.
        """
        ids = self.tokenize(texts)
        plan = plan_batches(
            [len(x) for x in ids], max_tokens=self.train_max_tokens, overhead=PASS_OVERHEAD, extra=self.p
        )
        return [(len(rows) / len(ids), [ids[i] for i in rows], [targets[i] for i in rows]) for rows in plan.batches]

    def micro_loss(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        """Mean loss of one micro-batch of token ids (scalar, differentiable in the prompt)."""
        return self._loss(ids, targets)

    def loss(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        """Mean training loss over the batch (scalar, differentiable in the prompt).

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

    def _loss(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        logits = self._scores(ids) / self.temperature
        return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))

    def _prompted(self) -> torch.nn.Module:
        return self.train_forward if torch.is_grad_enabled() else self.peft_model

    def _pad(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` on the model's device."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.model.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}


class EncoderTask(Task):
    """Prompt-tuned sentence embeddings, classified by cosine to the label names' embeddings."""

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)

    def _label_embeddings(self) -> torch.Tensor:
        if "labels" not in self._label_cache:
            # ordinary tensors even when first asked for under inference mode: training multiplies by them
            with torch.inference_mode(False), torch.no_grad():
                batch = self._pad(self.tokenize(self.label_names))
                hidden = self.model.model(**batch).last_hidden_state  # the base model: no prompt
                self._label_cache["labels"] = self._pool(hidden.float(), batch["attention_mask"])
        return self._label_cache["labels"]

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        batch = self._pad(ids)
        if prompt:
            hidden = self._prompted()(**batch).last_hidden_state[:, self.p :]  # drop the prompt positions
        else:
            hidden = self.model.model(**batch).last_hidden_state
        return self._pool(hidden.float(), batch["attention_mask"]) @ self._label_embeddings().T


class VerbaliserTask(EncoderTask):
    """An encoder made to produce the label: each label is scored by the cosine between the hidden state at a
    marked output position and the label word's input embedding (its sub-tokens averaged, as the class-label
    init does), trained with cross-entropy.

    The output position is a mask token (the tokenizer's, else its unknown token) appended after each text.
    Unlike :class:`EncoderTask`, whose pooled sentence embedding is compared with the label names' sentence
    embeddings, a prompt here can only raise a label's score by moving the output toward that label's token.
    """

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        marker = self.model.tokenizer.mask_token_id
        if marker is None:
            marker = self.model.tokenizer.unk_token_id
        return [[*row, marker] for row in super().tokenize(texts)]

    def _label_embeddings(self) -> torch.Tensor:
        if "verbaliser" not in self._label_cache:
            tok, table = self.model.tokenizer, self.model.embeddings
            # ordinary tensors even when first asked for under inference mode: training multiplies by them
            with torch.inference_mode(False), torch.no_grad():
                rows = torch.stack([table[label_word_ids(tok, label)].mean(0) for label in self.label_names])
                self._label_cache["verbaliser"] = F.normalize(rows.float(), dim=-1).to(self.device)
        return self._label_cache["verbaliser"]

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        batch = self._pad(ids)
        if prompt:
            hidden = self._prompted()(**batch).last_hidden_state[:, self.p :]
        else:
            hidden = self.model.model(**batch).last_hidden_state
        last = batch["attention_mask"].sum(1) - 1  # the marker: each row's last real token
        output = hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
        return F.normalize(output, dim=-1) @ self._label_embeddings().T


class _GenerativeTask(Task):
    """Shared rank classification for causal and seq2seq: log-likelihood of each label's tokens."""

    @abstractmethod
    def _label_ids(self, label: str) -> list[int]:
        """The label's token ids as the model must produce them."""

    @abstractmethod
    def _pairs(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        """Sum log-likelihood of label ``targets[i]`` after row i (float [B]); differentiable."""

    def _rows_per_text(self) -> int:
        return len(self.label_names)

    @property
    def logit_scale(self) -> float:
        return 1.0

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        n, labels = len(ids), len(self.label_names)
        flat_ids = [row for row in ids for _ in range(labels)]
        flat_targets = [j for _ in ids for j in range(labels)]
        if prompt:
            return self._pairs(flat_ids, flat_targets).view(n, labels)
        with self.peft_model.disable_adapter():
            return self._pairs(flat_ids, flat_targets).view(n, labels)

    def _loss(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        lengths = torch.tensor([len(self._label_ids(self.label_names[t])) for t in targets], device=self.device)
        return -(self._pairs(ids, targets) / lengths).mean()


class CausalTask(_GenerativeTask):
    """The label is the continuation after the input text."""

    def _label_ids(self, label: str) -> list[int]:
        ids = self.model.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"label {label!r} tokenises to nothing; use a word the tokenizer knows")
        return ids

    def _pairs(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        rows, spans = [], []
        for text_ids, target in zip(ids, targets, strict=True):
            label = self._label_ids(self.label_names[target])
            text_ids = text_ids[: max(1, self.max_length - len(label))]  # room for the label within max_length
            spans.append((len(text_ids), len(label)))
            rows.append(text_ids + label)
        batch = self._pad(rows)
        input_ids, width = batch["input_ids"], batch["input_ids"].shape[1]
        logits = self._prompted()(**batch).logits
        logits = logits[:, -width:].float()  # drop the prompt positions, whether or not PEFT prepended them
        logp = logits.log_softmax(-1)
        total = []
        for i, (start, count) in enumerate(spans):
            positions = torch.arange(start - 1, start - 1 + count, device=self.device)
            wanted = input_ids[i, start : start + count]
            total.append(logp[i, positions, wanted].sum())
        return torch.stack(total)


class Seq2SeqTask(_GenerativeTask):
    """The prompt goes on the encoder; the label text (plus end of sequence) is the decoder target."""

    def _label_ids(self, label: str) -> list[int]:
        ids = self.model.tokenizer(label, add_special_tokens=True)["input_ids"]
        if not [i for i in ids if i not in self.model.tokenizer.all_special_ids]:
            raise ValueError(f"label {label!r} tokenises to nothing; use a word the tokenizer knows")
        return ids

    def _pairs(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        batch = self._pad(ids)
        labels = [self._label_ids(self.label_names[t]) for t in targets]
        width = max(len(x) for x in labels)
        target = torch.full((len(labels), width), -100, dtype=torch.long)
        for i, x in enumerate(labels):
            target[i, : len(x)] = torch.tensor(x)
        target = target.to(self.device)
        logits = self._prompted()(**batch, labels=target).logits.float()
        logp = logits.log_softmax(-1)
        safe = target.clamp_min(0)
        picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        return (picked * (target != -100)).sum(1)


_TASKS: dict[str, type[EncoderTask | CausalTask | Seq2SeqTask]] = {
    "encoder": EncoderTask,
    "causal": CausalTask,
    "seq2seq": Seq2SeqTask,
}

TaskForm = Literal["cosine", "verbaliser"]
TASK_FORMS: tuple[str, ...] = get_args(TaskForm)
"""How an encoder model classifies: "cosine" (pooled sentence embedding against the label names' embeddings,
:class:`EncoderTask`) or "verbaliser" (the hidden state at an output marker against the label tokens,
:class:`VerbaliserTask`). Causal and seq2seq models always generate the label."""


def make_task(
    model: LoadedModel,
    peft_model: PeftModel,
    label_names: list[str],
    *,
    max_length: int = 128,
    temperature: float = 0.05,
    eval_max_tokens: int = EVAL_MAX_TOKENS,
    train_max_tokens: int = TRAIN_MAX_TOKENS,
    form: TaskForm | str = "cosine",
) -> Task:
    """The task for the model's kind (batch budgets in tokens: see :func:`probe.batching.plan_batches`).

    Args:
        form: for encoder models, one of :data:`TASK_FORMS`.

    Raises:
        ValueError: fewer than two labels; an unknown form, or "verbaliser" for a model that is not an encoder.
    """
    if len(label_names) < 2:
        raise ValueError(f"classification needs at least 2 labels, got {label_names}")
    if form not in TASK_FORMS:
        raise ValueError(f"task form {form!r} is not known; expected one of {', '.join(TASK_FORMS)}")
    if form == "verbaliser" and model.kind != "encoder":
        raise ValueError(
            f"task form 'verbaliser' is for encoder models; {model.name} is a {model.kind} model, which already "
            "generates the label: leave the task form at 'cosine'"
        )
    cls = VerbaliserTask if form == "verbaliser" else _TASKS[model.kind]
    return cls(
        model,
        peft_model,
        list(label_names),
        max_length=max_length,
        temperature=temperature,
        eval_max_tokens=eval_max_tokens,
        train_max_tokens=train_max_tokens,
    )
