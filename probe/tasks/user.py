"""Tasks of objectives probe did not train, so that a reading of what a prompt does measures the task the prompt was
trained on:

- :class:`ClassifierHeadTask`: a PEFT ``SEQ_CLS`` prompt with its trained classifier head (the adapter's
  ``modules_to_save``): the label scores are the head's logits, through PEFT's own forward pass.
- :class:`ScoringTask`: the caller's own scoring function, ``score(model, batch) -> logits [B, L]`` (``model`` is
  the PEFT-wrapped model, or the frozen model without the prompt; ``batch`` holds ``input_ids`` and
  ``attention_mask``); the loss is cross-entropy over those logits.
- :class:`LossTask`: the caller's own objective, ``loss(model, batch) -> float [B]``, each example's loss (lower is
  better). ``model`` is the prompted model (or the frozen one, for zero-shot) whose outputs line up with the batch's
  own tokens: probe drops the p virtual positions PEFT prepends from ``logits`` (causal) and ``last_hidden_state``
  (encoders), so position t of the output is token t of ``input_ids`` with or without the prompt. ``batch`` holds
  ``input_ids`` and ``attention_mask`` (right-padded), and per example ``label`` (a long tensor of class indices)
  or, for data with free-text targets, ``target`` (a list of strings); the model ignores those two keys, so
  ``model(**batch)`` works. There is no accuracy: readings rank, compare and keep gains by the loss alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from probe.core.batching import plan_batches
from probe.core.data import DataSplits
from probe.core.names import USER_LOSS
from probe.tasks.base import PASS_OVERHEAD, Target, Task

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.core.data import LabelledData
    from probe.core.models import LoadedModel
    from probe.formats.run import Run

Score = Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]
"""A caller's scoring function: (model, batch) -> float [B, L] logits over the labels."""
HEAD_PREFIX = "base_model."
UserLoss = Callable[[Any, dict[str, Any]], torch.Tensor]
"""A caller's loss: (model, batch) -> float [B], each example's loss (see the module docstring)."""
PER_EXAMPLE_KEYS = ("label", "target")
"""The batch's keys that say what each example should give; the model is not passed them."""


class ClassifierHeadTask(Task):
    """A ``SEQ_CLS`` prompt read with the classifier head it was trained with (see the module docstring)."""

    name: ClassVar[str] = "classifier-head"

    @property
    def logit_scale(self) -> float:
        return 1.0

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        batch = self.pad(ids)
        if prompt:
            return self._prompted()(**batch).logits.float()
        return self.peft_model.base_model(**batch).logits.float()  # the head on the input alone: no prompt

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        logits = self._scores(ids)
        return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))


@dataclass
class ScoringTask(Task):
    """A task scored by the caller's function (see the module docstring)."""

    score: Score | None = None
    name: ClassVar[str] = "custom"

    @property
    def logit_scale(self) -> float:
        return 1.0

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        if self.score is None:
            raise ValueError("a ScoringTask needs score=: a function (model, batch) -> logits over the labels")
        batch = self.pad(ids)
        module = self._prompted() if prompt else self.model.model
        logits = self.score(module, batch)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(ids), len(self.label_names)):
            shape = tuple(getattr(logits, "shape", ()))
            raise ValueError(
                f"the scoring function returned {type(logits).__name__} of shape {shape}; expected a tensor of "
                f"shape ({len(ids)}, {len(self.label_names)}): one logit per label per text"
            )
        return logits.float()

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        logits = self._scores(ids)
        return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))


class AlignedOutputs(torch.nn.Module):
    """A model as a caller's loss sees it: called with the batch (its per-example keys left out), its per-position
    outputs without the ``virtual`` positions PEFT prepends (see the module docstring)."""

    def __init__(self, inner: torch.nn.Module, virtual: int, kind: str) -> None:
        super().__init__()
        self.inner, self.virtual, self.kind = inner, virtual, kind

    def forward(self, **batch: Any) -> Any:
        out = self.inner(**{k: v for k, v in batch.items() if k not in PER_EXAMPLE_KEYS})
        width = batch["input_ids"].shape[1] if "input_ids" in batch else None
        if self.virtual and self.kind != "seq2seq" and width is not None:  # seq2seq: the prompt is the encoder's
            for name in ("logits", "last_hidden_state"):
                value = getattr(out, name, None)
                if isinstance(value, torch.Tensor) and value.ndim >= 2 and value.shape[1] == width + self.virtual:
                    out[name] = value[:, self.virtual :]
        return out


@dataclass
class LossTask(Task):
    """A task measured by the caller's own loss (see the module docstring)."""

    loss_fn: UserLoss | None = None
    name: ClassVar[str] = "custom"
    objective: ClassVar[str] = USER_LOSS

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        raise ValueError(
            "a caller's loss gives no label scores; read it through Task.outcome(data) (the loss per example)"
        )

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        return self.example_loss(ids, targets).mean()

    def example_loss(self, ids: list[list[int]], targets: Sequence[Target], *, prompt: bool = True) -> torch.Tensor:
        """float [B]: the caller's loss of each row of token ids against its target (a class index or a text),
        with the prompt or without it (the frozen model)."""
        if self.loss_fn is None:
            raise ValueError("a LossTask needs loss_fn: a function (model, batch) -> float [B], each example's loss")
        batch: dict[str, Any] = self.pad(ids)
        if all(isinstance(t, str) for t in targets):
            batch["target"] = list(targets)
        else:
            batch["label"] = torch.tensor([int(t) for t in targets], dtype=torch.long, device=self.device)
        inner = self._prompted() if prompt else self.model.model
        losses = self.loss_fn(AlignedOutputs(inner, self.p if prompt else 0, self.model.kind), batch)
        if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (len(ids),):
            shape = tuple(getattr(losses, "shape", ()))
            raise ValueError(
                f"the loss function returned {type(losses).__name__} of shape {shape}; expected a tensor of shape "
                f"({len(ids)},): one loss per example (reduction='none'), not their mean"
            )
        return losses.float()

    def outcome(self, data: LabelledData, *, prompt: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(NaN [N], loss [N]): a caller's loss defines no accuracy, only each example's loss."""
        ids, targets = self.tokenize(data.texts), data.loss_targets
        plan = plan_batches(
            [len(x) for x in ids],
            max_tokens=self.eval_max_tokens,
            overhead=PASS_OVERHEAD,
            extra=self.p if prompt else 0,
        )
        loss = np.empty(len(ids))
        self.peft_model.eval()
        with torch.inference_mode():
            for rows in plan.batches:
                part = self.example_loss([ids[i] for i in rows], [targets[i] for i in rows], prompt=prompt)
                loss[rows] = part.cpu().numpy()
        return np.full(len(ids), np.nan), loss


@dataclass(frozen=True)
class ClassifierHead:
    """A trained sequence-classification head, read from a ``SEQ_CLS`` adapter: its tensors by parameter name
    (``classifier.weight``, ...) and its number of classes."""

    tensors: dict[str, torch.Tensor]
    classes: int

    def digest(self) -> str:
        """sha256 of the head's tensors (names, shapes and bytes): what a cache of its scores is keyed by."""
        import hashlib

        h = hashlib.sha256()
        for name in sorted(self.tensors):
            tensor = self.tensors[name].detach().to("cpu", torch.float32).contiguous()
            h.update(f"{name}:{tuple(tensor.shape)}".encode())
            h.update(tensor.numpy().tobytes())
        return h.hexdigest()

    @classmethod
    def from_adapter(cls, folder: str | Path) -> ClassifierHead:
        """The head saved in a PEFT ``SEQ_CLS`` adapter folder (its ``modules_to_save``).

        Raises:
            ValueError: the adapter holds no head.
        """
        from probe.formats.files import read_adapter_tensors

        tensors = {
            k.removeprefix(HEAD_PREFIX): v
            for k, v in read_adapter_tensors(Path(folder)).items()
            if k.startswith(HEAD_PREFIX)
        }
        weights = [v for k, v in tensors.items() if k.endswith("weight") and v.ndim == 2]
        if not weights:
            raise ValueError(
                f"the SEQ_CLS adapter '{folder}' holds no classifier head (its modules_to_save); save it with the "
                "head, or read the prompt under another task"
            )
        return cls(tensors=tensors, classes=int(weights[-1].shape[0]))

    @classmethod
    def of_run(cls, run: Run, data: Any, test_size: int | None) -> tuple[ClassifierHead, DataSplits]:
        """A recorded ``SEQ_CLS`` run's own head (its final adapter) and ``data`` split as the run split it, with the
        classes in the head's order (the model's ``id2label``, recorded as the run's labels).

        Raises:
            ValueError: the run kept no adapter, or its class order is unknown or does not fit the data.
        """
        from dataclasses import replace

        from probe.core.frames import as_splits
        from probe.tasks.evaluation import eval_subset

        adapter = run.path / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            raise ValueError(
                f"run '{run.path}' is a SEQ_CLS prompt but kept no adapter with its head (recorded before probe kept "
                "it); explain one of the Trainer's checkpoint adapters instead, with --data"
            )
        head = cls.from_adapter(adapter)
        order = list(run.manifest.labels)
        if len(order) != head.classes:
            raise ValueError(
                f"run '{run.path}': the order of its head's {head.classes} classes is unknown (the model's id2label "
                "names none); set id2label on the model before training (or labels= on ProbeCallback / track)"
            )
        splits = as_splits(data, seed=int(run.manifest.seed or 0))
        if set(splits.train.label_names) != set(order):
            raise ValueError(
                f"run '{run.path}': its head's classes {order} are not the data's {splits.train.label_names}"
            )
        splits = DataSplits(replace(splits.train, label_names=order), replace(splits.test, label_names=order))
        if test_size:
            splits = replace(splits, test=eval_subset(splits.test, test_size, int(run.manifest.seed or 0)))
        return head, splits

    def model(self, model: LoadedModel) -> torch.nn.Module:
        """The frozen model with this head on top, loaded from the same weights as ``model``."""
        from transformers import AutoModelForSequenceClassification

        head = AutoModelForSequenceClassification.from_pretrained(model.location or model.name, num_labels=self.classes)
        missing = head.load_state_dict(self.tensors, strict=False).unexpected_keys
        if missing:
            raise ValueError(f"the classifier head's tensors {missing[:3]} do not fit {model.name}'s head")
        head.eval()
        head.requires_grad_(False)
        return head.to(model.device)


def wrap_head_with_prompt(base: torch.nn.Module, model: LoadedModel, vectors: np.ndarray) -> PeftModel:
    """A copy of ``base`` (the model with its trained head) wrapped by PEFT as a ``SEQ_CLS`` prompt of ``vectors``
    (input rows, or a flat prefix: :func:`probe.tasks.base.attach_prompt`)."""
    from probe.tasks.base import attach_prompt

    return attach_prompt(copy.deepcopy(base), model, vectors, "SEQ_CLS")  # PEFT wraps the head in place: one copy each


def head_labels(peft_model: Any) -> list[str] | None:
    """A sequence-classification model's class names in its head's order (``config.id2label``), or None when the
    model does not name them (transformers' default ``LABEL_0``, ``LABEL_1``, ...): then the order is unknown."""
    id2label = getattr(_config_of(peft_model), "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(len(id2label))]
    if not names or any(not n or n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return names


def check_head_labels(peft_model: Any, labels: list[str]) -> None:
    """Refuse ``labels`` that are not a sequence-classification model's classes in its head's order: probe reads the
    head in the order of the labels it records (errors.md 195; they were taken over ``config.id2label``).

    Raises:
        ValueError: another order or other names than ``id2label``'s, or another number of labels than the head's.
    """
    named = head_labels(peft_model)
    if named is not None and list(labels) != named:
        raise ValueError(
            f"labels {list(labels)} are not the model's classes in its head's order {named} (config.id2label), "
            "the order probe reads the head in: drop labels=, or give them in that order"
        )
    classes = getattr(_config_of(peft_model), "num_labels", None)
    if isinstance(classes, int) and classes != len(labels):
        raise ValueError(
            f"labels {list(labels)} name {len(labels)} classes; the model's head has {classes}: give one label per "
            "class, in the head's order"
        )


def _config_of(peft_model: Any) -> Any:
    """The wrapped model's transformers config (None when there is none)."""
    return getattr(getattr(peft_model, "base_model", peft_model), "config", None)
