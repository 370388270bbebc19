"""Record a probe run from someone else's training loop: the Hugging Face ``Trainer``, Accelerate, a hand loop.

- :class:`ProbeCallback`: ``Trainer(..., callbacks=[ProbeCallback("runs/mine", every=10)])``.
- :func:`track`: for any loop::

      with probe.track(peft_model, "runs/mine", every=10) as rec:
          for step in range(1, steps + 1):
              ...  # forward, backward, optimizer step
              rec.step(step, loss=loss.item())

Both write the same run folder as ``probe train`` (manifest, snapshots every ``every`` steps and at the end,
metrics), so drift, the map, compare and the live dashboard read it while training goes on. Only the
process of rank 0 writes. A snapshot copies the prompt (p x d floats) and writes it atomically; nothing
else is added to a step.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from probe.core.models import canonical_name
from probe.core.softprompt import live_vectors
from probe.core.tokens import text_list
from probe.formats.discovery import load_run
from probe.formats.files import PEFT_FORMS, PEFT_INITS, PEFT_KINDS
from probe.formats.manifest import Manifest
from probe.formats.run import ADAPTER, is_run_folder
from probe.formats.writer import RunWriter
from probe.tasks.kinds import prompt_parameter
from probe.tasks.user import check_head_labels, head_labels
from probe.training.callbacks import save_adapter

PER_LAYER_KINDS = ("PREFIX_TUNING", "CARTRIDGE")
"""PEFT methods whose prompt is keys and values per layer: read from their checkpoints, not recorded as runs."""

logger = logging.getLogger(__name__)

__all__ = ["ProbeCallback", "Recorder", "attach", "record", "track"]


def _is_main_process() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return all(os.environ.get(var, "0") in ("", "0") for var in ("RANK", "LOCAL_RANK"))


class Recorder:
    """Writes a probe run folder for a PEFT prompt-tuning model trained by any loop.

    Args:
        peft_model: the PEFT model whose prompt is trained.
        out: the run folder to create.
        every: snapshot every this many steps (and at the first and the last step).
        labels: the task's class labels, if it has any (marked in reports).
        seed: the seed of the user's run, recorded in the manifest.
        extra: more fields to record in the manifest (its ``extra`` entry).
        trainer: the Hugging Face Trainer's settings (recorded by :class:`ProbeCallback`).
        write: whether this process writes (default: rank 0 of a distributed run, or a single process).
        resume_at: continue the run already in ``out`` from this step (what was recorded after it is dropped);
            None starts a new run.
        overwrite: start over in ``out``: probe's own files of a run already there are deleted first.

    Raises:
        ValueError: ``every`` is not a positive integer, the model has no prompt-tuning adapter, or ``out``
            already holds a run and neither ``resume_at`` nor ``overwrite`` is given.
    """

    def __init__(
        self,
        peft_model: Any,
        out: str | os.PathLike[str],
        *,
        every: int = 10,
        labels: list[str] | None = None,
        seed: int | None = None,
        extra: dict[str, Any] | None = None,
        trainer: dict[str, Any] | None = None,
        write: bool | None = None,
        resume_at: int | None = None,
        overwrite: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every is {every!r}; expected a positive number of steps between snapshots")
        labels = text_list(labels, "labels")
        try:
            prompt_parameter(peft_model)
            config = peft_model.peft_config[peft_model.active_adapter]
        except (AttributeError, KeyError) as e:
            raise ValueError(
                f"{type(peft_model).__name__} has no PEFT prompt-tuning adapter; pass the model returned by "
                "peft.get_peft_model(model, PromptTuningConfig(...))"
            ) from e
        kind = str(getattr(config.peft_type, "value", config.peft_type))
        if kind in PER_LAYER_KINDS:
            raise ValueError(
                f"{kind} trains keys and values per layer, not rows of the input embeddings, so probe does not record "
                "it as a run; save its checkpoints (the Trainer's save_steps) and read them: probe report "
                "CHECKPOINT_FOLDER (a reading per layer, and drift over the checkpoints), probe explain CHECKPOINT "
                "--data FILE (what it does)"
            )
        if str(getattr(config.task_type, "value", config.task_type)) == "SEQ_CLS" and labels:
            check_head_labels(peft_model, labels)
        self.every, self.path, self.peft_model = every, Path(out), peft_model
        self.initial = self.vectors()
        self.last_step: int | None = None
        self.snapshots: set[int] = set()
        self.writer: RunWriter | None = None
        if write if write is not None else _is_main_process():
            base = config.base_model_name_or_path
            task_type = str(getattr(config.task_type, "value", config.task_type))
            init = str(getattr(config, "prompt_tuning_init", "") or "").split(".")[-1].upper()
            manifest = Manifest(
                model=canonical_name(base) if base else None,
                kind=PEFT_KINDS.get(task_type),
                task_form=PEFT_FORMS.get(task_type),
                init=PEFT_INITS.get(init, init.lower() or "unknown"),
                length=int(self.initial.shape[0]),
                seed=seed,
                labels=list(labels or head_labels(peft_model) or []),
                snapshot_every=every,
                source="recorded",
                trainer=trainer,
                extra=dict(extra or {}),
            )
            self.writer = self._open(manifest, resume_at, overwrite)

    def _open(self, manifest: Manifest, resume_at: int | None, overwrite: bool) -> RunWriter:
        """A writer for a new run, for the run already there from ``resume_at`` on, or for the run started over
        (probe's own files of the one there deleted under the writer's lock; the user's files stay)."""
        if overwrite or resume_at is None or not is_run_folder(self.path):
            return RunWriter(self.path, manifest, overwrite=overwrite)
        before = load_run(self.path)
        if before.steps:
            self.initial = before.initial_prompt().vectors  # drift is measured from where the run began
        writer = RunWriter(self.path, before.manifest.replace(status="running", resumed_from=resume_at), resume=True)
        writer.truncate_after(resume_at)
        self.snapshots = {s for s in before.steps if s <= resume_at}
        return writer

    def vectors(self) -> np.ndarray:
        """float32 [p, d]: the prompt the model prepends now (:func:`probe.core.softprompt.live_vectors`)."""
        return live_vectors(self.peft_model)

    def snapshot(self, step: int) -> None:
        """Write the prompt as it is now, as the snapshot at ``step`` (once per step)."""
        if self.writer is not None and step not in self.snapshots:
            self.writer.write_snapshot(step, self.vectors())
            self.snapshots.add(step)

    def step(self, step: int, *, loss: float | None = None, **metrics: float) -> None:
        """Record a finished optimisation step: its loss and metrics, and a snapshot every ``every`` steps.

        Raises:
            TypeError / ValueError: a step that is not a whole number from 0, or before the last one recorded.
        """
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise TypeError(f"step is {step!r}; expected the whole number of optimisation steps done, from 0")
        if self.last_step is not None and step < self.last_step:
            raise ValueError(
                f"step {step} comes before step {self.last_step}, already recorded; a run's steps go forward (a new "
                "run: another folder, or track(..., overwrite=True))"
            )
        self.last_step = step = int(step)
        if self.writer is not None and (loss is not None or metrics):
            values = {"loss": float(loss)} if loss is not None else {}
            self.writer.log("train", step=step, **values, **{k: float(v) for k, v in metrics.items()})
        if step % self.every == 0:
            self.snapshot(step)

    def evaluate(self, step: int, **metrics: float) -> None:
        """Record evaluation metrics at ``step`` (e.g. ``accuracy=0.8``)."""
        if self.writer is not None and metrics:
            self.writer.log("eval", step=step, **{k: float(v) for k, v in metrics.items()})

    def drift(self) -> dict[str, float]:
        """How far the prompt has moved from where recording began (cheap: no vocabulary search)."""
        now = self.vectors()
        cos = np.einsum("pd,pd->p", now, self.initial) / (
            np.linalg.norm(now, axis=1) * np.linalg.norm(self.initial, axis=1) + 1e-12
        )
        return {
            "probe/cos_to_init": float(cos.mean()),
            "probe/l2_to_init": float(np.linalg.norm(now - self.initial, axis=1).mean()),
            "probe/norm": float(np.linalg.norm(now, axis=1).mean()),
        }

    def finish(self, step: int | None = None, *, status: str = "finished") -> None:
        """Close the run: a snapshot of the prompt as trained at the last step, and the final status."""
        step = step if step is not None else (self.last_step or 0)
        if status == "finished":
            self.snapshot(step)
            if self.writer is not None:  # the final adapter, with a SEQ_CLS head: what reads the prompt as trained
                save_adapter(self.peft_model, self.path / ADAPTER, self.writer.manifest.model or "unknown")
        if self.writer is not None:
            try:
                self.writer.update(status=status, last_step=step, steps=step, finished=time.time())
            finally:
                self.writer.close()

    def __enter__(self) -> Recorder:
        self.snapshot(0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self.finish(status="interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")


def track(
    peft_model: Any, out: str | os.PathLike[str], *, every: int = 10, overwrite: bool = False, **kwargs: Any
) -> Recorder:
    """Track a prompt's training in any loop as a probe run: use it as a context manager around the loop.

    The prompt is snapshotted on entry (step 0), every ``every`` steps you report with ``rec.step(step,
    loss=...)``, and at the last step on exit; the run's status says whether the loop finished, was interrupted
    or failed. Drift, the map, compare and the dashboard read the folder while the loop runs.

    Args:
        peft_model: the PEFT prompt-tuning model being trained.
        out: the run folder to create.
        every: snapshot every this many steps.
        overwrite: start over when ``out`` already holds a run (its probe files are deleted first).
        **kwargs: see :class:`Recorder` (``labels``, ``seed``, ``extra``, ``resume_at``, ...).

    Returns:
        The :class:`Recorder`.

    Raises:
        ValueError: see :class:`Recorder`.

    Example::

        with probe.track(peft_model, "runs/mine", every=10) as rec:
            for step in range(1, steps + 1):
                ...  # forward, backward, optimizer step
                rec.step(step, loss=loss.item())
    """
    return Recorder(peft_model, out, every=every, overwrite=overwrite, **kwargs)


def record(
    peft_model: Any, out: str | os.PathLike[str], *, every: int = 10, overwrite: bool = False, **kwargs: Any
) -> Recorder:
    """Deprecated name of :func:`track` (removed in probe 0.3.0)."""
    from probe.core.deprecation import warn_renamed

    warn_renamed("probe.record", "probe.track")
    return track(peft_model, out, every=every, overwrite=overwrite, **kwargs)


class ProbeCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that writes a probe run while the ``Trainer`` trains a prompt.

    Add it as any callback (``callbacks=[ProbeCallback(...)]`` or ``trainer.add_callback(...)``), in any order.
    ``trainer.train(resume_from_checkpoint=...)``, and a notebook cell run again, continue the probe run in
    ``out`` from the Trainer's step; ``overwrite=True`` starts it over.

    Args:
        out: the run folder to create (or continue).
        every: snapshot every this many optimisation steps (and at the start and the final step).
        labels: the task's class labels, if any.
        log_drift: send ``probe/cos_to_init``, ``probe/l2_to_init`` and ``probe/norm`` to the reporters the
            Trainer reports to (TensorBoard, Weights & Biases) under ``probe/``, at every logging step; with no
            reporter they go into the Trainer's logs.
        overwrite: start the probe run over when ``out`` already holds one.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        every: int = 10,
        *,
        labels: list[str] | None = None,
        log_drift: bool = True,
        overwrite: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every is {every!r}; expected a positive number of steps between snapshots")
        labels = text_list(labels, "labels")
        self.out, self.every, self.labels, self.log_drift, self.overwrite = out, every, labels, log_drift, overwrite
        self.recorder: Recorder | None = None
        self._tensorboard: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.recorder = Recorder(
            model,
            self.out,
            every=self.every,
            labels=self.labels,
            seed=args.seed,
            trainer={"max_steps": state.max_steps, "learning_rate": args.learning_rate},
            write=state.is_world_process_zero,
            resume_at=state.global_step,  # 0 for a fresh start: a run already there is continued from its start
            overwrite=self.overwrite,
        )
        self.recorder.snapshot(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is not None:
            self.recorder.step(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.recorder is None or not logs:
            return
        step = state.global_step
        train = {k: v for k, v in logs.items() if isinstance(v, int | float) and not k.startswith(("eval_", "probe/"))}
        evals = {
            k.removeprefix("eval_"): v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, int | float)
        }
        if "loss" in train and self.recorder.writer is not None:
            self.recorder.writer.log("train", step=step, loss=float(train["loss"]), lr=train.get("learning_rate"))
        self.recorder.evaluate(step, **evals)
        if self.log_drift and state.is_world_process_zero:
            values = self.recorder.drift()
            if not self._report(args, step, values):
                logs.update(values)  # no reporter to send them to: the Trainer's log history holds them

    def _report(self, args: Any, step: int, values: dict[str, float]) -> bool:
        """Send ``values`` to the Trainer's reporters under their own ``probe/`` names (the reporters would file
        anything added to the logs under ``train/``, and only if they ran after this callback); False when it
        reports to none of them."""
        targets = args.report_to if isinstance(args.report_to, list) else [args.report_to]
        reported = False
        if "tensorboard" in targets or "all" in targets:
            if self._tensorboard is None:
                from torch.utils.tensorboard import SummaryWriter

                folder = os.environ.get("TENSORBOARD_LOGGING_DIR") or os.path.join(args.output_dir, "runs")
                self._tensorboard = SummaryWriter(log_dir=os.path.join(folder, "probe"))
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)
            self._tensorboard.flush()
            reported = True
        if "wandb" in targets or "all" in targets:
            try:
                import wandb
            except ImportError:
                return reported
            if wandb.run is not None:
                wandb.log({**values, "train/global_step": step}, commit=False)
                reported = True
        return reported

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is not None:
            self.recorder.finish(state.global_step)
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def attach(trainer: Any, out: str | os.PathLike[str], every: int = 10, **kwargs: Any) -> ProbeCallback:
    """Add a :class:`ProbeCallback` to ``trainer`` (kept for scripts that use it: a plain
    ``trainer.add_callback(ProbeCallback(...))`` now does the same, in any order)."""
    callback = ProbeCallback(out, every, **kwargs)
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback
