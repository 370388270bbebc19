"""probe.readings.explain.search (harden method="search") and .readability: exact, deterministic, resumable."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from probe import VocabIndex, load_model
from probe.core.data import DataSplits, LabelledData, train_test
from probe.readings.explain import Readout
from probe.readings.explain import search as S
from probe.readings.explain.hardening import _holdout, harden, start_tokens
from probe.readings.explain.readability import prompt_perplexity, word_share
from probe.tasks.kinds import make_task, wrap_with_prompt

FAST = S.SearchSettings(candidates=6, top_k=8)


@pytest.fixture(scope="module")
def readout(default_model):
    splits = train_test("feelings")
    small = DataSplits(splits.train.subset(list(range(80))), splits.test.subset(list(range(0, 64, 4))))
    return Readout(
        model=default_model, index=VocabIndex.for_model(default_model), labels=splits.train.label_names, splits=small
    )


@pytest.fixture(scope="module")
def soft(default_model):
    return default_model.embeddings_numpy()[[2000, 2500, 3000]] + 0.05


def _plain_accuracy(model, vectors, labels, data):
    """A fresh task and plain per-text passes: what every reported accuracy must equal."""
    task = make_task(model, wrap_with_prompt(model, vectors), labels)
    with torch.no_grad():
        scores = torch.cat([task.scores([t]) for t in data.texts]).numpy()
    return float((scores.argmax(1) == np.asarray(data.targets)).mean())


def test_candidate_scores__each_row_carries_its_own_candidates_prompt(readout, default_model):
    ids = readout.nearest_ids(default_model.embeddings_numpy()[[2000, 2500, 3000]])
    prompts = np.stack([ids, [2001, 2500, 3000], [2000, 7000, 3000], [5000, 5001, 5002]])
    batch = readout.splits.train.subset(list(range(10)))
    task = readout.task(3)
    batched = S.candidate_scores(readout, task, prompts, batch.texts).numpy()
    e = default_model.embeddings_numpy()
    for c, row in enumerate(prompts):
        np.testing.assert_allclose(batched[c], readout.scores(e[row], batch), atol=1e-5)
    assert not np.allclose(batched[0], batched[3], atol=1e-3)  # the prompts differ, so do their scores


def test_candidate_scores__a_causal_lm_scores_every_label_row_under_its_candidate(tiny_gpt2_path):
    model = load_model(tiny_gpt2_path, device="cpu")
    texts = ["the team won the match", "shares fell at the bank", "the match was a draw"]
    data = LabelledData(texts, ["sports", "money", "sports"], ["sports", "money"])
    ro = Readout(model, VocabIndex.for_model(model), data.label_names, DataSplits(data, data), max_length=32)
    prompts = np.array([[5, 6], [7, 8], [40, 41]])
    batched = S.candidate_scores(ro, ro.task(2), prompts, texts).numpy()
    for c, row in enumerate(prompts):
        np.testing.assert_allclose(batched[c], ro.scores(model.embeddings_numpy()[row], data), atol=1e-4)


def test_search__every_reported_accuracy_equals_a_recomputation_from_its_token_ids(readout, default_model, soft):
    hard = harden(soft, readout, steps=3, eval_every=1, method="search", search=FAST)
    e, labels, test = default_model.embeddings_numpy(), readout.labels, readout.splits.test
    assert hard.method == "search" and len(hard.token_ids) == 3
    assert hard.hard_prompt_accuracy == _plain_accuracy(default_model, e[hard.token_ids], labels, test)
    assert hard.soft_accuracy == _plain_accuracy(default_model, soft, labels, test)
    assert hard.discretised_accuracy == _plain_accuracy(default_model, e[readout.nearest_ids(soft)], labels, test)
    _, held = _holdout(readout.splits.train, 0.2, 0)
    assert hard.holdout_accuracy == _plain_accuracy(default_model, e[hard.token_ids], labels, held)
    assert hard.holdout_accuracy >= hard.start_holdout_accuracy
    assert hard.word_share == word_share(default_model, hard.token_ids) and math.isnan(hard.perplexity)
    assert "whole words" in hard.to_markdown()


def test_search_step__keeps_the_candidate_of_lowest_objective_and_never_a_worse_one(readout, default_model, soft):
    task, batch = readout.task(3), readout.splits.train.subset(list(range(12)))
    ids = readout.nearest_ids(soft)
    settings = S.SearchSettings(candidates=8, top_k=8)
    kept = S.search_step(readout, task, soft, ids, batch, settings, S.step_generator(0, 1))
    e, scale = default_model.embeddings_numpy(), task.logit_scale
    soft_logp = torch.from_numpy(readout.scores(soft, batch) * scale).log_softmax(-1)
    targets = torch.tensor(batch.targets)

    def objective(row):  # brute force: the prompt's own pass, KL to the soft prompt plus the cross-entropy
        scores = torch.from_numpy(readout.scores(e[row], batch))
        return float(S._objective(scores[None], soft_logp, targets, scale, 1.0)[0])

    swaps = S.propose(
        S._gradient(task, torch.from_numpy(e[ids]), batch.texts, lambda s: S._objective(
            s[None], soft_logp, targets, scale, 1.0)[0]),
        torch.from_numpy(e), ids, torch.from_numpy(readout.index.token_ids), 8, 8, S.step_generator(0, 1),
    )  # fmt: skip
    assert all((row != ids).sum() == 1 for row in swaps)  # one swap each, never the token already there
    best = min([ids, *swaps], key=objective)
    np.testing.assert_array_equal(kept, best)
    assert objective(kept) <= objective(ids)


def test_search__the_same_seed_gives_the_same_ids_step_by_step(readout, soft):
    train, held = _holdout(readout.splits.train, 0.2, 0)
    start = readout.nearest_ids(soft)

    def run(seed):
        begun = S.begin(readout, start, held, None)
        return S.coordinate_search(
            readout, soft, begun, train, held, settings=FAST, steps=2, batch_size=8, eval_every=2, seed=seed, state=None
        )

    a, b = run(0), run(0)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.best_ids, b.best_ids)
    assert (a.ids != start).sum() >= 1  # it moved: the equality is not the start's twice


@pytest.mark.slow
def test_search__same_seed_same_ids_and_an_interrupted_search_resumes_to_the_uninterrupted_one(
    readout, soft, tmp_path, monkeypatch
):
    whole = harden(soft, readout, steps=4, eval_every=2, method="search", search=FAST, state_dir=tmp_path / "a")
    again = harden(soft, readout, steps=4, eval_every=2, method="search", search=FAST)
    assert again.token_ids == whole.token_ids and again.holdout_accuracy == whole.holdout_accuracy
    final = json.loads((tmp_path / "a" / "hard-prompt-search-state.json").read_text())
    calls, real = {"n": 0}, S.search_step

    def interrupted(*args, **kwargs):  # steps 1-2, the evaluation at 2 (state saved), then step 3 stops
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(S, "search_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harden(soft, readout, steps=4, eval_every=2, method="search", search=FAST, state_dir=tmp_path / "b")
    monkeypatch.undo()
    assert json.loads((tmp_path / "b" / "hard-prompt-search-state.json").read_text())["step"] == 2
    resumed = harden(soft, readout, steps=4, eval_every=2, method="search", search=FAST, state_dir=tmp_path / "b")
    assert (resumed.token_ids, resumed.best_step, resumed.holdout_accuracy) == (
        whole.token_ids,
        whole.best_step,
        whole.holdout_accuracy,
    )
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "a" / "hard-prompt-search-state.safetensors"))
    b = load_file(str(tmp_path / "b" / "hard-prompt-search-state.safetensors"))
    np.testing.assert_array_equal(a["ids"], b["ids"])  # the current prompt too, not only the best one
    assert final["step"] == 4


def test_harden__a_longer_prompt_starts_from_each_positions_nearest_tokens_in_turn(readout, soft):
    ids = start_tokens(readout, soft, 6, None)
    nearest = readout.index.search(soft, 2)[1]
    assert ids.tolist() == [nearest[0, 0], nearest[0, 1], nearest[1, 0], nearest[1, 1], nearest[2, 0], nearest[2, 1]]
    hard = harden(soft, readout, steps=1, eval_every=1, method="search", length=6, search=FAST)
    assert len(hard.token_ids) == 6 and len(hard.tokens) == 6
    pez = harden(soft, readout, steps=1, eval_every=1, length=6)
    assert len(pez.token_ids) == 6 and pez.method == "pez"
    given = harden(soft, readout, steps=1, eval_every=1, method="search", start=[2000, 2001, 2002], search=FAST)
    assert given.start_holdout_accuracy >= 0 and len(given.token_ids) == 3


def test_harden__a_bad_length_method_start_or_setting_is_one_line(readout, soft):
    with pytest.raises(ValueError, match=r"length is 4; expected a positive multiple of the soft prompt's 3"):
        harden(soft, readout, steps=1, method="search", length=4)
    with pytest.raises(ValueError, match=r"length is 0; expected a positive multiple"):
        harden(soft, readout, steps=1, length=0)
    with pytest.raises(ValueError, match=r"method is 'gcg'; expected one of pez, search"):
        harden(soft, readout, steps=1, method="gcg")
    with pytest.raises(ValueError, match=r"start is .*expected a list of token ids from 0 to 30521"):
        harden(soft, readout, steps=1, method="search", start=[1, 99_999_999])
    with pytest.raises(ValueError, match=r"start holds 2 token ids but length is 3"):
        harden(soft, readout, steps=1, method="search", start=[1, 2], length=3)
    with pytest.raises(ValueError, match=r"candidates is 0; expected a positive integer"):
        S.SearchSettings(candidates=0)
    with pytest.raises(ValueError, match=r"task_weight is -1; expected a finite number, 0 or more"):
        S.SearchSettings(task_weight=-1)


def test_readability__whole_words_and_a_causal_lms_perplexity(default_model, tiny_gpt2_path):
    tok = default_model.tokenizer
    ids = tok.convert_tokens_to_ids(["river", "music", "##ing", "[CLS]", ",", "qz"])
    assert word_share(default_model, ids[:2]) == 1.0
    assert word_share(default_model, ids) == 2 / 6  # a continuation, a special token, punctuation, no word
    assert math.isnan(prompt_perplexity(default_model, ids))  # an encoder has no next-token distribution
    model = load_model(tiny_gpt2_path, device="cpu")
    row = [5, 9, 30]
    ppl = prompt_perplexity(model, row)
    with torch.no_grad():
        full = [model.tokenizer.bos_token_id, *row]
        logp = model.model(input_ids=torch.tensor([full])).logits[0].log_softmax(-1)
    nll = -np.mean([float(logp[i, full[i + 1]]) for i in range(len(row))])
    assert ppl == pytest.approx(math.exp(nll), rel=1e-5) and 1 < ppl < 10 * len(model.tokenizer)


def test_search_step__a_heavy_weight_on_readability_never_keeps_a_swap_to_a_non_word(readout, default_model, soft):
    task, batch = readout.task(3), readout.splits.train.subset(list(range(8)))
    words = default_model.tokenizer.convert_tokens_to_ids(["river", "music", "happy"])
    ids = np.asarray(words, np.int64)
    heavy = S.SearchSettings(candidates=12, top_k=64, readability_weight=1000.0)
    for step in (1, 2, 3):
        kept = S.search_step(readout, task, soft, ids, batch, heavy, S.step_generator(0, step))
        assert word_share(default_model, kept) == 1.0
