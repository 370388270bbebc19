"""What a prefix does (``PREFIX_TUNING``): the readout runs its flat keys and values as PEFT's own prefix, so its
per-example scores equal the PEFT model's forward; importance and faithfulness read each position as its nearest
real tokens per layer; ``probe explain`` on a prefix adapter reports them, with no hard prompt and no lens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probe.cli import main
from probe.core.data import from_rows
from probe.core.index import TokenFilter
from probe.core.models import load_model
from probe.formats.explain_record import ExplainRecord
from probe.formats.prefix import PrefixPrompt, load_prefix
from probe.readings.explain import Readout, explain, importance, score_stand_ins
from probe.readings.explain.standins import stand_in_rows
from probe.readings.prefix import vocabulary_reference

TOPICS = 32
"""Test rows of the bundled topics set the SEQ_CLS prefix is read on."""


def _seq_cls_prefix(model, folder, perturb, tokens: int = 3):
    """A PEFT PREFIX_TUNING SEQ_CLS adapter of the bundled encoder (4 classes), its prefix and head moved off their
    init, saved to ``folder``; returns the PEFT model."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = AutoModelForSequenceClassification.from_pretrained(model.location, num_labels=4)
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=tokens))
    perturb(peft_model, seed=1)
    peft_model.save_pretrained(folder)
    return peft_model.eval()


def _own_logits(peft_model, model, texts: list[str]) -> torch.Tensor:
    """The PEFT model's own logits, one text at a time (no padding anywhere)."""
    with torch.no_grad():
        return torch.cat([peft_model(**model.tokenizer([t], return_tensors="pt")).logits for t in texts])


@pytest.fixture(scope="module")
def tiny_bert(tiny_bert_path):
    return load_model(tiny_bert_path, device="cpu")


@pytest.fixture(scope="module")
def seq_cls(tiny_bert, tmp_path_factory, perturb):
    """A SEQ_CLS prefix of a tiny BERT (the bundled encoder's vocabulary; its per-layer reference is cheap)."""
    folder = tmp_path_factory.mktemp("prefix-seq-cls")
    peft_model = _seq_cls_prefix(tiny_bert, folder, perturb)
    prefix = load_prefix(folder, model_config=tiny_bert.model.config)
    readout = Readout.for_prompt(prefix, tiny_bert, "topics", test_size=TOPICS)
    return folder, peft_model, prefix, readout


@pytest.mark.parametrize("which", ["bundled", "tiny"])
def test_prefix_readout__a_seq_cls_prefix_scores_as_peft_s_own_forward(
    which, seq_cls, tiny_bert, default_model, perturb, tmp_path
):
    if which == "tiny":
        _, peft_model, prefix, readout = seq_cls
        model = tiny_bert
    else:  # the bundled encoder itself
        model = default_model
        peft_model = _seq_cls_prefix(model, tmp_path, perturb)
        prefix = load_prefix(tmp_path, model_config=model.model.config)
        readout = Readout.for_prompt(prefix, model, "topics", test_size=TOPICS)
    test = readout.splits.test
    correct, loss = readout.outcome(prefix.flat(), test)
    logits = _own_logits(peft_model, model, test.texts)
    targets = torch.tensor(test.targets)
    np.testing.assert_array_equal(correct, (logits.argmax(-1) == targets).numpy().astype(float))
    np.testing.assert_allclose(loss, F.cross_entropy(logits, targets, reduction="none").numpy(), atol=1e-5)
    with torch.no_grad():  # zero-shot: the trained head on the input alone (PEFT's disable_adapter fails here)
        encoded = [model.tokenizer([t], return_tensors="pt") for t in test.texts]
        frozen = torch.cat([peft_model.base_model(**batch).logits for batch in encoded])
    assert readout.zero_shot() == pytest.approx(float((frozen.argmax(-1) == targets).float().mean()))


def test_prefix_readout__a_causal_prefix_scores_labels_as_peft_s_own_forward(tiny_gpt2_path, tmp_path, perturb):
    from peft import PrefixTuningConfig, get_peft_model

    model = load_model(tiny_gpt2_path, device="cpu")
    peft_model = get_peft_model(model.model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    perturb(peft_model, seed=2)
    peft_model.save_pretrained(tmp_path)
    flat = load_prefix(tmp_path, model_config=model.model.config).flat()
    rows = [{"text": t, "label": lab} for t, lab in [("the team won", "sports"), ("rates rose", "money")] * 3]
    readout = Readout.from_data(model, from_rows(rows, source="<rows>"), form="generate")
    data = readout.splits.test
    scores = readout.scores(flat, data)
    peft_model.eval()
    for i, text in enumerate(data.texts):
        ids = model.tokenizer(text)["input_ids"]
        for j, label in enumerate(readout.labels):
            wanted = model.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = peft_model(input_ids=torch.tensor([ids + wanted])).logits[0, -len(ids + wanted) :]
            logp = logits[len(ids) - 1 : -1].log_softmax(-1)[torch.arange(len(wanted)), wanted]
            assert scores[i, j] == pytest.approx(float(logp.sum()), abs=1e-4)


def test_prefix_stand_ins__a_prefix_of_real_tokens_keys_and_values_is_its_own_nearest_reading(tiny_bert):
    ids = np.flatnonzero(TokenFilter().allowed(tiny_bert.vocabulary)).astype(np.int64)
    tokens = [int(t) for t in ids[[10, 500, 4000]]]
    reference = vocabulary_reference(tiny_bert, ids, [0, 1])
    layers = [reference[x][:, tokens].reshape(2, 3, 2, 16).transpose(0, 2, 1, 3) for x in (0, 1)]
    prefix = PrefixPrompt(kv=np.stack(layers).astype(np.float32), peft_type="PREFIX_TUNING", source="built")
    readout = Readout.from_data(tiny_bert, "topics", form="cosine", test_size=8)  # the cosine form: no head
    rows = stand_in_rows(prefix.flat(), readout)
    np.testing.assert_array_equal(rows.nearest, prefix.flat())
    assert rows.tokens == [tiny_bert.vocabulary.display[t] for t in tokens]
    table = importance(prefix, readout, bootstrap=50)
    assert all(p.nearest_drop == 0 and p.nearest_loss_rise == 0 for p in table.positions)
    assert not np.allclose(rows.mean, prefix.flat()[0])  # the control is another prefix


def test_prefix_explain__importance_and_faithfulness_without_a_hard_prompt_or_lens(seq_cls, tiny_bert):
    _, peft_model, prefix, readout = seq_cls
    record = explain(prefix, readout, bootstrap=100)
    assert record.hard_prompt is None and record.lens is None
    logits = _own_logits(peft_model, tiny_bert, readout.splits.test.texts)
    own = float((logits.argmax(-1) == torch.tensor(readout.splits.test.targets)).float().mean())
    assert record.soft_accuracy == pytest.approx(own) and record.importance.examples == TOPICS
    assert len(record.importance.positions) == prefix.length
    nearest = stand_in_rows(prefix.flat(), readout).nearest
    assert record.discretised_accuracy == pytest.approx(float(readout.outcome(nearest, readout.splits.test)[0].mean()))
    again = ExplainRecord.from_dict(json.loads(record.to_json()))
    assert again.hard_prompt is None and again.lens is None and again.to_json() == record.to_json()
    assert "Not read: the prompt is a prefix" in record.to_markdown()
    faith = score_stand_ins(prefix, readout, bootstrap=100)
    assert [s.name for s in faith.stand_ins] == ["discretised"]


def test_prefix_explain_cli__reports_the_model_s_own_accuracy_and_refuses_what_a_prefix_lacks(
    seq_cls, tiny_bert, capsys
):
    folder, peft_model, _, readout = seq_cls
    args = ["explain", str(folder), "--data", "topics", "--test-size", str(TOPICS), "--format", "json"]
    assert main([*args, "--no-progress", "--bootstrap", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    logits = _own_logits(peft_model, tiny_bert, readout.splits.test.texts)
    own = float((logits.argmax(-1) == torch.tensor(readout.splits.test.targets)).float().mean())
    assert data["soft_accuracy"] == pytest.approx(own) and data["hard_prompt"] is None and data["lens"] is None
    refused = [(["--hard-method", "search"], "--hard-method search"), (["--hard-steps", "5"], "--hard-steps")]
    for extra, said in [*refused, (["--lens-tokens", "50"], "--lens-tokens")]:
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0] and "a prefix has none" in err[0], err
    for extra, said in ((["--task-id", "0"], "which has no tasks: drop --task-id"), (["--step", "3"], "is one prefix")):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
    loose = [
        "explain",
        str(folder / "adapter_model.safetensors"),
        "--data",
        "topics",
        "--model",
        str(tiny_bert.location),
    ]
    assert main(loose) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has a prefix's width" in err[0] and "give the prefix's adapter folder" in err[0], err
    assert main(["harden", str(folder), "--data", "topics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PREFIX_TUNING adapter" in err[0] and "probe explain --data" in err[0], err


def test_prefix_explain_cli__a_folder_of_checkpoints_reads_the_last_or_the_step_asked(seq_cls, tmp_path, capsys):
    import shutil

    for step in (3, 7):
        shutil.copytree(seq_cls[0], tmp_path / "out" / f"checkpoint-{step}")
    args = ["explain", str(tmp_path / "out"), "--data", "topics", "--test-size", "8", "--format", "json"]
    for extra, step in (([], 7), (["--step", "3"], 3)):
        assert main([*args, *extra, "--no-progress", "--bootstrap", "20"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["step"] == step and data["hard_prompt"] is None, data["step"]
    assert main([*args, "--step", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prefix checkpoint at step 5; it has steps [3, 7]" in err[0], err


def test_prefix_explain__another_model_s_prefix_is_refused_in_one_line_and_a_seq2seq_prefix_is_read(
    seq_cls, tiny_t5_path, tmp_path, perturb, capsys
):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    folder = seq_cls[0]
    args = ["explain", str(folder), "--data", "topics", "--model", "default"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes a prefix of width" in err[0] and "read it with the model" in err[0], err
    peft_model = get_peft_model(
        AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path),
        PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=2),
    )
    perturb(peft_model)
    peft_model.save_pretrained(tmp_path / "t5")
    data = tmp_path / "rows.csv"
    data.write_text("text,label\n" + "".join(f"the team won {i},sports\nrates rose {i},money\n" for i in range(6)))
    capsys.readouterr()  # the test's own loading lines
    args = ["explain", str(tmp_path / "t5"), "--data", str(data), "--model", str(tiny_t5_path), "--task", "generate"]
    assert main([*args, "--bootstrap", "20", "--no-progress", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["importance"]["positions"]) == 2 and record["faithfulness"]["stand_ins"]
    assert record["hard_prompt"] is None


def test_prefix_readout__a_seq2seq_prefix_scores_labels_as_peft_s_own_forward(tiny_t5_path, tmp_path, perturb):
    """A T5 prefix (PEFT gives decoder layer i pair 2i mod layers: here both layers pair 0) is read per layer, and its
    label scores equal PEFT's forward."""
    from peft import PrefixTuningConfig, get_peft_model

    model = load_model(tiny_t5_path, device="cpu")
    config = PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3)
    peft_model = get_peft_model(model.model, config)
    perturb(peft_model, seed=3)
    peft_model.save_pretrained(tmp_path)
    prefix = load_prefix(tmp_path, model_config=model.model.config)
    readout = _t5_readout(model)
    data = readout.splits.test
    scores = readout.scores(prefix.flat(), data)
    peft_model.eval()
    for i, text in enumerate(data.texts):
        ids = torch.tensor([model.tokenizer(text)["input_ids"]])
        for j, label in enumerate(readout.labels):
            wanted = model.tokenizer(label)["input_ids"]
            with torch.no_grad():
                logits = peft_model(input_ids=ids, labels=torch.tensor([wanted])).logits[0]
            logp = logits.log_softmax(-1)[torch.arange(len(wanted)), wanted]
            assert scores[i, j] == pytest.approx(float(logp.sum()), abs=1e-4)
    frozen = readout.task(1).score_all(data.texts, prompt=False)
    assert np.abs(scores - frozen).max() > 1e-3  # the prefix changes what the model scores: not read as nothing


def _t5_readout(model) -> Readout:
    rows = [{"text": t, "label": lab} for t, lab in [("the team won", "sports"), ("rates rose", "money")] * 3]
    return Readout.from_data(model, from_rows(rows, source="<rows>"), form="generate")


def test_prefix_readout__a_seq2seq_prefix_s_layers_are_each_their_own(tiny_t5_path):
    """Per layer, as the decoder's cache holds it: a prefix whose two layers differ (which PEFT's own layout cannot
    hold) scores as a cache built by hand from its keys and values, layer by layer."""
    from transformers import DynamicCache, EncoderDecoderCache

    model = load_model(tiny_t5_path, device="cpu")
    kv = np.random.default_rng(0).normal(0, 1, (2, 2, 2, 3, 16)).astype(np.float32)  # [L, 2, H, n, hd]
    prefix = PrefixPrompt(kv=kv, peft_type="PREFIX_TUNING", source="built")
    readout = _t5_readout(model)
    text, label = readout.splits.test.texts[0], readout.labels[0]
    score = readout.scores(prefix.flat(), readout.splits.test)[0, 0]
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    for layer in range(2):
        keys, values = (torch.from_numpy(kv[layer, part])[None] for part in (0, 1))
        cache.self_attention_cache.update(keys, values, layer)
    ids, wanted = torch.tensor([model.tokenizer(text)["input_ids"]]), model.tokenizer(label)["input_ids"]
    with torch.no_grad():
        logits = model.model(input_ids=ids, labels=torch.tensor([wanted]), past_key_values=cache).logits[0]
    assert score == pytest.approx(float(logits.log_softmax(-1)[torch.arange(len(wanted)), wanted].sum()), abs=1e-4)
    swapped = PrefixPrompt(kv=kv[[0, 0]], peft_type="PREFIX_TUNING", source="built")  # layer 1 given layer 0's
    assert abs(readout.scores(swapped.flat(), readout.splits.test)[0, 0] - score) > 1e-3
    half = load_model(tiny_t5_path, device="cpu", dtype="bfloat16")  # the cache is cast to the model's dtype
    assert _t5_readout(half).scores(prefix.flat(), readout.splits.test)[0, 0] == pytest.approx(score, abs=0.2)
