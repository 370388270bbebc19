"""Faithfulness of the stand-ins: every score equals a plain recomputation, on every model kind."""

from __future__ import annotations

import numpy as np
import pytest

from probe.core.models import load_model
from probe.readings.explain import Readout, score_stand_ins


def _plain(readout: Readout, vectors: np.ndarray) -> dict[str, float]:
    """The scores recomputed by hand: nearest tokens by brute-force cosine, the metrics with numpy."""
    index = readout.index
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    nearest = index.token_ids[(unit @ index.unit.T).argmax(1)]
    test = readout.splits.test
    targets = np.asarray(test.targets)
    task = readout.task(len(vectors))
    soft = readout.scores(vectors, test)
    stand = readout.scores(readout.model.embeddings_numpy()[nearest], test)
    zero = task.score_all(test.texts, prompt=False).argmax(1) == targets

    def probs(s: np.ndarray) -> np.ndarray:
        e = np.exp(s * task.logit_scale - (s * task.logit_scale).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = probs(soft), probs(stand)
    soft_acc, acc = (soft.argmax(1) == targets).mean(), (stand.argmax(1) == targets).mean()
    return {
        "accuracy": acc,
        "agreement": (soft.argmax(1) == stand.argmax(1)).mean(),
        "kl": (p * np.log(p / q)).sum(1).mean(),
        "gain_retained": (acc - zero.mean()) / (soft_acc - zero.mean()) if soft_acc > zero.mean() else np.nan,
    }


@pytest.mark.parametrize("kind", ["default", "tiny_gpt2_path", "tiny_t5_path"])
def test_stand_in_scores__equal_a_plain_recomputation(kind, request, default_model):
    model = default_model if kind == "default" else load_model(request.getfixturevalue(kind), device="cpu")
    readout = Readout.from_data(model, "topics", form="cosine", test_size=16)
    vectors = np.random.default_rng(0).normal(size=(3, model.dim)).astype(np.float32)
    scores = score_stand_ins(vectors, readout, bootstrap=50)
    reading = scores["discretised"]
    expected = _plain(readout, vectors)
    for name, value in expected.items():
        got = getattr(reading, name)
        assert (np.isnan(value) and np.isnan(got)) or got == pytest.approx(value, rel=1e-4, abs=1e-5), name
        low, high = getattr(reading, f"{name}_ci")
        assert np.isnan(value) or low - 1e-9 <= got <= high + 1e-9 or name == "gain_retained"
    assert scores.task == readout.task_name


def test_stand_ins__a_prompt_of_real_tokens_is_its_own_reading(default_model):
    readout = Readout.from_data(default_model, "feelings", form="cosine")
    rows = default_model.embeddings_numpy()[default_model.tokenizer.convert_tokens_to_ids(["joy", "fear", "anger"])]
    reading = score_stand_ins(rows, readout, bootstrap=50)["discretised"]
    assert reading.agreement == 1.0 and reading.kl == pytest.approx(0.0, abs=1e-6)
    assert reading.accuracy == pytest.approx(score_stand_ins(rows, readout, bootstrap=50).soft_accuracy)


def test_stand_ins__below_zero_shot_the_gain_is_undefined_as_in_core_stats(default_model):
    from probe.core.stats import gain_retained

    readout = Readout.from_data(default_model, "topics", form="cosine", test_size=16)
    vectors = np.random.default_rng(0).normal(size=(3, default_model.dim)).astype(np.float32)
    scores = score_stand_ins(vectors, readout, bootstrap=50)
    reading = scores["discretised"]
    assert scores.soft_accuracy < scores.zero_shot_accuracy < 1  # no gain over zero-shot to keep
    assert reading.accuracy != scores.soft_accuracy  # (a ratio of two negatives would read as a share kept)
    assert np.isnan(reading.gain_retained) and np.isnan(reading.gain_retained_ci).all()
    assert np.isnan(gain_retained(scores.soft_accuracy, reading.accuracy, scores.zero_shot_accuracy))
    row = next(line for line in scores.to_markdown().splitlines() if line.startswith("| discretised"))
    assert row.endswith("| – |") and "inf" not in row and "nan" not in row
    assert "gain –" in reading.headline()
    from probe.core.stats import gains_retained  # the same definition over bootstrap draws

    np.testing.assert_array_equal(
        gains_retained(np.array([0.9, 0.6, 0.7]), np.array([0.8, 0.8, 0.8]), 0.7)[1:], [np.nan, np.nan]
    )
    assert gains_retained(np.array([0.9]), np.array([0.8]), np.array([0.7]))[0] == pytest.approx(0.5)
