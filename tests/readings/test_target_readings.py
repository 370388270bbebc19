"""Readings of what a prompt does under the free-text target objective: importance and faithfulness report
loss-based figures, each equal to a recomputation through PEFT's own forward pass, one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.core.data import from_rows
from probe.core.models import load_model
from probe.core.stats import example_draws, gains_retained, paired_interval
from probe.readings.explain import Readout, importance, score_stand_ins
from probe.tasks.base import wrap_with_prompt

TEXTS = ["the team won", "shares fell today", "a new vaccine", "voters chose", "rain is coming", "the cat sat"]
TARGETS = ["sports", "markets are down", "health news", "an election result", "weather", "a pet story"]


@pytest.fixture(scope="module", params=["tiny_gpt2_path", "tiny_t5_path"])
def setting(request):
    model = load_model(request.getfixturevalue(request.param), device="cpu")
    rows = [{"text": t, "summary": s} for t, s in zip(TEXTS * 2, TARGETS * 2, strict=True)]
    rows = [{**r, "text": f"{r['text']} {n}"} for n, r in enumerate(rows)]  # twelve different examples
    data = from_rows(rows, source="<rows>", target_column="summary")
    readout = Readout.from_data(model, data, target_column="summary")
    vectors = np.random.default_rng(0).normal(0, 0.5, (3, model.dim)).astype(np.float32)
    return model, readout, vectors


def _reference(model, vectors, text, target):
    """(next-token log-probs [T, V] at the target's tokens, the target's ids, PEFT's loss), one example alone;
    ``vectors`` None: the frozen model without a prompt."""
    tok, causal = model.tokenizer, model.kind == "causal"
    text_ids = tok(text)["input_ids"]
    target_ids = tok(" " + target, add_special_tokens=False)["input_ids"] if causal else tok(target)["input_ids"]
    ids = torch.tensor([text_ids + target_ids] if causal else [text_ids])
    labels = torch.tensor([[-100] * len(text_ids) + target_ids] if causal else [target_ids])
    with torch.no_grad():
        if vectors is None:
            out, p = model.model(input_ids=ids, labels=labels), 0
        else:
            out, p = wrap_with_prompt(model, vectors)(input_ids=ids, labels=labels), len(vectors)
    # a causal model predicts token t at position t - 1, after PEFT's p virtual tokens; a seq2seq decoder at t
    start = p + len(text_ids) - 1 if causal else 0
    logp = out.logits[0, start : start + len(target_ids)].float().log_softmax(-1)
    return logp, target_ids, float(out.loss)


def _loss(model, vectors, text, target):
    return _reference(model, vectors, text, target)[2]


def _losses(model, vectors, data):
    return np.array([_reference(model, vectors, t, s)[2] for t, s in zip(data.texts, data.target_texts, strict=True)])


def test_importance__loss_figures_equal_a_one_example_at_a_time_recomputation(setting):
    model, readout, vectors = setting
    test = readout.splits.test
    assert readout.objective == "target-likelihood" and len(test) >= 3
    table = importance(vectors, readout, bootstrap=200)
    assert table.objective == "target-likelihood" and table.task == "target"
    soft = _losses(model, vectors, test)
    assert table.soft_loss == pytest.approx(soft.mean(), abs=1e-5)
    draws = example_draws(len(test), n=200, seed=0, stream=None)
    nearest = readout.nearest_ids(vectors)
    rises = []
    for i, row in enumerate(table.positions):
        removed = _losses(model, np.delete(vectors, i, axis=0), test)
        changed = vectors.copy()
        changed[i] = model.embeddings_numpy()[nearest[i]]
        read = _losses(model, changed, test)
        assert row.removed_loss == pytest.approx(removed.mean(), abs=1e-5)
        assert row.removed_loss_rise == pytest.approx(removed.mean() - soft.mean(), abs=1e-5)
        np.testing.assert_allclose(row.removed_loss_rise_ci, paired_interval(removed, soft, draws), atol=1e-5)
        assert row.nearest_loss_rise == pytest.approx(read.mean() - soft.mean(), abs=1e-5)
        rises.append(row.removed_loss_rise)
    ranked = sorted(table.positions, key=lambda r: r.rank)
    assert [r.removed_loss_rise for r in ranked] == sorted(rises, reverse=True)  # ranked by the loss's rise
    assert "objective target-likelihood" in table.to_markdown().lower().replace(":", "")


def test_faithfulness__loss_agreement_kl_and_gain_equal_a_one_example_at_a_time_recomputation(setting):
    model, readout, vectors = setting
    test = readout.splits.test
    faith = score_stand_ins(vectors, readout, bootstrap=200)
    assert faith.objective == "target-likelihood"
    nearest = model.embeddings_numpy()[readout.nearest_ids(vectors)]
    loss, agree, kl, right, soft_loss, zero_loss = ([] for _ in range(6))
    for text, target in zip(test.texts, test.target_texts, strict=True):
        ref, wanted, ref_loss = _reference(model, vectors, text, target)
        logp, _, stand_loss = _reference(model, nearest, text, target)
        zero = _reference(model, None, text, target)[2]
        w = torch.tensor(wanted)
        loss.append(stand_loss)
        soft_loss.append(ref_loss)
        zero_loss.append(zero)
        right.append(float((logp.argmax(-1) == w).double().mean()))
        agree.append(float((logp.argmax(-1) == ref.argmax(-1)).double().mean()))
        kl.append(float((ref.exp() * (ref - logp)).sum(-1).mean()))
    stand = faith["discretised"]
    assert faith.soft_loss == pytest.approx(np.mean(soft_loss), abs=1e-5)
    assert faith.zero_shot_loss == pytest.approx(np.mean(zero_loss), abs=1e-5)
    assert stand.loss == pytest.approx(np.mean(loss), abs=1e-5)
    assert stand.accuracy == pytest.approx(np.mean(right), abs=1e-9)
    assert stand.agreement == pytest.approx(np.mean(agree), abs=1e-9)
    assert stand.kl == pytest.approx(np.mean(kl), abs=1e-5) and stand.kl > 0
    own = gains_retained(-faith.soft_loss, -stand.loss, -faith.zero_shot_loss)  # the definition, on its own figures
    assert stand.gain_retained == pytest.approx(float(own), abs=1e-9, nan_ok=True)
    # recomputed: a ratio of loss differences, so the losses' 1e-6 rounding is amplified when soft is near zero-shot
    gain = gains_retained(-np.mean(soft_loss), -np.mean(loss), -np.mean(zero_loss))
    assert stand.gain_retained == pytest.approx(float(gain), rel=1e-3, abs=1e-4, nan_ok=True)


def test_target_records__say_their_objective_and_old_files_read_as_classification(setting):
    from probe.formats.explain_record import ImportanceTable
    from probe.formats.faithfulness_record import Faithfulness

    _, readout, vectors = setting
    table = importance(vectors, readout, bootstrap=20)
    assert table.to_dict()["objective"] == "target-likelihood"
    back = ImportanceTable.from_dict(table.to_dict())
    assert back.objective == "target-likelihood" and back.positions[0].removed_loss_rise_ci == pytest.approx(
        table.positions[0].removed_loss_rise_ci
    )
    old = table.to_dict()
    del old["objective"]
    assert ImportanceTable.from_dict(old).objective == "classification"
    faith = score_stand_ins(vectors, readout, bootstrap=20).to_dict()
    assert Faithfulness.from_dict(faith).objective == "target-likelihood"
    del faith["objective"]
    assert Faithfulness.from_dict(faith).objective == "classification"


def test_harden__pez_on_the_target_loss(setting):
    from probe.readings.explain import harden

    _, readout, vectors = setting
    hard = harden(vectors, readout, steps=4, eval_every=2, batch_size=4)
    assert hard.objective == "target-likelihood" and len(hard.token_ids) == 3
    correct, loss = readout.outcome(vectors, readout.splits.test)
    assert hard.soft_accuracy == pytest.approx(correct.mean()) and hard.soft_loss == pytest.approx(loss.mean())


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_search__a_candidates_objective_is_kl_plus_loss_recomputed_one_example_at_a_time(setting, monkeypatch, weight):
    """Under the target objective each candidate is judged by KL(soft prompt's next-token distribution ‖ its own),
    over the target's tokens, + task_weight x the target's NLL, all candidates in batched passes with a prompt per
    row: each value equals a recomputation through PEFT's own forward, one example at a time, and a step keeps the
    lowest."""
    from probe.readings.explain import search as coordinate

    model, readout, vectors = setting
    batch = readout.splits.train.subset([0, 1, 2, 3])
    ids = readout.nearest_ids(vectors).astype(np.int64)
    proposed = []
    real = coordinate.propose
    monkeypatch.setattr(coordinate, "propose", lambda *a, **k: proposed.append(real(*a, **k)) or proposed[-1])
    settings = coordinate.SearchSettings(candidates=6, top_k=8, task_weight=weight)
    task = readout.task(len(ids))
    kept = coordinate.search_step(readout, task, vectors, ids, batch, settings, coordinate.step_generator(0, 1))
    candidates = np.concatenate([ids[None], proposed[0]])
    embeddings = model.embeddings_numpy()

    def objective(rows):
        total = 0.0
        for text, target in zip(batch.texts, batch.target_texts, strict=True):
            soft_logp, _, _ = _reference(model, vectors, text, target)
            logp, _, loss = _reference(model, rows, text, target)
            kl = (soft_logp.exp() * (soft_logp - logp)).sum(-1).mean()
            total += float(kl) + weight * loss
        return total / len(batch)

    expected = [objective(embeddings[c]) for c in candidates]
    got = coordinate.loss_objectives(readout, task, vectors, candidates, batch, weight).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(kept, candidates[int(np.argmin(expected))])


def test_harden__the_search_on_the_target_objective_records_its_losses(setting):
    from probe.readings.explain import harden

    model, readout, vectors = setting
    hard = harden(vectors, readout, steps=2, eval_every=1, batch_size=4, method="search")
    assert hard.method == "search" and hard.objective == "target-likelihood" and len(hard.token_ids) == 3
    rows = model.embeddings_numpy()[hard.token_ids]
    assert hard.hard_prompt_loss == pytest.approx(_losses(model, rows, readout.splits.test).mean(), abs=1e-5)


def test_input_attribution__the_change_in_target_likelihood_equals_a_one_example_at_a_time_recomputation(setting):
    from probe.readings.explain.attribution import input_attribution, occlusion_plan

    model, readout, vectors = setting
    test = readout.splits.test
    effects = input_attribution(vectors, readout, size=len(test), min_count=1)
    assert effects.objective == "target-likelihood" and effects.labels == ["<target>"]
    units, variants, owners = occlusion_plan(test.texts, 1)
    expected: dict[str, float] = {}
    for unit, variant, t in zip(units, variants, owners, strict=True):
        text, target = test.texts[t], test.target_texts[t]
        # log p(target | text) - log p(target | text without the word), each the negated loss
        prompted = _loss(model, vectors, variant, target) - _loss(model, vectors, text, target)
        frozen = _loss(model, None, variant, target) - _loss(model, None, text, target)
        expected[unit] = expected.get(unit, 0.0) + float(prompted - frozen) / len(test)
    assert len(expected) >= 3
    for unit, value in expected.items():
        assert effects.effect("<target>", unit) == pytest.approx(value, abs=1e-5), unit
    assert effects.to_dict()["objective"] == "target-likelihood"


def test_trigger_scan__the_change_in_target_likelihood_equals_a_one_example_at_a_time_recomputation(setting):
    from probe.readings.explain.attribution import scan_rows, trigger_scan

    model, readout, vectors = setting
    test = readout.splits.test
    effects = trigger_scan(vectors, readout, tokens=3, include=["zeppelin"])
    assert effects.objective == "target-likelihood" and effects.labels == ["<target>"]
    rows = scan_rows(readout)
    words = sorted({u for u in effects.table["unit"]})
    assert "zeppelin" in words and len(words) == 4
    for word in words:
        expected = 0.0
        for row, text in rows:  # log p(target | text + word) - log p(target | text), each the negated loss
            target = test.target_texts[row]
            prompted = _loss(model, vectors, text, target) - _loss(model, vectors, f"{text} {word}", target)
            frozen = _loss(model, None, text, target) - _loss(model, None, f"{text} {word}", target)
            expected += (prompted - frozen) / len(rows)
        assert effects.effect("<target>", word) == pytest.approx(expected, abs=1e-5), word


def test_input_attribution__texts_without_their_targets_are_refused_in_one_line(setting):
    from probe.readings.explain.attribution import input_attribution, trigger_scan

    _, readout, vectors = setting
    with pytest.raises(ValueError, match="reads each text against its own target; leave texts= out"):
        input_attribution(vectors, readout, texts=["a text of my own", "another text of my own"])
    with pytest.raises(ValueError, match="reads each text against its own target; leave texts= out"):
        trigger_scan(vectors, readout, tokens=5, texts=["a text of my own"])
