"""The floor under a training run's final evaluation (issue 15): what one exact pass over a test split costs.

    python bench/eval_floor.py [--data ../shared/data/ag_news.csv] [--length 20]

A run's final figures are the soft and the discretised accuracy on the whole test split, each one exact
forward pass per text. This times those passes on the bundled model as ``probe train`` runs them (length-bucketed
batches, inference mode, 2 threads), then with 1 thread, and once under bfloat16 autocast, which is faster on
CPUs with AMX but changes predictions, so probe does not use it for figures it calls exact. Prints a markdown
table and writes bench/eval_floor.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "ag_news.csv"))
    parser.add_argument("--length", type=int, default=20)
    args = parser.parse_args()

    import numpy as np
    import torch

    from probe.core.data import train_test
    from probe.core.models import load_model
    from probe.core.threads import configure_threads
    from probe.tasks.kinds import make_task, wrap_with_prompt

    model = load_model("default", device="cpu")
    test = train_test(args.data).test
    rng = np.random.default_rng(0)
    vectors = model.embeddings_numpy()[rng.choice(model.vocab_size, args.length, replace=False)]
    task = make_task(model, wrap_with_prompt(model, vectors), test.label_names)
    tokens = sum(len(x) + args.length for x in task.tokenize(test.texts))

    def timed(**kwargs: bool) -> tuple[float, np.ndarray]:
        began = time.perf_counter()
        scores = task.score_all(test.texts, **kwargs)
        return time.perf_counter() - began, scores

    rows: list[tuple[str, float, float | None]] = []
    configure_threads(2)
    seconds, exact = timed()
    rows.append(("soft prompt, fp32, 2 threads (what probe runs)", seconds, None))
    seconds, _ = timed(prompt=False)
    rows.append(("no prompt (zero-shot), fp32, 2 threads", seconds, None))
    configure_threads(1)
    seconds, scores = timed()
    rows.append(("soft prompt, fp32, 1 thread", seconds, float((scores.argmax(1) == exact.argmax(1)).mean())))
    configure_threads(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seconds, scores = timed()
    rows.append(("soft prompt, bf16 autocast, 2 threads", seconds, float((scores.argmax(1) == exact.argmax(1)).mean())))
    shown = os.path.relpath(args.data, HERE.parent)
    lines = [
        "# What one exact pass over the test split costs",
        "",
        f"`python bench/eval_floor.py --data {shown} --length {args.length}`: {len(test)} test texts, "
        f"{tokens:,} tokens with the prompt, the bundled all-MiniLM-L6-v2, 2 CPU cores. A run's final figures take "
        "two such passes (soft and discretised).",
        "",
        "| pass | seconds | texts/s | predictions equal to the fp32 pass |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {s:.1f} | {len(test) / s:.0f} | {'-' if same is None else f'{same:.2%}'} |"
            for name, s, same in rows
        ],
        "",
    ]
    # what the floor means for a whole run, with the step time bench/train_eval.py measured on the same data
    import json

    measured = HERE / "train_eval.json"
    runs = json.loads(measured.read_text()) if measured.is_file() else []
    after = [r for r in runs if r.get("code", "").startswith("after") and Path(r["data"]).stem == Path(args.data).stem]
    if after:
        steps = min(r["steps_s"] for r in after)
        floor = 2 * rows[0][1]
        lines += [
            f"With the optimisation steps of `bench/train_eval.py` on this data ({steps:.1f} s for the run), the two "
            f"exact final passes alone ({floor:.1f} s) are {floor / (steps + floor):.0%} of a run that did nothing "
            "else: more than the 25% issue 15 allows, before the model is loaded or anything is evaluated during "
            "training. bfloat16 would halve the passes but not keep every prediction.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    (HERE / "eval_floor.md").write_text(text)


if __name__ == "__main__":
    main()
