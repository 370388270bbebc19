"""Prompts trained anywhere: a real Trainer with PEFT prompt tuning, read as a checkpoint folder and as a
callback-written run; the loop-agnostic recorder; the other layouts; nothing written into what is read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

from probe import load_model, load_prompt, load_run, record
from probe.core.data import train_test
from probe.formats.discovery import find_runs
from probe.readings.drift import drift_table, summarize_run
from probe.training.integrations import ProbeCallback, attach, track


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _prompt_tuned(model_path: str = "default", p: int = 6):
    """The bundled model wrapped by PEFT as a user would, with the model's own (random) prompt init."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    from probe.core.models import bundled_model_path

    base = AutoModel.from_pretrained(bundled_model_path())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return get_peft_model(
            base, PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=p, token_dim=384)
        )


class _Texts(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts, targets):
        self.enc = tokenizer(texts, truncation=True, max_length=64)
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return {"input_ids": self.enc["input_ids"][i], "labels": self.targets[i]}


@pytest.fixture(scope="module")
def trainer_output(tmp_path_factory):
    """A user's own Trainer loop: mean-pooled prompted embeddings, cosine to the label names, cross-entropy."""
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    model = load_model("default", device="cpu")
    splits = train_test("feelings")
    peft_model = _prompt_tuned()
    with torch.no_grad():
        enc = model.tokenizer(splits.train.label_names, padding=True, return_tensors="pt")
        hidden = model.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1)
        label_emb = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    class CosineTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = inputs.pop("labels")
            hidden = model(**inputs).last_hidden_state[:, 6:]
            m = inputs["attention_mask"].unsqueeze(-1)
            pooled = F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
            return F.cross_entropy(pooled @ label_emb.T / 0.05, targets)

    seen: list[dict] = []

    class Reporter(TrainerCallback):  # stands for a logger that runs after probe's callback
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs or {}))

    out = tmp_path_factory.mktemp("hf-trainer")
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=0.01,
        save_steps=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = CosineTrainer(
        model=peft_model,
        args=args,
        train_dataset=_Texts(model.tokenizer, splits.train.texts, splits.train.targets),
        data_collator=DataCollatorWithPadding(model.tokenizer),
        callbacks=[ProbeCallback(out / "recorded", every=2, labels=splits.train.label_names), Reporter()],
    )
    trainer.train()
    trainer.save_model(str(out / "trainer"))
    trainer.save_state()
    return out, model, trainer, seen


def _adapter_weights(folder: Path) -> np.ndarray:
    (tensor,) = load_file(str(folder / "adapter_model.safetensors")).values()
    return tensor


@pytest.mark.slow
def test_trainer_folder__reads_as_a_run_equal_to_its_checkpoints(trainer_output):
    out, model, _, _ = trainer_output
    folder = out / "trainer"
    before = _tree_digest(folder)
    run = load_run(folder)
    assert run.manifest.layout == "trainer" and run.manifest.model == model.name
    assert run.steps == [2, 4, 6] and run.status == "finished" and run.manifest.length == 6
    for step in run.steps:
        np.testing.assert_array_equal(run.snapshot(step).vectors, _adapter_weights(folder / f"checkpoint-{step}"))
    np.testing.assert_array_equal(run.latest_prompt().vectors, _adapter_weights(folder))  # the top-level adapter
    losses = run.metrics()
    assert list(losses["step"]) == [1, 2, 3, 4, 5, 6] and losses["loss"].notna().all()
    table = drift_table(run, model)
    assert sorted(set(table["step"])) == [2, 4, 6]
    assert summarize_run(run, model).snapshots == 3
    assert [r.name for r in find_runs(folder)] == ["trainer"]
    assert _tree_digest(folder) == before  # read-only: nothing was written into it


@pytest.mark.slow
def test_callback__writes_a_run_whose_snapshots_are_the_saved_checkpoints(trainer_output):
    out, model, trainer, seen = trainer_output
    run = load_run(out / "recorded")
    assert run.status == "finished" and run.labels == ["joy", "anger", "fear", "sadness"]
    assert run.steps == [0, 2, 4, 6] and run.manifest.seed == 0
    for step in (2, 4, 6):
        np.testing.assert_array_equal(
            run.snapshot(step).vectors, _adapter_weights(out / "trainer" / f"checkpoint-{step}")
        )
    assert not np.array_equal(run.snapshot(0).vectors, run.snapshot(6).vectors)  # the prompt trained
    assert list(run.metrics()["step"]) == [1, 2, 3, 4, 5, 6]
    logged = [e for e in seen if "loss" in e]
    assert len(logged) == 6 and all(0 < e["probe/cos_to_init"] <= 1.0 for e in logged)
    assert logged[-1]["probe/cos_to_init"] < logged[0]["probe/cos_to_init"]  # it moves away as it trains
    assert len(drift_table(run, model)) == 4 * 6
    attached = attach(trainer, out / "again", every=5)
    assert trainer.callback_handler.callbacks[0] is attached  # ahead of the Trainer's own reporters


def test_record__any_loop_writes_a_run_with_a_final_snapshot(tmp_path):
    peft_model = _prompt_tuned(p=4)
    weight = peft_model.prompt_encoder["default"].embedding.weight
    optimizer = torch.optim.SGD([weight], lr=0.5)
    with record(peft_model, tmp_path / "run", every=3, labels=["a", "b"]) as rec:
        for step in range(1, 8):
            loss = (weight**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rec.step(step, loss=loss.item())
        rec.evaluate(7, accuracy=0.5)
    run = load_run(tmp_path / "run")
    assert run.steps == [0, 3, 6, 7] and run.status == "finished"  # 7: the prompt as trained at the end
    np.testing.assert_array_equal(run.snapshot(7).vectors, weight.detach().numpy())
    assert list(run.metrics()["step"]) == list(range(1, 8)) and list(run.evaluations()["soft_accuracy"]) == [0.5]
    assert run.manifest.init == "random" and run.manifest.length == 4


def test_record__an_exception_marks_the_run_failed(tmp_path):
    peft_model = _prompt_tuned(p=2)
    with pytest.raises(RuntimeError, match="boom"), record(peft_model, tmp_path / "run", every=1) as rec:
        rec.step(1, loss=1.0)
        raise RuntimeError("boom")
    assert load_run(tmp_path / "run").status == "failed"


def test_record__refuses_a_bad_interval_and_a_model_without_a_prompt(tmp_path):
    with pytest.raises(ValueError, match="every is 0"):
        ProbeCallback(tmp_path / "x", every=0)
    with pytest.raises(ValueError, match="no PEFT prompt-tuning adapter"):
        record(torch.nn.Linear(2, 2), tmp_path / "y")


def test_layouts__adapter_folders_and_tensor_files_by_step(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {s: rng.normal(size=(3, 384)).astype(np.float32) for s in (1, 2, 10)}
    files = tmp_path / "files"
    files.mkdir()
    save_file({"prompt": vectors[1]}, files / "step-1.safetensors")
    np.save(files / "step_2.npy", vectors[2])
    torch.save({"prompt": torch.from_numpy(vectors[10])}, files / "epoch-10.pt")
    run = load_run(files)
    assert run.manifest.layout == "tensor-steps" and run.steps == [1, 2, 10]
    for step, v in vectors.items():
        np.testing.assert_array_equal(run.snapshot(step).vectors, v)

    adapters = tmp_path / "adapters"
    peft_model = _prompt_tuned(p=3)
    for step in (5, 15):
        peft_model.save_pretrained(adapters / f"step-{step}")
    run = load_run(adapters)
    assert run.manifest.layout == "adapter-steps" and run.steps == [5, 15] and run.manifest.length == 3


def test_layouts__anything_else_is_refused_with_the_accepted_layouts(tmp_path, capsys):
    from probe.cli.parser import main

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="Accepted layouts: probe: .*trainer: .*adapter-steps: .*tensor-steps: "):
        load_run(tmp_path)
    assert main(["drift", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tensor-steps" in err


@pytest.mark.slow
def test_trainer_route__plain_callback_reports_probe_scalars_and_a_resume_continues_the_run(tmp_path, default_model):
    from datasets import Dataset
    from peft import PromptTuningConfig, get_peft_model
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from probe.core.data import train_test

    splits = train_test("feelings")
    tok = default_model.tokenizer
    rows = Dataset.from_dict({"text": splits.train.texts, "label": splits.train.targets})
    rows = rows.map(lambda r: tok(r["text"], truncation=True, max_length=64), batched=True)

    def trainer(max_steps: int) -> Trainer:
        base = AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=4)
        peft_model = get_peft_model(base, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=max_steps,
            per_device_train_batch_size=8,
            learning_rate=0.05,
            save_steps=2,
            logging_steps=1,
            report_to=["tensorboard"],
            use_cpu=True,
            seed=0,
            disable_tqdm=True,
        )
        made = Trainer(model=peft_model, args=args, train_dataset=rows, processing_class=tok)
        made.add_callback(ProbeCallback(tmp_path / "probe-run", every=2))  # after the reporters: the plain way
        return made

    trainer(2).train()
    events = [
        EventAccumulator(str(p.parent)).Reload() for p in (tmp_path / "out" / "runs").rglob("events.out.tfevents.*")
    ]
    tags = {t for e in events for t in e.Tags()["scalars"]}
    assert {"probe/cos_to_init", "probe/l2_to_init", "probe/norm"} <= tags
    assert not any(t.startswith("train/probe/") for t in tags)
    trainer(4).train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    run = load_run(tmp_path / "probe-run")
    assert run.status == "finished" and run.steps == [0, 2, 4] and run.manifest.resumed_from == 2
    steps = list(run.metrics()["step"])
    assert steps == sorted(set(steps)) == [1, 2, 3, 4]  # the resumed steps logged once each


def _seq_cls_run(tmp_path, default_model, id2label, config=None):
    from datasets import Dataset
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from probe.core.data import train_test

    splits = train_test("feelings")
    order = id2label or {i: name for i, name in enumerate(splits.train.label_names)}
    index = {name: i for i, name in order.items()}
    tok = default_model.tokenizer
    rows = Dataset.from_dict({"text": splits.train.texts, "label": [index[x] for x in splits.train.labels]})
    rows = rows.map(lambda r: tok(r["text"], truncation=True, max_length=64), batched=True)
    extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
    base = AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=4, **extra)
    peft_model = get_peft_model(base, config or PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=8, learning_rate=0.05,
        save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=peft_model, args=args, train_dataset=rows, processing_class=tok)
    trainer.add_callback(ProbeCallback(tmp_path / "probe-run", every=3))
    trainer.train()
    return peft_model, splits


def _own_accuracy(peft_model, model, test, id2label) -> float:
    """The accuracy of the trained model's own predictions (PEFT's forward, its head) on ``test``."""
    batch = model.tokenizer(test.texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    peft_model.eval()
    with torch.no_grad():
        predicted = peft_model(**batch).logits.argmax(-1).numpy()
    return float(np.mean([id2label[int(p)] == label for p, label in zip(predicted, test.labels, strict=True)]))


def test_callback__a_seq_cls_run_is_read_under_its_own_head_in_its_class_order(tmp_path, default_model):
    from probe.readings.explain.readout import Readout

    id2label = {0: "sadness", 1: "joy", 2: "fear", 3: "anger"}  # not the data's first-seen order
    peft_model, _ = _seq_cls_run(tmp_path, default_model, id2label)
    run = load_run(tmp_path / "probe-run")
    assert run.manifest.task_form == "classifier-head" and run.labels == list(id2label.values())
    readout = Readout.from_run(run, default_model, data="feelings")
    test = readout.splits.test
    own = _own_accuracy(peft_model, default_model, test, id2label)
    correct, _ = readout.outcome(run.latest_prompt().vectors, test)
    assert readout.task_name == "classifier-head"
    assert abs(float(correct.mean()) - own) < 1e-9


def test_callback__a_p_tuning_run_records_its_encoders_output_and_reads_as_the_model_predicts(tmp_path, default_model):
    """P-tuning's prompt is its encoder's output (what PEFT prepends and saves), not the encoder's input rows:
    recording those gave a reading of another prompt (accuracy 0.266 where the model's own predictions give 0.281)."""
    from peft import PromptEncoderConfig

    from probe.readings.explain.readout import Readout

    id2label = {0: "sadness", 1: "joy", 2: "fear", 3: "anger"}
    config = PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=4, encoder_hidden_size=64)
    peft_model, _ = _seq_cls_run(tmp_path, default_model, id2label, config)
    run = load_run(tmp_path / "probe-run")
    saved = load_prompt(tmp_path / "probe-run" / "adapter").vectors  # PEFT's own prompt_embeddings
    np.testing.assert_allclose(run.latest_prompt().vectors, saved, atol=1e-6)
    encoder_input = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight.detach().numpy()
    assert not np.allclose(run.latest_prompt().vectors, encoder_input, atol=1e-3)
    readout = Readout.from_run(run, default_model, data="feelings")
    test = readout.splits.test
    own = _own_accuracy(peft_model, default_model, test, id2label)
    assert float(readout.outcome(run.latest_prompt().vectors, test)[0].mean()) == pytest.approx(own, abs=1e-9)


def test_track__a_prefix_is_refused_in_one_line_before_any_write(tmp_path, default_model):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=2)
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
    with pytest.raises(ValueError, match="PREFIX_TUNING trains keys and values per layer, not rows of the input"):
        track(peft_model, tmp_path / "prefix")
    assert not (tmp_path / "prefix").exists()


def test_callback__a_seq_cls_run_whose_class_order_is_unknown_asks_for_it(tmp_path, default_model, capsys):
    from probe.cli import main

    _seq_cls_run(tmp_path, default_model, None)  # transformers' default LABEL_0.. names say nothing
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "probe-run"), "--data", "feelings"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "order of its head's 4 classes is unknown" in err


def test_record__a_string_for_labels_is_refused_before_any_write(tmp_path):
    with pytest.raises(TypeError, match="labels is 'joy', a single string; expected a list of text"):
        ProbeCallback(tmp_path / "x", labels="joy")
    with pytest.raises(TypeError, match="labels is 'joy', a single string"):
        track(_prompt_tuned(p=2), tmp_path / "y", labels="joy")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_track__labels_that_are_not_the_head_s_classes_in_order_are_refused_before_any_write(tmp_path, default_model):
    """A SEQ_CLS head is read in the order of the labels a run records: labels= in another order than id2label's
    were taken over it, and the run read under a permuted head (errors.md 195)."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    id2label = {0: "joy", 1: "anger", 2: "fear", 3: "sadness"}
    base = AutoModelForSequenceClassification.from_pretrained(
        default_model.location, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    peft_model = get_peft_model(base, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
    with pytest.raises(ValueError, match=r"are not the model's classes in its head's order \['joy', 'anger'"):
        track(peft_model, tmp_path / "permuted", labels=["sadness", "fear", "anger", "joy"])
    unnamed = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(default_model.location, num_labels=2),
        PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3),
    )
    with pytest.raises(ValueError, match="name 3 classes; the model's head has 2"):
        track(unnamed, tmp_path / "three", labels=["a", "b", "c"])
    assert not (tmp_path / "permuted").exists() and not (tmp_path / "three").exists()
    with track(peft_model, tmp_path / "same", labels=list(id2label.values())) as recorder:
        recorder.step(1, loss=1.0)
    assert load_run(tmp_path / "same").labels == list(id2label.values())
