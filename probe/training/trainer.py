"""Train a soft prompt with the model frozen, writing snapshots as it goes.

``train`` builds the initial prompt, wraps the model with PEFT prompt tuning, and runs the loop: batches come
from a seeded iterator (batch t depends only on the seed and t, so a resumed run sees the same batches), and
each finished step goes to the callbacks (:mod:`probe.training.callbacks`), one of which writes snapshots,
metrics and evaluations into the run folder. Only the process of rank 0 writes.

Defaults were chosen on the default model and the bundled ``feelings`` set (the README gives the accuracy
they reach). The paper's Adafactor at a constant lr is available with ``optimizer="adafactor"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from probe.core.data import DataSplits
from probe.core.frames import as_splits, describe
from probe.core.io import expect
from probe.core.models import LoadedModel, canonical_name, load_model
from probe.core.names import CLASSIFICATION, DISCRETISED, SOFT, ZERO_SHOT
from probe.core.sampling import seeded_batches
from probe.formats.discovery import load_run
from probe.formats.manifest import DataRecord, Manifest, recorded_path
from probe.formats.run import OPTIMIZER_STATE, SNAPSHOTS, Run
from probe.formats.writer import RunWriter
from probe.tasks.base import Target, Task
from probe.tasks.evaluation import correct_bits, discretised_figure, eval_subset, figures, zero_shot_figure
from probe.tasks.kinds import make_task, prompt_parameter, wrap_with_prompt
from probe.tasks.target import make_target_task
from probe.training.callbacks import RunFolder, StepRecord, TrainingCallback, read_optimizer_state
from probe.training.config import Optimizer, TrainConfig
from probe.training.readable import ReadableTerms
from probe.training.resume import resumed_data, starting_point

logger = logging.getLogger(__name__)


def make_optimizer(name: Optimizer, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """AdamW, or the paper's Adafactor (constant lr, no relative step, no parameter scaling)."""
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False, weight_decay=1e-5
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def _accelerator() -> Any:
    """The Accelerator for this process: ``accelerate launch`` settings when launched so, else one process.

    Without a GPU it must be told so (``cpu=True``): only then does a multi-process launch become data
    parallel on the CPU (gloo) instead of N independent single processes.
    """
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def train(
    config: TrainConfig,
    out: str | os.PathLike[str],
    *,
    model: LoadedModel | None = None,
    splits: DataSplits | None = None,
    resume: bool = False,
    force: bool = False,
    overwrite: bool = False,
    data_changed_ok: bool = False,
    progress: bool = True,
    callbacks: list[TrainingCallback | Callable[[StepRecord], None]] | None = None,
) -> Run | None:
    """Train a prompt and write the run folder.

    Args:
        config: the :class:`TrainConfig`.
        out: the run folder (must be new unless ``resume``).
        model: an already loaded model (must match ``config.model``); loaded here if None.
        splits: train/test data; loaded from ``config.data`` if None.
        resume: continue the run in ``out`` from its last snapshot.
        force: write a new run into a folder that holds other files (they are left alone).
        overwrite: start the run in ``out`` over (probe's own files deleted, the user's kept).
        data_changed_ok: resume although the data file changed since the run was trained (both hashes are kept).
        progress: show a progress bar.
        callbacks: :class:`TrainingCallback` objects, or functions called after every step with a :class:`StepRecord`.

    Returns:
        The finished :class:`Run` on the process that writes it; None on the other ranks of a distributed run.

    Training goes through ``accelerate.Accelerator``, so a user's Accelerate config (DDP, FSDP, DeepSpeed, mixed
    precision) applies as it is. Under ``accelerate launch`` with N processes each rank takes its share of the step's
    batch (the same global batch as one process), Accelerate averages the prompt's gradients across ranks, and only
    the main process evaluates and writes the run folder.

    Raises:
        ValueError: bad config or data, or a run already in ``out`` without ``resume``.
    """
    expect(config, TrainConfig, "config", "a TrainConfig (probe.TrainConfig(init=..., length=..., ...))")
    expect(model, (LoadedModel, type(None)), "model", "a loaded model (probe.load_model(...)) or None")
    expect(splits, (DataSplits, type(None)), "splits", "DataSplits (probe.core.data.train_test(...)) or None")
    trainer = Trainer(
        config,
        out,
        model=model,
        splits=splits,
        resume=resume,
        force=force,
        overwrite=overwrite,
        data_changed_ok=data_changed_ok,
        callbacks=callbacks,
    )
    return trainer.fit(progress=progress)


class Trainer:
    """probe's training loop as named steps: set up, step, evaluate, snapshot, finish.

    Built by :func:`train`. What it does is reported to its callbacks (:class:`TrainingCallback`); the run folder is
    one of them (:class:`RunFolder`, held by the main process only, as ``self.folder``).
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike[str],
        *,
        model: LoadedModel | None = None,
        splits: DataSplits | None = None,
        resume: bool = False,
        force: bool = False,
        overwrite: bool = False,
        data_changed_ok: bool = False,
        callbacks: list[TrainingCallback | Callable[[StepRecord], None]] | None = None,
    ) -> None:
        from probe.core.index import VocabIndex

        self.config, self.out, self.data_changed_ok, self.overwrite = config, Path(out), data_changed_ok, overwrite
        self.model = model or load_model(config.model)
        self.splits = splits or as_splits(config.data, seed=config.seed, **config.columns())
        if config.test_size is not None and config.test_size < len(self.splits.test):
            self.splits = replace(self.splits, test=eval_subset(self.splits.test, config.test_size, config.seed))
        self.labels = self.splits.train.label_names
        self.index = VocabIndex.for_model(self.model)
        self.accelerator = _accelerator()
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        if self.world > config.batch_size:
            raise ValueError(
                f"batch_size {config.batch_size} is smaller than the {self.world} processes; raise --batch-size"
            )
        self.start_step, vectors, init_record = starting_point(config, self.model, self.labels, self.out, resume)
        self.peft_model = wrap_with_prompt(self.model, vectors)
        self.task = self._make_task()
        self.weight = prompt_parameter(self.peft_model)
        optimizer = make_optimizer(config.optimizer, [self.weight], config.lr)
        # DDP / FSDP / DeepSpeed / mixed precision come from the user's Accelerate config, unchanged
        self.task.train_forward, self.optimizer = self.accelerator.prepare(self.peft_model, optimizer)
        self.during = eval_subset(self.splits.test, config.eval_size, config.seed)
        self.readable = ReadableTerms(config, self.peft_model, self.model, self.index, init_record.get("token_ids"))
        self.folder: RunFolder | None = None
        if self.accelerator.is_main_process:
            writer = self._open_writer(init_record, resume, force)
            self.folder = RunFolder(writer, self.peft_model, canonical_name(self.model.name))
        if resume and self.start_step > 0:
            exact = self._restore_optimizer()
            if not exact:
                logger.warning(
                    "resuming %s at step %d with a fresh optimizer: no state was saved there", out, self.start_step
                )
            if self.folder is not None:
                self.folder.writer.update(resumed_exactly=exact)
        self.callbacks: list[TrainingCallback | Callable[[StepRecord], None]] = [self.folder] if self.folder else []
        self.callbacks += callbacks or []

    # -- set up -------------------------------------------------------------------------------------

    def _make_task(self) -> Task:
        """The task the prompt is trained on: classification over the labels, or the free-text targets'."""
        c, model, peft = self.config, self.model, self.peft_model
        if c.target_column is not None:
            return make_target_task(model, peft, max_length=c.max_length)
        return make_task(model, peft, self.labels, max_length=c.max_length, temperature=c.temperature, form=c.task)

    def _open_writer(self, init_record: dict[str, Any], resume: bool, force: bool) -> RunWriter:
        """The run folder's writer. On resume the manifest keeps every field the trainer does not own (the
        zero-shot figure, the creation time, what a user added)."""
        config, splits = self.config, self.splits
        owned: dict[str, Any] = dict(
            model=canonical_name(self.model.name),
            fingerprint=self.model.fingerprint,
            kind=self.model.kind,
            task=f"{self.model.kind}-{'classification' if self.task.objective == CLASSIFICATION else 'target'}",
            task_form=config.task if self.model.kind == "encoder" else "generate",
            labels=self.labels,
            init=config.init,
            init_details=init_record,
            seed=config.seed,
            length=config.length,
            optimizer=config.optimizer,
            lr=config.lr,
            steps=config.steps,
            snapshot_every=config.snapshot_every,
            eval_every=config.eval_every,
            data=DataRecord(
                path=recorded_path(describe(config.data, splits)),
                sha256=splits.train.sha256,
                train_size=len(splits.train),
                test_size=len(splits.test),
            ),
            evaluation=self._evaluation_record(),
            config=config.to_dict(),
            status="running",
        )
        if resume:
            before = load_run(self.out).manifest
            owned["data"] = resumed_data(before, owned["data"], allow_changed=self.data_changed_ok, run=self.out)
            manifest = before.replace(**owned)
        else:
            manifest = Manifest(**owned)
        writer = RunWriter(self.out, manifest, resume=resume, force=force, overwrite=self.overwrite)
        if resume:
            writer.truncate_after(self.start_step)
            writer.update(resumed_from=self.start_step)
        return writer

    def _evaluation_record(self) -> dict[str, Any]:
        """Which test rows each figure is measured on (the manifest's ``evaluation``)."""
        config, test = self.config, self.splits.test
        return {
            "during_training": {
                "split": "test",
                "rows": len(self.during),
                "of": len(test),
                "stratified_seed": config.seed,
                "discretised": config.eval_discrete,
            },
            "final": {
                "split": "test" if config.test_size is None else "test subset",
                "rows": len(test),
                "stratified_seed": None if config.test_size is None else config.seed,
                "discretised": True,
            },
            "zero_shot": {"split": "test", "rows": len(test)},
        }

    # -- the loop -----------------------------------------------------------------------------------

    def fit(self, *, progress: bool = True) -> Run | None:
        """Run from the starting point to ``config.steps``; returns the run (None on ranks that do not write)."""
        config = self.config
        if self.start_step == 0:
            self._begin()
        bar = _progress(config.steps, self.start_step, enabled=progress and self.folder is not None, desc=config.init)
        last: dict[str, float] = {}
        step = self.start_step
        texts, targets = self.splits.train.texts, self.splits.train.loss_targets
        try:
            for step, rows in seeded_batches(len(texts), config.batch_size, config.seed, start=self.start_step + 1):
                if step > config.steps:
                    step = config.steps
                    break
                record = self.step(step, [texts[i] for i in rows], [targets[i] for i in rows])
                if step % config.snapshot_every == 0 or step == config.steps:
                    self.snapshot(step)
                if step == config.steps:
                    last = self.evaluate(step, final=True)
                elif step % config.eval_every == 0:
                    last = self.evaluate(step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record.loss:.3f}", **{k[:8]: f"{v:.2f}" for k, v in last.items()})
        except KeyboardInterrupt:
            self._emit("on_end", "interrupted", step, {})
            raise
        except BaseException:
            self._emit("on_end", "failed", step, {})
            raise
        finally:
            if bar is not None:
                bar.close()
        return self.finish(last)

    def _begin(self) -> None:
        """Step 0: the initial snapshot, the zero-shot baseline and the first evaluation (once per run)."""
        if self.folder is None:
            return
        written = self.folder.written()
        if 0 not in written.steps:  # never rewrite a snapshot a reader may already hold
            self.snapshot(0)
        if not any(r.get("kind") == "eval" and r.get("step") == 0 for r in written.records()):
            test = self.splits.test
            self._emit("on_begin", {ZERO_SHOT: zero_shot_figure(self.task, test)})
            self.evaluate(0)

    def step(self, step: int, texts: list[str], targets: Sequence[Target]) -> StepRecord:
        """One optimisation step on this rank's share of the global batch; rank 0 logs it."""
        began = time.perf_counter()
        # the frozen model stays in eval mode (no dropout): only the prompt changes
        share = slice(self.rank, None, self.world)
        parts = self.task.micro_batches(texts[share], targets[share])
        self.optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        term = self.readable.projection_term(self.weight)
        if term is not None:
            self.accelerator.backward(term)
            loss = float(term.detach())
        for i, (weight, ids, part_targets) in enumerate(parts):
            # gradients are averaged across processes once per step, with the last micro-batch
            last = i == len(parts) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.task.train_forward):
                for share_of_loss, reading in self.readable.passes():
                    with reading(), self.accelerator.autocast():
                        part = self.task.micro_loss(ids, part_targets) * weight * share_of_loss
                    self.accelerator.backward(part)
                    loss += float(part.detach())
        self.optimizer.step()
        record = StepRecord(
            step=step,
            loss=loss,
            lr=self.config.lr,
            seconds=time.perf_counter() - began,
            prompt=self.weight,
        )
        self._emit("on_step", record)
        return record

    def evaluate(self, step: int, *, final: bool = False) -> dict[str, float]:
        """Accuracy at ``step``: on the training-time subset, or on the whole test split when ``final``.

        The discretised accuracy is measured at the end, and during training only with ``eval_discrete``.
        Only the main process evaluates; the others return an empty dict.
        """
        if self.folder is None:
            return {}
        data = self.splits.test if final else self.during
        correct = figures(self.task, data)  # the target objective: token accuracy per example
        result = {SOFT: float(correct.mean())}
        if final or self.config.eval_discrete:
            result[DISCRETISED] = discretised_figure(self.task, self.index, data)
        on = "full" if len(data) == len(self.splits.test) else "subset"
        # the full split's per-example correctness goes into the log (for example-level bootstrap intervals);
        # the returned figures, which become the manifest's "final", stay numbers
        bits = on == "full" and self.task.objective == CLASSIFICATION  # 0/1 per example: classification only
        logged: dict[str, Any] = {**result, "correct": correct_bits(correct)} if bits else result
        self._emit("on_evaluate", step, logged, on=on, rows=len(data))
        return result

    def snapshot(self, step: int) -> None:
        """Report the prompt as it is at ``step`` (the main process only: the others hold no copy to write), the
        optimizer's state first, so that a run resumed from this snapshot continues exactly."""
        if self.folder is not None:
            if step > 0:
                self.folder.on_optimizer_state(step, self.optimizer.state_dict())
            self._emit("on_snapshot", step, self.weight.detach().float().cpu().numpy())

    def _restore_optimizer(self) -> bool:
        """On resume, the optimizer's state saved with the snapshot the run continues from; whether it was there."""
        saved = read_optimizer_state(self.out / SNAPSHOTS / OPTIMIZER_STATE, self.start_step)
        if saved is None:
            return False
        state = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": saved["state"], "param_groups": state["param_groups"]})
        return True

    def finish(self, last: dict[str, float]) -> Run | None:
        """Close the run: last snapshot, final evaluation on the whole split, then ``on_end`` (adapter, manifest)."""
        if self.folder is None:
            return None  # only the main process owns the run folder
        steps = self.config.steps
        if steps not in self.folder.written().steps:  # a resumed run that was already complete
            self.snapshot(steps)
        if not last:  # the loop ran no step: a resumed run that was already complete
            last = self.evaluate(steps, final=True)
        self._emit("on_end", "finished", steps, last)
        return self.folder.written()

    def _emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Tell every callback: each implements the events it needs; a plain function hears ``on_step``."""
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(*args, **kwargs)
            elif event == "on_step" and callable(callback):
                callback(*args, **kwargs)


def _progress(total: int, initial: int, *, enabled: bool, desc: str):
    if not enabled:
        return None
    from probe.core.progress import progress_bar

    return progress_bar(total, desc, unit="step", initial=initial)
