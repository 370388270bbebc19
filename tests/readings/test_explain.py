"""probe.readings.explain (readout, ablation, hardening, lens): each reading against a brute-force recomputation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probe import VocabIndex, load_model, load_prompt, load_run
from probe.core.data import DataSplits, LabelledData, train_test
from probe.formats.hard_prompt import HARD_PROMPT_FILE as HARD_PROMPT
from probe.formats.hard_prompt import save_hard_prompt
from probe.readings.explain import Readout, importance
from probe.readings.explain.hardening import harden
from probe.readings.explain.lens import contextual_vocabulary, layer_lens
from probe.tasks.kinds import make_task, wrap_with_prompt


@pytest.fixture(scope="module")
def readout(default_model):
    splits = train_test("feelings")
    small = DataSplits(splits.train, splits.test.subset(list(range(0, 64, 4))))  # 16 test sentences
    return Readout(
        model=default_model, index=VocabIndex.for_model(default_model), labels=splits.train.label_names, splits=small
    )


def _plain_accuracy(model, vectors, labels, data):
    """A fresh task and plain per-text passes: what the batched readings must equal."""
    task = make_task(model, wrap_with_prompt(model, vectors), labels)
    with torch.no_grad():
        scores = torch.cat([task.scores([t]) for t in data.texts]).numpy()
    return float((scores.argmax(1) == np.asarray(data.targets)).mean())


def test_importance__each_variant_equals_a_brute_force_recomputation(readout, default_model):
    rng = np.random.default_rng(0)
    e = default_model.embeddings_numpy()
    vectors = e[rng.choice(5000, 4, replace=False)] + rng.normal(0, 0.02, (4, default_model.dim)).astype(np.float32)
    vectors[2] = 0.0  # a zero position: removing it or replacing it with the mean vocab row barely matters
    table = importance(vectors, readout, bootstrap=200)
    data = readout.splits.test
    assert table.soft_accuracy == _plain_accuracy(default_model, vectors, readout.labels, data)
    nearest = readout.index.search(vectors, 1)[1][:, 0]
    mean_row = e[readout.index.token_ids].mean(0)
    for p in table.positions:
        i = p.position
        assert p.removed_accuracy == _plain_accuracy(default_model, np.delete(vectors, i, 0), readout.labels, data)
        swapped = vectors.copy()
        swapped[i] = e[nearest[i]]
        assert p.nearest_accuracy == _plain_accuracy(default_model, swapped, readout.labels, data)
        swapped[i] = mean_row
        assert p.mean_accuracy == _plain_accuracy(default_model, swapped, readout.labels, data)
        low, high = p.removed_drop_ci
        assert low <= p.removed_drop <= high
    assert sorted(p.rank for p in table.positions) == [1, 2, 3, 4]
    df = table.to_dataframe()
    assert {"removed_accuracy", "nearest_accuracy", "mean_accuracy", "removed_drop_low"} <= set(df.columns)
    assert json.loads(table.to_json())["positions"][0]["position"] == 0


def test_importance__refuses_a_prompt_of_another_dimension(readout):
    with pytest.raises(ValueError, match="prompt has dim 8, model .* has dim 384"):
        importance(np.ones((3, 8), np.float32), readout)


def test_harden__never_worse_on_the_holdout_and_equals_its_token_rows(readout, default_model, tmp_path):
    soft = default_model.embeddings_numpy()[[2000, 2500, 3000]] + 0.05
    hard = harden(soft, readout, steps=6, eval_every=3, state_dir=tmp_path)
    assert hard.holdout_accuracy >= hard.start_holdout_accuracy
    rows = default_model.embeddings_numpy()[hard.token_ids]
    assert hard.accuracy == _plain_accuracy(default_model, rows, readout.labels, readout.splits.test)
    assert hard.tokens == [default_model.vocabulary.display[i] for i in hard.token_ids]
    path = save_hard_prompt(hard, tmp_path)
    assert path.name == HARD_PROMPT
    np.testing.assert_array_equal(load_prompt(path).vectors, rows)  # the file loads as a prompt
    again = harden(soft, readout, steps=6, eval_every=3, state_dir=tmp_path)  # resumes from the saved state
    assert again.token_ids == hard.token_ids


@pytest.mark.slow
def test_harden__an_interrupted_search_resumes_to_the_uninterrupted_result(
    readout, default_model, tmp_path, monkeypatch
):
    soft = default_model.embeddings_numpy()[[100, 4000]] - 0.03
    whole = harden(soft, readout, steps=8, eval_every=4, lr=0.5)
    calls, real = {"n": 0}, readout.nearest_ids

    def interrupted(vectors):  # start, steps 1-4, the evaluation at 4 (state saved), then step 5 stops
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(vectors)

    monkeypatch.setattr(readout, "nearest_ids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harden(soft, readout, steps=8, eval_every=4, lr=0.5, state_dir=tmp_path)
    monkeypatch.undo()
    assert json.loads((tmp_path / "hard-prompt-state.json").read_text())["step"] == 4
    resumed = harden(soft, readout, steps=8, eval_every=4, lr=0.5, state_dir=tmp_path)
    assert (resumed.token_ids, resumed.best_step, resumed.holdout_accuracy) == (
        whole.token_ids,
        whole.best_step,
        whole.holdout_accuracy,
    )


def test_layer_lens__real_token_rows_read_back_at_the_first_layer(readout, default_model):
    ids = default_model.tokenizer.convert_tokens_to_ids(["science", "music", "happy", "river", "money", "green"])
    vocab = contextual_vocabulary(default_model, readout.index, top_n=3000)
    assert set(ids) <= set(vocab.token_ids.tolist())
    lens = layer_lens(default_model.embeddings_numpy()[ids], readout, texts=4, vocabulary=vocab)
    assert lens.layers == 7  # embeddings output + 6 layers
    first = lens.to_dataframe().query("layer == 0")
    expected = [default_model.vocabulary.display[i] for i in ids]
    assert (first["token"].to_numpy() == np.array(expected)).mean() >= 5 / 6
    assert lens.input_tokens == expected
    assert all(-1 <= h < lens.layers for h in lens.holds_until)
    assert "| pos | input reading | holds until |" in lens.to_markdown()


def test_layer_lens__the_vocabulary_is_built_once_then_read_from_the_cache(readout, default_model, monkeypatch):
    import probe.readings.explain.lens

    a = contextual_vocabulary(default_model, readout.index, top_n=500)
    assert a.states.shape == (7, 500, default_model.dim)
    np.testing.assert_allclose(np.linalg.norm(a.states, axis=2), 1.0, atol=2e-3)

    def no_model(*args, **kwargs):
        raise AssertionError("the cached vocabulary should have been read")

    monkeypatch.setattr(probe.readings.explain.lens, "_hidden_states", no_model)
    b = contextual_vocabulary(default_model, readout.index, top_n=500)
    np.testing.assert_array_equal(a.states, b.states)
    with pytest.raises(AssertionError, match="cached vocabulary"):
        contextual_vocabulary(default_model, readout.index, top_n=400)  # another vocabulary is built afresh


@pytest.mark.parametrize("fixture", ["tiny_gpt2_path", "tiny_t5_path"])
def test_readings__tiny_generative_models(fixture, request):
    model = load_model(request.getfixturevalue(fixture), device="cpu")
    texts = ["the team won the match", "shares fell at the bank", "the match was a draw", "rates rose at the bank"]
    data = LabelledData(texts, ["sports", "money", "sports", "money"], ["sports", "money"])
    ro = Readout(
        model=model,
        index=VocabIndex.for_model(model),
        labels=data.label_names,
        splits=DataSplits(data, data),
        max_length=32,
    )
    vectors = np.random.default_rng(1).normal(0, 0.1, (3, model.dim)).astype(np.float32)
    table = importance(vectors, ro, bootstrap=50)
    assert len(table.positions) == 3 and 0 <= table.soft_accuracy <= 1
    lens = layer_lens(vectors, ro, texts=2, top_n=100)
    assert lens.layers == 3  # embeddings output + 2 layers
    if model.kind == "causal":
        assert all(r.logit_token is not None for r in lens.rows)  # the logit lens
    hard = harden(vectors, ro, steps=2, eval_every=1, batch_size=2)
    assert len(hard.token_ids) == 3


@pytest.mark.slow
def test_cli_explain__a_run_writes_all_three_readings(demo_runs, tmp_path, capsys):
    import shutil

    from probe.cli.parser import main

    run = tmp_path / "class-label"  # a copy: the shared demo runs stay as the other tests expect them
    shutil.copytree(demo_runs / "class-label", run)
    assert (
        main(
            [
                "explain",
                str(run),
                "--format",
                "json",
                "--hard-steps",
                "4",
                "--lens-tokens",
                "2000",
                "--lens-texts",
                "4",
                "--bootstrap",
                "100",
                "--no-progress",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert {"soft_accuracy", "discretised_accuracy", "zero_shot_accuracy"} <= set(out)
    assert {"position", "removed_accuracy", "nearest_accuracy", "mean_accuracy"} <= set(
        out["importance"]["positions"][0]
    )
    assert {"token_ids", "tokens", "hard_prompt_accuracy"} <= set(out["hard_prompt"])
    assert {"position", "layer", "token", "cosine"} <= set(out["lens"]["rows"][0])
    assert out["soft_accuracy"] == load_run(run).manifest.soft_accuracy
    assert (run / "explain.json").is_file() and (run / HARD_PROMPT).is_file()


def test_cli_explain__hard_method_search_finds_it_by_exact_search(demo_runs, default_model, tmp_path, capsys):
    import shutil

    from probe.cli.parser import main

    run = tmp_path / "random-uniform"
    shutil.copytree(demo_runs / "random-uniform", run)
    args = ["explain", str(run), "--format", "json", "--hard-method", "search", "--hard-steps", "2"]
    small = ["--lens-tokens", "500", "--lens-texts", "2", "--bootstrap", "50", "--test-size", "16", "--no-progress"]
    assert main([*args, *small]) == 0
    captured = capsys.readouterr()
    hard = json.loads(captured.out)["hard_prompt"]
    assert hard["method"] == "search" and "explaining" in captured.err
    assert list((run / "explain").glob("*")) and list(run.glob("hard-prompt-search-state.*"))
    readout = Readout.from_run(load_run(run), default_model, test_size=16)  # the record's accuracy, recomputed
    correct, _ = readout.outcome(default_model.embeddings_numpy()[hard["token_ids"]], readout.splits.test)
    assert hard["hard_prompt_accuracy"] == pytest.approx(float(correct.mean()))


def test_cli_explain__a_prompt_without_data_is_one_line(tmp_path, capsys):
    from probe.cli.parser import main

    np.save(tmp_path / "p.npy", np.ones((2, 384), np.float32))
    assert main(["explain", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give its task's data with --data FILE" in err


def test_cli_explain__a_run_that_records_no_data_is_one_line(tmp_path, capsys):
    from probe.cli.parser import main

    folder = tmp_path / "loop"
    folder.mkdir()
    for step in (1, 2):
        np.save(folder / f"step-{step}.npy", np.ones((2, 384), np.float32) * step)
    assert main(["explain", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "records no training data" in err and "--data FILE" in err


def test_cli_explain__the_default_is_bounded_and_full_reads_every_row_unless_told(tmp_path):
    from probe.cli.explain import EXPLAIN_TEST_ROWS, Explain
    from probe.cli.harden import Harden

    run = str(tmp_path)
    assert Explain(target=run).test_rows() == EXPLAIN_TEST_ROWS == 128 and Harden(target=run).test_rows() == 200
    assert Explain(target=run, full=True).test_rows() is None  # every test row
    assert Explain(target=run, full=True, test_size=50).test_rows() == 50  # an option given as well keeps its value
    assert Explain(target=run, test_size=0).test_rows() is None
    assert Explain(target=run).sizes() == (50, 32) and Explain(target=run, full=True).sizes() == (300, 128)
    assert Explain(target=run, full=True, hard_steps=7).sizes() == (7, 128)


def test_explain_cli__a_run_given_its_own_data_file_is_split_as_the_run_split_it(tmp_path, default_model):
    """``probe explain RUN --data FILE`` split the file by explain's --seed (0), not the run's: with a run of seed 3,
    4 of its 6 'test' rows had been trained on, and every figure read them (errors.md 207)."""
    import pandas as pd

    from probe import TrainConfig, train
    from probe.cli.explain import Explain

    rows = train_test("feelings").train
    table = pd.DataFrame({"text": rows.texts[::4], "label": rows.labels[::4]})
    table.to_csv(tmp_path / "mine.csv", index=False)
    config = TrainConfig(data=str(tmp_path / "mine.csv"), seed=3, steps=2, length=2, eval_every=2, eval_size=8)
    run = train(config, tmp_path / "run", model=default_model, progress=False)
    own = Readout.from_run(run, default_model).splits.test.texts
    command = Explain(target=str(tmp_path / "run"), data=str(tmp_path / "mine.csv"), test_size=0)
    read = command._readout(run, run.latest_prompt(), default_model).splits
    assert read.test.texts == own and not set(read.test.texts) & set(read.train.texts)
    renamed = table.rename(columns={"text": "words"})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    command = Explain(
        target=str(tmp_path / "run"), data=str(tmp_path / "renamed.csv"), text_column="words", test_size=0
    )
    command.data_changed_ok = True  # another file's digest: the columns differ
    assert command._readout(run, run.latest_prompt(), default_model).splits.test.texts == own


def test_run__its_data_by_a_relative_path_is_read_from_another_folder(tmp_path, default_model, monkeypatch):
    """A run trained on 'mine.csv' could be read only from the folder it was trained in: 'data file does not exist'
    from anywhere else (errors.md 208). The manifest now records the file's absolute path; a run recorded before
    that says where it looked."""
    import pandas as pd

    from probe import TrainConfig, train
    from probe.formats.manifest import MANIFEST

    rows = train_test("feelings").train
    (tmp_path / "work").mkdir()
    pd.DataFrame({"text": rows.texts[::4], "label": rows.labels[::4]}).to_csv(
        tmp_path / "work" / "mine.csv", index=False
    )
    monkeypatch.chdir(tmp_path / "work")
    config = TrainConfig(data="mine.csv", steps=2, length=2, eval_every=2, eval_size=8)
    train(config, "run", model=default_model, progress=False)
    here = Readout.from_run(load_run("run"), default_model).splits.test.texts
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"text": rows.texts[1::4], "label": rows.labels[1::4]}).to_csv(tmp_path / "mine.csv", index=False)
    assert Readout.from_run(load_run("work/run"), default_model).splits.test.texts == here  # not ./mine.csv
    (tmp_path / "mine.csv").unlink()
    manifest = json.loads((tmp_path / "work" / "run" / MANIFEST).read_text())
    manifest["data"]["path"] = "mine.csv"  # as runs recorded it before
    (tmp_path / "work" / "run" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"records its data as 'mine.csv', relative to the folder it was trained in"):
        Readout.from_run(load_run("work/run"), default_model)
