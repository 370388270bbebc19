"""``probe explain --loss MODULE:FUNCTION`` / ``FILE.py:FUNCTION``: a user's own loss named on the command line reads
the same record as ``Readout.from_data(..., loss=)`` in Python; a name that imports nothing is one line."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import numpy as np
import pytest

from probe.cli.parser import main

LOSS_FILE = '''
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Settings:  # a dataclass under postponed annotations needs its module registered, as an import does
    back: int = 1


def last_token_nll(model, batch):
    """Each example's negative log-likelihood of its last token given the tokens before it."""
    logits = model(**batch).logits
    last = batch["attention_mask"].sum(1) - Settings().back
    rows = torch.arange(len(last))
    logp = logits[rows, last - 1].float().log_softmax(-1)
    return -logp[rows, batch["input_ids"][rows, last]]


NOT_A_FUNCTION = 3
'''


@pytest.fixture()
def files(tmp_path):
    data = tmp_path / "d.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for n in range(16):
            writer.writerow([f"the story {n} of the day was about the {['team', 'market'][n % 2]}", "ab"[n % 2]])
    prompt = tmp_path / "p.npy"
    np.save(prompt, np.random.default_rng(0).normal(0, 0.5, (2, 32)).astype(np.float32))
    (tmp_path / "losses.py").write_text(LOSS_FILE)
    return tmp_path, data, prompt


def test_cli_explain__loss_from_a_file_reads_the_record_the_python_api_reads(
    files, tiny_gpt2_path, capsys, monkeypatch
):
    from probe.core.models import load_model
    from probe.formats.prompts import load_prompt
    from probe.readings.explain import Readout, importance

    folder, data, prompt = files
    out = folder / "explain.json"
    args = ["explain", str(prompt), "--model", str(tiny_gpt2_path), "--data", str(data), "--no-progress"]
    quick = ["--hard-steps", "2", "--lens-texts", "2", "--lens-tokens", "50", "--bootstrap", "20", "--test-size", "0"]
    loss = f"{folder / 'losses.py'}:last_token_nll"
    assert main([*args, *quick, "--loss", loss, "--format", "json", "--out", str(out)]) == 0, capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["objective"] == "user-loss" and record["importance"]["objective"] == "user-loss"
    spec = importlib.util.spec_from_file_location("losses", folder / "losses.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "losses", module)  # as an import registers it (its dataclass looks it up)
    spec.loader.exec_module(module)
    model = load_model(str(tiny_gpt2_path), device="cpu")
    readout = Readout.from_data(model, str(data), loss=module.last_token_nll)
    expected = importance(load_prompt(prompt).vectors, readout, bootstrap=20)
    assert record["importance"]["soft_loss"] == pytest.approx(expected.soft_loss, rel=1e-6)
    shown = [p["removed_loss_rise"] for p in record["importance"]["positions"]]
    assert shown == pytest.approx([p.removed_loss_rise for p in expected.positions], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "--loss is 'no_colon'; expected MODULE:FUNCTION or FILE.py:FUNCTION"),
        ("missing.py:f", "--loss: the file 'missing.py' does not exist"),
        ("LOSSES:NOT_A_FUNCTION", "has no function 'NOT_A_FUNCTION'"),
        ("LOSSES:absent", "has no function 'absent'"),
        ("probe_no_such_module:f", "--loss: importing 'probe_no_such_module' failed: ModuleNotFoundError"),
    ],
)
def test_cli_explain__a_loss_that_names_no_function_is_one_line(files, tiny_gpt2_path, capsys, spec, message):
    folder, data, prompt = files
    spec = spec.replace("LOSSES", str(folder / "losses.py"))
    args = ["explain", str(prompt), "--model", str(tiny_gpt2_path), "--data", str(data), "--loss", spec]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
