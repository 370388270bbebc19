"""What ProbeCallback adds to a Hugging Face Trainer's step time (issue 11: at most 5%).

    python bench/callback.py [--steps 60] [--rounds 3] [--every 1 10]

A real Trainer prompt-tunes the bundled model with PEFT (20 virtual tokens, batch 16, the feelings set),
without the callback and with ``ProbeCallback(every=E)``, interleaved in fresh processes. The step time is
the median wall time between consecutive ``on_step_end`` calls, measured by a timing callback that runs
after probe's. The first 5 steps are left out as warm-up. Prints a markdown table and writes
bench/callback.md and bench/callback.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_RUN = r"""
import json, sys, tempfile, time
import numpy as np, torch, torch.nn.functional as F
from peft import PromptTuningConfig, get_peft_model
from transformers import AutoModel, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from probe.core.data import train_test
from probe.training.integrations import ProbeCallback
from probe.core.models import bundled_model_path, load_model
from probe.core.threads import configure_threads

configure_threads()
steps, every = int(sys.argv[1]), int(sys.argv[2])
model = load_model("default", device="cpu")
splits = train_test("feelings")
torch.manual_seed(0)
peft_model = get_peft_model(AutoModel.from_pretrained(bundled_model_path()),
                            PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20, token_dim=384))
with torch.no_grad():
    enc = model.tokenizer(splits.train.label_names, padding=True, return_tensors="pt")
    h = model.model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1)
    labels = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)

class Texts(torch.utils.data.Dataset):
    def __init__(self):
        self.enc = model.tokenizer(splits.train.texts, truncation=True, max_length=128)
    def __len__(self):
        return len(splits.train)
    def __getitem__(self, i):
        return {"input_ids": self.enc["input_ids"][i], "labels": splits.train.targets[i]}

class Cosine(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs.pop("labels")
        hidden = model(**inputs).last_hidden_state[:, 20:]
        mask = inputs["attention_mask"].unsqueeze(-1)
        pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return F.cross_entropy(pooled @ labels.T / 0.05, targets)

times = []
class Clock(TrainerCallback):
    last = None
    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        if Clock.last is not None:
            times.append(now - Clock.last)
        Clock.last = now

with tempfile.TemporaryDirectory() as d:
    callbacks = ([ProbeCallback(d + "/run", every=every)] if every else []) + [Clock()]
    args = TrainingArguments(output_dir=d + "/out", max_steps=steps, per_device_train_batch_size=16,
                             learning_rate=0.01, logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, seed=0, remove_unused_columns=False, disable_tqdm=True)
    Cosine(model=peft_model, args=args, train_dataset=Texts(), data_collator=DataCollatorWithPadding(model.tokenizer),
           callbacks=callbacks).train()
print(json.dumps({"median": float(np.median(times[5:])), "mean": float(np.mean(times[5:]))}))
"""


def _run(steps: int, every: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as cache:
        env["PROBE_CACHE_DIR"] = cache
        done = subprocess.run(
            [sys.executable, "-c", _RUN, str(steps), str(every)], capture_output=True, text=True, env=env, timeout=3600
        )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])["median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    variants = [0, *args.every]
    times: dict[int, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):  # interleaved: without, every=1, every=10, without, ...
        for v in variants:
            times[v].append(_run(args.steps, v))
            print(f"every={v or 'none'}: {times[v][-1]:.4f} s", file=sys.stderr, flush=True)
    base = statistics.median(times[0])
    rows = [
        {
            "callback": "none" if v == 0 else f"ProbeCallback(every={v})",
            "step_s": statistics.median(times[v]),
            "ratio": statistics.median(times[v]) / base,
            "all": times[v],
        }
        for v in variants
    ]
    (HERE / "callback.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"Trainer step time, median of {args.rounds} interleaved runs x {args.steps} steps (first 5 left out):",
        "",
        "| callback | median step s | ratio to none |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r['callback']} | {r['step_s']:.4f} | {r['ratio']:.3f} |" for r in rows]
    (HERE / "callback.md").write_text("# What ProbeCallback adds to a Trainer step\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
