"""probe.core.stats: cluster bootstrap over runs, percentile intervals and the three-way verdict."""

from __future__ import annotations

import numpy as np
import pytest

from probe.core.stats import cluster_draws, example_draws, percentile_interval, pooled_mean, verdict


def test_cluster_draws__cells_keep_their_size_so_a_one_run_cell_adds_no_spread():
    # one run per cell: every replicate redraws the same runs, so the pooled mean never moves
    draws = cluster_draws([np.ones(10), np.zeros(30)], ["a", "b"], n=300)
    assert np.allclose(draws, 0.25)


def test_cluster_draws__resamples_whole_runs_not_positions():
    # two runs in one cell, each with identical positions: a run is one draw, so the replicates take only the
    # values 0, 0.5 and 1 (positions resampled one by one would give many values in between)
    draws = cluster_draws([np.zeros(50), np.ones(50)], ["cell", "cell"], n=2000, seed=3)
    assert set(np.round(draws, 6)) == {0.0, 0.5, 1.0}
    low, high = percentile_interval(draws)
    assert (low, high) == (0.0, 1.0)
    pooled = np.concatenate([np.zeros(50), np.ones(50)])
    naive = percentile_interval(pooled[example_draws(100, n=2000, seed=0)].mean(axis=1))
    assert naive[1] - naive[0] < 0.25 < high - low  # treating positions as independent is far too narrow


def test_cluster_draws__aligned_resamples_the_shared_examples_once_for_all_runs():
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.7
    # two identical runs: with examples resampled jointly, each replicate is exactly that draw's accuracy
    draws = cluster_draws([correct, correct], ["c", "c"], n=500, seed=5, aligned=True)
    picks = example_draws(200, n=500, seed=5)
    assert np.allclose(draws, correct[picks].mean(axis=1))
    assert pooled_mean([correct, correct], aligned=True) == pytest.approx(correct.mean())


def test_cluster_draws__paired_differences_use_the_same_run_draws():
    finals = [np.full(4, 0.9), np.full(4, 0.1)]
    inits = [np.full(4, 0.8), np.full(4, 0.0)]
    a = cluster_draws(finals, ["x", "x"], n=400, seed=1)
    b = cluster_draws(inits, ["x", "x"], n=400, seed=1)
    paired = cluster_draws([f - i for f, i in zip(finals, inits, strict=True)], ["x", "x"], n=400, seed=1)
    assert np.allclose(a - b, paired) and np.allclose(paired, 0.1)


def test_cluster_draws__rejects_mismatched_input():
    with pytest.raises(ValueError, match="one cell per run"):
        cluster_draws([np.ones(3)], ["a", "b"])
    with pytest.raises(ValueError, match="same examples"):
        cluster_draws([np.ones(3), np.ones(4)], ["a", "a"], aligned=True)
    assert np.isnan(cluster_draws([], [], n=5)).all()


@pytest.mark.parametrize(
    ("margins", "expected"),
    [
        ([(0.01, 0.2)], "yes"),
        ([(0.01, 0.2), (0.02, 0.3)], "yes"),
        ([(0.01, 0.2), (-0.1, 0.3)], "unclear"),  # one control not excluded
        ([(-0.3, 0.01)], "no"),  # the claimed effect (>= 0.05) is excluded
        ([(0.01, 0.2), (-0.3, 0.01)], "no"),
        ([(-0.1, 0.2)], "unclear"),
        ([(float("nan"), float("nan"))], "unclear"),
        ([], "unclear"),
    ],
)
def test_verdict__yes_only_beyond_every_control_no_only_when_the_effect_is_excluded(margins, expected):
    assert verdict(margins, smallest_effect=0.05) == expected
