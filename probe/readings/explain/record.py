"""All three readings of what a prompt does at once, as the record ``probe explain`` writes and the dashboard
shows: :func:`explain` measures, :func:`save_explain` writes it into a run folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from probe.core.io import atomic_write_text
from probe.core.models import canonical_name
from probe.core.softprompt import SoftPrompt
from probe.formats.explain_record import ExplainRecord, explain_path
from probe.formats.hard_prompt import save_hard_prompt
from probe.readings.explain.ablation import importance
from probe.readings.explain.faithfulness import score_stand_ins
from probe.readings.explain.hardening import Method, check_method, harden
from probe.readings.explain.lens import layer_lens
from probe.readings.explain.readout import Readout, prompt_of


def explain(
    prompt: SoftPrompt | Any,
    readout: Readout,
    *,
    source: str | None = None,
    hard_steps: int = 100,
    lens_tokens: int = 10_000,
    lens_texts: int = 32,
    bootstrap: int = 1000,
    seed: int = 0,
    state_dir: str | os.PathLike[str] | None = None,
    attribution_texts: int = 0,
    trigger_tokens: int = 0,
    progress: bool = False,
    hard_method: Method = "pez",
    budget_minutes: float | None = None,
) -> ExplainRecord:
    """Position importance, the best real-token prompt and the layer lens of ``prompt``, as one record.

    Args:
        prompt: the soft prompt (a run's snapshot, or a loaded file).
        readout: the model, data and task settings (:class:`Readout`).
        source: what the record says was measured (default: the prompt's source); a multitask prompt's task is added.
        hard_steps: steps of the hard-prompt search.
        lens_tokens / lens_texts: the layer lens's contextual vocabulary size and the test texts it averages over.
        bootstrap: resamples of the importance intervals.
        seed: seeds the bootstrap, the held-out slice and the search's batches.
        state_dir: where the hard-prompt search keeps its resumable state (a run folder), if anywhere.
        attribution_texts: input attribution over this many test texts (0: not measured).
        trigger_tokens: a trigger scan of this many frequent tokens (0: not measured).
        progress: show progress bars.
        hard_method: how the hard prompt is found: "pez" (projected gradient) or "search" (exact coordinate
            search, the soft prompt as teacher: :func:`probe.readings.explain.hardening.harden`).
        budget_minutes: refuse, before any reading, when :func:`estimate_seconds` (a few passes timed) says the
            readings would take longer (None: no budget and no estimate; ``probe explain`` also reads
            ``$PROBE_BUDGET_MINUTES``).

    Raises:
        ValueError: ``attribution_texts`` or ``trigger_tokens`` is not a count (0 or more), or an unknown
            ``hard_method`` (or "search" under an objective it cannot serve), before any work; the estimate over
            ``budget_minutes``.
    """
    check_counts(readout, attribution_texts, trigger_tokens)
    check_method(hard_method, readout)
    if attribution_texts:  # refused before the other readings' minutes, not after them
        from probe.readings.explain.attribution import check_occlusion_budget

        check_occlusion_budget(readout.splits.test.texts[:attribution_texts])
    prompt = prompt_of(readout, prompt)
    prefix = prompt.vectors.shape[1] != readout.model.dim  # a flat prefix: no input tokens to search or lens
    settings: dict[str, Any] = {"hard_steps": hard_steps, "lens_tokens": lens_tokens, "lens_texts": lens_texts}
    settings |= {"attribution_texts": attribution_texts, "trigger_tokens": trigger_tokens, "hard_method": hard_method}
    _within_budget(readout, prompt.vectors.shape, budget_minutes, settings)
    imp = importance(prompt, readout, bootstrap=bootstrap, seed=seed, progress=progress)
    hard, lens, stand_ins = None, None, {}
    if not prefix:
        hard = harden(
            prompt, readout, steps=hard_steps, seed=seed, progress=progress, state_dir=state_dir, method=hard_method
        )
        lens = layer_lens(prompt, readout, texts=lens_texts, tokens=lens_tokens, progress=progress)
        stand_ins = {"hard prompt": readout.model.embeddings_numpy()[hard.token_ids]}
    faith = score_stand_ins(prompt, readout, stand_ins=stand_ins, bootstrap=bootstrap, seed=seed)
    from probe.readings.explain.attribution import input_attribution
    from probe.readings.explain.triggers import trigger_scan

    attribution = (
        input_attribution(prompt, readout, size=attribution_texts, progress=progress) if attribution_texts else None
    )
    triggers = trigger_scan(prompt, readout, tokens=trigger_tokens, progress=progress) if trigger_tokens else None
    return ExplainRecord(
        attribution=attribution,
        triggers=triggers,
        source=_measured(source or prompt.source, prompt),
        step=prompt.step,
        model=canonical_name(readout.model.name),
        importance=imp,
        hard_prompt=hard,
        lens=lens,
        faithfulness=faith,
    )


def check_counts(readout: Readout, attribution_texts: int, trigger_tokens: int) -> None:
    """Refuse counts :func:`explain` cannot honour, before any reading.

    Raises:
        ValueError: a count that is not 0 or more; attribution or triggers under an objective without classes.
    """
    for name, count in (("attribution_texts", attribution_texts), ("trigger_tokens", trigger_tokens)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name} is {count!r}; expected a count: 0 (not measured) or more")


def save_explain(record: ExplainRecord, run_folder: str | os.PathLike[str]) -> Path:
    """Write the record into a run folder: ``explain/step-N.json`` for its step, ``explain.json`` as the latest,
    and its hard prompt as ``hard-prompt.json``; returns the path of ``explain.json``."""
    folder = Path(run_folder)
    if record.hard_prompt is not None:
        save_hard_prompt(record.hard_prompt, folder)
    text = record.to_json()
    if record.step is not None:
        atomic_write_text(explain_path(folder, record.step), text)
    latest = explain_path(folder)
    atomic_write_text(latest, text)
    return latest


def _within_budget(readout: Readout, shape: tuple[int, ...], minutes: float | None, settings: dict[str, Any]) -> None:
    """Refuse, before any reading, an explain whose estimate passes ``minutes`` (None: no budget, no estimate)."""
    if minutes is None:
        return
    from probe.core.budget import MINUTES_ARGUMENT, check_time

    seconds = estimate_seconds(readout, shape[0], width=shape[1], **settings)
    check_time(seconds, "explain", minutes=minutes, less="fewer hard_steps or lens_tokens", flag=MINUTES_ARGUMENT)


def estimate_seconds(
    readout: Readout,
    positions: int,
    *,
    hard_steps: int = 100,
    batch_size: int = 16,
    eval_every: int = 10,
    lens_tokens: int = 10_000,
    lens_texts: int = 32,
    attribution_texts: int = 0,
    trigger_tokens: int = 0,
    hard_method: Method = "pez",
    width: int | None = None,
) -> float:
    """How long :func:`explain` should take on a prompt of ``positions`` rows of ``width`` (default: input rows; a
    prefix's width: no search and no lens, the per-layer reference instead) on this machine: one whole scoring pass
    over the test rows, one
    training step and one batch of the lens's vocabulary are timed on the real data, then the passes each reading
    makes are added up (importance: 3p + 1 passes over the test rows; the search: its steps, its held-out scores
    and four test passes; faithfulness: three test passes; the lens: its texts and its vocabulary, unless probe's
    cache holds it; input attribution and the trigger scan, when asked for: every text they score, counted from
    the occlusions and the scan's texts before any is made).

    Raises:
        ValueError: input attribution over texts whose occlusions pass the occlusion budget (errors.md 115).
    """

    import numpy as np

    from probe.readings.explain.attribution import rows_scored
    from probe.readings.explain.lens import vocabulary_seconds
    from probe.readings.explain.search import per_row_seconds, time_gradient_step, time_step

    test, train = readout.splits.test, readout.splits.train
    if width not in (None, readout.model.dim):  # a prefix: importance, faithfulness and the per-layer reference
        from probe.formats.prefix import kv_geometry
        from probe.readings.prefix import estimate_seconds as reference_seconds

        per_row = per_row_seconds(readout, np.zeros((positions, width), np.float32), sample=None)
        passes = (3 * positions + 8) * len(test) + rows_scored(readout, attribution_texts, trigger_tokens)
        layers = list(range(kv_geometry(readout.model.model.config)[0]))
        return passes * per_row + reference_seconds(readout.model, layers)
    vectors = np.tile(readout.model.embeddings_numpy()[:1], (positions, 1))
    per_row = per_row_seconds(readout, vectors, sample=None)  # one of the passes the readings make, as they make it
    task = readout.task(positions)
    if hard_method == "search":  # one exact search step: a gradient, then every candidate swap scored
        step = time_step(readout, task, vectors, batch_size=batch_size)
    else:
        step = time_gradient_step(readout, task, batch_size)
    held = max(len(train.label_names), round(len(train) * 0.2))
    passes = (3 * positions + 1) * len(test) + (hard_steps // eval_every + 1) * held + 7 * len(test) + lens_texts
    passes += rows_scored(readout, attribution_texts, trigger_tokens)
    vocabulary = vocabulary_seconds(readout.model, readout.index, tokens=lens_tokens)
    return passes * per_row + hard_steps * step + vocabulary


def _measured(source: str, prompt: SoftPrompt) -> str:
    """What a record says was measured: ``source``, and a multitask prompt's task."""
    return source + (f" [task {prompt.metadata['task_id']}]" if "task_id" in prompt.metadata else "")
