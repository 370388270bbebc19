"""What a reading costs per example under the free-text target objective against labels (issue 29's cost target:
explain on a free-text objective no slower per example than on labels).

    python bench/target_objective.py [--hidden 128] [--layers 2] [--length 4]

No causal model is offline, so a random GPT-2 is built from a config (hidden 128, 2 layers) with the bundled
encoder's 30,522-token WordPiece tokenizer (a real vocabulary's size: the KL of faithfulness holds next-token
distributions over it). On the bundled ``feelings`` test split it times, as ``probe explain`` runs them, one whole
pass (``Readout.outcome``), position importance and faithfulness: under labels (the four label words ranked as
continuations) and under the target objective with the same words as each text's target, and with a five-word
target. Each reading is timed twice; the faster counts. Prints a markdown table and writes
bench/target_objective.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _model(folder: Path, hidden: int, layers: int) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from probe.core.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = GPT2Config(
        n_embd=hidden,
        n_layer=layers,
        n_head=4,
        n_positions=256,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _seconds(work: Callable[[], object]) -> float:
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        work()
        timings.append(time.perf_counter() - began)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--length", type=int, default=4)
    args = parser.parse_args()

    import numpy as np
    import torch

    from probe.core.data import TARGET_CLASS, DataSplits, LabelledData, train_test
    from probe.core.models import load_model
    from probe.readings.explain import Readout, importance, score_stand_ins

    torch.set_num_threads(2)
    splits = train_test("feelings")
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(str(_model(Path(tmp), args.hidden, args.layers)), device="cpu")
        vectors = np.random.default_rng(0).normal(0, 0.5, (args.length, model.dim)).astype(np.float32)

        def as_targets(split: LabelledData, extra: str) -> LabelledData:
            targets = [f"{label}{extra}" for label in split.labels]
            return LabelledData(split.texts, [TARGET_CLASS] * len(split), [TARGET_CLASS], target_texts=targets)

        readouts = {
            "labels (4 label words)": Readout.from_data(model, splits, form="generate"),
            # the data's targets choose the objective; "generate" is these models' one form
            "target: the label word": Readout.from_data(
                model, DataSplits(as_targets(splits.train, ""), as_targets(splits.test, "")), form="generate"
            ),
            "target: five words": Readout.from_data(
                model,
                DataSplits(*(as_targets(s, " is what this text says") for s in (splits.train, splits.test))),
                form="generate",
            ),
        }
        rows = []
        for name, readout in readouts.items():
            test = readout.splits.test
            one = _seconds(lambda r=readout, t=test: r.outcome(vectors, t))
            imp = _seconds(lambda r=readout: importance(vectors, r, bootstrap=200))
            faith = _seconds(lambda r=readout: score_stand_ins(vectors, r, bootstrap=200))
            rows.append((name, len(test), one, imp, faith))
    lines = [
        f"Random GPT-2 (hidden {args.hidden}, {args.layers} layers, 30,522-token vocabulary), a prompt of "
        f"{args.length} positions, the bundled feelings test split, 2 threads; milliseconds per test example "
        "(the faster of two runs).",
        "",
        "| objective | examples | one pass | importance | faithfulness |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, one, imp, faith in rows:
        lines.append(f"| {name} | {n} | {one / n * 1e3:.1f} | {imp / n * 1e3:.1f} | {faith / n * 1e3:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "target_objective.md").write_text("# Readings under the target objective: cost per example\n\n" + text)


if __name__ == "__main__":
    main()
