"""probe.readings.compare: same-position cosine, neighbour overlap and the Hungarian matching."""

from __future__ import annotations

import numpy as np
import pytest

from probe.formats.prompts import SoftPrompt
from probe.readings.compare import compare_prompts


def test_compare__matching_recovers_a_permutation(default_model, default_index):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 384)).astype(np.float32)
    order = np.array([3, 0, 5, 1, 4, 2])
    b = a[order] + rng.normal(scale=0.01, size=a.shape).astype(np.float32)
    result = compare_prompts(
        SoftPrompt(a, "a"), SoftPrompt(b, "b"), default_index, display=default_model.vocabulary.display
    )
    matched = dict(zip(result.matching["position_a"], result.matching["position_b"], strict=True))
    assert all(order[matched[i]] == i for i in range(6))
    assert result.mean_matched_cosine > 0.99 > result.mean_cosine
    assert (result.matching["jaccard_topk"] > 0.5).all()


def test_compare__identical_prompts(default_index):
    a = np.random.default_rng(1).normal(size=(3, 384)).astype(np.float32)
    result = compare_prompts(SoftPrompt(a, "a"), SoftPrompt(a.copy(), "b"), default_index)
    assert result.mean_cosine == pytest.approx(1.0, abs=1e-6)
    assert (result.by_position["jaccard_topk"] == 1.0).all()
    assert "Hungarian" in result.to_markdown() and "A has" not in result.to_markdown()


def test_compare__prompts_of_different_lengths_say_what_was_compared(default_index):
    a = np.random.default_rng(2).normal(size=(3, 384)).astype(np.float32)
    b = np.concatenate([a, np.random.default_rng(3).normal(size=(3, 384)).astype(np.float32)])
    result = compare_prompts(SoftPrompt(a, "a"), SoftPrompt(b, "b"), default_index)
    assert len(result.by_position) == 3 and result.to_dict()["lengths"] == [3, 6]
    assert "A has 3 positions and B 6: the same-position table reads the first 3 of each" in result.to_markdown()


def test_compare__different_dims(default_index):
    with pytest.raises(ValueError, match="dims 384 and 8"):
        compare_prompts(
            SoftPrompt(np.ones((2, 384), np.float32), "a"),
            SoftPrompt(np.ones((2, 8), np.float32), "b"),
            default_index,
        )
