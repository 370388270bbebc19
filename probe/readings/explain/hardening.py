"""The best real-token prompt: projected-gradient discrete optimisation in the style of PEZ (Wen et al. 2023).

A continuous prompt is kept. For every forward pass it is projected to its nearest tokens (by cosine, over
the searchable vocabulary). The gradient taken at that projected prompt updates the continuous copy (Adam).
Search starts from the soft prompt's nearest tokens. A held-out slice of the training data (seeded,
stratified) scores the projected prompt every ``eval_every`` steps, and the best one seen is kept, so the
result is never worse there than the start. Batches depend only on (seed, step), and the state (continuous
prompt, Adam moments, best so far) is saved every ``eval_every`` steps, so a search resumes where it stopped.

``method="search"`` replaces the projected gradient with exact coordinate search, the soft prompt as teacher
(:mod:`.search`); everything else (the start, the held-out choice, the record, resuming) is shared.

The hard prompt may be longer than the soft one (``length``: 1, 2, 4... times its positions). A longer prompt
starts from each soft position's ``length / p`` nearest tokens in turn, nearest first (``t0 t0' t1 t1' ...``):
every position keeps its own block, and the second-nearest token adds what the nearest alone lacks, where
repeating the nearest token would add a copy. A start given as token ids (a PEZ result, say) replaces it.

The result is a :class:`probe.formats.hard_prompt.HardPrompt`, saved as ``hard-prompt.json``, which probe loads
as a prompt: the embedding rows of its token ids. Its readability is measured beside its accuracy
(:mod:`.readability`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from probe.core.data import LabelledData
from probe.core.io import CacheEntry, cache_file
from probe.core.models import canonical_name
from probe.core.names import CLASSIFICATION, USER_LOSS
from probe.core.progress import progress_bar
from probe.core.sampling import seeded_batches
from probe.core.softprompt import SoftPrompt
from probe.formats.hard_prompt import HardPrompt
from probe.readings.explain import search as coordinate
from probe.readings.explain.costs import input_rows
from probe.readings.explain.readability import prompt_perplexity, word_share
from probe.readings.explain.readout import Readout, prompt_of
from probe.tasks.evaluation import eval_subset
from probe.tasks.kinds import prompt_parameter

STATE = "hard-prompt-state"
SEARCH_STATE = "hard-prompt-search-state"
STATE_FORMAT = 1
Method = Literal["pez", "search"]
METHODS: tuple[Method, ...] = ("pez", "search")


def _holdout(train: LabelledData, share: float, seed: int) -> tuple[LabelledData, LabelledData]:
    """(rows to take gradients on, held-out rows to choose the prompt on): seeded and stratified."""
    held = eval_subset(train, max(len(train.label_names), round(len(train) * share)), seed)
    held_rows = set(held.texts)
    rest = [i for i, t in enumerate(train.texts) if t not in held_rows]
    return train.subset(rest), held


@dataclass
class _Search:
    """The search as it goes: the continuous prompt, its optimiser, the best projection so far, the next step."""

    continuous: torch.nn.Parameter
    optimizer: torch.optim.Optimizer
    best_ids: np.ndarray
    best_acc: float
    best_step: int
    start_acc: float
    first: int = 1


def harden(
    prompt: SoftPrompt | np.ndarray | Any,
    readout: Readout,
    *,
    steps: int = 100,
    lr: float = 0.1,
    batch_size: int = 16,
    eval_every: int = 10,
    holdout: float = 0.2,
    seed: int = 0,
    state_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    method: Method = "pez",
    length: int | None = None,
    start: Any = None,
    search: coordinate.SearchSettings | None = None,
    budget_minutes: float | None = None,
) -> HardPrompt:
    """Search for the best real-token prompt from the soft prompt's nearest tokens (see the module docstring).

    Args:
        prompt: the soft prompt.
        readout: the model, data and task settings (:class:`probe.readings.explain.readout.Readout`).
        steps: optimisation steps.
        lr: Adam's learning rate on the continuous prompt (PEZ).
        batch_size: training texts per step.
        eval_every: score on the held-out slice (and save the state) every this many steps.
        holdout: share of the training data held out to choose the prompt.
        seed: seeds the held-out slice, the batches and the search's proposals.
        state_dir: where to keep the resumable state (a search with the same settings continues from it).
        progress: show a progress bar.
        method: "pez" (projected gradient) or "search" (exact coordinate search, :mod:`.search`).
        length: tokens in the hard prompt, a multiple of the soft prompt's positions (default: as many).
        start: token ids to start from (a PEZ result, say) instead of the nearest tokens.
        search: the coordinate search's settings (default :class:`SearchSettings`); read by ``method="search"``.
        budget_minutes: refuse, before the search, when :func:`estimate_seconds` says it would take longer (None:
            no budget; ``probe harden`` also reads ``$PROBE_BUDGET_MINUTES``).

    Raises:
        ValueError: non-positive steps or interval, a share outside (0, 1), a prompt of another dimension, an
            unknown method, a length that is not a positive multiple of the soft prompt's, or start ids that
            are not ids of the vocabulary or not as many as ``length``; the estimate over ``budget_minutes``.
    """
    vectors = input_rows(prompt_of(readout, prompt).vectors, readout, "the hard-prompt search")  # not a prefix
    asked: dict[str, Any] = {"method": method, "length": length, "steps": steps, "batch_size": batch_size}
    _within_budget(
        prompt, readout, budget_minutes, asked | {"eval_every": eval_every, "holdout": holdout, "search": search}
    )
    _check_settings(steps, eval_every, batch_size, holdout, lr)
    check_method(method, readout)
    start_ids = start_tokens(readout, vectors, length, start)
    train, held = _holdout(readout.splits.train, holdout, seed)
    settings = {
        "format": STATE_FORMAT,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "holdout": holdout,
        "start_ids": start_ids.tolist(),
        **readout.key(),  # the model, the task and the data: a search on other data starts afresh
    }
    if method == "search":
        search = search or coordinate.SearchSettings()
        settings |= {"method": method, "soft": _digest(vectors), **search.to_dict()}
        state = _state(state_dir, settings, search_state_name(len(start_ids), len(vectors)))
        found: Any = coordinate.coordinate_search(
            readout, vectors, coordinate.begin(readout, start_ids, held, state), train, held, settings=search,
            steps=steps, batch_size=batch_size, eval_every=eval_every, seed=seed, state=state, progress=progress,
        )  # fmt: skip
    else:
        state = _state(state_dir, settings | {"lr": lr}, STATE)
        found = _pez(
            readout, _begin(readout, start_ids, held, lr, state), train, held, steps=steps, batch_size=batch_size,
            eval_every=eval_every, seed=seed, state=state, progress=progress,
        )  # fmt: skip
    return _result(readout, vectors, start_ids, found, steps=steps, seed=seed, method=method)


def _pez(
    readout: Readout, pez: _Search, train: LabelledData, held: LabelledData, *, steps: int, batch_size: int,
    eval_every: int, seed: int, state: CacheEntry | None, progress: bool,
) -> _Search:  # fmt: skip
    """The PEZ loop from ``pez`` (a fresh start or a saved state) to ``steps``."""
    task = readout.task(len(pez.best_ids))
    bar = progress_bar(steps, "hard prompt", enabled=progress)
    bar.update(pez.first - 1)
    for step, rows in seeded_batches(len(train), batch_size, seed, start=pez.first):
        if step > steps:
            break
        goals = train.loss_targets
        _projected_step(readout, task, pez, [train.texts[i] for i in rows], [goals[i] for i in rows])
        bar.update(1)
        if step % eval_every == 0 or step == steps:
            ids = readout.nearest_ids(pez.continuous.detach().numpy())
            acc = coordinate.merit(readout, readout.model.embeddings_numpy()[ids], held)
            if acc > pez.best_acc:
                pez.best_ids, pez.best_acc, pez.best_step = ids, acc, step
            _save_state(state, step, pez)
    bar.close()
    return pez


def _check_settings(steps: int, eval_every: int, batch_size: int, holdout: float, lr: float) -> None:
    if steps < 1 or eval_every < 1 or batch_size < 1:
        raise ValueError(f"steps {steps}, eval_every {eval_every} and batch_size {batch_size} must be positive")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout is {holdout}; expected a share between 0 and 1")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
        raise ValueError(f"lr is {lr!r}; expected a positive learning rate (default 0.1)")


def start_tokens(readout: Readout, vectors: np.ndarray, length: int | None, start: Any) -> np.ndarray:
    """int64 [length]: where a search starts: ``start`` as given, else each soft position's ``length / p`` nearest
    tokens in turn, nearest first (the module docstring says why).

    Raises:
        ValueError: a length that is not a positive multiple of the soft prompt's positions, or start ids that
            are not integer ids of the vocabulary, or not ``length`` of them.
    """
    p = vectors.shape[0]
    if start is not None:
        ids = np.asarray(start)
        vocab = readout.model.vocab_size
        if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(
                f"start is {np.asarray(start).tolist()!r:.80}; expected a list of token ids from 0 to {vocab - 1} "
                "(a hard prompt's token_ids)"
            )
        if length is not None and length != ids.size:
            raise ValueError(f"start holds {ids.size} token ids but length is {length}; give as many ids as tokens")
        return ids.astype(np.int64)
    length = p if length is None else length
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < p or length % p:
        raise ValueError(
            f"length is {length!r}; expected a positive multiple of the soft prompt's {p} positions ({p}, {2 * p}, "
            f"{4 * p}, ...)"
        )
    if length == p:
        return readout.nearest_ids(vectors).astype(np.int64)
    return readout.index.search(vectors, int(length) // p)[1].reshape(-1).astype(np.int64)


def _digest(vectors: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(vectors, np.float32).tobytes()).hexdigest()


def _begin(readout: Readout, start_ids: np.ndarray, held: LabelledData, lr: float, state: CacheEntry | None) -> _Search:
    """The search at its start (the nearest tokens), or where its saved state stopped."""
    embeddings = readout.model.embeddings_numpy()
    continuous = torch.nn.Parameter(torch.from_numpy(embeddings[start_ids].copy()))
    optimizer = torch.optim.Adam([continuous], lr=lr)
    vocab, shape = readout.model.vocab_size, tuple(continuous.shape)

    def fits(arrays: dict[str, np.ndarray]) -> bool:  # what the model implies a saved state must hold
        ids = arrays["best_ids"]
        return arrays["continuous"].shape == shape and ids.shape == (shape[0],) and ids.min() >= 0 and ids.max() < vocab

    saved = state.load(check=fits) if state is not None else None
    if saved is None:
        start_acc = coordinate.merit(readout, embeddings[start_ids], held)
        return _Search(continuous, optimizer, start_ids, start_acc, 0, start_acc)
    meta, arrays = saved
    with torch.no_grad():
        continuous.copy_(torch.from_numpy(arrays["continuous"]))
    optimizer.load_state_dict(_adam_state(optimizer, arrays, meta))
    return _Search(
        continuous,
        optimizer,
        arrays["best_ids"],
        meta["best_acc"],
        meta["best_step"],
        meta["start_acc"],
        meta["step"] + 1,
    )


def _projected_step(readout: Readout, task: Any, search: _Search, texts: list[str], targets: list[int]) -> None:
    """One PEZ step: the loss at the continuous prompt's projection, its gradient applied to the continuous copy."""
    weight = prompt_parameter(task.peft_model)
    ids = readout.nearest_ids(search.continuous.detach().numpy())
    with torch.no_grad():
        weight.copy_(torch.from_numpy(readout.model.embeddings_numpy()[ids]).to(weight.device, weight.dtype))
    weight.grad = None
    (grad,) = torch.autograd.grad(task.loss(texts, targets), weight)
    search.optimizer.zero_grad()
    search.continuous.grad = grad.detach().to(search.continuous.dtype).cpu()
    search.optimizer.step()


def _result(
    readout: Readout, vectors: np.ndarray, start_ids: np.ndarray, search: Any, *, steps: int, seed: int, method: str
) -> HardPrompt:
    """The record of the prompt kept (``search``: its ``best_ids``, ``best_acc``, ``best_step``, ``start_acc``), with
    every accuracy measured on the test split and its readability."""
    test, embeddings = readout.splits.test, readout.model.embeddings_numpy()
    best = [int(i) for i in search.best_ids]
    stand_ins = {
        "hard_prompt": embeddings[best],
        "soft": vectors,
        "discretised": embeddings[readout.nearest_ids(vectors)],
    }
    figures = {name: readout.outcome(rows, test) for name, rows in stand_ins.items()}
    nan, lossy, user = math.nan, readout.objective != CLASSIFICATION, readout.objective == USER_LOSS
    loss = {name: float(losses.mean()) if lossy else nan for name, (_, losses) in figures.items()}
    zero_loss = float(readout.task(1).outcome(test, prompt=False)[1].mean()) if lossy else nan
    # under a caller's loss the search kept the lowest held-out loss: its merit is minus the loss
    return HardPrompt(
        model=canonical_name(readout.model.name),
        token_ids=best,
        tokens=[readout.model.vocabulary.display[i] for i in best],
        text=str(readout.model.tokenizer.decode(best)),
        hard_prompt_accuracy=float(figures["hard_prompt"][0].mean()),
        soft_accuracy=float(figures["soft"][0].mean()),
        discretised_accuracy=float(figures["discretised"][0].mean()),
        zero_shot_accuracy=readout.zero_shot(),
        holdout_accuracy=nan if user else float(search.best_acc),
        start_holdout_accuracy=nan if user else float(search.start_acc),
        changed_positions=int((np.asarray(best) != start_ids).sum()),
        steps=steps,
        best_step=search.best_step,
        seed=seed,
        task=readout.task_name,
        method=method,
        objective=readout.objective,
        word_share=word_share(readout.model, best),
        perplexity=prompt_perplexity(readout.model, best),
        hard_prompt_loss=loss["hard_prompt"],
        soft_loss=loss["soft"],
        discretised_loss=loss["discretised"],
        zero_shot_loss=zero_loss,
        holdout_loss=-float(search.best_acc) if user else nan,
        start_holdout_loss=-float(search.start_acc) if user else nan,
    )


def check_method(method: str, readout: Readout) -> None:
    """Refuse an unknown method, or the search under an objective it cannot serve, in one line."""
    if method not in METHODS:
        raise ValueError(f"method is {method!r}; expected one of {', '.join(METHODS)}")


def search_state_name(length: int, positions: int) -> str:
    """The file stem of the coordinate search's state for a hard prompt of ``length`` tokens from a soft prompt of
    ``positions``: one per length (a frontier's searches at 20, 40 and 80 tokens resume each its own)."""
    return SEARCH_STATE if length == positions else f"{SEARCH_STATE}.L{length}"


def _state(state_dir: str | os.PathLike[str] | None, settings: dict[str, Any], name: str) -> CacheEntry | None:
    """The resumable search state in ``state_dir`` (a run folder), keyed by every setting it depends on."""
    return None if state_dir is None else cache_file("", settings, state_dir, name=name)


def _save_state(state: CacheEntry | None, step: int, search: _Search) -> None:
    if state is None:
        return
    adam = search.optimizer.state_dict()["state"].get(0, {})
    arrays = {
        "continuous": search.continuous.detach().numpy().copy(),
        "best_ids": np.asarray(search.best_ids, np.int64),
    }
    for key in ("exp_avg", "exp_avg_sq"):
        if key in adam:
            arrays[key] = adam[key].numpy().copy()
    meta = {
        "step": step,
        "best_acc": search.best_acc,
        "best_step": search.best_step,
        "start_acc": search.start_acc,
        "adam_step": float(adam["step"]) if "step" in adam else 0.0,
    }
    state.write(arrays, meta, strict=True)


def _adam_state(optimizer: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    state = optimizer.state_dict()
    if "exp_avg" in arrays:
        state["state"] = {
            0: {
                "step": torch.tensor(meta["adam_step"]),
                "exp_avg": torch.from_numpy(arrays["exp_avg"]),
                "exp_avg_sq": torch.from_numpy(arrays["exp_avg_sq"]),
            }
        }
    return state


def _within_budget(prompt: Any, readout: Readout, minutes: float | None, settings: dict[str, Any]) -> None:
    """Refuse, before the search, a harden whose estimate passes ``minutes`` (None: no budget, no estimate)."""
    if minutes is None:
        return
    from probe.core.budget import MINUTES_ARGUMENT, check_time

    seconds = estimate_seconds(prompt, readout, **settings)
    check_time(seconds, f"harden ({settings['method']})", minutes=minutes, less="fewer steps", flag=MINUTES_ARGUMENT)


def estimate_seconds(
    prompt: SoftPrompt | np.ndarray | Any, readout: Readout, *, method: Method = "pez", length: int | None = None,
    steps: int = 100, batch_size: int = 16, eval_every: int = 10, holdout: float = 0.2,
    search: coordinate.SearchSettings | None = None,
) -> float:  # fmt: skip
    """How long :func:`harden` should take on this machine with these settings: one step and one pass are timed
    on the real data (the search: :func:`.search.estimate_seconds`; PEZ: one training step), then multiplied out.

    Raises:
        ValueError: an unknown method or a length :func:`harden` refuses.
    """
    check_method(method, readout)
    vectors = prompt_of(readout, prompt).vectors
    ids = start_tokens(readout, vectors, length, None)
    train = readout.splits.train
    held = max(len(train.label_names), round(len(train) * holdout))
    if method == "search":
        settings = search or coordinate.SearchSettings()
        return coordinate.estimate_seconds(
            readout, vectors, ids, settings=settings, steps=steps, batch_size=batch_size,
            eval_every=eval_every, held_rows=held,
        )  # fmt: skip
    task = readout.task(len(ids))
    per_row = coordinate.per_row_seconds(readout, readout.model.embeddings_numpy()[ids])
    step = coordinate.time_gradient_step(readout, task, batch_size)
    return steps * step + per_row * ((steps // eval_every + 2) * held + 4 * len(readout.splits.test))
