"""probe.tasks.evaluation and the bucketed passes of the tasks: exact against plain per-text recomputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from probe import load_model
from probe.core.batching import plan_batches
from probe.core.data import load_labelled, train_test
from probe.tasks.evaluation import (
    accuracy,
    discretised_accuracy,
    eval_subset,
    zero_shot_accuracy,
    zero_shot_predictions,
)
from probe.tasks.kinds import PASS_OVERHEAD, make_task, prompt_parameter, wrap_with_prompt

AG_NEWS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ag_news.csv"


def _task(model, labels, p=6, seed=0, **kw):
    rng = np.random.default_rng(seed)
    vectors = model.embeddings_numpy()[rng.choice(model.vocab_size, p, replace=False)] + rng.normal(
        0, 0.01, (p, model.dim)
    ).astype(np.float32)
    return make_task(model, wrap_with_prompt(model, vectors), labels, **kw)


def _unbatched_scores(task, texts, prompt=True):
    """The plain recomputation: one text per forward pass, no padding at all."""
    with torch.no_grad():
        return torch.cat([task.scores([t], prompt=prompt) for t in texts]).numpy()


@pytest.fixture(scope="module")
def ag_news_rows():
    if not AG_NEWS.is_file():
        pytest.skip(f"{AG_NEWS} is not here (it lives in the shared data folder beside the checkout)")
    data = load_labelled(AG_NEWS, split="test")
    # the longest rows (truncated at max_length) and a spread of the rest
    order = np.argsort([len(t) for t in data.texts])
    return data.subset(sorted(set(order[-10:].tolist()) | set(order[::40].tolist())))


@pytest.mark.slow
def test_predict__bucketed_equals_unbatched_on_real_news(default_model, ag_news_rows):
    task = _task(default_model, ag_news_rows.label_names)
    texts = ag_news_rows.texts
    assert max(len(ids) for ids in task.tokenize(texts)) == task.max_length  # truncation is exercised
    plain = _unbatched_scores(task, texts)
    assert (task.predict(texts) == plain.argmax(1)).all()
    batched = torch.cat([task.scores(texts[i : i + 16]) for i in range(0, len(texts), 16)]).detach().numpy()
    np.testing.assert_allclose(batched, plain, atol=1e-5)
    zero = _unbatched_scores(task, texts, prompt=False)
    assert (task.zero_shot(texts) == zero.argmax(1)).all()
    expected = float((plain.argmax(1) == np.asarray(ag_news_rows.targets)).mean())
    assert accuracy(task, texts, ag_news_rows.targets) == expected


@pytest.mark.parametrize("fixture", ["tiny_gpt2_path", "tiny_t5_path"])
def test_predict__bucketed_equals_unbatched_on_tiny_generative_models(fixture, request):
    model = load_model(request.getfixturevalue(fixture), device="cpu")
    texts = [
        "the team won",
        "scientists measured the spin of the particle with a new detector and a long cable " * 3,
        "shares fell",
        "voters went to the polls to elect a new mayor on sunday",
        "a",
    ] * 3
    task = _task(model, ["sports", "science", "business"], p=4, max_length=48)
    plain = _unbatched_scores(task, texts)
    batched = task.scores(texts).detach().numpy()
    np.testing.assert_allclose(batched, plain, atol=1e-4)
    assert (task.predict(texts) == plain.argmax(1)).all()
    assert (task.zero_shot(texts) == _unbatched_scores(task, texts, prompt=False).argmax(1)).all()


def test_loss__micro_batches_give_the_whole_batch_value_and_gradient(default_model):
    splits = train_test("feelings")
    texts, targets = splits.train.texts[:12], splits.train.targets[:12]
    texts[3] = texts[3] + " " + " ".join(splits.train.texts[20:26])  # one long row makes a split pay
    task = _task(default_model, splits.train.label_names, train_max_tokens=600)
    weight = prompt_parameter(task.peft_model)
    ids = task.tokenize(texts)
    assert len(plan_batches([len(x) for x in ids], max_tokens=600, overhead=PASS_OVERHEAD, extra=6).batches) > 1
    whole = task._loss(ids, targets)  # one padded pass over the whole batch
    (reference,) = torch.autograd.grad(whole, weight)
    loss = task.loss(texts, targets)
    (grad,) = torch.autograd.grad(loss, weight)
    assert float(loss.detach()) == pytest.approx(float(whole.detach()), rel=1e-5)
    torch.testing.assert_close(grad, reference, atol=1e-6, rtol=1e-4)


def test_discretised_accuracy__equals_a_prompt_of_token_rows_and_restores_the_prompt(default_model, default_index):
    splits = train_test("feelings")
    task = _task(default_model, splits.train.label_names)
    weight = prompt_parameter(task.peft_model)
    before = weight.detach().clone()
    got = discretised_accuracy(task, default_index, splits.test.texts, splits.test.targets)
    torch.testing.assert_close(weight.detach(), before, rtol=0, atol=0)
    _, ids = default_index.search(before.numpy(), 1)
    hard = make_task(
        default_model, wrap_with_prompt(default_model, default_model.embeddings_numpy()[ids[:, 0]]), task.label_names
    )
    assert got == accuracy(hard, splits.test.texts, splits.test.targets)


def test_zero_shot__cached_per_model_and_texts(default_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_CACHE_DIR", str(tmp_path))
    splits = train_test("feelings")
    task = _task(default_model, splits.train.label_names)
    first = zero_shot_predictions(task, splits.test.texts)
    assert len(list((tmp_path / "zero-shot").glob("*.safetensors"))) == 1

    def refuse(texts):
        raise AssertionError("the cached predictions should have been used")

    other_prompt = _task(default_model, splits.train.label_names, seed=5)  # the prompt does not matter
    monkeypatch.setattr(other_prompt, "zero_shot", refuse)
    np.testing.assert_array_equal(zero_shot_predictions(other_prompt, splits.test.texts), first)
    # other texts, or a corrupt cache, are computed afresh
    with pytest.raises(AssertionError, match="cached predictions"):
        zero_shot_predictions(other_prompt, splits.test.texts[:-1])
    for f in (tmp_path / "zero-shot").glob("*.safetensors"):
        f.write_bytes(b"garbage")
    assert zero_shot_accuracy(task, splits.test.texts, splits.test.targets) == pytest.approx(
        float((first == np.asarray(splits.test.targets)).mean())
    )


def test_eval_subset__seeded_stratified_and_whole_when_small():
    data = train_test("feelings").test
    a, b, c = eval_subset(data, 20, 0), eval_subset(data, 20, 0), eval_subset(data, 20, 1)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 20
    assert set(a.texts) <= set(data.texts)
    assert sorted({a.labels.count(x) for x in data.label_names}) == [5]  # 4 balanced classes
    assert eval_subset(data, 10_000, 0) is data
    with pytest.raises(ValueError, match="positive number of rows"):
        eval_subset(data, 0, 0)


def test_verbaliser__scores_the_marker_state_against_label_tokens_exactly(default_model):
    """The verbaliser form, recomputed by hand: hidden state at the appended mask token, cosine to each label
    word's mean input embedding; batched passes equal one-text passes."""
    from probe.tasks.kinds import VerbaliserTask

    splits = train_test("feelings")
    labels = splits.train.label_names
    task = _task(default_model, labels, form="verbaliser")
    assert isinstance(task, VerbaliserTask)
    texts = splits.test.texts[:10]
    tok = default_model.tokenizer
    ids = task.tokenize(texts)
    assert all(row[-1] == tok.mask_token_id for row in ids)
    with torch.no_grad():
        prompt = prompt_parameter(task.peft_model).detach()
        expected = []
        for text in texts:
            row = tok(text, truncation=True, max_length=task.max_length)["input_ids"] + [tok.mask_token_id]
            embedded = default_model.model.get_input_embeddings()(torch.tensor([row]))
            hidden = default_model.model(inputs_embeds=torch.cat([prompt[None], embedded], 1)).last_hidden_state
            out = torch.nn.functional.normalize(hidden[0, -1], dim=-1)
            label_rows = torch.stack(
                [
                    default_model.embeddings[tok(label, add_special_tokens=False)["input_ids"]].mean(0)
                    for label in labels
                ]
            )
            expected.append(out @ torch.nn.functional.normalize(label_rows, dim=-1).T)
    np.testing.assert_allclose(task.score_all(texts), torch.stack(expected).numpy(), atol=1e-4)
    np.testing.assert_allclose(_unbatched_scores(task, texts), task.score_all(texts), atol=1e-5)
    loss = task.loss(texts, splits.test.targets[:10])
    (grad,) = torch.autograd.grad(loss, prompt_parameter(task.peft_model))
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0  # the prompt can move the output position
    cosine = _task(default_model, labels)
    assert not np.allclose(cosine.score_all(texts), task.score_all(texts))  # a different task form


def test_make_task__refuses_an_unknown_form_and_a_verbaliser_for_generative_models(default_model, tiny_gpt2_path):
    with pytest.raises(ValueError, match="task form 'bogus' is not known; expected one of cosine, verbaliser"):
        _task(default_model, ["a", "b"], form="bogus")
    with pytest.raises(ValueError, match="is for encoder models"):
        _task(load_model(tiny_gpt2_path, device="cpu"), ["a", "b"], form="verbaliser")
