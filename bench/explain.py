"""The cost of probe explain's readings on a demo run (issue 10's targets), on this machine.

    python bench/explain.py [--runs DIR]

Trains (or reuses) the demo's class-label run (default model, 20 positions, 150 steps, the bundled feelings
set) and times, in one process with an empty probe cache: importance over the test split; building the
layer lens's contextual vocabulary (10,000 tokens x 7 layers), then reading it back from the cache; the lens
reading itself; and a 100-step hard-prompt search. Prints a markdown table and writes bench/explain.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", help="demo runs folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROBE_CACHE_DIR"] = str(Path(tmp) / "cache")
        sys.path.insert(0, str(ROOT))
        from probe.core.models import load_model
        from probe.core.threads import configure_threads
        from probe.experiments.demo import demo_configs, ensure_runs
        from probe.readings.explain import Readout, importance
        from probe.readings.explain.hardening import harden
        from probe.readings.explain.lens import contextual_vocabulary, layer_lens

        threads = configure_threads()
        model = load_model("default", device="cpu")
        runs_dir = Path(args.runs) if args.runs else Path(tmp) / "runs"
        config = demo_configs()["class-label"]
        (run,) = ensure_runs(runs_dir, {"class-label": config}, model=model, progress=False)
        prompt = run.latest_prompt()
        readout = Readout.from_run(run, model)
        readout.zero_shot()  # warm the task wrappers and the zero-shot cache, as the CLI does before the readings
        rows = []

        def timed(name: str, target: str, fn):
            began = time.perf_counter()
            result = fn()
            rows.append((name, time.perf_counter() - began, target))
            print(f"{name}: {rows[-1][1]:.2f} s", file=sys.stderr, flush=True)
            return result

        table = timed(
            "importance (3p + 1 = 61 passes over 64 test texts)", "< 30 s", lambda: importance(prompt, readout)
        )
        vocab = timed(
            "layer-lens vocabulary: build (10,000 tokens x 7 layers)",
            "< 120 s",
            lambda: contextual_vocabulary(model, readout.index, top_n=10_000),
        )
        timed(
            "layer-lens vocabulary: read from the cache",
            "< 1 s",
            lambda: contextual_vocabulary(model, readout.index, top_n=10_000),
        )
        lens = timed("layer-lens reading (32 texts)", "", lambda: layer_lens(prompt, readout, vocabulary=vocab))
        hard = timed("hard-prompt search, 100 steps", "< 120 s", lambda: harden(prompt, readout, steps=100))
    lines = [
        f"Demo class-label run (default model, p = {prompt.length}, {config.steps} steps, feelings test split of "
        f"{table.examples}), {threads} threads, empty probe cache:",
        "",
        "| reading | seconds | target |",
        "|---|---:|---|",
        *[f"| {name} | {seconds:.2f} | {target} |" for name, seconds, target in rows],
        "",
        f"Accuracies: soft {table.soft_accuracy:.3f}, nearest tokens {hard.discretised_accuracy:.3f}, "
        f"hard prompt {hard.accuracy:.3f} ({hard.changed_positions} positions changed), zero-shot "
        f"{hard.zero_shot_accuracy:.3f}. Mean layer at which the input-embedding reading stops holding: "
        f"{sum(lens.holds_until) / len(lens.holds_until):.1f}.",
    ]
    text = "\n".join(lines)
    (HERE / "explain.md").write_text("# The cost of probe explain's readings\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
