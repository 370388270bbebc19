"""probe.dashboard.prefixes: folders of prefix checkpoints found under the runs folder and read per layer with
probe's own readings, every layer's reference built in the one pass the first reading pays for."""

from __future__ import annotations

import numpy as np
import pytest

import probe
from probe.dashboard.prefixes import PrefixRun, drift_layer, prefix_runs, read_layer


def _prefix(tiny_gpt2_path, folder, steps=(0, 5)):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    for step in steps:
        peft_model.save_pretrained(folder / f"checkpoint-{step}" if len(steps) > 1 else folder)
    return folder


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_path):
    return probe.load_model(str(tiny_gpt2_path), device="cpu")


def test_prefix_runs__checkpoint_folders_and_a_lone_adapter_are_found_and_nothing_else(tiny_gpt2_path, tmp_path):
    _prefix(tiny_gpt2_path, tmp_path / "b-steps")
    _prefix(tiny_gpt2_path, tmp_path / "a-lone", steps=(0,))
    (tmp_path / "c-other").mkdir()
    np.save(tmp_path / "c-other" / "step-0.npy", np.ones((2, 32), np.float32))
    found = prefix_runs(tmp_path)
    assert [r.name for r in found] == ["a-lone", "b-steps"]
    lone, steps = found
    assert (lone.steps, steps.steps) == ([0], [0, 5])
    assert (steps.length, steps.num_layers, steps.kind) == (3, 2, "PREFIX_TUNING")
    assert steps.model == str(tiny_gpt2_path)
    assert [r.name for r in prefix_runs(tmp_path / "b-steps")] == ["b-steps"]  # the runs folder may be the run itself


def test_read_layer__builds_every_layers_reference_at_once_and_reads_as_prefix_layers(
    tiny_gpt2, tiny_gpt2_path, tmp_path, monkeypatch
):
    from probe.readings.prefix import build_references

    monkeypatch.setenv("PROBE_CACHE_DIR", str(tmp_path / "cache"))
    run = PrefixRun(_prefix(tiny_gpt2_path, tmp_path / "run"))
    report = read_layer(run, 5, tiny_gpt2, k=3, layer=1)
    assert build_references(tiny_gpt2, [0, 1]) == []  # layer 0 was built with layer 1: picking it is a cache read
    expected = probe.prefix_layers(run.prefix(5, tiny_gpt2), tiny_gpt2, k=3, layers=[1])
    assert report.to_dataframe().equals(expected.to_dataframe())
    drift = drift_layer(run, 5, tiny_gpt2, layer=0)
    assert sorted({(r.step, r.layer) for r in drift.rows}) == [(0, 0), (5, 0)]


def test_read_layer__a_layer_the_prefix_lacks_or_a_step_it_has_not_is_one_line_before_any_reference(
    tiny_gpt2, tiny_gpt2_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROBE_CACHE_DIR", str(tmp_path / "cache"))
    run = PrefixRun(_prefix(tiny_gpt2_path, tmp_path / "run"))
    with pytest.raises(ValueError, match="layer is 5; the prefix has 2 layers: pick one from 0 to 1"):
        read_layer(run, 5, tiny_gpt2, k=3, layer=5)
    with pytest.raises(ValueError, match="has no checkpoint at step 7; it has \\[0, 5\\]"):
        read_layer(run, 7, tiny_gpt2, k=3, layer=0)
    assert not (tmp_path / "cache").exists()  # refused before any reference was built


def test_prefix_map__fitted_on_the_layer_s_own_keys_and_every_checkpoint_placed_and_read_there(
    tiny_gpt2_path, tmp_path
):
    from probe.dashboard.prefixes import layer_paths
    from probe.readings.prefix_map import layer_space, prefix_map
    from probe.readings.projection import MapConfig

    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    run = PrefixRun(_prefix(tiny_gpt2_path, tmp_path / "run"))
    vmap, index = prefix_map(model, 1, "key", MapConfig(method="pca", n_vocab=300), prefixes=[run.prefix(5, model)])
    rows, _ = layer_space(model, 1, "key")
    # the map is of the layer's keys: a token's own key lands on its point, its input embedding does not
    np.testing.assert_allclose(vmap.transform(rows[vmap.token_ids]), vmap.coords, atol=1e-4)
    assert not np.allclose(vmap.transform(model.embeddings_numpy()[vmap.token_ids]), vmap.coords, atol=1e-2)
    values, _ = prefix_map(model, 1, "value", MapConfig(method="pca", n_vocab=300))
    assert vmap.space.startswith("prefix keys at layer 1 (") and values.space.startswith("prefix values at layer 1 (")
    assert not np.allclose(values.coords, vmap.coords)  # one cached map per layer and part
    table = layer_paths(run, model, vmap, index, layer=1, part="key", k=3)
    assert len(table) == 2 * run.length and table["step"].tolist() == [0] * run.length + [5] * run.length
    keys = run.prefix(5, model).vectors(1, "key")
    np.testing.assert_allclose(table[table["step"] == 5][["x", "y"]].to_numpy(), vmap.transform(keys), atol=1e-5)
    report = probe.prefix_layers(run.prefix(5, model), model, k=3, layers=[1]).layer(1, "key")
    display = model.vocabulary.display
    top1 = [n.split(", ")[0] for n in table[table["step"] == 5]["neighbours"]]
    assert top1 == [display[p.neighbours[0].token_id] for p in report.positions]  # the reading the tables give


def test_prefix_map__a_layer_it_lacks_is_one_line_and_a_seq2seq_model_maps_its_decoder_s_keys(
    tiny_gpt2_path, tiny_t5_path
):
    from probe.readings.prefix_map import layer_space, prefix_map
    from probe.readings.projection import MapConfig

    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    with pytest.raises(ValueError, match="layer is 7; the prefix has 2 layers: pick one from 0 to 1"):
        prefix_map(model, 7)
    import torch

    t5 = probe.load_model(str(tiny_t5_path), device="cpu")
    vmap, index = prefix_map(t5, 0, "key", MapConfig(method="pca", n_vocab=100))
    rows, _ = layer_space(t5, 0, "key")
    attention = t5.model.decoder.block[0].layer[0]  # the decoder's self-attention, where PEFT puts the prefix
    token = int(index.token_ids[7])
    with torch.no_grad():
        key = attention.SelfAttention.k(attention.layer_norm(t5.model.shared(torch.tensor([token]))))[0]
    np.testing.assert_allclose(rows[token], key.numpy(), atol=1e-6)  # the map's space is the decoder's keys
    np.testing.assert_allclose(vmap.transform(rows[vmap.token_ids]), vmap.coords, atol=1e-4)
