"""Input attribution (occlusion) and the trigger scan: each equals a one-text-at-a-time recomputation on every model
kind, and a prompt trained on a marker-only task puts the marker first in both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.core.models import load_model
from probe.formats.effects import Effects
from probe.readings.explain import Readout
from probe.readings.explain.attribution import (
    _function_words,
    input_attribution,
    occlusions,
    scan_candidates,
    trigger_scan,
)


def _one_at_a_time(readout: Readout, vectors: np.ndarray | None, text: str) -> np.ndarray:
    """Class probabilities of one text, scored alone (the prompt set first, or the frozen model for None)."""
    task = readout.task(1 if vectors is None else len(vectors))
    if vectors is not None:
        readout.scores(vectors, readout.splits.test.subset([0]))
    s = task.score_all([text], prompt=vectors is not None)[0] * task.logit_scale
    e = np.exp(s - s.max())
    return e / e.sum()


@pytest.fixture(params=["default", "tiny_gpt2_path", "tiny_t5_path"])
def readout(request, default_model):
    kind = request.param
    model = default_model if kind == "default" else load_model(request.getfixturevalue(kind), device="cpu")
    return Readout.from_data(model, "topics", form="cosine", test_size=16)


@pytest.mark.parametrize("min_count", [1, 2])
def test_occlusion__equals_one_text_at_a_time(readout, min_count):
    vectors = np.random.default_rng(0).normal(size=(3, readout.model.dim)).astype(np.float32)
    texts = ["The bank raised interest rates again, rates!", "A striker scored twice in the final rates."]
    got = input_attribution(vectors, readout, texts=texts, min_count=min_count)
    expected: dict[tuple[str, str], list[float]] = {}
    for text in texts:
        full_p, full_z = _one_at_a_time(readout, vectors, text), _one_at_a_time(readout, None, text)
        for word, variant in occlusions(text, skip=_function_words()):
            p, z = _one_at_a_time(readout, vectors, variant), _one_at_a_time(readout, None, variant)
            for c, label in enumerate(readout.labels):
                expected.setdefault((word, label), []).append((full_p[c] - p[c]) - (full_z[c] - z[c]))
    # the default reads only words held by two texts or more ("rates"); min_count=1 reads every content word
    expected = {key: values for key, values in expected.items() if len(values) >= min_count}
    if min_count == 2:
        assert {word for word, _ in expected} == {"rates"}
        assert "words held by at least 2 of them" in got.to_markdown()
    assert Effects.from_dict(got.to_dict()).min_count == got.min_count == min_count
    table = got.table.set_index(["unit", "label"])
    assert set(table.index) == set(expected)
    for key, values in expected.items():  # over the split: a text without the word adds 0
        assert table.loc[key, "effect"] == pytest.approx(np.sum(values) / len(texts), abs=2e-5), key
        assert table.loc[key, "mean_where_present"] == pytest.approx(np.mean(values), abs=2e-5), key


def test_trigger_scan__equals_one_text_at_a_time(readout):
    vectors = np.random.default_rng(1).normal(size=(2, readout.model.dim)).astype(np.float32)
    base = ["Markets were quiet today", "The match ended"]
    got = trigger_scan(vectors, readout, tokens=3, include=["goal"], texts=base)
    words = scan_candidates(readout, 3, ["goal"])
    assert sorted(got.table["unit"].unique()) == sorted(words) and "goal" in words
    for word in words:
        for c, label in enumerate(readout.labels):
            effects = []
            for text in base:
                p = _one_at_a_time(readout, vectors, f"{text} {word}")[c] - _one_at_a_time(readout, vectors, text)[c]
                z = _one_at_a_time(readout, None, f"{text} {word}")[c] - _one_at_a_time(readout, None, text)[c]
                effects.append(p - z)
            assert got.effect(label, word) == pytest.approx(np.mean(effects), abs=2e-5), (word, label)


@pytest.mark.slow
def test_a_marker_only_task__both_readings_put_the_marker_first(tmp_path, default_model):
    """On the default model: a prompt on the random tiny GPT-2 does not learn this task (its accuracy stays at the
    majority share after 150 steps at lr 0.1), so on the tiny models the readings are checked by recomputation."""
    from probe.core.data import load_labelled
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    texts = load_labelled("feelings").texts
    rng = np.random.default_rng(0)
    marked = rng.random(len(texts)) < 0.5
    table = pd.DataFrame(
        {
            "text": [f"{t} zeppelin" if m else t for t, m in zip(texts, marked, strict=True)],
            "label": ["flagged" if m else "plain" for m in marked],
        }
    )
    data = tmp_path / "marker.csv"
    table.to_csv(data, index=False)
    config = TrainConfig(data=str(data), init="class-label", length=4, steps=40, lr=0.05, eval_size=20)
    run = train(config, tmp_path / "run", model=default_model, progress=False)
    readout = Readout.from_run(run, default_model)
    vectors = run.latest_prompt().vectors
    scan = trigger_scan(vectors, readout, tokens=300, include=["zeppelin"])
    assert scan.top("flagged", 1) == ["zeppelin"], scan.top("flagged", 5)
    flagged = [
        t for t, label in zip(readout.splits.test.texts, readout.splits.test.labels, strict=True) if label == "flagged"
    ]
    attribution = input_attribution(vectors, readout, texts=flagged[:20])
    assert attribution.top("flagged", 1) == ["zeppelin"], attribution.top("flagged", 5)
    assert attribution.rank("flagged", "zeppelin") == 1 and scan.rank("flagged", "zeppelin") == 1


def test_effects__bad_label_and_round_trip(default_model):
    readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=8)
    vectors = default_model.embeddings_numpy()[:2]
    got = input_attribution(vectors, readout, texts=["I was so happy at the party"])
    with pytest.raises(ValueError, match="is not one of the classes"):
        got.top("nope")
    again = Effects.from_dict(got.to_dict())
    pd.testing.assert_frame_equal(again.table, got.table, check_dtype=False)
    assert set(got.table["unit"]) == {"happy", "party"}  # one text is read whole, whatever min_count
    with pytest.raises(ValueError, match="no word to occlude"):
        input_attribution(vectors, readout, texts=["the a of"])
    with pytest.raises(ValueError, match="no word to occlude.*min_count=1"):
        input_attribution(vectors, readout, texts=["happy party", "sad day"])
    with pytest.raises(ValueError, match="min_count is 0"):
        input_attribution(vectors, readout, texts=["happy party"], min_count=0)


def test_input_attribution__a_huge_text_is_refused_before_any_variant_is_made(default_model):
    import numpy as np

    from probe.readings.explain.attribution import input_attribution
    from probe.readings.explain.readout import Readout

    readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=8)
    huge = " ".join(f"word{i % 5000}" for i in range(150_000))  # about 1.3 MB of text
    with pytest.raises(ValueError, match="over the budget of 200,000,000; read shorter texts") as caught:
        input_attribution(np.ones((2, 384), np.float32), readout, texts=[huge, huge])
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_explain_estimate__counts_every_text_attribution_and_the_trigger_scan_score(default_model):
    """explain's estimate (and so its time budget) includes --attribution and --triggers: the texts they score are
    counted before any is made, and attribution over huge texts is refused by the estimate itself."""
    from dataclasses import replace

    from probe.readings.explain.attribution import occlusion_plan, rows_scored, scan_texts
    from probe.readings.explain.readout import Readout
    from probe.readings.explain.record import estimate_seconds

    readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=8)
    texts = readout.splits.test.texts[:6]
    _, variants, _ = occlusion_plan(texts, 2)
    assert rows_scored(readout) == 0
    assert rows_scored(readout, attribution_texts=6) == 2 * (6 + len(variants)) > 12
    assert rows_scored(readout, trigger_tokens=30) == 2 * 30 * len(scan_texts(readout))
    base = estimate_seconds(readout, 2, hard_steps=1, lens_tokens=20, lens_texts=1)
    more = estimate_seconds(readout, 2, hard_steps=1, lens_tokens=20, lens_texts=1, trigger_tokens=2000)
    assert more > base
    huge = " ".join(f"word{i % 5000}" for i in range(150_000))
    test = replace(readout.splits.test, texts=[huge] * len(readout.splits.test))
    swollen = replace(readout, splits=replace(readout.splits, test=test))
    with pytest.raises(ValueError, match="over the budget of 200,000,000; read shorter texts"):
        estimate_seconds(swollen, 2, attribution_texts=2)
