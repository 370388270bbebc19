"""``probe harden``: the best real-token stand-in for a soft prompt, by exact coordinate search or PEZ, with its
faithfulness (gain retained, agreement, KL with paired intervals) and its readability."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from probe.cli.explain import PromptCommand
from probe.cli.options import emit, option


@dataclass
class Harden(PromptCommand):
    """A hard (real-token) prompt that does the soft prompt's job, scored against it, with its readability."""

    name: ClassVar[str] = "harden"
    summary: ClassVar[str] = "distil a soft prompt into real tokens (exact search or PEZ) and score the stand-in"
    epilog: ClassVar[str] = (
        "The search scores every candidate swap exactly on a batch of training texts by KL(soft prompt's class "
        "distribution ‖ the hard prompt's) + --task-weight × the task's cross-entropy (+ --readability-weight × "
        "the share of tokens that are not whole words). It prints its time estimate first. In a probe run folder "
        "it keeps its resumable state (hard-prompt-search-state.* or hard-prompt-state.*); --save writes the "
        "record (hard-prompt JSON, which probe loads as a prompt)."
    )

    method: Literal["search", "pez"] = option(
        "search",
        "search: exact coordinate search, the soft prompt as teacher; pez: projected gradient (default search)",
    )
    steps: int = option(100, "steps of the search (default 100)", positive=True)
    length: int | None = option(
        None, "tokens in the hard prompt: a multiple of the soft prompt's positions (default: as many)", positive=True
    )
    start: str | None = option(None, "start from this hard-prompt JSON's token ids (a PEZ result, say)", exists=True)
    candidates: int = option(32, "swaps scored exactly per step (default 32)", positive=True)
    top_k: int = option(64, "tokens per position a swap is drawn from, by one-hot gradient (default 64)", positive=True)
    task_weight: float = option(1.0, "weight of the task's cross-entropy beside the KL to the soft prompt (default 1)")
    readability_weight: float = option(0.0, "weight of the share of tokens that are not whole words (default 0)")
    batch_size: int = option(16, "training texts per step (default 16)", positive=True)
    eval_every: int = option(10, "choose on the held-out slice every this many steps (default 10)", positive=True)
    lr: float = option(0.1, "PEZ's learning rate (default 0.1)", positive=True)
    bootstrap: int = option(1000, "bootstrap resamples for the faithfulness intervals (default 1000)", positive=True)
    format: Literal["md", "json"] | None = option(None, "output format: md or json (default: --out's suffix, else md)")
    out: str | None = option(None, "write the report to this file instead of stdout")
    save: str | None = option(None, "write the hard prompt's record (JSON) to this file")

    def run(self) -> int:
        from probe.core.budget import check_time
        from probe.core.io import atomic_write_json
        from probe.core.models import load_model
        from probe.formats.run import is_run_folder
        from probe.readings.explain.faithfulness import score_stand_ins
        from probe.readings.explain.hardening import estimate_seconds, harden

        run, prompt = self._prompt()
        model = load_model(self.model or prompt.base_model or "default")
        prompt.check_dim(model.dim, model.name)
        readout = self._readout(run, prompt, model)
        options = self._options(model)
        timed = {k: v for k, v in options.items() if k not in ("start", "lr")}
        if options["start"] is not None:
            timed["length"] = len(options["start"])
        seconds = estimate_seconds(prompt, readout, **timed)
        print(
            f"hardening {prompt.length} positions into {timed['length'] or prompt.length} "
            f"tokens by {self.method} on {len(readout.splits.train)} training rows: about {seconds / 60:.1f} min on "
            "this machine (one step timed)",
            file=sys.stderr,
            flush=True,
        )
        less = "search less (--steps, --candidates, --test-size)"
        check_time(seconds, "probe harden", minutes=self.budget_minutes, less=less)
        writable = run is not None and is_run_folder(run.path)  # never write into another tool's folder
        state_dir = run.path if writable and run is not None else None
        hard = harden(prompt, readout, **options, seed=self.seed, state_dir=state_dir, progress=not self.no_progress)
        rows = model.embeddings_numpy()[hard.token_ids]
        faith = score_stand_ins(
            prompt, readout, stand_ins={f"hard prompt ({self.method})": rows}, bootstrap=self.bootstrap, seed=self.seed
        )
        if self.save:
            atomic_write_json(self.save, hard.to_dict())
            print(f"wrote {self.save}", file=sys.stderr)
        print(f"readability: {hard.readability()}", file=sys.stderr)
        if self.format == "json":
            import json

            from probe.core.io import to_jsonable

            text = json.dumps(to_jsonable({"hard_prompt": hard.to_dict(), "faithfulness": faith.to_dict()}), indent=2)
        else:
            text = hard.to_markdown() + "\n\n" + faith.to_markdown()
        emit(text, self.out)
        return 0

    def _options(self, model: Any) -> dict[str, Any]:
        """The search's options as :func:`harden` takes them (the start read from its file)."""
        from probe.formats.hard_prompt import read_hard_prompt
        from probe.readings.explain.search import SearchSettings

        start = None if self.start is None else read_hard_prompt(self.start, vocab_size=model.vocab_size).token_ids
        search = SearchSettings(self.candidates, self.top_k, self.task_weight, self.readability_weight)
        options: dict[str, Any] = {"method": self.method, "length": self.length, "steps": self.steps, "lr": self.lr}
        return options | {
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "search": search,
            "start": start,
        }
