"""Train a soft prompt with the model frozen, writing snapshots as it goes.

``TrainConfig`` is both the API's and the CLI's schema. ``train`` builds the initial prompt, wraps the model
with PEFT prompt tuning, and runs the loop: batches come from a seeded iterator (batch t depends only on the
seed and t, so a resumed run sees the same batches), and each finished step goes to a callback that writes
snapshots, metrics and evaluations into the run folder. Only the process of rank 0 writes.

Defaults were chosen on the default model and the bundled ``feelings`` set (the README gives the accuracy
they reach). The paper's Adafactor at a constant lr is available with ``optimizer="adafactor"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from probe.batching import batches
from probe.data import BUNDLED, DataSplits, train_test
from probe.evaluation import correct_bits, correctness, discretised_accuracy, eval_subset, zero_shot_accuracy
from probe.inits import InitMethod, Scale, initialise
from probe.models import LoadedModel, canonical_name, load_model
from probe.runs import ADAPTER, Run, RunWriter, load_run
from probe.tasks import TASK_FORMS, TaskForm, make_task, prompt_parameter, wrap_with_prompt
from probe.util import atomic_write_json

logger = logging.getLogger(__name__)

CONFIG_FORMAT = 1
Optimizer = Literal["adamw", "adafactor"]


def _help(default: Any, text: str, **meta: Any) -> Any:
    """A config field whose help text (shown by ``probe train --help``) is written here once."""
    return dataclasses.field(default=default, metadata={"help": text, **meta})


def parse_scale(text: str) -> float | str:
    """``--init-scale``: a number, or "vocab-norm"."""
    if text == "vocab-norm":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--init-scale {text!r} is neither a number nor 'vocab-norm'") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run: recorded in the manifest, and the options of ``probe train``.

    Each field's help text is in its metadata (``dataclasses.fields(TrainConfig)``).
    """

    model: str = _help("default", "model name or folder ('default' = bundled all-MiniLM-L6-v2)")
    data: str = _help(BUNDLED, "CSV/TSV/JSONL with text and label columns, or a bundled set: feelings, topics")
    init: str = _help(InitMethod.SAMPLED_VOCAB.value, "random-uniform | sampled-vocab | class-label | text")
    length: int = _help(20, "prompt positions p (default 20)")
    steps: int = _help(150, "optimisation steps (default 150)")
    batch_size: int = _help(16, "texts per step (default 16)")
    optimizer: Optimizer = _help("adamw", "adamw, or adafactor (the paper's: constant lr, no parameter scaling)")
    lr: float = _help(0.01, "learning rate (default 0.01)")
    snapshot_every: int = _help(10, "write the prompt every S steps, and at step 0 and the last step (default 10)")
    eval_every: int = _help(
        50, "evaluate every E steps and at step 0, on the test subset; the last step uses the whole split"
    )
    eval_size: int = _help(200, "test rows evaluated during training (seeded, stratified; default 200)")
    eval_discrete: bool = _help(False, "also measure the discretised accuracy during training (always at the end)")
    seed: int = _help(0, "seeds the init, the batches, the split and the evaluation subset (default 0)")
    init_scale: Scale = _help(0.5, "random-uniform bound: a number (paper 0.5) or 'vocab-norm'", type=parse_scale)
    vocab_top_n: int = _help(5000, "sampled-vocab draws from this many most frequent tokens (default 5000)")
    init_text: str | None = _help(None, "the text of the 'text' init")
    text_column: str = _help("text", "column with the text in the data file (default text)")
    label_column: str = _help("label", "column with the label in the data file (default label)")
    temperature: float = _help(0.05, "softmax temperature of the encoder task's cosine logits (default 0.05)")
    max_length: int = _help(128, "longest input in tokens (default 128)")
    task: TaskForm = _help(
        "cosine",
        "encoder models: 'cosine' (sentence embedding vs label names) or 'verbaliser' (output position vs label "
        "tokens)",
    )
    test_size: int | None = _help(
        None, "score the final figures on a seeded, stratified subset of this many test rows (default: all)"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "init", InitMethod.parse(self.init).value)
        for name in (
            "length",
            "steps",
            "batch_size",
            "snapshot_every",
            "eval_every",
            "eval_size",
            "vocab_top_n",
            "max_length",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} is {value!r}; expected a positive integer")
        if self.test_size is not None and (
            isinstance(self.test_size, bool) or not isinstance(self.test_size, int) or self.test_size <= 0
        ):
            raise ValueError(f"test_size is {self.test_size!r}; expected a positive integer, or none for every row")
        if self.task not in TASK_FORMS:
            raise ValueError(f"task '{self.task}' is not known; expected one of {', '.join(TASK_FORMS)}")
        if not isinstance(self.eval_discrete, bool):
            raise ValueError(f"eval_discrete is {self.eval_discrete!r}; expected true or false")
        if self.optimizer not in ("adamw", "adafactor"):
            raise ValueError(f"optimizer '{self.optimizer}' is not known; expected 'adamw' or 'adafactor'")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (value > 0 and math.isfinite(value))
            ):
                raise ValueError(f"{name} is {value!r}; expected a positive number")
        if self.init == InitMethod.TEXT.value and not (self.init_text or "").strip():
            raise ValueError("init 'text' needs init_text (--init-text)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the format version."""
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are warned about and ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            warnings.warn(f"ignoring unknown TrainConfig keys {unknown}", UserWarning, stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class StepRecord:
    """What the loop reports after each step (given to callbacks)."""

    step: int
    loss: float
    lr: float
    seconds: float
    prompt: torch.Tensor | None = None  # the live prompt parameter [p, d]; copy it to keep it


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
        progress: show a progress bar.
        callbacks: :class:`TrainingCallback` objects, or functions called after every step with a
            :class:`StepRecord`.

    Returns:
        The finished :class:`Run` on the process that writes it; None on the other ranks of a distributed run.

    Training goes through ``accelerate.Accelerator``, so a user's Accelerate config (DDP, FSDP, DeepSpeed,
    mixed precision) applies as it is. Under ``accelerate launch`` with N processes each rank takes its share
    of the step's batch (the same global batch as a single process), Accelerate averages the prompt's
    gradients across ranks, and only the main process evaluates and writes the run folder.

    Raises:
        ValueError: bad config or data, or a run already in ``out`` without ``resume``.
    """
    trainer = Trainer(config, out, model=model, splits=splits, resume=resume, callbacks=callbacks)
    return trainer.fit(progress=progress)


class TrainingCallback(Protocol):
    """What :class:`Trainer` reports as it goes. probe's run folder is written by one of these (:class:`RunFolder`);
    pass your own to :func:`train` (``callbacks=[...]``) to follow training elsewhere."""

    def on_begin(self, fields: dict[str, Any]) -> None:
        """Once at step 0 of a new run: run-level figures (the zero-shot accuracy)."""

    def on_step(self, record: StepRecord) -> None:
        """After every optimisation step."""

    def on_evaluate(self, step: int, result: dict[str, Any], *, on: str, rows: int) -> None:
        """After an evaluation on ``rows`` test rows (``on``: "subset" or "full").

        ``result`` holds the accuracies (numbers) and, on the full split, ``correct``: each test example's
        correctness under the soft prompt as a string of 0s and 1s, in the split's order.
        """

    def on_snapshot(self, step: int, vectors: np.ndarray) -> None:
        """The prompt at ``step`` (float32 [p, d]), every ``snapshot_every`` steps, at step 0 and the end."""

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        """Once: "finished" (with the final figures), "interrupted" or "failed"."""


class RunFolder:
    """The :class:`TrainingCallback` that writes probe's run folder (only the main process holds one).

    Metrics lines, snapshots and the manifest go through :class:`probe.runs.RunWriter`; at the end the PEFT adapter
    is saved (:func:`save_adapter`). Every write is atomic.
    """

    def __init__(self, writer: RunWriter, peft_model: Any, base_model: str) -> None:
        self.writer, self.peft_model, self.base_model = writer, peft_model, base_model

    def written(self) -> Run:
        """The run folder as written so far."""
        return load_run(self.writer.path)

    def on_begin(self, fields: dict[str, Any]) -> None:
        self.writer.update(**fields)

    def on_step(self, record: StepRecord) -> None:
        self.writer.log("train", step=record.step, loss=record.loss, lr=record.lr, seconds=round(record.seconds, 5))

    def on_evaluate(self, step: int, result: dict[str, Any], *, on: str, rows: int) -> None:
        self.writer.log("eval", step=step, on=on, rows=rows, **result)

    def on_snapshot(self, step: int, vectors: np.ndarray) -> None:
        self.writer.write_snapshot(step, vectors)

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        if status == "finished":
            save_adapter(self.peft_model, self.writer.path / ADAPTER, self.base_model)
            self.writer.update(status=status, last_step=step, final=final, finished=time.time())
        else:
            self.writer.update(status=status, last_step=step)


class _StepFunction:
    """A plain function of a :class:`StepRecord`, the older form of a callback, as a :class:`TrainingCallback`."""

    def __init__(self, function: Callable[[StepRecord], None]) -> None:
        self.function = function

    def on_begin(self, fields: dict[str, Any]) -> None:
        pass

    def on_step(self, record: StepRecord) -> None:
        self.function(record)

    def on_evaluate(self, step: int, result: dict[str, Any], *, on: str, rows: int) -> None:
        pass

    def on_snapshot(self, step: int, vectors: np.ndarray) -> None:
        pass

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        pass


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
        callbacks: list[TrainingCallback | Callable[[StepRecord], None]] | None = None,
    ) -> None:
        from probe.index import VocabIndex

        self.config, self.out = config, Path(out)
        self.model = model or load_model(config.model)
        self.splits = splits or train_test(
            config.data, text_column=config.text_column, label_column=config.label_column, seed=config.seed
        )
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
        self.start_step, vectors, init_record = self._starting_point(resume)
        self.peft_model = wrap_with_prompt(self.model, vectors)
        self.task = make_task(
            self.model,
            self.peft_model,
            self.labels,
            max_length=config.max_length,
            temperature=config.temperature,
            form=config.task,
        )
        self.weight = prompt_parameter(self.peft_model)
        optimizer = make_optimizer(config.optimizer, [self.weight], config.lr)
        # DDP / FSDP / DeepSpeed / mixed precision come from the user's Accelerate config, unchanged
        self.task.train_forward, self.optimizer = self.accelerator.prepare(self.peft_model, optimizer)
        self.during = eval_subset(self.splits.test, config.eval_size, config.seed)
        self.folder: RunFolder | None = None
        if self.accelerator.is_main_process:
            writer = self._open_writer(init_record, resume)
            self.folder = RunFolder(writer, self.peft_model, canonical_name(self.model.name))
        self.callbacks: list[TrainingCallback] = [self.folder] if self.folder else []
        for callback in callbacks or []:
            self.callbacks.append(callback if hasattr(callback, "on_step") else _StepFunction(callback))  # type: ignore[arg-type]

    # -- set up -------------------------------------------------------------------------------------

    def _starting_point(self, resume: bool) -> tuple[int, np.ndarray, dict[str, Any]]:
        """(first step, prompt vectors, init record): the last snapshot of a resumed run, else a fresh init."""
        config = self.config
        if resume:
            run = load_run(self.out)
            if TrainConfig.from_dict(run.manifest["config"]) != config:
                raise ValueError(
                    f"run '{self.out}' was made with another config; resume it with its own (probe train --resume)"
                )
            if run.steps:
                return run.steps[-1], run.snapshot(run.steps[-1]).vectors, run.manifest["init_details"]
        init = initialise(
            config.init,
            self.model,
            config.length,
            seed=config.seed,
            labels=self.labels,
            text=config.init_text,
            scale=config.init_scale,
            top_n=config.vocab_top_n,
        )
        return 0, init.vectors, {"method": init.method.value, "token_ids": init.token_ids, **init.details}

    def _open_writer(self, init_record: dict[str, Any], resume: bool) -> RunWriter:
        config, splits = self.config, self.splits
        manifest = {
            "model": canonical_name(self.model.name),
            "fingerprint": self.model.fingerprint,
            "kind": self.model.kind,
            "task": f"{self.model.kind}-classification",
            "task_form": config.task if self.model.kind == "encoder" else "generate",
            "labels": self.labels,
            "init": config.init,
            "init_details": init_record,
            "seed": config.seed,
            "length": config.length,
            "optimizer": config.optimizer,
            "lr": config.lr,
            "steps": config.steps,
            "snapshot_every": config.snapshot_every,
            "eval_every": config.eval_every,
            "data": {
                "path": config.data,
                "sha256": splits.train.sha256,
                "train_size": len(splits.train),
                "test_size": len(splits.test),
            },
            "evaluation": {
                "during_training": {
                    "split": "test",
                    "rows": len(self.during),
                    "of": len(splits.test),
                    "stratified_seed": config.seed,
                    "discretised": config.eval_discrete,
                },
                "final": {
                    "split": "test" if config.test_size is None else "test subset",
                    "rows": len(splits.test),
                    "stratified_seed": None if config.test_size is None else config.seed,
                    "discretised": True,
                },
                "zero_shot": {"split": "test", "rows": len(splits.test)},
            },
            "config": config.to_dict(),
            "status": "running",
        }
        writer = RunWriter(self.out, manifest, resume=resume)
        if resume:
            writer.truncate_after(self.start_step)
            writer.update(status="running", resumed_from=self.start_step)
        return writer

    # -- the loop -----------------------------------------------------------------------------------

    def fit(self, *, progress: bool = True) -> Run | None:
        """Run from the starting point to ``config.steps``; returns the run (None on ranks that do not write)."""
        config = self.config
        if self.start_step == 0:
            self._begin()
        bar = _progress(config.steps, self.start_step, enabled=progress and self.folder is not None, desc=config.init)
        last: dict[str, float] = {}
        step = self.start_step
        texts, targets = self.splits.train.texts, self.splits.train.targets
        try:
            for step, rows in batches(len(texts), config.batch_size, config.seed, start=self.start_step + 1):
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
            self._emit("on_begin", {"zero_shot_accuracy": zero_shot_accuracy(self.task, test.texts, test.targets)})
            self.evaluate(0)

    def step(self, step: int, texts: list[str], targets: list[int]) -> StepRecord:
        """One optimisation step on this rank's share of the global batch; rank 0 logs it."""
        began = time.perf_counter()
        # the frozen model stays in eval mode (no dropout): only the prompt changes
        share = slice(self.rank, None, self.world)
        parts = self.task.micro_batches(texts[share], targets[share])
        self.optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for i, (weight, ids, part_targets) in enumerate(parts):
            # gradients are averaged across processes once per step, with the last micro-batch
            last = i == len(parts) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.task.train_forward):
                with self.accelerator.autocast():
                    part = self.task.micro_loss(ids, part_targets) * weight
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
        correct = correctness(self.task, data.texts, data.targets)
        result = {"accuracy": float(correct.mean())}
        if final or self.config.eval_discrete:
            result["discrete_accuracy"] = discretised_accuracy(self.task, self.index, data.texts, data.targets)
        on = "full" if len(data) == len(self.splits.test) else "subset"
        # the full split's per-example correctness goes into the log (for example-level bootstrap intervals);
        # the returned figures, which become the manifest's "final", stay numbers
        logged: dict[str, Any] = {**result, "correct": correct_bits(correct)} if on == "full" else result
        self._emit("on_evaluate", step, logged, on=on, rows=len(data))
        return result

    def snapshot(self, step: int) -> None:
        """Report the prompt as it is at ``step`` (the main process only: the others hold no copy to write)."""
        if self.folder is not None:
            self._emit("on_snapshot", step, self.weight.detach().float().cpu().numpy())

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
        for callback in self.callbacks:
            getattr(callback, event)(*args, **kwargs)


def save_adapter(peft_model: Any, folder: Path, base_model: str) -> None:
    """Save the PEFT adapter, recording the base model by name (never a local path), with no moment at which
    a reader finds it missing or half-written.

    The adapter is saved into a temporary folder beside ``folder``. Each file then replaces its old version by
    ``os.replace``, which is atomic: the weights first, the config last. A reader sees the old adapter or the
    new one, file by file; ``folder`` itself never disappears.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=folder.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model.save_pretrained(tmp)
        config_path = tmp / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_model
        atomic_write_json(config_path, config)
        folder.mkdir(exist_ok=True)
        new = sorted(tmp.iterdir(), key=lambda p: p.name == "adapter_config.json")  # the config goes last
        for path in new:
            os.replace(path, folder / path.name)
        for stale in set(folder.iterdir()) - {folder / p.name for p in new}:
            stale.unlink() if stale.is_file() else shutil.rmtree(stale)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _progress(total: int, initial: int, *, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False)
