"""probe.readings.reports: neighbours match brute force, distance measures, labels, controls, exports."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from probe.readings.reports import nearest_tokens


def _brute_topk(model, index, vectors, k):
    vocab = model.embeddings_numpy()[index.token_ids]
    v = vocab / np.linalg.norm(vocab, axis=1, keepdims=True)
    q = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = q @ v.T
    order = np.argsort(-sims, axis=1)[:, :k]
    return index.token_ids[order], np.take_along_axis(sims, order, 1)


def test_nearest_tokens__matches_brute_force(default_model, default_index):
    vectors = np.random.default_rng(0).normal(size=(7, 384)).astype(np.float32) * 0.1
    report = nearest_tokens(vectors, default_model, k=5, index=default_index)
    ids, cos = _brute_topk(default_model, default_index, vectors, 5)
    for p, row_ids, row_cos in zip(report.positions, ids, cos, strict=True):
        assert [n.token_id for n in p.neighbours] == row_ids.tolist()
        np.testing.assert_allclose([n.cosine for n in p.neighbours], row_cos, atol=1e-5)
        assert p.margin == pytest.approx(p.neighbours[0].cosine - p.neighbours[1].cosine, abs=1e-6)


def test_nearest_tokens__token_embeddings_find_themselves(default_model, default_index):
    tok = default_model.tokenizer
    words = ["science", "technology", "football", "election"]
    ids = tok.convert_tokens_to_ids(words)
    report = nearest_tokens(default_model.embeddings_numpy()[ids], default_model, k=3, index=default_index)
    assert [p.neighbours[0].token for p in report.positions] == words
    assert all(p.top1_cosine > 0.999 and p.on_manifold for p in report.positions)
    assert all(
        p.norm == pytest.approx(float(np.linalg.norm(default_model.embeddings_numpy()[i])), rel=1e-5)
        for p, i in zip(report.positions, ids, strict=True)
    )


def test_nearest_tokens__repeats_and_labels(default_model, default_index):
    e = default_model.embeddings_numpy()
    tok = default_model.tokenizer
    science, sports = tok.convert_tokens_to_ids(["science", "sports"])
    vectors = np.stack([e[science], e[science] * 1.1, e[sports]])
    report = nearest_tokens(vectors, default_model, k=5, labels=["sports", "World News"], index=default_index)
    assert report.positions[0].repeats_at == [1]
    assert report.positions[1].repeats_at == [0]
    assert report.positions[2].repeats_at == []
    hits = report.positions[2].label_hits
    assert hits and hits[0].label == "sports" and hits[0].rank == 1
    assert report.summary.duplicate_top1_share == pytest.approx(2 / 3)


def test_nearest_tokens__controls_show_no_structure(default_model, default_index):
    e = default_model.embeddings_numpy()
    ids = default_model.tokenizer.convert_tokens_to_ids(["science", "music", "money"])
    report = nearest_tokens(e[ids], default_model, k=5, index=default_index, controls=True)
    random, sampled = report.controls
    assert random.name == "random-uniform control" and random.count == 100
    assert random.on_manifold_share < 0.1 and random.mean_top1_cosine < 0.4
    assert sampled.on_manifold_share > 0.9
    assert random.mean_coherence < report.summary.mean_coherence


def test_nearest_tokens__json_schema(default_model, default_index):
    vectors = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    data = json.loads(nearest_tokens(vectors, default_model, k=4, index=default_index).to_json())
    assert data["model"] == "sentence-transformers/all-MiniLM-L6-v2" and data["k"] == 4
    pos = data["positions"][1]
    assert pos["position"] == 1 and isinstance(pos["norm"], float)
    assert [n["rank"] for n in pos["neighbours"]] == [1, 2, 3, 4]
    assert set(pos["neighbours"][0]) == {"rank", "token_id", "token", "cosine"}


def test_report__dataframe_csv_markdown(default_model, default_index):
    vectors = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
    report = nearest_tokens(vectors, default_model, k=3, index=default_index, labels=["science"])
    df = report.to_dataframe()
    assert len(df) == 6 and list(df["rank"]) == [1, 2, 3, 1, 2, 3]
    again = pd.read_csv(__import__("io").StringIO(report.to_csv()))
    assert list(again["token_id"]) == list(df["token_id"])
    md = report.to_markdown()
    assert md.count("\n| 0 |") == 1 and "Prompt Waywardness" in md
    assert df.iloc[0]["token"] in md


def test_nearest_tokens__k_and_dim_and_label_errors(default_model, default_index):
    v = np.ones((2, 384), np.float32)
    with pytest.raises(ValueError, match="k is 0; expected an integer from 1 to"):
        nearest_tokens(v, default_model, k=0, index=default_index)
    with pytest.raises(ValueError, match="k is 40000"):
        nearest_tokens(v, default_model, k=40_000, index=default_index)
    with pytest.raises(ValueError, match=r"\(dim 10\), but model .* has dim 384"):
        nearest_tokens(np.ones((2, 10), np.float32), default_model, index=default_index)
    with pytest.raises(ValueError, match="label '' is empty"):
        nearest_tokens(v, default_model, labels=[""], index=default_index)


def test_label_token_ids__label_that_tokenises_to_nothing(default_model, tiny_t5_path):
    from probe import load_model
    from probe.readings.reports import label_token_ids

    with pytest.raises(ValueError, match="tokenises to nothing"):
        label_token_ids(default_model.tokenizer, "\u200b\u200b")  # BERT drops format characters
    m = load_model(tiny_t5_path, device="cpu")
    with pytest.raises(ValueError, match="tokenises to nothing"):
        label_token_ids(m.tokenizer, "</s>")
    assert label_token_ids(default_model.tokenizer, "World News") == default_model.tokenizer.convert_tokens_to_ids(
        ["world", "news"]
    )


def test_nearest_tokens__causal_and_seq2seq_display_markers(tiny_gpt2_path, tiny_t5_path):
    from probe import load_model

    for path, marker in ((tiny_gpt2_path, "␣"), (tiny_t5_path, "␣")):
        m = load_model(path, device="cpu")
        report = nearest_tokens(m.embeddings_numpy()[:20], m, k=3)
        tokens = [n.token for p in report.positions for n in p.neighbours]
        assert len(tokens) == 60
        assert not any(t.startswith(("Ġ", "▁")) for t in tokens)
        assert any(marker in d for d in m.vocabulary.display)


def test_report__on_a_run_carries_its_measured_accuracies(demo_runs, capsys):
    import json

    from probe import load_run
    from probe.cli.parser import main

    run = load_run(demo_runs / "sampled-vocab")
    assert main(["report", str(run.path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accuracies"]["soft_accuracy"] == run.manifest.soft_accuracy
    assert data["accuracies"]["discretised_accuracy"] == run.manifest.discretised_accuracy
    assert data["accuracies"]["zero_shot_accuracy"] == run.manifest.zero_shot_accuracy
    assert main(["report", str(run.path)]) == 0
    assert f"Test accuracy: soft prompt {run.manifest.soft_accuracy:.3f}" in capsys.readouterr().out


def test_nearest_tokens__json_keeps_the_old_keys_beside_the_new(default_model, default_index):
    vectors = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
    measured = {"soft_accuracy": 0.8, "discretised_accuracy": 0.6, "zero_shot_accuracy": 0.5, "hard_prompt": 0.7}
    report = nearest_tokens(vectors, default_model, k=3, index=default_index, accuracies=measured)
    data = json.loads(report.to_json())
    for pos in data["positions"]:  # scripts written before the British spelling parse `neighbors`
        assert pos["neighbors"] == pos["neighbours"] and [n["rank"] for n in pos["neighbors"]] == [1, 2, 3]
    assert data["accuracies"] == {
        "soft_accuracy": 0.8,
        "discretised_accuracy": 0.6,
        "zero_shot_accuracy": 0.5,
        "hard_prompt_accuracy": 0.7,
        "soft": 0.8,
        "discretised": 0.6,
        "zero_shot": 0.5,
        "hard_prompt": 0.7,
    }
    assert report.accuracies == {k: v for k, v in data["accuracies"].items() if k.endswith("_accuracy")}


def test_nearest_tokens__a_string_for_a_list_is_refused(default_model, default_index):
    from probe.readings.explain.attribution import input_attribution, trigger_scan

    vectors = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
    with pytest.raises(
        TypeError, match=r"labels is 'joy', a single string; expected a list of text, e.g. labels=\['joy'\]"
    ):
        nearest_tokens(vectors, default_model, k=3, index=default_index, labels="joy")
    with pytest.raises(TypeError, match="labels holds 3 \\(int\\); expected a list of text"):
        nearest_tokens(vectors, default_model, k=3, index=default_index, labels=["joy", 3])
    with pytest.raises(TypeError, match="texts is 'a text', a single string"):
        input_attribution(vectors, None, texts="a text")  # before the readout is used
    with pytest.raises(TypeError, match="include is 'cf', a single string"):
        trigger_scan(vectors, None, include="cf")
    with pytest.raises(ValueError, match="size is -1; expected a positive number of test texts"):
        input_attribution(vectors, None, size=-1)
    report = nearest_tokens(vectors, default_model, k=3, index=default_index, labels=("joy", "anger"))
    assert report.labels == ["joy", "anger"]


def test_report__save_writes_the_format_its_suffix_names_and_to_json_refuses_a_path(
    default_model, default_index, tmp_path
):
    """``report.to_json('rep.json')`` took the path as the indent string: no file, and every line of the JSON began
    with it (errors.md 197). ``save`` writes what the suffix names."""
    from probe.readings.compare import compare_prompts

    rng = np.random.default_rng(0)
    report = nearest_tokens(rng.normal(size=(3, default_model.dim)).astype(np.float32), default_model, k=2)
    for suffix, read in ((".json", json.loads), (".csv", lambda t: pd.read_csv(io.StringIO(t))), (".md", str)):
        written = report.save(tmp_path / f"rep{suffix}")
        export = getattr(report, f"to_{suffix[1:].replace('md', 'markdown')}")
        assert written.read_text().rstrip("\n") == export().rstrip("\n")
        assert read(written.read_text()) is not None
    with pytest.raises(TypeError, match=r"to_json\(indent\) takes the indent .*result.save\('report.json'\)"):
        report.to_json("rep.json")
    with pytest.raises(ValueError, match=r"save\('rep.txt'\): expected a file ending in .json, .csv or .md"):
        report.save("rep.txt")
    a, b = (rng.normal(size=(2, default_model.dim)).astype(np.float32) for _ in range(2))
    with pytest.raises(TypeError, match="to_json"):
        compare_prompts(a, b, default_model).to_json("compare.json")  # every result: Result.to_json
    assert not (tmp_path / "rep.txt").exists() and sorted(p.suffix for p in tmp_path.iterdir()) == [
        ".csv",
        ".json",
        ".md",
    ]


def test_nearest_tokens__accuracies_that_are_none_are_refused_and_a_numpy_k_is_taken(default_model, default_index):
    """accuracies={'soft_accuracy': 7.0} was carried as measured, and a list failed on .items(); k=np.int64(3), an
    integer, was refused (errors.md 203)."""
    vectors = np.random.default_rng(1).normal(size=(2, 384)).astype(np.float32)
    for bad in ({"soft_accuracy": 7.0}, [0.5], {"soft_accuracy": "high"}):
        with pytest.raises(ValueError, match=r"accuracies is .*; expected \{measure name: accuracy in \[0, 1\]\}"):
            nearest_tokens(vectors, default_model, index=default_index, accuracies=bad)
    report = nearest_tokens(
        vectors, default_model, k=np.int64(3), index=default_index, accuracies={"soft_accuracy": 0.5}
    )
    assert report.k == 3 and type(report.k) is int and report.accuracies == {"soft_accuracy": 0.5}
    kept = nearest_tokens(vectors, default_model, index=default_index, accuracies={"soft_accuracy": np.float32(0.25)})
    assert kept.accuracies == {"soft_accuracy": 0.25}
