"""probe.core.budget: a reading over the user's time or memory budget is refused in one line naming the option that
lifts it; the budget comes from the option, else the environment, else there is none; the memory estimates are the
arrays' real sizes."""

from __future__ import annotations

import pytest

from probe.core.budget import GB, array_bytes, budget_gb, budget_minutes, check_memory, check_time


def test_budget__none_by_default_the_option_before_the_environment(monkeypatch):
    monkeypatch.delenv("PROBE_BUDGET_MINUTES", raising=False)
    monkeypatch.delenv("PROBE_BUDGET_GB", raising=False)
    assert budget_minutes() is None and budget_gb() is None
    check_time(1e9, "anything")  # no budget: nothing is refused
    check_memory(1e18, "anything")
    monkeypatch.setenv("PROBE_BUDGET_MINUTES", "5")
    monkeypatch.setenv("PROBE_BUDGET_GB", "0.5")
    assert budget_minutes() == 5 and budget_gb() == 0.5
    assert budget_minutes(2) == 2 and budget_gb(4) == 4


def test_budget__over_it_is_one_line_naming_the_option_and_where_the_budget_came_from(monkeypatch):
    monkeypatch.delenv("PROBE_BUDGET_MINUTES", raising=False)
    check_time(59, "probe explain", minutes=1)  # within: nothing
    with pytest.raises(
        ValueError,
        match=r"^probe explain would take about 2\.5 min, over the time budget of 1 min "
        r"\(--budget-minutes\); raise it with --budget-minutes 3, or read less$",
    ):
        check_time(150, "probe explain", minutes=1, less="read less")
    monkeypatch.setenv("PROBE_BUDGET_MINUTES", "1")
    with pytest.raises(ValueError, match=r"budget of 1 min \(\$PROBE_BUDGET_MINUTES\); raise it with --budget-mi"):
        check_time(150, "probe frontier")
    check_memory(GB, "x", gb=1)  # within: nothing
    with pytest.raises(
        ValueError,
        match=r"^the lens would hold about 2\.50 GB, over the memory budget of 1 GB "
        r"\(--budget-gb\); raise it with --budget-gb 2\.5$",
    ):
        check_memory(2.5 * GB, "the lens", gb=1)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan", "inf"])
def test_budget__a_bad_value_is_one_line(monkeypatch, bad):
    monkeypatch.setenv("PROBE_BUDGET_GB", bad)
    with pytest.raises(ValueError, match=rf"^\$PROBE_BUDGET_GB is '{bad}'; expected a positive number \(or unset"):
        budget_gb()
    with pytest.raises(ValueError, match=r"^--budget-minutes is 0; expected a positive number$"):
        budget_minutes(0)


def test_memory_estimates__are_the_arrays_real_sizes(default_model, tiny_gpt2_path):
    import numpy as np

    import probe
    from probe.core.index import VocabIndex, index_bytes
    from probe.readings.explain.lens import contextual_vocabulary, vocabulary_bytes
    from probe.readings.prefix import reference_bytes, vocabulary_reference

    assert array_bytes(3, 4) == 48 and array_bytes(3, 4, itemsize=2) == 24
    index = VocabIndex.for_model(default_model)
    assert index_bytes(default_model.vocab_size, default_model.dim) >= 2 * index.unit.nbytes
    lens = contextual_vocabulary(default_model, index, top_n=50)
    assert vocabulary_bytes(default_model, tokens=50) == 2 * lens.states.nbytes
    tiny_gpt2 = probe.load_model(str(tiny_gpt2_path), device="cpu")
    ids = np.arange(tiny_gpt2.vocab_size)
    reference = vocabulary_reference(tiny_gpt2, ids, [0, 1], use_cache=False)
    assert reference_bytes(tiny_gpt2, 2) == 2 * sum(r.nbytes for r in reference.values())
