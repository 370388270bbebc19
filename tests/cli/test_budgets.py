"""Budgets on the CLI: every long reading prints its estimate first and refuses, in one line naming the option
that lifts it, what passes the time (--budget-minutes, $PROBE_BUDGET_MINUTES) or memory (--budget-gb,
$PROBE_BUDGET_GB) budget the user gave, before any work and any write (docs/errors.md 165-170)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from probe.cli.parser import main
from probe.core.data import train_test

TINY = 0.0001
"""A budget nothing fits in (minutes or GB)."""


@pytest.fixture(scope="module")
def prompt_and_data(tmp_path_factory, default_model):
    import pandas as pd

    folder = tmp_path_factory.mktemp("budgets")
    np.save(folder / "p.npy", default_model.embeddings_numpy()[[2000, 2500]] + 0.05)
    splits = train_test("feelings")
    train, test = splits.train, splits.test
    rows = [(train.texts[i], train.label_names[train.targets[i]], "train") for i in range(0, 192, 4)]
    rows += [(test.texts[i], test.label_names[test.targets[i]], "test") for i in range(0, 64, 4)]
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(folder / "d.csv", index=False)
    return folder / "p.npy", folder / "d.csv"


def _refused(argv: list[str], capsys) -> list[str]:
    """Run ``probe`` expecting a refusal; the lines on stderr."""
    capsys.readouterr()
    assert main(argv) == 2, argv
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.slow
def test_cli_budget__explain_and_harden_print_the_estimate_then_refuse_over_the_time_budget(
    prompt_and_data, capsys, monkeypatch
):
    monkeypatch.delenv("PROBE_BUDGET_MINUTES", raising=False)
    prompt, data = prompt_and_data
    given = [str(prompt), "--data", str(data), "--task", "cosine", "--no-progress"]
    first, refusal = _refused(["explain", *given, "--lens-tokens", "50", "--budget-minutes", str(TINY)], capsys)
    assert first.startswith("explaining 2 positions on 16 test rows") and "GB for the lens's vocabulary" in first
    assert refusal.startswith("probe explain: error: probe explain would take about ")
    assert re.search(
        r"over the time budget of 0.0001 min \(--budget-minutes\); raise it with --budget-minutes \d+, or read less",
        refusal,
    )
    monkeypatch.setenv("PROBE_BUDGET_MINUTES", str(TINY))  # the budget from the environment: the same refusal
    first, refusal = _refused(["harden", *given, "--steps", "2", "--candidates", "2", "--top-k", "4"], capsys)
    assert first.startswith("hardening 2 positions into 2 tokens by search")
    assert re.search(r"budget of 0.0001 min \(\$PROBE_BUDGET_MINUTES\); raise it with --budget-minutes \d+,", refusal)
    assert "search less (--steps, --candidates, --test-size)" in refusal


def test_cli_budget__explain_refuses_a_lens_over_the_memory_budget_before_timing_anything(prompt_and_data, capsys):
    prompt, data = prompt_and_data
    [refusal] = _refused(
        ["explain", str(prompt), "--data", str(data), "--task", "cosine", "--budget-gb", "0.1"], capsys
    )
    assert refusal == (
        "probe explain: error: probe explain's layer lens would hold about 0.22 GB, over the memory budget of 0.1 GB "
        "(--budget-gb); raise it with --budget-gb 0.3, or read fewer --lens-tokens"
    )


@pytest.mark.slow
def test_cli_budget__a_sweep_prints_its_estimate_then_refuses_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "frontier"
    argv = ["frontier", "--out", str(out), "--weights", "0", "--seeds", "1", "--steps", "1", "--length", "1"]
    first, refusal = _refused([*argv, "--test-size", "8", "--no-progress", "--budget-minutes", str(TINY)], capsys)
    assert first.startswith("the frontier over λ = 0: training 1 of 1 runs")
    assert re.search(r"probe frontier would take about .* raise it with --budget-minutes \d+, or ask for less", refusal)
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


def test_cli_budget__report_and_drift_refuse_an_index_or_prefix_reference_over_the_memory_budget(
    prompt_and_data, tiny_gpt2_path, tmp_path, capsys, monkeypatch
):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    steps = tmp_path / "steps"  # another tool's run: a prompt file per step
    steps.mkdir()
    for step in (1, 2):
        np.save(steps / f"step-{step}.npy", np.ones((2, 384), np.float32) * step)
    prompt = str(prompt_and_data[0])
    for command, *run in (("report", prompt), ("drift", str(steps)), ("compare", prompt, prompt)):
        [refusal] = _refused([command, *run, "--budget-gb", str(TINY)], capsys)
        assert f"probe {command}'s vocabulary index would hold about 0.09 GB, over the memory budget" in refusal
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    peft_model.save_pretrained(tmp_path / "run" / "checkpoint-1")
    model = ["--model", str(tiny_gpt2_path)]
    for command, target in (("report", tmp_path / "run" / "checkpoint-1"), ("drift", tmp_path / "run")):
        [refusal] = _refused([command, str(target), *model, "--budget-gb", "1e-6"], capsys)  # before any timing
        assert "the prefix's per-layer reading would hold about 0.00 GB, over the memory budget of 1e-06 GB" in refusal
        assert refusal.endswith("or read one layer (--layer N)")
        first, refusal = _refused([command, str(target), *model, "--budget-minutes", "1e-6"], capsys)
        assert re.match(r"reading 2 layers of the prefix: about \d+\.\d min on this machine .*, 0\.00 GB of ref", first)
        assert re.search(
            r"per-layer reading would take about .* raise it with --budget-minutes 1, or read one layer", (refusal)
        )
    assert _refused(["report", str(prompt_and_data[0]), "--budget-gb", "0"], capsys) == [
        "probe report: error: --budget-gb is 0.0; expected a positive number"
    ]
    monkeypatch.setenv("PROBE_BUDGET_GB", "lots")
    assert _refused(["report", str(prompt_and_data[0])], capsys) == [
        "probe report: error: $PROBE_BUDGET_GB is 'lots'; expected a positive number (or unset: no budget)"
    ]


def test_library_budget__explain_and_harden_refuse_over_budget_minutes_before_any_reading(
    prompt_and_data, default_model, monkeypatch, tmp_path
):
    from probe.readings.explain import Readout, explain, harden

    prompt, data = prompt_and_data
    vectors = np.load(prompt)
    readout = Readout.from_data(default_model, str(data), form="cosine")
    state = tmp_path / "state"  # where the hard-prompt search would keep its resumable state once it started
    state.mkdir()
    with pytest.raises(ValueError) as refused:
        explain(vectors, readout, hard_steps=5, lens_tokens=100, state_dir=state, budget_minutes=TINY)
    line = str(refused.value)
    assert re.match(
        r"explain would take about \d+\.\d min, over the time budget of 0\.0001 min \(budget_minutes=\); "
        r"raise it with budget_minutes=\d+, or fewer hard_steps or lens_tokens$",
        line,
    ), line
    pattern = r"^harden \(pez\) would take about .* raise it with budget_minutes=\d+, or fewer steps$"
    with pytest.raises(ValueError, match=pattern):
        harden(vectors, readout, steps=5, state_dir=state, budget_minutes=TINY)
    assert not any(state.iterdir())  # refused before any reading wrote anything
    monkeypatch.setenv("PROBE_BUDGET_MINUTES", str(TINY))  # the CLI's variable: a call given no budget ignores it
    hard = harden(vectors, readout, steps=2, eval_every=1, state_dir=state)
    assert len(hard.token_ids) == 2 and any(state.iterdir())


def test_library_budget__every_single_reading_refuses_over_budget_minutes_before_any_reading(
    prompt_and_data, default_model, monkeypatch
):
    from probe.readings.explain import Readout, importance, layer_lens, score_stand_ins
    from probe.readings.explain.attribution import input_attribution
    from probe.readings.explain.triggers import trigger_scan

    prompt, data = prompt_and_data
    vectors = np.load(prompt)
    readout = Readout.from_data(default_model, str(data), form="cosine")
    calls = {
        "importance": (lambda m: importance(vectors, readout, budget_minutes=m), "fewer test rows"),
        "faithfulness": (lambda m: score_stand_ins(vectors, readout, budget_minutes=m), "fewer test rows"),
        "input attribution": (lambda m: input_attribution(vectors, readout, size=8, budget_minutes=m), "fewer texts"),
        "the trigger scan": (lambda m: trigger_scan(vectors, readout, tokens=50, budget_minutes=m), "fewer tokens"),
        "the layer lens": (lambda m: layer_lens(vectors, readout, tokens=200, budget_minutes=m), "fewer tokens"),
    }
    passes: list[int] = []
    original = readout.outcome
    monkeypatch.setattr(readout, "outcome", lambda *a, **k: passes.append(1) or original(*a, **k))
    for what, (call, less) in calls.items():
        with pytest.raises(ValueError) as refused:
            call(TINY)
        line = str(refused.value)
        assert re.match(
            rf"{what} would take about \d+\.\d min, over the time budget of 0\.0001 min \(budget_minutes=\); "
            rf"raise it with budget_minutes=\d+, or {less}",
            line,
        ), line
    assert len(passes) == 2 * len(calls)  # only the two timed passes of each estimate: no reading began
    monkeypatch.setenv("PROBE_BUDGET_MINUTES", str(TINY))  # the CLI's variable: a call given no budget ignores it
    assert len(importance(vectors, readout, bootstrap=20).positions) == 2


def test_input_row_readings__a_prefix_is_refused_in_one_line(default_model):
    from probe.readings.explain import Readout, harden, layer_lens

    readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=8)
    prefix = np.zeros((2, 6 * 2 * 384), np.float32)  # a flat prefix of the bundled encoder
    for reading, what in ((harden, "the hard-prompt search"), (layer_lens, "the layer lens")):
        with pytest.raises(
            ValueError, match=rf"^{what} reads a prompt of input rows \(width 384\); this one has width"
        ):
            reading(prefix, readout)
