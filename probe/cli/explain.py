"""``probe explain``: what a prompt does (position importance, the best real-token prompt, a layer lens); and
:class:`PromptCommand`, what it shares with ``probe harden``: finding the prompt, its data and its task."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from probe.cli.options import Command, Format, budget_gb_option, budget_minutes_option, emit, option

DEFAULT_COLUMNS = ("text", "label", None)
"""--text-column, --label-column and --target-column as given when none is: a run's own are read."""
DEFAULT_TEST_ROWS = 200
"""The test rows ``probe harden`` scores on unless told (a seeded, stratified subset)."""
EXPLAIN_TEST_ROWS = 128
"""The test rows ``probe explain`` reads unless told: its importance makes 3p + 1 passes over them, so fewer rows
keep its default within minutes (an AG News run of 20 positions: about 3 minutes on 2 cores; --full: every row)."""


@dataclass
class PromptCommand(Command):
    """What the commands that read a run's or a file's prompt under its task share: the options that find the
    prompt, its data and its task, and the readout they make (``probe explain``, ``probe harden``)."""

    target: str = option(
        help="a run folder, or a prompt file / adapter (then give --data)", positional=True, metavar="run", exists=True
    )
    step: int | None = option(None, "the run's snapshot at this step (default: the last)")
    task_id: int | None = option(None, "a multitask prompt's task (each task has its own prompt)")
    model: str | None = option(None, "model name or folder (default: the one the run or prompt records)")
    data: str | None = option(None, "labelled data file (default: the run's own); accuracies are on its test split")
    task: Literal["cosine", "verbaliser", "generate"] | None = option(
        None, "the task a prompt file was trained under (runs and PEFT adapters record theirs)"
    )
    text_column: str = option("text", "column with the text in --data (default text)")
    label_column: str = option("label", "column with the label in --data (default label)")
    target_column: str | None = option(
        None,
        "read --data under the free-text target objective: this column holds each text's target, and every reading "
        "measures its log-likelihood (causal and seq2seq models; the label column is not read)",
    )
    loss: str | None = option(
        None,
        "read --data under your own loss: MODULE:FUNCTION or FILE.py:FUNCTION, a function (model, batch) -> each "
        "example's loss (probe.Readout's loss=: probe drops the prompt's positions from the outputs)",
    )
    test_size: int | None = option(
        None,
        "score on a seeded, stratified subset of this many test rows (default: harden 200, explain 128; 0: every row)",
        counts=True,
    )
    seed: int = option(0, "seeds the held-out slice and the search's batches (default 0)")
    data_changed_ok: bool = option(False, "read a run although its data file changed since it was trained")
    no_progress: bool = option(False, "hide the progress bars")
    budget_minutes: float | None = budget_minutes_option()

    default_rows: ClassVar[int] = DEFAULT_TEST_ROWS
    reads_prefixes: ClassVar[bool] = False
    """Whether a prefix adapter is read (as its flat keys and values, :meth:`Readout.outcome` runs it as a prefix)."""

    def test_rows(self) -> int | None:
        """The test rows every reading scores on (None: every row): ``--test-size``, else the command's default."""
        size = self.default_rows if self.test_size is None else self.test_size
        return size or None

    def _prompt(self) -> tuple[Any, Any]:
        from probe.formats.discovery import is_any_run, load_run
        from probe.formats.prefix import is_prefix_adapter, prefix_steps
        from probe.formats.prompts import load_prompt

        self.target = self._from_frontier(self.target)
        if self.reads_prefixes and (is_prefix_adapter(self.target) or prefix_steps(self.target)):
            return None, self._prefix()
        run = load_run(self.target) if is_any_run(self.target) else None
        if run is not None and self.task_id is not None:
            run = run.for_task(self.task_id)  # a multitask run (another tool's folder: nothing is written into it)
        if run is not None:
            return run, run.snapshot(self.step) if self.step is not None else run.latest_prompt()
        if self.data is None:
            raise ValueError(f"'{self.target}' is a prompt, not a run: give its task's data with --data FILE")
        if self.step is not None:
            raise ValueError(
                f"--step picks a snapshot of a run or a folder of checkpoints; '{self.target}' is one prompt"
            )
        return None, load_prompt(self.target, task_id=self.task_id)

    def _prefix(self) -> Any:
        """A prefix adapter, or the checkpoint at ``--step`` (default: the last) of a folder of them, as its flat keys
        and values (which the readout runs as a prefix).

        Raises:
            ValueError: no --data, or a step the folder has no checkpoint of.
        """
        import dataclasses

        from probe.core.softprompt import as_prompt
        from probe.formats.prefix import load_prefix, prefix_steps

        if self.data is None:
            raise ValueError(f"'{self.target}' is a prefix, not a run: give its task's data with --data FILE")
        if self.task_id is not None:
            raise ValueError(f"'{self.target}' is a prefix, which has no tasks: drop --task-id")
        steps = prefix_steps(self.target)
        if not steps:
            if self.step is not None:
                raise ValueError(f"--step picks a checkpoint of a folder of them; '{self.target}' is one prefix")
            return as_prompt(load_prefix(self.target))
        step = max(steps) if self.step is None else self.step
        if step not in steps:
            raise ValueError(f"'{self.target}' has no prefix checkpoint at step {step}; it has steps {list(steps)}")
        return dataclasses.replace(as_prompt(load_prefix(steps[step])), step=step)

    @staticmethod
    def _from_frontier(target: str) -> str:
        """A ``probe frontier`` folder stands for its run whose nearest tokens score best (the search's start)."""
        from pathlib import Path

        from probe.experiments.frontier import best_start
        from probe.experiments.frontier.record import FRONTIER_JSON, read_frontier

        if not (Path(target) / FRONTIER_JSON).is_file():
            return target
        row, path = best_start(read_frontier(Path(target) / FRONTIER_JSON), target)
        print(
            f"starting from the frontier run {path} (λ={row['weight']:g}, seed {row['seed']}: nearest tokens "
            f"{row['discretised_accuracy']:.3f}, soft {row['soft_accuracy']:.3f})",
            file=sys.stderr,
        )
        return str(path)

    def _readout(self, run: Any, prompt: Any, model: Any) -> Any:
        readout = self._readout_of(run, prompt, model)
        self._check_task(run, prompt, readout)
        return readout

    def _check_task(self, run: Any, prompt: Any, readout: Any) -> None:
        """Refuse a ``--task`` the readout does not run (errors.md 194): a run's or a PEFT adapter's recorded task
        is the task, and a causal or seq2seq model has one form (it was taken without a word)."""
        from probe.formats.files import PEFT_FORMS, recorded_task_type

        task_type = recorded_task_type(prompt) if run is None else None
        recorded = PEFT_FORMS.get(task_type or "")
        if self.task is None or (self.task == readout.form and recorded in (None, "cosine", readout.form)):
            return
        if readout.form == "custom":
            return  # --loss or --target-column say the objective; --task names the form it is read with
        if run is not None:
            why = "the task its run was trained with"
        elif recorded is not None:
            why = f"the task its PEFT {task_type} adapter was trained on"
        else:
            why = f"a {readout.model.kind} model's one task: each label as the continuation"
        raise ValueError(
            f"--task {self.task}: '{self.target}' is read under {recorded or readout.form} ({why}); drop --task"
        )

    def _readout_of(self, run: Any, prompt: Any, model: Any) -> Any:
        from probe.readings.explain import Readout

        rows = self.test_rows()
        columns: dict[str, Any] = {"text_column": self.text_column, "label_column": self.label_column}
        head = run is not None and run.manifest.task_form == "classifier-head"  # a recorded SEQ_CLS run: its head
        loss = None
        if self.loss is not None:
            from probe.cli.user_code import load_function

            if self.data is None:
                raise ValueError("--loss reads the data you give it: give --data FILE")
            loss = load_function(self.loss, "--loss")
        data = self._run_data(run) if run is not None else self.data
        if loss is None and run is not None and (run.manifest.config is not None or head):  # its task and settings
            return Readout.from_run(run, model, data=data, data_changed_ok=self.data_changed_ok, test_size=rows)
        if self.data is None:
            raise ValueError(f"'{self.target}' records no training data; give it with --data FILE")
        return Readout.for_prompt(
            prompt,
            model,
            data,
            form=self.task,
            loss=loss,
            seed=self.seed,
            test_size=rows,
            target_column=self.target_column,
            **columns,
        )

    def _run_data(self, run: Any) -> Any:
        """``--data`` split as ``run`` split it: its seed and its columns (an option given overrides its own), never by
        ``--seed`` (errors.md 207), and checked against the data it recorded; None when no --data is given."""
        from probe.core.frames import as_splits

        if self.data is None:
            return None
        config = run.manifest.config or {}
        names = ("text_column", "label_column", "target_column")
        columns: dict[str, Any] = {n: config.get(n, d) for n, d in zip(names, DEFAULT_COLUMNS, strict=True)}
        given = (self.text_column, self.label_column, self.target_column)
        columns |= {n: v for n, v, d in zip(names, given, DEFAULT_COLUMNS, strict=True) if v != d}
        splits = as_splits(self.data, seed=int(config.get("seed", run.manifest.seed or 0)), **columns)
        if (
            run.manifest.data is not None
        ):  # here, not only in Readout.from_run: the --loss path reads through for_prompt
            changed_ok, where = self.data_changed_ok, str(run.path)
            run.manifest.data.check(splits.train.sha256, allow_changed=changed_ok, run=where, given=str(self.data))
        return splits


@dataclass
class Explain(PromptCommand):
    """What a prompt does: position importance and faithfulness, the best real-token prompt, a layer lens."""

    name: ClassVar[str] = "explain"
    default_rows: ClassVar[int] = EXPLAIN_TEST_ROWS
    reads_prefixes: ClassVar[bool] = True
    summary: ClassVar[str] = "position importance, a hard (real-token) prompt and a layer lens for a run or prompt"
    epilog: ClassVar[str] = (
        "Into a probe run folder it writes explain.json (the latest readings), explain/step-N.json (one per "
        "measured snapshot), hard-prompt.json and hard-prompt-state.* (the search's resumable state); another "
        "tool's folder is never written to. --out writes the report (md, json or csv) to that file instead of "
        "stdout. Every reading runs under the task the prompt was trained on: a probe run's task form, a PEFT "
        "adapter's task type, or --task for a tensor file. It prints its time estimate first. By default it reads "
        "a bounded sample (128 seeded, stratified test rows, a 50-step hard-prompt search): about a minute for a "
        "demo run and about 3 for an AG News run on 2 cores; --full reads every test row with a 300-step search."
    )

    full: bool = option(
        False,
        "the exhaustive reading: every test row, 300 hard-prompt steps and the lens over 128 texts (an option "
        "given as well keeps its value)",
    )
    hard_steps: int | None = option(None, "steps of the hard-prompt search (default 50; --full: 300)", positive=True)
    hard_method: Literal["pez", "search"] = option(
        "pez",
        "how the hard prompt is found: pez (projected gradient, default) or search (exact coordinate search, the "
        "soft prompt as teacher; about 2x the time: probe harden has its settings)",
    )
    lens_tokens: int | None = option(
        None, "tokens in the layer lens's contextual vocabulary (default 10000)", positive=True
    )
    lens_texts: int | None = option(
        None, "test texts the layer lens averages hidden states over (default 32; --full: 128)", positive=True
    )
    attribution: int = option(
        0,
        "also input attribution (occlusion) over this many test texts (default 0: off; 200 news texts take about "
        "50 s on 2 cores, 30 s once the frozen model's side is cached)",
        counts=True,
    )
    triggers: int = option(
        0, "also a trigger scan of this many frequent tokens (default 0: off; try 10000)", counts=True
    )
    bootstrap: int = option(1000, "bootstrap resamples for the importance intervals (default 1000)", positive=True)
    seed: int = option(0, "seeds the bootstrap, the held-out slice and the search's batches (default 0)")
    format: Format | None = option(
        None, "output format: md, json or csv (default: --out's suffix, else md; csv: the importance table)"
    )
    out: str | None = option(None, "write to this file instead of stdout")
    budget_gb: float | None = budget_gb_option()

    def test_rows(self) -> int | None:
        return None if self.full and self.test_size is None else super().test_rows()

    def sizes(self) -> tuple[int, int]:
        """(hard-prompt steps, lens texts): as given, else the default's (50, 32) or ``--full``'s (300, 128)."""
        return self.hard_steps or (300 if self.full else 50), self.lens_texts or (128 if self.full else 32)

    def run(self) -> int:
        from probe.core.budget import check_memory, check_time, shown_gb
        from probe.core.models import load_model
        from probe.formats.run import is_run_folder
        from probe.readings.explain import explain, save_explain
        from probe.readings.explain.hardening import check_method
        from probe.readings.explain.lens import vocabulary_bytes
        from probe.readings.explain.record import check_counts, estimate_seconds

        run, prompt = self._prompt()
        model = load_model(self.model or prompt.base_model or "default")
        prefix = self._check_width(prompt, model)
        readout = self._readout(run, prompt, model)
        check_counts(readout, self.attribution, self.triggers)  # before the estimate's passes
        check_method(self.hard_method, readout)
        (hard_steps, lens_texts), lens_tokens = self.sizes(), self.lens_tokens or 10_000
        if prefix:  # its per-layer reference instead of the lens's vocabulary
            from probe.readings.prefix import reference_bytes

            memory = reference_bytes(model, prefix)
            what, held, less = "per-layer prefix reference", "the prefix's per-layer reference", ""
        else:
            memory = vocabulary_bytes(readout.model, tokens=lens_tokens)
            what, held, less = "layer lens", "the lens's vocabulary", "read fewer --lens-tokens"
        check_memory(memory, f"probe explain's {what}", gb=self.budget_gb, less=less)
        seconds = estimate_seconds(
            readout,
            prompt.length,
            hard_steps=hard_steps,
            lens_tokens=lens_tokens,
            lens_texts=lens_texts,
            attribution_texts=self.attribution,
            trigger_tokens=self.triggers,
            hard_method=self.hard_method,
            width=prompt.dim,
        )
        print(
            f"explaining {prompt.length} positions on {len(readout.splits.test)} test rows under the task "
            f"{readout.task_name} (objective {readout.objective}): about {seconds / 60:.1f} min on this machine "
            f"(one pass and one step timed), {shown_gb(memory)} for {held}",
            file=sys.stderr,
            flush=True,
        )
        less = "read less (--test-size, --hard-steps, --lens-tokens, --lens-texts, --attribution, --triggers)"
        check_time(seconds, "probe explain", minutes=self.budget_minutes, less=less)
        writable = run is not None and is_run_folder(run.path)  # never write into another tool's folder
        record = explain(
            prompt,
            readout,
            source=str(self.target),
            hard_steps=hard_steps,
            lens_tokens=lens_tokens,
            lens_texts=lens_texts,
            bootstrap=self.bootstrap,
            seed=self.seed,
            state_dir=run.path if writable and run is not None else None,
            attribution_texts=self.attribution,
            trigger_tokens=self.triggers,
            progress=not self.no_progress,
            hard_method=self.hard_method,
        )
        if writable and run is not None:
            save_explain(record, run.path)
        emit(self._text(record, prompt), self.out)
        return 0

    def _check_width(self, prompt: Any, model: Any) -> int:
        """The layers of a prefix read as one (0 for input rows), once the prompt is known to fit ``model``.

        Raises:
            ValueError: a prompt of another model, or options for a hard prompt or a lens given for a prefix.
        """
        from probe.formats.adapters import KV_KINDS
        from probe.formats.prefix import kv_geometry
        from probe.tasks.base import prefix_width

        if prompt.metadata.get("peft_type") not in KV_KINDS:
            if prompt.dim == prefix_width(model) != model.dim:  # a prefix's weights alone say nothing of its layout
                raise ValueError(
                    f"'{prompt.source}' has a prefix's width ({prompt.dim}: layers x 2 x token_dim of model "
                    f"'{model.name}') but no adapter config: give the prefix's adapter folder"
                )
            prompt.check_dim(model.dim, model.name)
            return 0
        if prompt.dim != prefix_width(model):
            raise ValueError(
                f"prefix '{prompt.source}' has width {prompt.dim} (layers x 2 x token_dim); model '{model.name}' takes "
                f"a prefix of width {prefix_width(model)}: read it with the model it was trained on (--model)"
            )
        given = [
            f"--{n.replace('_', '-')}"
            for n in ("hard_steps", "lens_texts", "lens_tokens")
            if getattr(self, n) is not None
        ]
        given += ["--hard-method search"] if self.hard_method != "pez" else []
        if given:
            raise ValueError(
                f"{' and '.join(given)} set the hard prompt and the layer lens, which a prefix has none "
                "of (its keys and values at every layer stand in for no input tokens); leave them out"
            )
        return kv_geometry(model.model.config)[0]

    def _text(self, record: Any, prompt: Any) -> str:
        if self.format == "json":
            return str(record.to_json())
        if self.format == "csv":
            return str(record.importance.to_csv())
        return str(record.to_markdown())
