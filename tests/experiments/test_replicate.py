"""probe.experiments.replicate: the findings are measured from saved runs alone, deterministic, and recomputable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probe.experiments.replicate import (
    REPORT_JSON,
    REPORT_MD,
    ReplicateConfig,
    characteristic_words,
    estimate_seconds,
    measure_findings,
    replicate,
)


@pytest.fixture(scope="module")
def tiny_replication(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicate")
    config = ReplicateConfig(lengths=(2, 8), seeds=(0, 1), steps=6, bootstrap=200)
    text = replicate(config, out, progress=False)
    return out, text, config


def _finding(data, number):
    return next(f for f in data["findings"] if f["number"] == number)


@pytest.mark.slow
def test_replicate__writes_a_table_of_six_findings_with_controls_and_verdicts(tiny_replication):
    out, text, _ = tiny_replication
    assert (out / REPORT_MD).read_text() == text
    for name in (
        "Semantic clusters",
        "Class labels persist",
        "Labels appear under other inits",
        "Long prompts repeat neighbours",
        "Domain words",
        "Accuracy by length and init",
    ):
        assert name in text
    assert "| finding | paper says | learned [95% CI] | at init | random control | verdict | runs |" in text
    assert "not T5-XXL" in text and "Prompt Waywardness" in text
    data = json.loads((out / REPORT_JSON).read_text())
    assert [f["number"] for f in data["findings"]] == [1, 2, 3, 4, 5, 6]
    assert data["context"]["runs"] == 12 and (out / "accuracy.html").is_file()
    assert "cluster bootstrap" in data["context"]["resampling"]
    assert "resample the test examples" in data["context"]["resampling"]  # the runs recorded per-example results
    assert set(data["context"]["travel"]) == {"class-label", "random-uniform", "sampled-vocab"}
    for f in data["findings"]:
        assert f["verdict"] in ("yes", "no", "unclear")
        lo, hi = f["interval"]
        assert lo <= f["estimate"] + 1e-9 and f["estimate"] - 1e-9 <= hi
    for number in (1, 3, 4, 5):  # every position finding carries its init control and its by-init reading
        f = _finding(data, number)
        assert "at_init" in f["values"] and f["init_control"] == f["values"]["at_init"]
        assert all({"estimate", "at_init", "travel", "verdict"} <= set(v) for v in f["values"]["by_init"].values())
        assert "at init" in f["values"]["margins"]


@pytest.mark.slow
def test_replicate__readings_recomputed_independently(tiny_replication, default_model, default_index):
    from probe import load_run

    out, _, _ = tiny_replication
    data = json.loads((out / REPORT_JSON).read_text())
    v = default_model.embeddings_numpy()[default_index.token_ids]
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)

    def top5(vectors):
        sims = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ unit.T
        return default_index.token_ids[np.argsort(-sims, axis=1)[:, :5]]

    def coherence(ids):
        rows = unit[np.searchsorted(default_index.token_ids, ids)]  # [p, 5, d]
        gram = np.einsum("pkd,pjd->pkj", rows, rows)
        return (gram.sum(axis=(1, 2)) - 5) / 20

    kept, final_coh, init_coh = [], [], []
    for run_dir in sorted((out / "runs").iterdir()):
        run = load_run(run_dir)
        final, first = top5(run.latest_prompt().vectors), top5(run.initial_prompt().vectors)
        final_coh.append(coherence(final))
        init_coh.append(coherence(first))
        if run.manifest.init == "class-label":
            for i, label in enumerate(run.labels[: run.manifest.length]):
                ids = set(default_model.tokenizer(label, add_special_tokens=False)["input_ids"])
                kept.append(bool(ids & set(final[i].tolist())))
    assert _finding(data, 2)["estimate"] == pytest.approx(np.mean(kept))
    finding1 = _finding(data, 1)
    assert finding1["estimate"] == pytest.approx(np.concatenate(final_coh).mean(), abs=1e-5)
    assert finding1["values"]["at_init"] == pytest.approx(np.concatenate(init_coh).mean(), abs=1e-5)
    assert finding1["estimate"] > finding1["random_control"]


@pytest.mark.slow
def test_replicate__accuracy_interval_resamples_seeds_and_examples(tiny_replication):
    from probe import load_run

    out, _, _ = tiny_replication
    data = json.loads((out / REPORT_JSON).read_text())
    run = load_run(out / "runs" / "class-label-p8-s0")
    bits = run.final_correct()
    assert bits is not None and bits.size == run.manifest.data.test_size
    assert bits.mean() == pytest.approx(run.manifest.soft_accuracy)
    row = next(r for r in data["accuracy"] if r["init"] == "class-label" and r["length"] == 8)
    assert row["low"] <= row["soft_accuracy"] <= row["high"] and row["high"] > row["low"]  # examples add spread
    assert row["seeds"] == 2
    finding6 = _finding(data, 6)
    assert set(finding6["values"]["contrasts"]) == {"class-label - random-uniform", "p=8 - p=2"}
    step0 = [
        next(r["soft_accuracy"] for r in load_run(d).records() if r.get("kind") == "eval" and r["step"] == 0)
        for d in sorted((out / "runs").iterdir())
    ]
    assert finding6["values"]["at_init"] == pytest.approx(np.mean(step0))


@pytest.mark.slow
def test_replicate__same_seeds_retrained_give_the_same_table(tiny_replication, tmp_path):
    import shutil

    out, _, config = tiny_replication
    one_seed = ReplicateConfig(lengths=config.lengths, seeds=(1,), steps=config.steps, bootstrap=config.bootstrap)
    replicate(one_seed, tmp_path / "again", progress=False)  # trains the seed-1 runs afresh
    (tmp_path / "kept" / "runs").mkdir(parents=True)
    for run_dir in (out / "runs").glob("*-s1"):
        shutil.copytree(run_dir, tmp_path / "kept" / "runs" / run_dir.name)
    first = measure_findings(tmp_path / "kept" / "runs", bootstrap=200)
    second = measure_findings(tmp_path / "again" / "runs", bootstrap=200)
    assert [f.estimate for f in first[0]] == [f.estimate for f in second[0]]
    assert [f.interval for f in first[0]] == [f.interval for f in second[0]]
    assert first[1].equals(second[1])


def test_characteristic_words__per_class_tfidf():
    words = characteristic_words("topics")
    assert {"team", "election"} & words and len(words) <= 100


def test_measure_findings__empty_folder(tmp_path):
    with pytest.raises(ValueError, match="has no finished runs"):
        measure_findings(tmp_path)


def test_replicate_config__quick_grid_and_its_training_settings():
    quick = ReplicateConfig.quick(data="topics", task="verbaliser")
    configs = quick.run_configs()
    assert len(configs) == 3 * 2 * 2 and {c.length for c in configs.values()} == {5, 20}
    config = configs["random-uniform-p20-s1"]
    assert (config.steps, config.test_size, config.task, config.data) == (60, 400, "verbaliser", "topics")
    assert (config.optimizer, config.lr, config.init_scale) == ("adamw", 0.01, "vocab-norm")


@pytest.mark.slow
def test_estimate_seconds__counts_only_missing_runs_and_scales_with_steps(tiny_replication, default_model, tmp_path):
    out, _, config = tiny_replication
    assert estimate_seconds(config, out, model=default_model) == (0.0, 0)  # every run is there
    short, runs = estimate_seconds(config, tmp_path, model=default_model)
    long, _ = estimate_seconds(ReplicateConfig(lengths=(2, 8), seeds=(0, 1), steps=600), tmp_path, model=default_model)
    assert runs == 12 and 0 < short < long


def test_measure_only__times_one_run_then_refuses_over_the_budget_and_writes_within_it(
    tiny_replication, tmp_path, capsys, monkeypatch
):
    import shutil

    from probe.cli.parser import main

    monkeypatch.delenv("PROBE_BUDGET_MINUTES", raising=False)
    out, _, _ = tiny_replication
    shutil.copytree(out / "runs", tmp_path / "runs")  # the saved runs alone: no report yet
    argv = ["replicate", "--measure-only", "--out", str(tmp_path), "--no-progress"]
    capsys.readouterr()
    assert main([*argv, "--budget-minutes", "0.0001"]) == 2
    first, refusal = capsys.readouterr().err.strip().splitlines()
    assert first.startswith("reading the saved runs: about 1 min (one run's reading timed, times the runs;")
    assert refusal.startswith("probe replicate: error: probe replicate --measure-only would take about ")
    assert "over the time budget of 0.0001 min (--budget-minutes); raise it with --budget-minutes 1" in refusal
    assert not (tmp_path / REPORT_MD).exists() and not (tmp_path / REPORT_JSON).exists()
    assert main([*argv, "--budget-minutes", "60"]) == 0
    assert json.loads((tmp_path / REPORT_JSON).read_text())["context"]["runs"] == 12
