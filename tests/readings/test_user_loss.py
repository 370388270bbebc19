"""Readings of what a prompt does under a caller's own loss, ``loss(model, batch) -> per-example loss``: the model
it is given lines up with the batch's tokens (probe drops PEFT's virtual positions), and importance, faithfulness,
the hard prompt and input attribution report loss figures equal to a recomputation through PEFT's own forward
pass, one example at a time. No accuracy is made up for it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from probe.core.data import from_rows
from probe.core.models import load_model
from probe.core.stats import example_draws, gains_retained, paired_interval
from probe.readings.explain import Readout, harden, importance, score_stand_ins
from probe.tasks.base import wrap_with_prompt

TEXTS = ["the team won", "shares fell today", "a new vaccine", "voters chose", "rain is coming", "the cat sat"]
LABELS = ["sports", "money", "health", "politics", "weather", "pets"]


def _label_token(model, label: str) -> int:
    return model.tokenizer(" " + label, add_special_tokens=False)["input_ids"][0]


def make_loss(model):
    """A user's loss: the negative log-likelihood of the label word's first token after the text, per example."""
    wanted = {i: _label_token(model, name) for i, name in enumerate(sorted(set(LABELS), key=LABELS.index))}

    def label_word_nll(m, batch):
        logits = m(**batch).logits  # [B, T, V], position t is token t of input_ids: no virtual positions
        last = batch["attention_mask"].sum(1) - 1
        logp = logits[torch.arange(len(last)), last].float().log_softmax(-1)
        tokens = torch.tensor([wanted[int(c)] for c in batch["label"]])
        return -logp[torch.arange(len(last)), tokens]

    return label_word_nll


@pytest.fixture(scope="module")
def setting(tiny_gpt2_path):
    model = load_model(tiny_gpt2_path, device="cpu")
    pairs = zip(TEXTS * 4, LABELS * 4, strict=True)
    rows = [{"text": f"{t} {n}", "label": lab} for n, (t, lab) in enumerate(pairs)]  # 24 different examples
    data = from_rows(rows, source="<rows>")
    readout = Readout.from_data(model, data, loss=make_loss(model))
    vectors = np.random.default_rng(0).normal(0, 0.5, (3, model.dim)).astype(np.float32)
    return model, readout, vectors


def _loss(model, vectors, text, label):
    """The user's loss of one example through PEFT's own forward (``vectors`` None: the frozen model alone)."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        if vectors is None:
            logits, p = model.model(input_ids=ids).logits, 0
        else:
            logits, p = wrap_with_prompt(model, vectors)(input_ids=ids).logits, len(vectors)
    logp = logits[0, p + ids.shape[1] - 1].float().log_softmax(-1)  # after PEFT's p virtual tokens
    return float(-logp[_label_token(model, label)])


def _losses(model, vectors, data):
    return np.array([_loss(model, vectors, t, lab) for t, lab in zip(data.texts, data.labels, strict=True)])


def test_outcome__the_users_loss_per_example_with_and_without_the_prompt_and_no_accuracy(setting):
    model, readout, vectors = setting
    test = readout.splits.test
    assert readout.objective == "user-loss" and readout.task_name == "custom:make_loss.<locals>.label_word_nll"
    correct, loss = readout.outcome(vectors, test)
    np.testing.assert_allclose(loss, _losses(model, vectors, test), atol=1e-5)
    assert np.isnan(correct).all()
    _, frozen = readout.task(1).outcome(test, prompt=False)
    np.testing.assert_allclose(frozen, _losses(model, None, test), atol=1e-5)


def test_importance__loss_figures_equal_a_one_example_at_a_time_recomputation(setting):
    model, readout, vectors = setting
    test = readout.splits.test
    table = importance(vectors, readout, bootstrap=200)
    assert table.objective == "user-loss" and table.task.startswith("custom:")
    soft = _losses(model, vectors, test)
    assert table.soft_loss == pytest.approx(soft.mean(), abs=1e-5) and math.isnan(table.soft_accuracy)
    draws = example_draws(len(test), n=200, seed=0, stream=None)
    rises = []
    for i, row in enumerate(table.positions):
        removed = _losses(model, np.delete(vectors, i, axis=0), test)
        assert row.removed_loss == pytest.approx(removed.mean(), abs=1e-5)
        np.testing.assert_allclose(row.removed_loss_rise_ci, paired_interval(removed, soft, draws), atol=1e-5)
        rises.append(row.removed_loss_rise)
    ranked = sorted(table.positions, key=lambda r: r.rank)
    assert [r.removed_loss_rise for r in ranked] == sorted(rises, reverse=True)  # ranked by the loss's rise
    assert "objective user-loss" in table.to_markdown().lower().replace(":", "")
    assert "nan" not in table.to_markdown()  # no accuracy is printed for a loss that defines none


def test_faithfulness__loss_and_gain_recomputed_and_no_made_up_agreement(setting):
    model, readout, vectors = setting
    test = readout.splits.test
    faith = score_stand_ins(vectors, readout, bootstrap=200)
    assert faith.objective == "user-loss"
    nearest = model.embeddings_numpy()[readout.nearest_ids(vectors)]
    soft, stand, zero = (_losses(model, v, test) for v in (vectors, nearest, None))
    row = faith["discretised"]
    assert faith.soft_loss == pytest.approx(soft.mean(), abs=1e-5)
    assert faith.zero_shot_loss == pytest.approx(zero.mean(), abs=1e-5)
    assert row.loss == pytest.approx(stand.mean(), abs=1e-5)
    assert math.isnan(row.accuracy) and math.isnan(row.agreement) and math.isnan(row.kl)
    gain = gains_retained(-soft.mean(), -stand.mean(), -zero.mean())
    assert row.gain_retained == pytest.approx(float(gain), rel=1e-3, abs=1e-4, nan_ok=True)


def test_harden__pez_keeps_the_lowest_held_out_loss_and_records_losses(setting):
    model, readout, vectors = setting
    hard = harden(vectors, readout, steps=4, eval_every=2, batch_size=4)
    assert hard.objective == "user-loss" and len(hard.token_ids) == 3
    rows = model.embeddings_numpy()[hard.token_ids]
    assert hard.hard_prompt_loss == pytest.approx(_losses(model, rows, readout.splits.test).mean(), abs=1e-5)
    assert hard.soft_loss == pytest.approx(_losses(model, vectors, readout.splits.test).mean(), abs=1e-5)
    assert hard.holdout_loss <= hard.start_holdout_loss  # the start is a candidate: the kept one is no worse
    assert math.isnan(hard.hard_prompt_accuracy) and math.isnan(hard.holdout_accuracy)
    assert f"loss {hard.hard_prompt_loss:.3f}" in hard.headline()
    from probe.core.io import dumps
    from probe.formats.hard_prompt import HardPrompt

    back = HardPrompt.from_dict(json.loads(dumps(hard.to_dict())))  # as a file holds it: NaN written as null
    assert back.hard_prompt_loss == pytest.approx(hard.hard_prompt_loss) and math.isnan(back.hard_prompt_accuracy)


def test_harden__the_search_under_a_users_loss_keeps_the_lowest_held_out_loss(setting):
    model, readout, vectors = setting
    hard = harden(vectors, readout, steps=3, eval_every=1, batch_size=4, method="search")
    assert hard.method == "search" and hard.objective == "user-loss" and len(hard.token_ids) == 3
    rows = model.embeddings_numpy()[hard.token_ids]
    assert hard.hard_prompt_loss == pytest.approx(_losses(model, rows, readout.splits.test).mean(), abs=1e-5)
    assert hard.holdout_loss <= hard.start_holdout_loss and math.isnan(hard.hard_prompt_accuracy)


def test_input_attribution__the_change_in_the_loss_equals_a_one_example_at_a_time_recomputation(setting):
    from probe.readings.explain.attribution import LOSS_LABEL, input_attribution, occlusion_plan

    model, readout, vectors = setting
    test = readout.splits.test
    effects = input_attribution(vectors, readout, size=len(test), min_count=1)
    assert effects.objective == "user-loss" and effects.labels == [LOSS_LABEL]
    units, variants, owners = occlusion_plan(test.texts, 1)
    expected: dict[str, float] = {}
    for unit, variant, t in zip(units, variants, owners, strict=True):
        text, label = test.texts[t], test.labels[t]
        prompted = _loss(model, vectors, variant, label) - _loss(model, vectors, text, label)
        frozen = _loss(model, None, variant, label) - _loss(model, None, text, label)
        expected[unit] = expected.get(unit, 0.0) + (prompted - frozen) / len(test)
    assert len(expected) >= 3
    for unit, value in expected.items():
        assert effects.effect(LOSS_LABEL, unit) == pytest.approx(value, abs=1e-5), unit


def test_trigger_scan__the_change_in_the_loss_equals_a_one_example_at_a_time_recomputation(setting):
    from probe.readings.explain.attribution import LOSS_LABEL, scan_rows, trigger_scan

    model, readout, vectors = setting
    test = readout.splits.test
    effects = trigger_scan(vectors, readout, tokens=2, include=["zeppelin"])
    assert effects.objective == "user-loss" and effects.labels == [LOSS_LABEL] and effects.kind == "triggers"
    rows = scan_rows(readout)
    assert len(rows) == 2
    for word in ["zeppelin", *effects.table["unit"][:1]]:
        expected = 0.0
        for row, text in rows:  # each scan text against the label of the test row it was cut from
            label = test.labels[row]
            prompted = _loss(model, vectors, text, label) - _loss(model, vectors, f"{text} {word}", label)
            frozen = _loss(model, None, text, label) - _loss(model, None, f"{text} {word}", label)
            expected += (prompted - frozen) / len(rows)
        assert effects.effect(LOSS_LABEL, word) == pytest.approx(expected, abs=1e-5), word


def test_user_loss__a_mean_instead_of_a_loss_per_example_and_two_objectives_are_refused_in_one_line(setting):
    model, readout, vectors = setting
    data = readout.splits.test
    mean_loss = dataclasses.replace(readout, loss=lambda m, batch: make_loss(model)(m, batch).mean(), _tasks={})
    with pytest.raises(ValueError, match=r"expected a tensor of shape \(\d+,\): one loss per example"):
        mean_loss.outcome(vectors, data)
    with pytest.raises(ValueError, match="expected one way to measure the prompt"):
        Readout(model, readout.index, readout.labels, readout.splits, score=lambda m, b: None, loss=make_loss(model))


def test_explain__the_whole_record_under_a_users_loss_reads_without_a_made_up_figure(setting):
    from probe.readings.explain import explain

    _, readout, vectors = setting
    record = explain(vectors, readout, hard_steps=2, lens_tokens=50, lens_texts=2, bootstrap=20)
    assert record.objective == "user-loss"
    assert record.hard_prompt is not None and record.hard_prompt.objective == "user-loss"
    text = record.to_markdown()
    assert "user-loss" in text and "nan" not in text.lower().replace("nano", "")
