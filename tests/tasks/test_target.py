"""The free-text target objective, checked against PEFT's own forward pass one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.core.data import TARGET_CLASS, from_rows
from probe.core.models import load_model
from probe.tasks.base import prompt_parameter, wrap_with_prompt
from probe.tasks.target import make_target_task

ROWS = [
    {"text": "the team won the final", "summary": "sports news"},
    {"text": "scientists measured the spin of the particle with a new detector " * 2, "summary": "a physics result"},
    {"text": "shares fell", "summary": "markets went down sharply on monday"},
    {"text": "voters went to the polls", "summary": "an election"},
    {"text": "a", "summary": "b"},
]


def _data():
    return from_rows(ROWS, source="<rows>", target_column="summary")


def _task(model, p=4, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 0.5, (p, model.dim)).astype(np.float32)
    return make_target_task(model, wrap_with_prompt(model, vectors), max_length=64)


def _peft_losses(task, data, kind, prompt=True):
    """PEFT's own loss and next-token argmax per example, one example per forward pass, built from the tokenizer."""
    tok, losses, correct = task.model.tokenizer, [], []
    model = task.peft_model
    for text, target in zip(data.texts, data.target_texts, strict=True):
        text_ids = tok(text, truncation=True, max_length=64)["input_ids"]
        if kind == "causal":
            target_ids = tok(" " + target, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([text_ids + target_ids])
            labels = torch.tensor([[-100] * len(text_ids) + target_ids])
        else:
            target_ids = tok(target)["input_ids"]
            ids, labels = torch.tensor([text_ids]), torch.tensor([target_ids])
        with torch.no_grad():
            if prompt:
                out = model(input_ids=ids, labels=labels)
            else:
                with model.disable_adapter():
                    out = model(input_ids=ids, labels=labels)
        logits = out.logits[0]
        if kind == "causal":  # PEFT prepends p virtual tokens when the prompt is on
            start = (task.p if prompt else 0) + len(text_ids) - 1
            logits = logits[start : start + len(target_ids)]
        predicted = logits.argmax(-1).tolist()
        losses.append(float(out.loss))
        correct.append(np.mean([a == b for a, b in zip(predicted, target_ids, strict=True)]))
    return np.array(correct), np.array(losses)


@pytest.mark.parametrize(("fixture", "kind"), [("tiny_gpt2_path", "causal"), ("tiny_t5_path", "seq2seq")])
def test_target_objective__per_example_loss_equals_peft_forward_one_at_a_time(fixture, kind, request):
    model = load_model(request.getfixturevalue(fixture), device="cpu")
    assert model.kind == kind
    data = _data()
    assert data.label_names == [TARGET_CLASS] and data.target_texts[2] == "markets went down sharply on monday"
    task = _task(model)
    for prompt in (True, False):
        correct, loss = task.outcome(data, prompt=prompt)
        expected_correct, expected_loss = _peft_losses(task, data, kind, prompt=prompt)
        np.testing.assert_allclose(loss, expected_loss, atol=1e-5, rtol=0)
        np.testing.assert_allclose(correct, expected_correct, atol=1e-12)
    assert len(set(np.round(loss, 4))) == len(data)  # five different examples, five different losses


@pytest.mark.parametrize("fixture", ["tiny_gpt2_path", "tiny_t5_path"])
def test_target_objective__training_loss_is_the_mean_example_loss_and_moves_the_prompt(fixture, request):
    model = load_model(request.getfixturevalue(fixture), device="cpu")
    data = _data()
    task = _task(model, seed=1)
    _, losses = task.outcome(data)
    loss = task.loss(data.texts, data.loss_targets)
    assert float(loss.detach()) == pytest.approx(float(losses.mean()), abs=1e-5)
    (grad,) = torch.autograd.grad(loss, prompt_parameter(task.peft_model))
    assert float(grad.abs().sum()) > 0


def test_target_objective__classification_and_target_data_never_mix(tiny_gpt2_path):
    from probe.tasks.kinds import make_task

    model = load_model(tiny_gpt2_path, device="cpu")
    vectors = np.zeros((2, model.dim), np.float32)
    labelled = from_rows(
        [{"text": "a b", "label": "yes"}, {"text": "c d", "label": "no"}], source="<rows>", label_column="label"
    )
    with pytest.raises(ValueError, match=r"has labels, not free-text targets; .*\(--target-column"):
        _task(model).outcome(labelled)
    classify = make_task(model, wrap_with_prompt(model, vectors), ["yes", "no"])
    with pytest.raises(ValueError, match="has free-text targets, but the task 'generate' classifies"):
        classify.outcome(_data())


def test_target_data__a_missing_or_empty_target_is_one_line():
    with pytest.raises(
        ValueError, match=r"has no target column 'answer'; it has \['summary', 'text'\]\. .*--target-column"
    ):
        from_rows(ROWS, source="pairs.csv", target_column="answer")
    rows = [*ROWS[:2], {"text": "a third text", "summary": "  "}]
    with pytest.raises(ValueError, match="row 3 has an empty target 'summary'; expected a target text on every row"):
        from_rows(rows, source="pairs.csv", target_column="summary")
    assert from_rows(ROWS, source="pairs.csv", target_column="summary").texts[0] == "the team won the final"


def test_target_objective__an_encoder_model_is_refused_in_one_line(tiny_bert_path):
    from probe.readings.explain import Readout

    model = load_model(tiny_bert_path, device="cpu")
    assert model.kind == "encoder"
    message = r"free-text targets need a model that generates text; .* is a model of kind 'encoder'.*--target-column"
    with pytest.raises(ValueError, match=message):
        make_target_task(model, wrap_with_prompt(model, np.zeros((2, model.dim), np.float32)))
    with pytest.raises(ValueError, match=message):
        Readout.from_data(model, from_rows(ROWS * 2, source="<rows>", target_column="summary"), target_column="summary")


def test_target_data__tables_and_split_columns_keep_each_texts_target():
    import pandas as pd

    from probe.core.frames import as_splits

    rows = [{**r, "split": "test" if n % 2 else "train"} for n, r in enumerate(ROWS * 2)]
    splits = as_splits(pd.DataFrame(rows), target_column="summary")
    assert splits.test.target_texts == [r["summary"] for r in rows if r["split"] == "test"]
    assert splits.train.texts[1] == rows[2]["text"] and splits.train.target_texts[1] == rows[2]["summary"]
    seeded = as_splits(pd.DataFrame(ROWS * 2), target_column="summary", seed=3)
    pairs = dict(zip(seeded.test.texts, seeded.test.target_texts, strict=True))
    assert all(pairs[r["text"]] == r["summary"] for r in ROWS if r["text"] in pairs) and len(seeded.test) == 2


def test_target_objective__class_indices_for_target_texts_are_refused(tiny_gpt2_path):
    model = load_model(tiny_gpt2_path, device="cpu")
    with pytest.raises(TypeError, match="takes target texts, got ints; pass data.loss_targets"):
        _task(model).loss(["a text", "another"], [0, 1])
