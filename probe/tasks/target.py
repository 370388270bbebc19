"""The free-text target objective: each example has a target text, and what a prompt does is how likely it makes
that text after the input (causal and seq2seq models, through PEFT's own wrappers).

- Per example, the loss is the **mean** negative log-likelihood over the target's tokens: what
  ``peft_model(input_ids=..., labels=...).loss`` gives for that example alone (PEFT prepends the virtual tokens;
  their positions are dropped here, so a causal model's logits line up with the text's own tokens). The mean, not
  the sum, so that long and short targets weigh alike and the figures match the training loss.
- "Correct" is the share of the target's tokens that are the next-token argmax (token accuracy), in [0, 1].
- The target is tokenised as a label is (:class:`probe.tasks.kinds.CausalTask`: a leading space, no special
  tokens; :class:`probe.tasks.kinds.Seq2SeqTask`: the tokenizer's own, end of sequence included).

Classification is the other objective (:class:`probe.tasks.base.Task`); both give :meth:`Task.outcome`, which is
all the readings of what a prompt does use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from probe.core.batching import plan_batches
from probe.core.data import TARGET_CLASS, LabelledData
from probe.core.names import TARGET_LIKELIHOOD
from probe.tasks.base import EVAL_MAX_TOKENS, PASS_OVERHEAD, TRAIN_MAX_TOKENS, Target, Task
from probe.tasks.kinds import CausalTask, Seq2SeqTask, _GenerativeTask

if TYPE_CHECKING:
    from peft import PeftModel

    from probe.core.models import LoadedModel


class TargetTask(_GenerativeTask):
    """A task under the target objective: a generative task's passes read against each example's target text (see
    the module docstring)."""

    name: ClassVar[str] = "target"
    objective: ClassVar[str] = TARGET_LIKELIHOOD

    def _rows_per_text(self) -> int:
        return 1

    def _scores(self, ids: list[list[int]], *, prompt: bool = True) -> torch.Tensor:
        raise ValueError(
            "the target objective has no label scores; read it through Task.outcome(data) (loss and token accuracy "
            "per example)"
        )

    def _loss(self, ids: list[list[int]], targets: Sequence[Target]) -> torch.Tensor:
        texts = [t for t in targets if isinstance(t, str)]
        if len(texts) != len(targets):  # a class index would tokenise as its digits: never read silently
            raise TypeError(
                f"the target objective's loss takes target texts, got {type(targets[0]).__name__}s; pass "
                "data.loss_targets (the data's target_texts), not class indices"
            )
        wanted = [self._label_ids(t) for t in texts]
        rows = self._target_logprobs(ids, wanted)
        return torch.stack([_nll(logp, w).mean() for logp, w in zip(rows, wanted, strict=True)]).mean()

    def outcome(self, data: LabelledData, *, prompt: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(token accuracy [N], loss [N]): per example, the share of target tokens that are the next-token argmax,
        and the mean negative log-likelihood of the target's tokens (see the module docstring).

        Raises:
            ValueError: data without free-text targets.
        """
        correct, loss = np.empty(len(data)), np.empty(len(data))
        for i, logp, wanted in self.passes(data, prompt=prompt):
            w = torch.tensor(wanted, device=logp.device)
            loss[i] = float(_nll(logp, wanted).mean())
            correct[i] = float((logp.argmax(-1) == w).double().mean())
        return correct, loss

    def passes(self, data: LabelledData, *, prompt: bool = True) -> Iterator[tuple[int, torch.Tensor, list[int]]]:
        """Each example's (row, next-token log-probabilities float [T, V] at its target's tokens, the target's T
        token ids), in length-bucketed batches under inference mode.

        Raises:
            ValueError: data without free-text targets.
        """
        targets = self.target_ids(data)
        ids = self.tokenize(data.texts)
        lengths = [len(x) + len(t) for x, t in zip(ids, targets, strict=True)]
        extra = self.p if prompt else 0
        plan = plan_batches(lengths, max_tokens=self.eval_max_tokens, overhead=PASS_OVERHEAD, extra=extra)
        self.peft_model.eval()
        with torch.inference_mode():
            for rows in plan.batches:
                part, wanted = [ids[i] for i in rows], [targets[i] for i in rows]
                if prompt:
                    logps = self._target_logprobs(part, wanted)
                else:
                    with self.peft_model.disable_adapter():
                        logps = self._target_logprobs(part, wanted)
                yield from zip(rows, logps, wanted, strict=True)

    def target_ids(self, data: LabelledData) -> list[list[int]]:
        """Each example's target as token ids (as the model must produce them).

        Raises:
            ValueError: data without free-text targets.
        """
        if data.target_texts is None:
            raise ValueError(
                f"data '{data.source}' has labels, not free-text targets; the target objective reads a target text "
                "per example: name its column (--target-column, target_column=)"
            )
        return [self._label_ids(t) for t in data.target_texts]


def _nll(logp: torch.Tensor, wanted: list[int]) -> torch.Tensor:
    """float [T]: the negative log-likelihood of each wanted token under its row of ``logp`` [T, V]."""
    index = torch.tensor(wanted, device=logp.device)
    return -logp[torch.arange(len(wanted), device=logp.device), index]


class CausalTargetTask(TargetTask, CausalTask):
    """The target is the continuation after the input text."""


class Seq2SeqTargetTask(TargetTask, Seq2SeqTask):
    """The prompt goes on the encoder; the target text (plus end of sequence) is the decoder's."""


def make_target_task(
    model: LoadedModel,
    peft_model: PeftModel,
    *,
    max_length: int = 128,
    eval_max_tokens: int = EVAL_MAX_TOKENS,
    train_max_tokens: int = TRAIN_MAX_TOKENS,
) -> Task:
    """The target objective's task for a causal or seq2seq model.

    Raises:
        ValueError: an encoder model, which produces no text to score.
    """
    classes = {"causal": CausalTargetTask, "seq2seq": Seq2SeqTargetTask}
    if model.kind not in classes:
        raise ValueError(
            f"free-text targets need a model that generates text; {model.name} is a model of kind '{model.kind}', "
            "which generates none. Use a causal or seq2seq model, or read this data as classification (--label-column "
            "instead of --target-column)"
        )
    return classes[model.kind](
        model,
        peft_model,
        [TARGET_CLASS],
        max_length=max_length,
        eval_max_tokens=eval_max_tokens,
        train_max_tokens=train_max_tokens,
    )
