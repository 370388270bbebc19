"""probe.core.batching: length-bucketed batch plans cover every row once and pad less than random batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.core.batching import padding_waste, plan_batches


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=200),
    max_tokens=st.integers(min_value=1, max_value=5000),
    extra=st.integers(min_value=0, max_value=40),
)
def test_plan_batches__every_row_once_within_budget(lengths, max_tokens, extra):
    plan = plan_batches(lengths, max_tokens=max_tokens, extra=extra)
    rows = np.concatenate(plan.batches) if plan.batches else np.array([], dtype=int)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for batch in plan.batches:
        longest = max(lengths[i] for i in batch) + extra
        assert len(batch) == 1 or len(batch) * longest <= max_tokens
    assert plan.padded_tokens >= plan.real_tokens
    assert plan.waste == pytest.approx(padding_waste(lengths, plan.batches, extra))


def test_plan_batches__pads_far_less_than_random_batches():
    lengths = np.random.default_rng(0).integers(20, 128, size=2000)
    random_batches = np.array_split(np.random.default_rng(1).permutation(2000), 2000 // 32)
    plan = plan_batches(lengths, max_tokens=8192, extra=20)
    assert padding_waste(lengths, random_batches, 20) > 0.25
    assert plan.waste < 0.02


def test_plan_batches__splits_a_mixed_step_only_when_it_pays():
    same = plan_batches([50] * 16, max_tokens=4096, overhead=64)
    assert len(same.batches) == 1
    mixed = plan_batches([10] * 8 + [120] * 8, max_tokens=4096, overhead=64)
    assert [sorted(set(np.asarray([10] * 8 + [120] * 8)[b])) for b in mixed.batches] == [[10], [120]]


def test_plan_batches__refuses_a_bad_budget():
    with pytest.raises(ValueError, match="must be positive"):
        plan_batches([3, 4], max_tokens=0)
