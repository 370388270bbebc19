"""probe.readings.prefix: a prefix read per layer against real tokens' own keys and values, exactly, with the
off-manifold measures and the control; and `probe report` on a prefix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import probe
from probe.cli import main
from probe.formats.prefix import PrefixPrompt, load_prefix
from probe.readings.prefix import layer_kv, prefix_layers, vocabulary_reference

TOKENS = [5, 17, 42]


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_path):
    return probe.load_model(str(tiny_gpt2_path), device="cpu")


def _prefix_of(reference: dict[int, np.ndarray], tokens: list[int], heads: int) -> PrefixPrompt:
    """A prefix whose key and value at every layer are those real tokens' own (heads split back out)."""
    layers = []
    for layer in sorted(reference):
        rows = reference[layer][:, tokens]  # [2, n, H*hd]
        layers.append(rows.reshape(2, len(tokens), heads, -1).transpose(0, 2, 1, 3))
    return PrefixPrompt(kv=np.stack(layers).astype(np.float32), peft_type="PREFIX_TUNING", source="built")


@pytest.mark.parametrize("which", ["gpt2", "bert", "t5"])
def test_prefix_layers__a_prefix_made_of_real_tokens_keys_reads_as_those_tokens(
    tiny_gpt2_path, tiny_bert_path, tiny_t5_path, which
):
    path = {"gpt2": tiny_gpt2_path, "bert": tiny_bert_path, "t5": tiny_t5_path}[which]
    model = probe.load_model(str(path), device="cpu")
    ids = np.flatnonzero(probe.TokenFilter().allowed(model.vocabulary)).astype(np.int64)
    reference = vocabulary_reference(model, ids, [0, 1], use_cache=False)
    tokens = [int(t) for t in ids[[3, 50, 120]]]
    report = prefix_layers(_prefix_of(reference, tokens, heads=2), model, k=3, control_texts=["the cat sat"] * 4)
    assert len(report.layers) == 4  # 2 layers x key, value
    for reading in report.layers:
        assert [p.neighbours[0].token_id for p in reading.positions] == tokens
        np.testing.assert_allclose([p.top1_cosine for p in reading.positions], 1.0, atol=1e-5)
        assert all(p.on_manifold for p in reading.positions)


def test_prefix_layers__neighbours_are_the_exact_cosine_top_k_and_the_control_is_read_alike(tiny_gpt2):
    rng = np.random.default_rng(0)
    prefix = PrefixPrompt(
        kv=rng.normal(size=(2, 2, 2, 4, 16)).astype(np.float32), peft_type="PREFIX_TUNING", source="r"
    )
    report = prefix_layers(prefix, tiny_gpt2, k=4)
    ids = np.flatnonzero(probe.TokenFilter().allowed(tiny_gpt2.vocabulary))
    reference = vocabulary_reference(tiny_gpt2, ids.astype(np.int64), [1])[1]
    rows = reference[1, ids] / np.linalg.norm(reference[1, ids], axis=1, keepdims=True)
    queries = prefix.vectors(1, "value")
    cosines = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ rows.T
    reading = report.layer(1, "value")
    for p, row in zip(reading.positions, cosines, strict=True):
        order = np.argsort(-row)[:4]
        assert [n.token_id for n in p.neighbours] == ids[order].tolist()
        np.testing.assert_allclose([n.cosine for n in p.neighbours], row[order], atol=1e-5)
    assert reading.control.count == 200 and reading.control_found_itself > 0.2
    assert reading.control.mean_top1_cosine > reading.summary.mean_top1_cosine  # random keys sit far from real ones
    assert report.to_dataframe().shape[0] == 2 * 2 * 4 * 4
    assert json.loads(report.to_json())["layers"][0]["part"] == "key"


def test_reference__a_tokens_key_is_its_own_projection_at_its_position(tiny_gpt2):
    gpt2 = tiny_gpt2.model.transformer
    token = torch.tensor([[42]])
    with torch.no_grad():
        hidden = gpt2.wte(token) + gpt2.wpe(torch.tensor([[0]]))
        query_key_value = gpt2.h[0].attn.c_attn(gpt2.h[0].ln_1(hidden))
    key, value = query_key_value[0, 0, 32:64], query_key_value[0, 0, 64:]
    kv = layer_kv(tiny_gpt2, token, torch.ones_like(token), [0])
    np.testing.assert_allclose(kv[0, 0, 0, 0], key.numpy(), atol=1e-6)
    np.testing.assert_allclose(kv[0, 1, 0, 0], value.numpy(), atol=1e-6)


def test_reference__a_seq2seq_token_s_key_is_the_decoder_s_own_projection_after_its_start_token(tiny_t5_path):
    """T5: the prefix sits in the decoder's self-attention, so a token's reference key is the decoder's; at layer 0
    it is the token's own projection (T5's positions are relative: none is folded into the key)."""
    model = probe.load_model(str(tiny_t5_path), device="cpu")
    attention = model.model.decoder.block[0].layer[0]
    token = torch.tensor([[42, 1]])
    with torch.no_grad():
        hidden = attention.layer_norm(model.model.shared(torch.tensor([42])))
        key, value = attention.SelfAttention.k(hidden)[0], attention.SelfAttention.v(hidden)[0]
    kv = layer_kv(model, token, torch.ones_like(token), [0, 1])
    assert kv.shape == (2, 2, 1, 2, 32)  # aligned with the tokens given: the decoder's start token dropped
    np.testing.assert_allclose(kv[0, 0, 0, 0], key.numpy(), atol=1e-6)
    np.testing.assert_allclose(kv[0, 1, 0, 0], value.numpy(), atol=1e-6)
    assert not np.allclose(kv[1, 0, 0, 0], key.numpy(), atol=1e-3)  # layer 1 is read from layer 1


def test_text_occurrences__a_seq2seq_batch_right_padded_reads_each_text_as_alone(tiny_t5_path):
    from probe.readings.prefix import text_occurrences

    model = probe.load_model(str(tiny_t5_path), device="cpu")
    texts = ["the cat sat on the mat today", "a dog"]
    ids, kv = text_occurrences(model, texts, [0, 1])
    alone = [text_occurrences(model, [text], [0, 1]) for text in texts]
    np.testing.assert_array_equal(ids, np.concatenate([a[0] for a in alone]))
    np.testing.assert_allclose(kv, np.concatenate([a[1] for a in alone], axis=2), atol=1e-5)


def test_prefix_layers__a_t5_adapter_reads_per_decoder_layer(tiny_t5_path, tmp_path, perturb):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    model = probe.load_model(str(tiny_t5_path), device="cpu")
    peft_model = get_peft_model(
        AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path),
        PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3),
    )
    perturb(peft_model, seed=1)
    peft_model.save_pretrained(tmp_path / "t5")
    report = prefix_layers(load_prefix(tmp_path / "t5", model_config=model.model.config), model, k=3)
    assert [(r.layer, r.part) for r in report.layers] == [(0, "key"), (0, "value"), (1, "key"), (1, "value")]
    ids = np.flatnonzero(probe.TokenFilter().allowed(model.vocabulary)).astype(np.int64)
    reference = vocabulary_reference(model, ids, [1], use_cache=False)[1]
    keys = load_prefix(tmp_path / "t5", model_config=model.model.config).vectors(1, "key")
    unit = reference[0][ids] / np.linalg.norm(reference[0][ids], axis=1, keepdims=True)
    best = ids[np.argmax((keys / np.linalg.norm(keys, axis=1, keepdims=True)) @ unit.T, axis=1)]
    assert [p.neighbours[0].token_id for p in report.layer(1, "key").positions] == best.tolist()


def test_prefix_layers__another_models_prefix_or_a_bad_layer_is_one_line(tiny_gpt2):
    prefix = PrefixPrompt(kv=np.ones((2, 2, 2, 3, 16), np.float32), peft_type="PREFIX_TUNING", source="p")
    with pytest.raises(ValueError, match="3 layers x 2 heads x 16; model .* is 2 x 2 x 16"):
        prefix_layers(PrefixPrompt(kv=np.ones((3, 2, 2, 3, 16), np.float32), peft_type="P", source="p"), tiny_gpt2)
    with pytest.raises(ValueError, match="layer is 5; the prefix has 2 layers"):
        prefix_layers(prefix, tiny_gpt2, layers=[5])
    with pytest.raises(ValueError, match="k is 0"):
        prefix_layers(prefix, tiny_gpt2, k=0)
    with pytest.raises(TypeError, match="expected a PrefixPrompt"):
        prefix_layers(np.ones((3, 32)), tiny_gpt2)  # type: ignore[arg-type]


def _adapter(tiny_gpt2_path, folder):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)).save_pretrained(folder)
    return folder


def test_cli__report_on_a_prefix_prints_a_line_per_layer_and_position(tiny_gpt2_path, tmp_path, capsys):
    folder = str(_adapter(tiny_gpt2_path, tmp_path / "prefix"))
    capsys.readouterr()
    assert main(["report", folder, "--model", str(tiny_gpt2_path), "-k", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2 * 3 + 4  # a line per layer and position, then each layer's key and value summary
    assert main(["report", folder, "--model", str(tiny_gpt2_path), "--layer", "1", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["layer"] for r in report["layers"]} == {1} and len(report["layers"][0]["positions"]) == 3
    expected = load_prefix(folder).vectors(1, "key")[0]
    assert report["layers"][0]["positions"][0]["norm"] == pytest.approx(float(np.linalg.norm(expected)), rel=1e-5)


def test_cli__a_bad_layer_or_an_option_a_prefix_lacks_is_one_line(tiny_gpt2_path, tmp_path, capsys):
    folder = str(_adapter(tiny_gpt2_path, tmp_path / "prefix"))
    capsys.readouterr()
    for extra, message in [
        (["--layer", "7"], "layer is 7; the prefix has 2 layers"),
        (["--task-id", "1"], "is a prefix .*--task-id picks what it does not have"),
    ]:
        assert main(["report", folder, "--model", str(tiny_gpt2_path), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and __import__("re").search(message, err), err


def test_cli__a_loose_prefix_file_reads_per_layer_and_layer_on_a_plain_prompt_is_refused(
    tiny_gpt2_path, tmp_path, capsys
):
    import shutil

    folder = _adapter(tiny_gpt2_path, tmp_path / "prefix")
    loose = tmp_path / "prefix.safetensors"
    shutil.copy(folder / "adapter_model.safetensors", loose)
    capsys.readouterr()
    assert main(["report", str(loose), "--model", str(tiny_gpt2_path), "--layer", "0"]) == 0
    assert "Prefix per layer" in capsys.readouterr().out
    plain = tmp_path / "plain.npy"
    np.save(plain, np.ones((2, 32), np.float32))
    assert main(["report", str(plain), "--model", str(tiny_gpt2_path), "--layer", "0"]) == 2
    assert "--layer reads a prefix's layers" in capsys.readouterr().err


def _checkpoints(tiny_gpt2_path, folder):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    generator = torch.Generator().manual_seed(0)
    for step in (0, 5, 10):
        peft_model.save_pretrained(folder / f"checkpoint-{step}")
        with torch.no_grad():
            for param in peft_model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn(param.shape, generator=generator))
    return folder


def test_prefix_drift__each_step_reads_as_its_own_report_and_moves_from_the_first(tiny_gpt2, tiny_gpt2_path, tmp_path):
    from probe.formats.prefix import prefix_steps
    from probe.readings.prefix_drift import prefix_drift

    found = prefix_steps(_checkpoints(tiny_gpt2_path, tmp_path / "run"))
    assert list(found) == [0, 5, 10]
    prefixes = {s: load_prefix(p, model_config=tiny_gpt2.model.config) for s, p in found.items()}
    drift = prefix_drift(prefixes, tiny_gpt2)
    assert len(drift.rows) == 3 * 2 * 2
    for row in drift.rows:
        report = prefix_layers(prefixes[row.step], tiny_gpt2, k=1, layers=[row.layer]).layer(row.layer, row.part)
        assert row.top1_tokens == [p.neighbours[0].token for p in report.positions]
        assert row.mean_top1_cosine == pytest.approx(report.summary.mean_top1_cosine, abs=1e-5)
    first = [r for r in drift.rows if r.step == 0]
    assert all(r.changed_top1 == 0 and r.mean_cos_to_first == pytest.approx(1.0) for r in first)
    assert all(r.mean_cos_to_first < 0.99 for r in drift.rows if r.step == 10)


def test_cli__drift_on_prefix_checkpoints_prints_a_row_per_step_layer_and_part(tiny_gpt2_path, tmp_path, capsys):
    folder = str(_checkpoints(tiny_gpt2_path, tmp_path / "run"))
    capsys.readouterr()
    assert main(["drift", folder, "--model", str(tiny_gpt2_path), "--layer", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 * 2 and {r["layer"] for r in rows} == {1} and [r["step"] for r in rows][:3] == [0, 5, 10]
    assert main(["drift", folder, "--model", str(tiny_gpt2_path), "--step", "4"]) == 0
    capsys.readouterr()
    for extra, message in [
        (["--layer", "3"], "layer is 3; the prefix has 2 layers"),
        (["--step", "-1"], "has no prefix checkpoint at or before step -1"),
        (["--task-id", "0", "--summary"], "which have no tasks and one table (a row per step, layer and part): drop "),
    ]:
        assert main(["drift", folder, "--model", str(tiny_gpt2_path), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_cli__drift_layer_on_a_run_without_prefix_checkpoints_is_one_line(demo_runs, capsys):
    run = next(p for p in sorted(demo_runs.iterdir()) if p.is_dir())
    assert main(["drift", str(run), "--layer", "0"]) == 2
    assert "holds no prefix checkpoints" in capsys.readouterr().err


def test_prefix_layers__a_text_reference_is_each_tokens_mean_over_its_occurrences(tiny_gpt2):
    from probe.readings.prefix import text_occurrences, text_reference

    texts = ["the team won the match", "the bank raised rates", "a new phone chip"]
    ids, kv = text_occurrences(tiny_gpt2, texts, [0, 1])
    reference, counts = text_reference(tiny_gpt2, texts, [0, 1])
    token = int(np.bincount(ids).argmax())  # a token met more than once
    assert counts[token] > 1
    np.testing.assert_allclose(reference[1, 0, token], kv[1, 0, ids == token].mean(axis=0), atol=1e-6)
    prefix = _prefix_of({0: reference[0], 1: reference[1]}, [token], heads=2)
    report = prefix_layers(prefix, tiny_gpt2, k=2, reference_texts=texts)
    assert report.reference == "mean over 3 texts" and report.searchable_tokens == int((counts > 0).sum())
    assert all(r.positions[0].neighbours[0].token_id == token for r in report.layers)
