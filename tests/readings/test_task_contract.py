"""The task of a reading is the task of the prompt: a run's task form, a PEFT adapter's task type (SEQ_CLS with its
head, CAUSAL_LM scoring label words), or the caller's scoring function; when it cannot be known, one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from probe.core.data import train_test
from probe.formats.discovery import load_run
from probe.formats.prompts import load_prompt
from probe.readings.explain import Readout, importance


@pytest.fixture(scope="module")
def verbaliser_run(tmp_path_factory, default_model):
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    config = dataclasses.replace(
        TrainConfig(),
        init="class-label",
        length=3,
        steps=6,
        eval_every=6,
        snapshot_every=6,
        task="verbaliser",
        test_size=24,
    )
    return train(config, tmp_path_factory.mktemp("verbaliser") / "run", model=default_model, progress=False)


@pytest.mark.slow
def test_verbaliser_run__readings_run_under_its_own_form_on_its_own_rows(verbaliser_run, default_model):
    run = verbaliser_run
    readout = Readout.from_run(run, default_model)
    assert readout.task_name == "verbaliser" and len(readout.splits.test) == run.manifest.test_rows == 24
    correct, _ = readout.outcome(run.latest_prompt().vectors, readout.splits.test)
    assert correct.mean() == pytest.approx(run.manifest.soft_accuracy)  # the training's own final figure
    table = importance(run.latest_prompt(), readout, bootstrap=10)
    assert table.soft_accuracy == pytest.approx(run.manifest.soft_accuracy) and table.task == "verbaliser"


@pytest.mark.slow
def test_run_accuracies__never_mix_a_figure_of_another_task(verbaliser_run):
    from probe.core.names import HARD_PROMPT
    from probe.formats.hard_prompt import HardPrompt, save_hard_prompt

    hard = HardPrompt("m", [1], ["a"], "a", 0.9, 0.5, 0.4, 0.3, 0.5, 0.4, 0, 1, 1, 0, task="cosine")
    save_hard_prompt(hard, verbaliser_run.path)
    assert HARD_PROMPT not in verbaliser_run.accuracies()  # measured under the cosine form: not this run's
    save_hard_prompt(dataclasses.replace(hard, task="verbaliser"), verbaliser_run.path)
    assert verbaliser_run.accuracies()[HARD_PROMPT] == 0.9
    (verbaliser_run.path / "hard-prompt.json").unlink()


@pytest.mark.slow
def test_seq_cls_trainer_adapter__read_with_its_trained_head(tmp_path, default_model):
    from datasets import Dataset
    from peft import PeftModel, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    splits = train_test("feelings")
    base = AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=4)
    peft_model = get_peft_model(base, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    tok = default_model.tokenizer
    rows = Dataset.from_dict({"text": splits.train.texts, "label": splits.train.targets})
    rows = rows.map(lambda r: tok(r["text"], truncation=True, max_length=64), batched=True)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=16,
        learning_rate=0.05,
        save_steps=6,
        logging_steps=3,
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    Trainer(model=peft_model, args=args, train_dataset=rows, processing_class=tok).train()
    run = load_run(tmp_path / "out")
    assert run.manifest.task_form == "classifier-head"
    prompt = run.latest_prompt()
    readout = Readout.for_prompt(prompt, default_model, "feelings", test_size=None)
    assert readout.task_name == "classifier-head"
    correct, _ = readout.outcome(prompt.vectors, readout.splits.test)
    # the PEFT model's own predictions, loaded as PEFT loads it
    again = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=4), prompt.source
    ).eval()
    with torch.no_grad():
        batch = tok(splits.test.texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
        own = again(**batch).logits.argmax(-1).numpy()
    assert correct.mean() == pytest.approx((own == np.asarray(splits.test.targets)).mean())


def test_causal_adapter__label_words_scored_as_continuations(tmp_path, tiny_gpt2_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from probe.core.models import load_model
    from probe.tasks.kinds import wrap_with_prompt

    model = load_model(tiny_gpt2_path, device="cpu")
    vectors = np.random.default_rng(0).normal(size=(3, model.dim)).astype(np.float32)
    wrap_with_prompt(model, vectors).save_pretrained(tmp_path / "adapter")
    prompt = load_prompt(tmp_path / "adapter")
    readout = Readout.for_prompt(prompt, model, "topics", test_size=8)
    assert readout.task_name == "generate"
    scores = readout.scores(prompt.vectors, readout.splits.test)
    tok = model.tokenizer
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), tmp_path / "adapter").eval()
    expected = np.zeros_like(scores)
    with torch.no_grad():
        for i, text in enumerate(readout.splits.test.texts):
            for j, label in enumerate(readout.labels):
                ids, label_ids = tok(text)["input_ids"], tok(" " + label)["input_ids"]
                logp = (
                    peft(input_ids=torch.tensor([ids + label_ids])).logits[0, -len(ids + label_ids) :].log_softmax(-1)
                )
                expected[i, j] = sum(float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(label_ids))
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_scoring_function__the_callers_objective_is_used(default_model):
    calls = []

    def score(model, batch):
        calls.append(model)
        logits = torch.zeros((batch["input_ids"].shape[0], 4))
        logits[:, 2] = 1.0  # always the third label
        return logits

    readout = Readout.from_data(default_model, "feelings", score=score)
    assert readout.task_name.startswith("custom:") and "score" in readout.task_name
    correct, _ = readout.outcome(np.ones((2, 384), np.float32), readout.splits.test)
    assert calls and correct.mean() == pytest.approx(np.mean(np.asarray(readout.splits.test.targets) == 2))


def test_unknown_task__one_line_with_the_choices(tmp_path, default_model):
    np.save(tmp_path / "p.npy", np.ones((2, 384), np.float32))
    with pytest.raises(ValueError, match="cannot be known; say which it was trained on: --task cosine|verbaliser"):
        Readout.for_prompt(load_prompt(tmp_path / "p.npy"), default_model, "feelings")
    prompt = dataclasses.replace(
        load_prompt(tmp_path / "p.npy"), metadata={"peft_type": "PROMPT_TUNING", "task_type": "TOKEN_CLS"}
    )
    with pytest.raises(ValueError, match="is a PEFT TOKEN_CLS adapter; probe reads CAUSAL_LM, SEQ_2_SEQ_LM"):
        Readout.for_prompt(prompt, default_model, "feelings")
    with pytest.raises(ValueError, match="cannot be known"):
        Readout.from_data(default_model, "feelings")


def test_in_memory_data__gives_the_numbers_of_the_same_rows_from_a_file(tmp_path, default_model):
    import pandas as pd
    from datasets import ClassLabel, Dataset, DatasetDict

    splits = train_test("feelings")
    vectors = default_model.embeddings_numpy()[[10, 20]]
    frame = pd.DataFrame(
        {
            "text": splits.train.texts + splits.test.texts,
            "label": splits.train.labels + splits.test.labels,
            "split": ["train"] * len(splits.train) + ["test"] * len(splits.test),
        }
    )
    frame.to_csv(tmp_path / "same.csv", index=False)
    from_file = Readout.from_data(default_model, tmp_path / "same.csv", form="cosine")
    from_frame = Readout.from_data(default_model, frame, form="cosine")
    names = splits.train.label_names
    feature = ClassLabel(names=names)
    as_dict = DatasetDict(
        {
            part: Dataset.from_dict({"text": d.texts, "label": [names.index(x) for x in d.labels]}).cast_column(
                "label", feature
            )
            for part, d in (("train", splits.train), ("test", splits.test))
        }
    )
    from_datasets = Readout.from_data(default_model, as_dict, form="cosine")
    expected = from_file.outcome(vectors, from_file.splits.test)[0]
    for other in (from_frame, from_datasets):
        assert other.labels == from_file.labels
        np.testing.assert_array_equal(other.outcome(vectors, other.splits.test)[0], expected)
