"""``probe explain``: what a prompt does (position importance, the best real-token prompt, a layer lens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from probe.cli.options import Command, Format, emit, option


@dataclass
class Explain(Command):
    """What a prompt does: position importance and faithfulness, the best real-token prompt, a layer lens."""

    name: ClassVar[str] = "explain"
    summary: ClassVar[str] = "position importance, a hard (real-token) prompt and a layer lens for a run or prompt"

    target: str = option(
        help="a run folder, or a prompt file / adapter (then give --data)", positional=True, metavar="run"
    )
    step: int | None = option(None, "the run's snapshot at this step (default: the last)")
    model: str | None = option(None, "model name or folder (default: the one the run or prompt records)")
    data: str | None = option(None, "labelled data file (default: the run's own); accuracies are on its test split")
    hard_steps: int = option(100, "steps of the hard-prompt search (default 100)", positive=True)
    lens_tokens: int = option(10_000, "tokens in the layer lens's contextual vocabulary (default 10000)", positive=True)
    lens_texts: int = option(32, "test texts the layer lens averages hidden states over (default 32)", positive=True)
    bootstrap: int = option(1000, "bootstrap resamples for the importance intervals (default 1000)", positive=True)
    seed: int = option(0, "seeds the bootstrap, the held-out slice and the search's batches (default 0)")
    format: Format = option("md", "output format: md, json or csv (default md; csv: the importance table)")
    out: str | None = option(None, "write to this file instead of stdout")
    data_changed_ok: bool = option(False, "read a run although its data file changed since it was trained")
    no_progress: bool = option(False, "hide the progress bars")

    def run(self) -> int:
        from probe.core.models import load_model
        from probe.formats.prompts import load_prompt
        from probe.formats.run import is_run_folder
        from probe.formats.runs import is_any_run, load_run
        from probe.readings.explain import Readout, explain, save_explain

        run = load_run(self.target) if is_any_run(self.target) else None
        if run is not None:
            prompt = run.snapshot(self.step) if self.step is not None else run.latest_prompt()
        else:
            if self.data is None:
                raise ValueError(f"'{self.target}' is a prompt, not a run: give its task's data with --data FILE")
            prompt = load_prompt(self.target)
        model = load_model(self.model or prompt.base_model or "default")
        prompt.check_dim(model.dim, model.name)
        if self.data is not None:
            readout = Readout.from_data(model, self.data, seed=self.seed)
        else:
            assert run is not None
            readout = Readout.from_run(run, model, data_changed_ok=self.data_changed_ok)
        writable = run is not None and is_run_folder(run.path)  # never write into another tool's folder
        record = explain(
            prompt,
            readout,
            source=str(self.target),
            hard_steps=self.hard_steps,
            lens_tokens=self.lens_tokens,
            lens_texts=self.lens_texts,
            bootstrap=self.bootstrap,
            seed=self.seed,
            state_dir=run.path if writable and run is not None else None,
            progress=not self.no_progress,
        )
        if writable and run is not None:
            save_explain(record, run.path)
        if self.format == "json":
            text = record.to_json()
        elif self.format == "csv":
            text = record.importance.to_csv()
        else:
            text = "\n\n".join(
                [
                    f"# What the prompt does: {self.target}"
                    + (f", step {prompt.step}" if prompt.step is not None else ""),
                    "## Which positions matter, and is each reading faithful?",
                    record.importance.to_markdown(),
                    "## The best real-token prompt",
                    record.hard_prompt.to_markdown(),
                    "## Layer lens",
                    record.lens.to_markdown(),
                ]
            )
        emit(text, self.out)
        return 0
