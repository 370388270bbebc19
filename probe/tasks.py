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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.models import LoadedModel

PEFT_TASK_TYPES = {"encoder": "FEATURE_EXTRACTION", "causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}


def wrap_with_prompt(model: LoadedModel, vectors: np.ndarray) -> PeftModel:
    """Wrap the frozen model with PEFT prompt tuning and set the prompt to ``vectors`` (float32 [p, d]).

    Seq2seq models get ``num_transformer_submodules=1``: the prompt goes on the encoder only.
    """
    from peft import PromptTuningConfig, get_peft_model

    from probe.models import canonical_name

    extra = {"num_transformer_submodules": 1} if model.kind == "seq2seq" else {}
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
    return peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight


@dataclass
class Task:
    """A classification task over ``label_names`` for one PEFT-wrapped model."""

    model: LoadedModel
    peft_model: PeftModel
    label_names: list[str]
    max_length: int = 128
    temperature: float = 0.05

    def __post_init__(self) -> None:
        tok = self.model.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        self.device = self.model.device
        self.p = prompt_parameter(self.peft_model).shape[0]
        self._label_cache: dict[str, torch.Tensor] = {}

    # -- public API ---------------------------------------------------------------------------------

    def loss(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        """Training loss of the prompted model on a batch (scalar, differentiable in the prompt)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Predicted label index for each text with the current prompt."""
        out = [
            self.scores(texts[i : i + batch_size]).argmax(dim=1).cpu().numpy() for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(out)

    def scores(self, texts: list[str]) -> torch.Tensor:
        """float [B, L]: how much each label fits each text (higher is better)."""
        raise NotImplementedError

    @torch.no_grad()
    def zero_shot(self, texts: list[str]) -> np.ndarray:
        """Predictions of the frozen model without any prompt (the untrained baseline)."""
        raise NotImplementedError

    def _encode(self, texts: list[str], add_special_tokens: bool = True) -> dict[str, torch.Tensor]:
        batch = self.model.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            add_special_tokens=add_special_tokens,
        )
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


class EncoderTask(Task):
    """Prompt-tuned sentence embeddings, classified by cosine to the label names' embeddings."""

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)

    def _label_embeddings(self) -> torch.Tensor:
        if "labels" not in self._label_cache:
            with torch.no_grad():
                batch = self._encode(self.label_names)
                hidden = self.model.model(**batch).last_hidden_state  # the base model: no prompt
                self._label_cache["labels"] = self._pool(hidden.float(), batch["attention_mask"])
        return self._label_cache["labels"]

    def scores(self, texts: list[str]) -> torch.Tensor:
        batch = self._encode(texts)
        hidden = self.peft_model(**batch).last_hidden_state[:, self.p :]  # drop the prompt positions
        return self._pool(hidden.float(), batch["attention_mask"]) @ self._label_embeddings().T

    def loss(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        logits = self.scores(texts) / self.temperature
        return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))

    @torch.no_grad()
    def zero_shot(self, texts: list[str]) -> np.ndarray:
        batch = self._encode(texts)
        hidden = self.model.model(**batch).last_hidden_state
        pooled = self._pool(hidden.float(), batch["attention_mask"])
        return (pooled @ self._label_embeddings().T).argmax(1).cpu().numpy()


class _GenerativeTask(Task):
    """Shared rank classification for causal and seq2seq: log-likelihood of each label's tokens."""

    def _label_ids(self, label: str) -> list[int]:
        raise NotImplementedError

    def _pairs(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        """Sum log-likelihood of label ``targets[i]`` after text i (float [B]); differentiable."""
        raise NotImplementedError

    def scores(self, texts: list[str]) -> torch.Tensor:
        n, labels = len(texts), len(self.label_names)
        flat_texts = [t for t in texts for _ in range(labels)]
        flat_targets = [j for _ in texts for j in range(labels)]
        return self._pairs(flat_texts, flat_targets).view(n, labels)

    def loss(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        lengths = torch.tensor([len(self._label_ids(self.label_names[t])) for t in targets], device=self.device)
        return -(self._pairs(texts, targets) / lengths).mean()

    @torch.no_grad()
    def zero_shot(self, texts: list[str]) -> np.ndarray:
        with self.peft_model.disable_adapter():
            return self.predict(texts)


class CausalTask(_GenerativeTask):
    """The label is the continuation after the input text."""

    def _label_ids(self, label: str) -> list[int]:
        ids = self.model.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"label {label!r} tokenises to nothing; use a word the tokenizer knows")
        return ids

    def _pairs(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        tok = self.model.tokenizer
        rows, spans = [], []
        for text, target in zip(texts, targets, strict=True):
            label = self._label_ids(self.label_names[target])
            ids = tok(text, add_special_tokens=True, truncation=True, max_length=self.max_length - len(label))[
                "input_ids"
            ]
            spans.append((len(ids), len(label)))
            rows.append(ids + label)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        logits = self.peft_model(input_ids=input_ids, attention_mask=mask).logits
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

    def _pairs(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        batch = self._encode(texts)
        labels = [self._label_ids(self.label_names[t]) for t in targets]
        width = max(len(x) for x in labels)
        target = torch.full((len(labels), width), -100, dtype=torch.long)
        for i, x in enumerate(labels):
            target[i, : len(x)] = torch.tensor(x)
        target = target.to(self.device)
        logits = self.peft_model(**batch, labels=target).logits.float()
        logp = logits.log_softmax(-1)
        safe = target.clamp_min(0)
        picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        return (picked * (target != -100)).sum(1)


_TASKS = {"encoder": EncoderTask, "causal": CausalTask, "seq2seq": Seq2SeqTask}


def make_task(
    model: LoadedModel,
    peft_model: PeftModel,
    label_names: list[str],
    *,
    max_length: int = 128,
    temperature: float = 0.05,
) -> Task:
    """The task for the model's kind.

    Raises:
        ValueError: fewer than two labels.
    """
    if len(label_names) < 2:
        raise ValueError(f"classification needs at least 2 labels, got {label_names}")
    return _TASKS[model.kind](model, peft_model, list(label_names), max_length=max_length, temperature=temperature)
