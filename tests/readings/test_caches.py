"""Caches keyed by everything that changes the number: two heads, two scoring functions, and an entry that vouches
for NaN never answer for each other (issue: caches that answer for the wrong question)."""

from __future__ import annotations

import numpy as np
import torch

from probe.readings.explain.readout import Readout
from probe.tasks.evaluation import zero_shot_predictions
from probe.tasks.user import ClassifierHead


def _head(seed: int) -> ClassifierHead:
    generator = torch.Generator().manual_seed(seed)
    tensors = {"classifier.weight": torch.randn(4, 384, generator=generator), "classifier.bias": torch.zeros(4)}
    return ClassifierHead(tensors=tensors, classes=4)


def test_zero_shot_cache__two_heads_never_share_an_entry(default_model, tmp_path):
    texts = None
    for seed in (0, 1, 0):  # the first head again: its own entry, still right
        readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=16)
        readout.head = _head(seed)
        readout.form = "classifier-head"
        task = readout.task(2)
        texts = readout.splits.test.texts
        cached = zero_shot_predictions(task, texts, cache_dir=tmp_path)
        fresh = zero_shot_predictions(task, texts, cache=False)
        np.testing.assert_array_equal(cached, fresh)
    assert texts


def test_zero_shot_cache__two_scoring_functions_never_share_an_entry(default_model, tmp_path):
    def make(column: int):
        return lambda model, batch: torch.nn.functional.one_hot(
            torch.full((batch["input_ids"].shape[0],), column), 4
        ).float()  # every text scored as class `column`

    results = []
    for column in (1, 0):  # two lambdas: the same qualname, other answers
        readout = Readout.from_data(default_model, "feelings", score=make(column), test_size=16)
        task = readout.task(2)
        results.append(zero_shot_predictions(task, readout.splits.test.texts, cache_dir=tmp_path))
    assert set(results[0]) == {1} and set(results[1]) == {0}


def test_zero_shot_cache__a_user_key_is_shared_across_objects(default_model, tmp_path):
    from probe.core.io import cache_file
    from probe.tasks.evaluation import _zero_shot_key

    def score(model, batch):
        return torch.zeros(batch["input_ids"].shape[0], 4)

    one = Readout.from_data(default_model, "feelings", score=score, test_size=16)
    one.cache_key = "my-scorer-v1"
    texts = one.splits.test.texts
    zero_shot_predictions(one.task(2), texts, cache_dir=tmp_path)
    other = Readout.from_data(default_model, "feelings", score=lambda m, b: score(m, b), test_size=16)
    other.cache_key = "my-scorer-v1"
    assert cache_file("zero-shot", _zero_shot_key(other.task(2), texts), tmp_path).read() is not None


def test_attribution_cache__an_entry_vouching_for_nan_is_rebuilt(default_model, tmp_path, monkeypatch):
    import hashlib

    from probe.core.io import cache_file
    from probe.readings.explain import attribution

    monkeypatch.setenv("PROBE_CACHE_DIR", str(tmp_path))
    readout = Readout.from_data(default_model, "feelings", form="cosine", test_size=8)
    texts = readout.splits.test.texts
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    key = {"format": attribution.CACHE_FORMAT, **readout.key(), "texts_sha256": digest, "rows": len(texts)}
    cache_file("attribution-zero-shot", key).write({"p": np.full((len(texts), 4), np.nan, np.float32)})
    p = attribution.zero_shot_probabilities(readout, texts, "attribution", progress=False)
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1, atol=1e-5)
