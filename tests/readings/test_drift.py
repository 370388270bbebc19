"""probe.readings.drift: the drift table agrees with an independent recomputation; summaries; bad order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probe.core.index import VocabIndex
from probe.formats.discovery import load_run
from probe.formats.writer import RunWriter
from probe.readings.drift import convergence_steps, drift_frames, drift_table, summarize_run


@pytest.fixture()
def synthetic_run(tmp_path, default_model):
    """A run whose snapshots walk from 'joy' towards 'fear' at position 0 and stay put at position 1."""
    tok = default_model.tokenizer
    e = default_model.embeddings_numpy()
    joy, fear, music = (e[tok.convert_tokens_to_ids(w)] for w in ("joy", "fear", "music"))
    writer = RunWriter(
        tmp_path / "run",
        {
            "model": default_model.name,
            "init": "class-label",
            "length": 2,
            "seed": 0,
            "labels": ["joy", "fear"],
            "init_details": {"token_ids": [[tok.convert_tokens_to_ids("joy")], [tok.convert_tokens_to_ids("music")]]},
        },
    )
    for step, t in zip((0, 10, 20, 30), (0.0, 0.3, 0.8, 1.0), strict=True):
        writer.write_snapshot(step, np.stack([(1 - t) * joy + t * fear, music]))
    return load_run(tmp_path / "run")


def test_drift_table__matches_independent_recomputation(synthetic_run, default_model, default_index):
    table = drift_table(synthetic_run, default_model, index=default_index, k=5)
    assert len(table) == 8 and list(table["step"].unique()) == [0, 10, 20, 30]
    init = synthetic_run.initial_prompt().vectors
    prev = init
    for step in synthetic_run.steps:
        v = synthetic_run.snapshot(step).vectors
        rows = table[table["step"] == step].sort_values("position")
        cos = (v * init).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(init, axis=1)
        np.testing.assert_allclose(rows["cos_to_init"], cos, atol=1e-5)
        np.testing.assert_allclose(rows["l2_to_init"], np.linalg.norm(v - init, axis=1), atol=1e-5)
        cos_prev = (v * prev).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(prev, axis=1)
        np.testing.assert_allclose(rows["cos_to_prev"], cos_prev, atol=1e-5)
        np.testing.assert_allclose(rows["norm"], np.linalg.norm(v, axis=1), rtol=1e-5)
        _scores, ids = default_index.search(v, 5)
        assert rows["top1_id"].tolist() == ids[:, 0].tolist()
        prev = v
    first = table[(table["step"] == 0)]["top1_token"].tolist()
    last = table[(table["step"] == 30)]["top1_token"].tolist()
    assert first == ["joy", "music"] and last == ["fear", "music"]
    assert table[table["position"] == 1]["jaccard_prev"].eq(1.0).all()


def test_convergence_and_summary(synthetic_run, default_model, default_index):
    table = drift_table(synthetic_run, default_model, index=default_index)
    converged = convergence_steps(table)
    assert converged[1] == 0
    assert converged[0] in (20, 30)
    summary = summarize_run(synthetic_run, default_model, table, index=default_index)
    assert summary.init_token_top1 == 1 and summary.init_token_positions == 2  # music kept, joy lost
    snaps = [synthetic_run.snapshot(s).vectors for s in synthetic_run.steps]
    travelled = sum(np.linalg.norm(b - a, axis=1) for a, b in itertools.pairwise(snaps))
    assert summary.mean_distance_travelled == pytest.approx(travelled.mean(), rel=1e-5)


def test_drift_frames__chunking_gives_the_same_table(synthetic_run, default_model, default_index):
    import pandas as pd

    stream = [(p.step, p.vectors) for p in synthetic_run.iter_snapshots()]
    one = pd.concat(drift_frames(stream, default_index, chunk=1), ignore_index=True)
    all_at_once = pd.concat(drift_frames(stream, default_index, chunk=100), ignore_index=True)
    pd.testing.assert_frame_equal(one, all_at_once)


def test_drift_frames__steps_out_of_order():
    index = VocabIndex(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="steps must increase; got step 5 after 10"):
        list(drift_frames([(10, np.eye(4, dtype=np.float32)), (5, np.eye(4, dtype=np.float32))], index))


def test_summary__names_its_baseline_and_says_why_accuracies_are_blank(tmp_path, default_model):
    """A folder that kept no init measures 'to init' from its first snapshot and says so; a run no loop evaluated
    says why its accuracy columns are blank (both were silent)."""
    import numpy as np

    from probe.formats.discovery import load_run
    from probe.readings.drift import summarize_run

    rng = np.random.default_rng(0)
    folder = tmp_path / "loop"
    folder.mkdir()
    for step in (5, 10):
        np.save(folder / f"step-{step}.npy", rng.normal(size=(3, 384)).astype(np.float32))
    summary = summarize_run(load_run(folder), default_model, convergence=False)
    assert summary.baseline.startswith("first snapshot, step 5")
    assert summary.soft_accuracy is None and "not measured" in summary.note and "probe explain" in summary.note
    assert {"baseline", "note"} <= set(summary.to_dict())
