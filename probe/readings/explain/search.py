"""Exact discrete distillation: a soft prompt's job done by real tokens, found by coordinate search in the style
of AutoPrompt (Shin et al. 2020) and GCG (Zou et al. 2023), with the soft prompt as the teacher.

The objective of a hard prompt on a batch of training texts is the mean over the texts of

    KL(soft prompt's class distribution ‖ hard prompt's) + task_weight × cross-entropy on the labels
    + readability_weight × (share of the prompt's tokens that are not whole words)

where a class distribution is softmax(label scores × the task's logit scale), as :mod:`.faithfulness` reads it,
and the cross-entropy is the one :meth:`Task.example_losses` computes. Under the target objective the KL is between
next-token distributions, mean over the target's tokens, and the loss the target's mean NLL; under a caller's loss
the objective is that loss alone (:func:`loss_objectives`), and the held-out slice chooses by it (:func:`merit`).
``task_weight`` defaults to 1: the labels and the teacher count alike, so where the soft prompt is wrong the search
is not pushed to copy its mistake (0 distils the soft prompt alone); ``readability_weight`` to 0.

Each step, on the step's batch (which depends only on (seed, step)):

1. one forward-backward pass of the current prompt gives the gradient with respect to its embedding rows,
   g [L, d]; the gradient through one-hot token vectors is g Eᵀ [L, V] (the prompt is one-hot × E);
2. ``candidates`` swaps are proposed (a torch.Generator seeded by (seed, step)): each a position drawn uniformly
   and one of the ``top_k`` searchable tokens with the most negative gradient there, never the current token;
3. every candidate and the current prompt are scored exactly on the batch, in batched passes of candidates ×
   texts rows (each row carries its own candidate's prompt), and the best candidate is kept if its objective is
   below the current prompt's. Nothing is approximated in what is kept: the swap is judged at the very tokens it
   produces.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from probe.core.data import LabelledData
from probe.core.io import CacheEntry
from probe.core.names import CLASSIFICATION, USER_LOSS
from probe.core.progress import progress_bar
from probe.core.sampling import seeded_batches
from probe.readings.explain.readability import word_mask
from probe.readings.explain.readout import Readout
from probe.tasks.base import EVAL_MAX_TOKENS, Task, prompt_parameter
from probe.tasks.target import TargetTask

LossBatch = tuple[list[list[int]], list[Any], list[torch.Tensor] | None]  # token ids, targets, the teacher's log-probs


@dataclass(frozen=True)
class SearchSettings:
    """The coordinate search's own settings (see the module docstring).

    Attributes:
        candidates: swaps scored exactly per step (B).
        top_k: tokens per position that a swap is drawn from, by most negative one-hot gradient.
        task_weight: weight of the cross-entropy on the labels beside the KL to the soft prompt.
        readability_weight: weight of the share of tokens that are not whole words (0: not weighed).
    """

    candidates: int = 32
    top_k: int = 64
    task_weight: float = 1.0
    readability_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("candidates", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}; expected a positive integer")
        for name in ("task_weight", "readability_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} is {value!r}; expected a finite number, 0 or more")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (part of the resumable state's key)."""
        return asdict(self)


@dataclass
class Searched:
    """The search as it goes: the current prompt, the best one on the held-out slice, the next step."""

    ids: np.ndarray
    best_ids: np.ndarray
    best_acc: float
    best_step: int
    start_acc: float
    first: int = 1


def _distribution(scores: torch.Tensor, scale: float) -> torch.Tensor:
    return (scores.float() * scale).log_softmax(-1)


def _objective(
    scores: torch.Tensor, soft_logp: torch.Tensor, targets: torch.Tensor, scale: float, task_weight: float
) -> torch.Tensor:
    """Per prompt [..., ] the mean over texts of KL(soft ‖ hard) + task_weight × CE; scores [..., n, labels]."""
    logp = _distribution(scores, scale)
    kl = (soft_logp.exp() * (soft_logp - logp)).sum(-1)
    ce = -logp.gather(-1, targets.expand(*logp.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return (kl + task_weight * ce).mean(-1)


@contextlib.contextmanager
def _row_prompts(task: Task, prompts: torch.Tensor) -> Iterator[None]:
    """Within the block, the PEFT model gives each row of a pass its own prompt: the batch is read as
    ``prompts.shape[0]`` equal runs of consecutive rows, run c carrying ``prompts[c]`` (float32 [C, L, d])."""
    peft = task.peft_model

    def get_prompt(batch_size: int, task_ids: Any = None, max_cache_len: Any = None) -> torch.Tensor:
        count = prompts.shape[0]
        assert batch_size % count == 0, (batch_size, count)
        return prompts.repeat_interleave(batch_size // count, dim=0)

    peft.get_prompt = get_prompt  # type: ignore[method-assign]
    try:
        yield
    finally:
        del peft.get_prompt


def candidate_scores(readout: Readout, task: Task, candidates: np.ndarray, texts: list[str]) -> torch.Tensor:
    """float [C, n, labels]: the label scores of every text under every candidate prompt (int64 [C, L] token ids),
    in passes of whole candidates × texts under a token budget."""
    embeddings = torch.from_numpy(readout.model.embeddings_numpy()[candidates]).to(task.device)
    lengths = [len(x) for x in task.tokenize(texts)]
    per_text = len(readout.labels) if readout.model.kind in ("causal", "seq2seq") else 1
    per_candidate = (max(lengths) + candidates.shape[1]) * len(texts) * per_text
    chunk = max(1, EVAL_MAX_TOKENS // per_candidate)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(candidates), chunk):
            part = embeddings[start : start + chunk]
            with _row_prompts(task, part):
                parts.append(task.scores(texts * part.shape[0]).float().view(part.shape[0], len(texts), -1))
    return torch.cat(parts)


def _gradient(task: Task, rows: torch.Tensor, texts: list[str], loss_of: Any) -> torch.Tensor:
    """float [L, d]: the objective's gradient with respect to the prompt's embedding rows."""
    weight = prompt_parameter(task.peft_model)
    with torch.no_grad():
        weight.copy_(rows.to(weight.device, weight.dtype))
    weight.grad = None
    (grad,) = torch.autograd.grad(loss_of(task.scores(texts)), weight)
    return grad.detach().float().cpu()


def propose(
    grad: torch.Tensor, embeddings: torch.Tensor, ids: np.ndarray, searchable: torch.Tensor, top_k: int, count: int,
    generator: torch.Generator,
) -> np.ndarray:  # fmt: skip
    """int64 [C, L]: up to ``count`` distinct one-token swaps of ``ids`` drawn from the top-k tokens by negative
    one-hot gradient (``grad`` [L, d] @ ``embeddings`` [V, d]ᵀ) among ``searchable`` (int64 [n] token ids)."""
    onehot = grad @ embeddings[searchable].T  # [L, n]: d objective / d one-hot, searchable tokens only
    current = torch.from_numpy(ids).unsqueeze(1) == searchable.unsqueeze(0)
    onehot = onehot.masked_fill(current, math.inf)  # never propose the token already there
    top = (-onehot).topk(min(top_k, searchable.numel() - 1), dim=1).indices  # [L, k]
    positions = torch.randint(0, len(ids), (count,), generator=generator)
    picks = torch.randint(0, top.shape[1], (count,), generator=generator)
    out, seen = [], set()
    for position, pick in zip(positions.tolist(), picks.tolist(), strict=True):
        token = int(searchable[top[position, pick]])
        if (position, token) not in seen:
            seen.add((position, token))
            swapped = ids.copy()
            swapped[position] = token
            out.append(swapped)
    return np.stack(out)


def search_step(
    readout: Readout, task: Task, soft_rows: np.ndarray, ids: np.ndarray, batch: LabelledData, settings: SearchSettings,
    generator: torch.Generator,
) -> np.ndarray:  # fmt: skip
    """One step: the gradient, the proposed swaps, all scored exactly; the ids kept (the best, or ``ids``)."""
    if readout.objective != CLASSIFICATION:
        return _loss_step(readout, task, soft_rows, ids, batch, settings, generator)
    scale = task.logit_scale
    soft_logp = _distribution(torch.from_numpy(readout.scores(soft_rows, batch)), scale)
    targets = torch.tensor(batch.targets)
    embeddings = torch.from_numpy(readout.model.embeddings_numpy())
    words = torch.from_numpy(word_mask(readout.model))

    def loss_of(scores: torch.Tensor) -> torch.Tensor:
        return _objective(scores.unsqueeze(0), soft_logp, targets, scale, settings.task_weight)[0]

    grad = _gradient(task, embeddings[ids], batch.texts, loss_of)
    searchable = torch.from_numpy(readout.index.token_ids)
    swaps = propose(grad, embeddings, ids, searchable, settings.top_k, settings.candidates, generator)
    prompts = np.concatenate([ids[None], swaps])  # the current prompt first: judged in the same passes
    scores = candidate_scores(readout, task, prompts, batch.texts)
    objective = _objective(scores, soft_logp, targets, scale, settings.task_weight)
    if settings.readability_weight:
        objective = objective + settings.readability_weight * (~words[torch.from_numpy(prompts)]).float().mean(1)
    return prompts[int(objective.argmin())]


def _loss_step(
    readout: Readout, task: Task, soft_rows: np.ndarray, ids: np.ndarray, batch: LabelledData, settings: SearchSettings,
    generator: torch.Generator,
) -> np.ndarray:  # fmt: skip
    """:func:`search_step` under a loss objective (see the module docstring): the target objective's KL to the soft
    prompt's next-token distributions plus ``task_weight`` x the target's loss, or a caller's loss alone."""
    ids_in, wanted, soft = _loss_batch(readout, task, soft_rows, batch)
    embeddings = torch.from_numpy(readout.model.embeddings_numpy())
    weight = prompt_parameter(task.peft_model)
    with torch.no_grad():
        weight.copy_(embeddings[ids].to(weight.device, weight.dtype))
    value = _row_objectives(task, ids_in, wanted, soft, settings.task_weight).mean()
    (grad,) = torch.autograd.grad(value, weight)
    searchable = torch.from_numpy(readout.index.token_ids)
    swaps = propose(
        grad.detach().float().cpu(), embeddings, ids, searchable, settings.top_k, settings.candidates, generator
    )
    prompts = np.concatenate([ids[None], swaps])  # the current prompt first: judged in the same passes
    objective = loss_objectives(readout, task, soft_rows, prompts, batch, settings.task_weight, (ids_in, wanted, soft))
    if settings.readability_weight:
        words = torch.from_numpy(word_mask(readout.model))
        objective = objective + settings.readability_weight * (~words[torch.from_numpy(prompts)]).float().mean(1)
    return prompts[int(objective.argmin())]


def _loss_batch(readout: Readout, task: Task, soft_rows: np.ndarray, batch: LabelledData) -> LossBatch:
    """(token ids, targets, the soft prompt's next-token log-probabilities at each target token under the target
    objective, else None) of a batch."""
    ids_in = task.tokenize(batch.texts)
    wanted: list[Any] = task.target_ids(batch) if isinstance(task, TargetTask) else list(batch.loss_targets)
    teacher = readout.set_prompt(soft_rows)
    if not isinstance(teacher, TargetTask):
        return ids_in, wanted, None
    with torch.inference_mode():
        return ids_in, wanted, [s.detach() for s in teacher._target_logprobs(ids_in, wanted)]


def loss_objectives(
    readout: Readout, task: Task, soft_rows: np.ndarray, prompts: np.ndarray, batch: LabelledData, task_weight: float,
    known: LossBatch | None = None,
) -> torch.Tensor:  # fmt: skip
    """float [C]: the loss objective's mean over ``batch`` of each prompt (int64 [C, L] token ids), in passes of whole
    prompts x texts under a token budget, each row carrying its prompt; ``known``: the batch's :func:`_loss_batch`."""
    ids_in, wanted, soft = known or _loss_batch(readout, task, soft_rows, batch)  # given: no second teacher pass
    rows = torch.from_numpy(readout.model.embeddings_numpy()[prompts]).to(task.device)
    longest = max(len(w) for w in wanted) if isinstance(task, TargetTask) else 0
    per_candidate = (max(len(x) for x in ids_in) + longest + prompts.shape[1]) * len(ids_in)
    chunk, parts = max(1, EVAL_MAX_TOKENS // per_candidate), []
    with torch.inference_mode():
        for start in range(0, len(prompts), chunk):
            part = rows[start : start + chunk]
            with _row_prompts(task, part):
                n = part.shape[0]  # n copies of the batch, one per prompt: the teachers repeat alike (None stays)
                values = _row_objectives(task, ids_in * n, wanted * n, soft and soft * n, task_weight)
            parts.append(values.float().view(n, len(ids_in)).mean(1).cpu())
    return torch.cat(parts)


def _row_objectives(
    task: Task, ids: list[list[int]], wanted: list[Any], soft: list[torch.Tensor] | None, task_weight: float
) -> torch.Tensor:
    """float [rows]: each row's objective under a loss objective: a caller's loss, or under the target objective
    KL(``soft`` ‖ the row's next-token distribution) over the target's tokens + ``task_weight`` x its mean NLL."""
    if not isinstance(task, TargetTask):
        return task.example_loss(ids, wanted)  # type: ignore[attr-defined]
    out = []
    for i, (logp, w) in enumerate(zip(task._target_logprobs(ids, wanted), wanted, strict=True)):
        value = (
            -task_weight * logp[torch.arange(len(w), device=logp.device), torch.tensor(w, device=logp.device)].mean()
        )
        if soft is not None:
            value = value + (soft[i].exp() * (soft[i] - logp)).sum(-1).mean()
        out.append(value)
    return torch.stack(out)


def merit(readout: Readout, vectors: np.ndarray, data: LabelledData) -> float:
    """What a search keeps the best of on held-out rows: the accuracy (token accuracy under the target objective),
    or minus the mean loss under a caller's loss, which defines no accuracy."""
    correct, loss = readout.outcome(vectors, data)
    return -float(loss.mean()) if readout.objective == USER_LOSS else float(correct.mean())


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s proposals: depends only on (seed, step), so a resumed search draws alike."""
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 3]).integers(2**62)))


def coordinate_search(
    readout: Readout, soft_rows: np.ndarray, search: Searched, train: LabelledData, held: LabelledData, *,
    settings: SearchSettings, steps: int, batch_size: int, eval_every: int, seed: int, state: CacheEntry | None,
    progress: bool = False,
) -> Searched:  # fmt: skip
    """Run the search from ``search`` (a fresh start or a saved state) to ``steps``; the best prompt on the
    held-out slice is kept, scored every ``eval_every`` steps, and the state saved then."""
    task = readout.task(len(search.ids))
    bar = progress_bar(steps, "hard prompt (search)", enabled=progress)
    bar.update(search.first - 1)
    for step, rows in seeded_batches(len(train), batch_size, seed, start=search.first):
        if step > steps:
            break
        batch = train.subset([int(i) for i in rows])
        search.ids = search_step(readout, task, soft_rows, search.ids, batch, settings, step_generator(seed, step))
        bar.update(1)
        if step % eval_every == 0 or step == steps:
            acc = merit(readout, readout.model.embeddings_numpy()[search.ids], held)
            if acc > search.best_acc:
                search.best_ids, search.best_acc, search.best_step = search.ids.copy(), acc, step
            save_state(state, step, search)
    bar.close()
    return search


def begin(readout: Readout, start_ids: np.ndarray, held: LabelledData, state: CacheEntry | None) -> Searched:
    """The search at ``start_ids``, or where its saved state stopped."""
    vocab, length = readout.model.vocab_size, len(start_ids)

    def fits(arrays: dict[str, np.ndarray]) -> bool:
        return all(
            arrays[k].shape == (length,) and arrays[k].min() >= 0 and arrays[k].max() < vocab
            for k in ("ids", "best_ids")
        )

    saved = state.load(check=fits) if state is not None else None
    if saved is None:
        acc = merit(readout, readout.model.embeddings_numpy()[start_ids], held)
        return Searched(start_ids.copy(), start_ids.copy(), acc, 0, acc)
    meta, arrays = saved
    return Searched(
        arrays["ids"], arrays["best_ids"], meta["best_acc"], meta["best_step"], meta["start_acc"], meta["step"] + 1
    )


def save_state(state: CacheEntry | None, step: int, search: Searched) -> None:
    """Write the search's state (its current and best ids, the next step) when it has somewhere to go."""
    if state is None:
        return
    arrays = {"ids": np.asarray(search.ids, np.int64), "best_ids": np.asarray(search.best_ids, np.int64)}
    meta = {"step": step, "best_acc": search.best_acc, "best_step": search.best_step, "start_acc": search.start_acc}
    state.write(arrays, meta, strict=True)


def time_step(
    readout: Readout, task: Task, soft_rows: np.ndarray, *, ids: np.ndarray | None = None, batch_size: int = 16,
    settings: SearchSettings | None = None,
) -> float:  # fmt: skip
    """Seconds of one search step on this machine, on the first ``batch_size`` training texts: warmed once
    (allocation and kernel choice), then timed. ``ids`` default to the first searchable token at every position."""
    train = readout.splits.train
    batch = train.subset(list(range(min(batch_size, len(train)))))
    if ids is None:
        ids = np.full(len(soft_rows), readout.index.token_ids[0], dtype=np.int64)
    settings = settings or SearchSettings()
    gen = step_generator(0, 0)
    search_step(readout, task, soft_rows, ids, batch, settings, gen)  # warm
    began = time.perf_counter()
    search_step(readout, task, soft_rows, ids, batch, settings, gen)
    return time.perf_counter() - began


def estimate_seconds(
    readout: Readout, soft_rows: np.ndarray, ids: np.ndarray, *, settings: SearchSettings, steps: int,
    batch_size: int, eval_every: int, held_rows: int,
) -> float:  # fmt: skip
    """How long a search should take on this machine: one step and one held-out pass are timed on the real data,
    each after a warm-up, then multiplied out (the steps, the held-out scores, and five passes over the test rows
    for the record)."""
    task = readout.task(len(ids))
    step = time_step(readout, task, soft_rows, ids=ids, batch_size=batch_size, settings=settings)
    per_row = per_row_seconds(readout, readout.model.embeddings_numpy()[ids])
    evaluations = steps // eval_every + 2
    return steps * step + per_row * (evaluations * held_rows + 5 * len(readout.splits.test))


def per_row_seconds(readout: Readout, rows: np.ndarray, sample: int | None = 64) -> float:
    """Seconds per scored row on this machine: the faster of two passes over up to ``sample`` test rows (None:
    all), as the readings score them (length-bucketed; the first pass warms)."""
    test = readout.splits.test
    data = test if sample is None else test.subset(list(range(min(sample, len(test)))))
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        readout.outcome(rows, data)
        timings.append(time.perf_counter() - began)
    return min(timings) / len(data)


def time_gradient_step(readout: Readout, task: Task, batch_size: int = 16) -> float:
    """Seconds of one training step's loss and backward pass (PEZ's step) on the first ``batch_size`` training
    texts: warmed once (allocation and kernel choice), then timed."""
    train = readout.splits.train
    batch = train.texts[:batch_size], train.loss_targets[:batch_size]
    task.loss(*batch).backward()  # warm
    began = time.perf_counter()
    task.loss(*batch).backward()
    return time.perf_counter() - began
