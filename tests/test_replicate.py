"""probe.replicate: the findings are measured from saved runs alone, deterministic, and recomputable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probe.replicate import (
    REPORT_JSON,
    REPORT_MD,
    ReplicateConfig,
    bootstrap_ci,
    characteristic_words,
    cohens_d,
    measure_findings,
    replicate,
)


@pytest.fixture(scope="module")
def tiny_replication(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicate")
    config = ReplicateConfig(lengths=(2, 8), seeds=(0,), steps=6, bootstrap=200)
    text = replicate(config, out, progress=False)
    return out, text, config


@pytest.mark.slow
def test_replicate__writes_a_table_of_six_findings(tiny_replication):
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
    assert "| finding | paper says | measured here | holds? | runs used |" in text
    assert "not T5-XXL" in text and "Prompt Waywardness" in text
    data = json.loads((out / REPORT_JSON).read_text())
    assert [f["number"] for f in data["findings"]] == [1, 2, 3, 4, 5, 6]
    assert data["context"]["runs"] == 6 and (out / "accuracy.html").is_file()


@pytest.mark.slow
def test_replicate__measures_recomputed_independently(tiny_replication, default_model, default_index):
    from probe import load_run

    out, _, _ = tiny_replication
    data = json.loads((out / REPORT_JSON).read_text())
    finding2 = next(f for f in data["findings"] if f["number"] == 2)
    kept = []
    for length in (2, 8):
        run = load_run(out / "runs" / f"class-label-p{length}-s0")
        final = run.latest_prompt().vectors
        v = default_model.embeddings_numpy()[default_index.token_ids]
        sims = (final / np.linalg.norm(final, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
        top = default_index.token_ids[np.argsort(-sims, axis=1)[:, :5]]
        for i, label in enumerate(run.labels[:length]):
            ids = set(default_model.tokenizer(label, add_special_tokens=False)["input_ids"])
            kept.append(bool(ids & set(top[i].tolist())))
    assert finding2["values"]["share"] == pytest.approx(np.mean(kept))
    finding1 = next(f for f in data["findings"] if f["number"] == 1)
    assert finding1["values"]["learned"] > finding1["values"]["control_random"]


@pytest.mark.slow
def test_replicate__same_seeds_retrained_give_the_same_table(tiny_replication, tmp_path):
    out, text, config = tiny_replication
    again = replicate(config, tmp_path, progress=False)  # trains every run afresh in another folder
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {p.name for p in (out / "runs").iterdir()}
    first, second = (json.loads((d / REPORT_JSON).read_text()) for d in (out, tmp_path))
    assert second["findings"] == first["findings"] and second["accuracy"] == first["accuracy"]
    assert again.split("## Caveats")[0].split("\n", 3)[3] == text.split("## Caveats")[0].split("\n", 3)[3]


def test_statistics__bootstrap_and_effect_size():
    values = np.r_[np.zeros(50), np.ones(50)]
    low, high = bootstrap_ci(values, n=500)
    assert low < 0.5 < high and high - low < 0.3
    assert cohens_d(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert cohens_d(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)


def test_characteristic_words__per_class_tfidf():
    words = characteristic_words("topics")
    assert {"team", "election"} & words and len(words) <= 100


def test_measure_findings__empty_folder(tmp_path):
    with pytest.raises(ValueError, match="has no finished runs"):
        measure_findings(tmp_path)
