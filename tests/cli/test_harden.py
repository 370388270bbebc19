"""probe harden: the estimate first, the hard prompt with its readability and faithfulness, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probe.cli.parser import main
from probe.core.data import train_test


@pytest.fixture(scope="module")
def prompt_and_data(tmp_path_factory, default_model):
    folder = tmp_path_factory.mktemp("harden")
    np.save(folder / "p.npy", default_model.embeddings_numpy()[[2000, 2500, 3000]] + 0.05)
    splits = train_test("feelings")
    train, test = splits.train, splits.test
    rows = [(train.texts[i], train.label_names[train.targets[i]], "train") for i in range(60)]
    rows += [(test.texts[i], test.label_names[test.targets[i]], "test") for i in range(16)]
    import pandas as pd

    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(folder / "d.csv", index=False)
    return folder / "p.npy", folder / "d.csv"


@pytest.mark.slow
def test_cli_harden__prints_the_estimate_first_then_the_prompt_its_readability_and_faithfulness(
    prompt_and_data, tmp_path, capsys
):
    prompt, data = prompt_and_data
    argv = ["harden", str(prompt), "--data", str(data), "--task", "cosine", "--steps", "2", "--eval-every", "1"]
    argv += ["--candidates", "4", "--top-k", "8", "--length", "6", "--bootstrap", "50", "--no-progress"]
    assert main([*argv, "--save", str(tmp_path / "hard.json"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    first = captured.err.strip().splitlines()[0]
    assert first.startswith("hardening 3 positions into 6 tokens by search") and "min on this machine" in first
    assert "readability: " in captured.err and "whole words" in captured.err
    report = json.loads(captured.out)
    saved = json.loads((tmp_path / "hard.json").read_text())
    assert saved == report["hard_prompt"] and saved["method"] == "search" and len(saved["token_ids"]) == 6
    assert 0 <= saved["word_share"] <= 1 and saved["perplexity"] is None  # an encoder: no perplexity
    names = [s["name"] for s in report["faithfulness"]["stand_ins"]]
    assert names == ["discretised", "hard prompt (search)"]
    assert main([*argv, "--method", "pez", "--start", str(tmp_path / "hard.json")]) == 0
    out = capsys.readouterr().out
    assert "Readability: " in out and "| hard prompt (pez) |" in out and "tokens by pez" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--length", "4"], "length is 4; expected a positive multiple of the soft prompt's 3 positions"),
        (["--task-weight", "-1"], "task_weight is -1.0; expected a finite number, 0 or more"),
    ],
)
def test_cli_harden__a_bad_length_or_weight_is_one_line(prompt_and_data, capsys, extra, message):
    prompt, data = prompt_and_data
    assert main(["harden", str(prompt), "--data", str(data), "--task", "cosine", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_cli_harden__an_unknown_method_is_an_argparse_error(prompt_and_data, capsys):
    prompt, data = prompt_and_data
    with pytest.raises(SystemExit) as e:
        main(["harden", str(prompt), "--data", str(data), "--method", "gcg"])
    assert e.value.code == 2 and "invalid choice: 'gcg'" in capsys.readouterr().err
