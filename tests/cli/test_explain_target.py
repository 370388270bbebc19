"""``probe explain`` under the free-text target objective (``--target-column``), on a tiny random GPT-2."""

from __future__ import annotations

import csv
import json

import numpy as np

from probe.cli.parser import main

TEXTS = ["the team won", "shares fell today", "a new vaccine", "voters chose", "rain is coming", "the cat sat"]
TARGETS = ["sports", "markets are down", "health news", "an election result", "weather", "a pet story"]


def _files(tmp_path, model_dim, targets=TARGETS):
    data = tmp_path / "pairs.csv"
    with data.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "summary"])
        writer.writeheader()
        for n, (text, target) in enumerate(zip(TEXTS * 2, targets * 2, strict=True)):
            writer.writerow({"text": f"{text} report {n}", "summary": target})  # "report": held by every text
    prompt = tmp_path / "p.npy"
    np.save(prompt, np.random.default_rng(0).normal(0, 0.5, (2, model_dim)).astype(np.float32))
    return data, prompt


def test_cli_explain__target_column_reads_every_figure_under_the_target_objective(tiny_gpt2_path, tmp_path, capsys):
    data, prompt = _files(tmp_path, 32)
    out = tmp_path / "explain.json"
    args = ["explain", str(prompt), "--model", str(tiny_gpt2_path), "--data", str(data), "--target-column", "summary"]
    quick = ["--hard-steps", "2", "--lens-texts", "2", "--lens-tokens", "50", "--bootstrap", "20", "--no-progress"]
    quick += ["--attribution", "3", "--triggers", "3", "--hard-method", "search"]
    assert main([*args, *quick, "--format", "json", "--out", str(out)]) == 0
    assert "(objective target-likelihood)" in capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["objective"] == "target-likelihood"
    assert record["importance"]["objective"] == "target-likelihood" and record["importance"]["task"] == "target"
    assert record["faithfulness"]["objective"] == "target-likelihood"
    assert record["hard_prompt"]["objective"] == "target-likelihood"
    assert record["importance"]["soft_loss"] > 0 and record["faithfulness"]["zero_shot_loss"] > 0
    assert all(np.isfinite(p["removed_loss_rise_ci"]).all() for p in record["importance"]["positions"])
    assert record["attribution"]["objective"] == "target-likelihood" and record["attribution"]["rows"]
    assert record["triggers"]["objective"] == "target-likelihood" and record["triggers"]["labels"] == ["<target>"]
    assert record["hard_prompt"]["method"] == "search"


def test_cli_explain__a_missing_target_column_is_one_line(tiny_gpt2_path, tmp_path, capsys):
    data, prompt = _files(tmp_path, 32)
    args = ["explain", str(prompt), "--model", str(tiny_gpt2_path), "--data", str(data)]
    assert main([*args, "--target-column", "answer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no target column 'answer'; it has ['summary', 'text']" in err[0]
    assert "--target-column" in err[0]


def test_cli_explain__a_step_given_for_one_prompt_is_one_line(tiny_gpt2_path, tmp_path, capsys):
    data, prompt = _files(tmp_path, 32)
    args = ["explain", str(prompt), "--model", str(tiny_gpt2_path), "--data", str(data), "--target-column", "summary"]
    assert main([*args, "--step", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--step picks a snapshot of a run or a folder of checkpoints" in err[0], err
