"""Classification tasks a soft prompt is trained on, one per model kind, all through PEFT's wrappers.

- encoder: prompt-tuned sentence embeddings. The output is mean-pooled over the input tokens and classified
  by cosine to each label's embedding (label names encoded by the frozen model, no prompt); or, with the
  verbaliser form, the hidden state at an output marker is scored against the label words' embeddings.
- causal: the label text is the continuation after the input; the loss is on the label tokens only, and
  classification ranks the labels by log-likelihood.
- seq2seq: the prompt goes on the encoder, the label text is the decoder target; ranked like causal.

The PEFT model prepends the prompt exactly as it does for PEFT users, so a saved adapter behaves the same.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from probe.core.tokens import check_distinct_labels, label_word_ids
from probe.tasks.base import (
    EVAL_MAX_TOKENS,
    PASS_OVERHEAD,
    TRAIN_MAX_TOKENS,
    Target,
    Task,
    prompt_parameter,
    wrap_with_prompt,
)
from probe.tasks.forms import TASK_FORMS, TaskForm

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.core.models import LoadedModel

__all__ = [
    "EVAL_MAX_TOKENS",
    "PASS_OVERHEAD",
    "TASK_FORMS",
    "TRAIN_MAX_TOKENS",
    "CausalTask",
    "EncoderTask",
    "Seq2SeqTask",
    "Task",
    "TaskForm",
    "VerbaliserTask",
    "make_task",
    "prompt_parameter",
    "wrap_with_prompt",
]


class EncoderTask(Task):
    """Prompt-tuned sentence embeddings, classified by cosine to the label names' embeddings."""

    name: ClassVar[str] = "cosine"

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)

    def _label_embeddings(self) -> torch.Tensor:
        if "labels" not in self._label_cache:
            # ordinary tensors even when first asked for under inference mode: training multiplies by them
            with torch.inference_mode(False), torch.no_grad():
                batch = self.pad(self.tokenize(self.label_names))
                hidden = self.model.model(**batch).last_hidden_state  # the base model: no prompt
                self._label_cache["labels"] = self._pool(hidden.float(), batch["attention_mask"])
        return self._label_cache["labels"]

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        batch = self.pad(ids)
        if prompt:
            hidden = self._prompted()(**batch).last_hidden_state[:, -batch["input_ids"].shape[1] :]  # no prompt rows
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

    name: ClassVar[str] = "verbaliser"

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
        batch = self.pad(ids)
        if prompt:
            hidden = self._prompted()(**batch).last_hidden_state[:, -batch["input_ids"].shape[1] :]
        else:
            hidden = self.model.model(**batch).last_hidden_state
        last = batch["attention_mask"].sum(1) - 1  # the marker: each row's last real token
        output = hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
        return F.normalize(output, dim=-1) @ self._label_embeddings().T


class _GenerativeTask(Task):
    """Shared rank classification for causal and seq2seq: log-likelihood of each label's tokens."""

    name: ClassVar[str] = "generate"

    @abstractmethod
    def _label_ids(self, label: str) -> list[int]:
        """The label's (or a target text's) token ids as the model must produce them."""

    @abstractmethod
    def _target_logprobs(self, ids: list[list[int]], targets: list[list[int]]) -> list[torch.Tensor]:
        """Per row i, float [len(targets[i]), V]: the log-probabilities of the next token at each of the tokens
        ``targets[i]`` produced after row i (the prompt's positions dropped); differentiable."""

    def _pairs(self, ids: list[list[int]], targets: list[int]) -> torch.Tensor:
        """Sum log-likelihood of label ``targets[i]`` after row i (float [B]); differentiable."""
        wanted = [self._label_ids(self.label_names[t]) for t in targets]
        rows = self._target_logprobs(ids, wanted)
        return torch.stack(
            [
                logp[torch.arange(len(w), device=logp.device), torch.tensor(w, device=logp.device)].sum()
                for logp, w in zip(rows, wanted, strict=True)
            ]
        )

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

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        classes = [int(t) for t in targets]
        lengths = torch.tensor([len(self._label_ids(self.label_names[t])) for t in classes], device=self.device)
        return -(self._pairs(ids, classes) / lengths).mean()


class CausalTask(_GenerativeTask):
    """The label is the continuation after the input text."""

    def _label_ids(self, label: str) -> list[int]:
        ids = self.model.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"label {label!r} tokenises to nothing; use a word the tokenizer knows")
        return ids

    def _target_logprobs(self, ids: list[list[int]], targets: list[list[int]]) -> list[torch.Tensor]:
        rows, spans = [], []
        for text_ids, label in zip(ids, targets, strict=True):
            text_ids = text_ids[: max(1, self.max_length - len(label))]  # room for the label within max_length
            spans.append((len(text_ids), len(label)))
            rows.append(text_ids + label)
        batch = self.pad(rows)
        width = batch["input_ids"].shape[1]
        logits = self._prompted()(**batch).logits
        logits = logits[:, -width:]  # drop the prompt positions, whether or not PEFT prepended them
        # the token at position t is predicted at position t - 1; only those rows are normalised
        return [
            logits[i, start - 1 : start - 1 + count].float().log_softmax(-1) for i, (start, count) in enumerate(spans)
        ]


class Seq2SeqTask(_GenerativeTask):
    """The prompt goes on the encoder; the label text (plus end of sequence) is the decoder target."""

    def _label_ids(self, label: str) -> list[int]:
        ids = self.model.tokenizer(label, add_special_tokens=True)["input_ids"]
        if not [i for i in ids if i not in self.model.tokenizer.all_special_ids]:
            raise ValueError(f"label {label!r} tokenises to nothing; use a word the tokenizer knows")
        return ids

    def _target_logprobs(self, ids: list[list[int]], targets: list[list[int]]) -> list[torch.Tensor]:
        batch = self.pad(ids)
        width = max(len(x) for x in targets)
        target = torch.full((len(targets), width), -100, dtype=torch.long)
        for i, x in enumerate(targets):
            target[i, : len(x)] = torch.tensor(x)
        logits = self._prompted()(**batch, **self._decoder_inputs(target.to(self.device))).logits
        logits = logits[:, -width:]  # the decoder's own rows dropped, when there are any
        return [logits[i, : len(x)].float().log_softmax(-1) for i, x in enumerate(targets)]

    def _decoder_inputs(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the decoder is given: ``labels`` for the model to shift right into its input; with
        :attr:`decoder_prompt`, the input PEFT builds for a multitask prompt instead: those rows, then the embeddings
        of the target shifted right after the decoder's start token (in every pass, the frozen model's too: the rows
        are held, so what is measured is what the encoder's prompt adds to them)."""
        if self.decoder_prompt is None:
            return {"labels": target}
        from peft.utils import shift_tokens_right  # the very shift PEFT's seq2seq forward applies

        config = self.model.model.config
        shifted = shift_tokens_right(target, int(config.pad_token_id), int(config.decoder_start_token_id))
        tokens = self.model.model.get_input_embeddings()(shifted)
        rows = torch.as_tensor(self.decoder_prompt, device=tokens.device, dtype=tokens.dtype)
        embeds = torch.cat([rows.expand(len(target), -1, -1), tokens], 1)
        return {"decoder_inputs_embeds": embeds}


_TASKS: dict[str, type[EncoderTask | CausalTask | Seq2SeqTask]] = {
    "encoder": EncoderTask,
    "causal": CausalTask,
    "seq2seq": Seq2SeqTask,
}


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
    """The task for the model's kind (batch budgets in tokens: see :func:`probe.core.batching.plan_batches`).

    Args:
        form: for encoder models, one of :data:`TASK_FORMS`.

    Raises:
        ValueError: fewer than two labels; an unknown form, or "verbaliser" for a model that is not an encoder.
    """
    if len(label_names) < 2:
        raise ValueError(f"classification needs at least 2 labels, got {label_names}")
    check_distinct_labels(model.tokenizer, list(label_names))
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
