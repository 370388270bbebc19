"""``probe train --target-column``: a prompt trained on free-text targets, on tiny random causal and seq2seq models,
and read back under the objective it was trained on."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from probe.core.models import load_model
from probe.training.config import TrainConfig
from probe.training.trainer import train

TEXTS = ["the team won", "shares fell today", "a new vaccine", "voters chose", "rain is coming", "the cat sat"]
TARGETS = ["sports", "markets are down", "health news", "an election result", "weather", "a pet story"]


def _data(tmp_path):
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "summary"])
        writer.writeheader()
        for n, (text, target) in enumerate(zip(TEXTS * 2, TARGETS * 2, strict=True)):
            writer.writerow({"text": f"{text} {n}", "summary": target})
    return path


@pytest.mark.parametrize(("fixture", "kind"), [("tiny_gpt2_path", "causal"), ("tiny_t5_path", "seq2seq")])
def test_train__free_text_targets_lower_the_loss_and_the_run_reads_back_under_them(fixture, kind, request, tmp_path):
    from probe.readings.explain import Readout

    model = load_model(request.getfixturevalue(fixture), device="cpu")
    config = TrainConfig(
        model=str(model.name),
        data=str(_data(tmp_path)),
        target_column="summary",
        length=4,
        steps=30,
        batch_size=6,
        lr=0.3,
        snapshot_every=30,
        eval_every=30,
        vocab_top_n=100,
    )
    run = train(config, tmp_path / "run", model=model, progress=False)
    losses = run.metrics()["loss"].dropna().to_numpy()
    assert losses[:5].mean() > losses[-5:].mean()
    assert run.manifest.task == f"{kind}-target" and run.manifest.config["target_column"] == "summary"
    readout = Readout.from_run(run, model)
    assert readout.objective == "target-likelihood" and readout.task_name == "target"
    correct, loss = readout.outcome(run.latest_prompt().vectors, readout.splits.test)
    assert run.manifest.soft_accuracy == pytest.approx(correct.mean())  # the training's own figure: token accuracy
    first, _ = readout.outcome(run.snapshot(0).vectors, readout.splits.test)
    assert np.isfinite(loss).all() and first.shape == correct.shape


def test_train_config__class_label_init_with_free_text_targets_is_one_line():
    with pytest.raises(ValueError, match=r"init 'class-label' starts from the label words, but --target-column "):
        TrainConfig(init="class-label", target_column="summary")
