"""probe.formats.prefix: a PEFT prefix (PREFIX_TUNING, CARTRIDGE) read as the keys and values per layer that PEFT
hands the model, checked against PEFT's own cache and its own forward."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from probe.formats.prefix import PrefixPrompt, is_prefix_adapter, load_prefix, unflatten


def _self_cache(cache):
    return getattr(cache, "self_attention_cache", cache)


def _saved_prefix(base, folder, perturb, *, kind="prefix", task_type="CAUSAL_LM", n=3, projection=False):
    from peft import CartridgeConfig, PrefixTuningConfig, get_peft_model

    if kind == "prefix":
        config = PrefixTuningConfig(task_type=task_type, num_virtual_tokens=n, prefix_projection=projection)
    else:
        config = CartridgeConfig(task_type=task_type, num_virtual_tokens=n)
    peft_model = get_peft_model(base, config)
    perturb(peft_model)
    peft_model.save_pretrained(folder)
    return peft_model.eval()


def _assert_as_peft_passes(prefix: PrefixPrompt, peft_model) -> None:
    with torch.no_grad():
        cache = _self_cache(peft_model.get_prompt(batch_size=1))
    assert len(cache.layers) == prefix.num_layers
    for layer, cached in enumerate(cache.layers):
        np.testing.assert_allclose(prefix.kv[layer, 0], cached.keys[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(prefix.kv[layer, 1], cached.values[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", ["prefix", "projected", "cartridge"])
def test_prefix__keys_and_values_per_layer_are_what_peft_passes_the_causal_model(
    perturb, tiny_gpt2_path, tmp_path, kind
):
    from transformers import AutoModelForCausalLM, DynamicCache

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = _saved_prefix(
        base,
        tmp_path / kind,
        perturb,
        kind="cartridge" if kind == "cartridge" else "prefix",
        projection=kind == "projected",
    )
    assert is_prefix_adapter(tmp_path / kind)
    prefix = load_prefix(tmp_path / kind, model_config=base.config)
    assert (prefix.num_layers, prefix.num_heads, prefix.length, prefix.head_dim) == (2, 2, 3, 16)
    assert prefix.peft_type == ("CARTRIDGE" if kind == "cartridge" else "PREFIX_TUNING")
    _assert_as_peft_passes(prefix, peft_model)
    assert not np.allclose(prefix.kv[0], prefix.kv[1])

    # and the model, given these keys and values as its cache, computes what PEFT's own forward computes
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        cache = DynamicCache()
        for layer in range(prefix.num_layers):
            keys, values = (torch.from_numpy(prefix.kv[layer, i])[None] for i in range(2))
            cache.update(keys, values, layer)
        fresh = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path).eval()
        got = fresh(input_ids=ids, attention_mask=torch.ones(1, 3 + 5, dtype=torch.long), past_key_values=cache)
    np.testing.assert_allclose(got.logits.numpy(), expected.numpy(), atol=1e-5)


def test_prefix__a_seq2seq_prefix_gives_decoder_layer_i_the_pair_peft_gives_it(perturb, tiny_t5_path, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path)
    peft_model = _saved_prefix(base, tmp_path / "t5", perturb, task_type="SEQ_2_SEQ_LM")
    prefix = load_prefix(tmp_path / "t5", model_config=base.config)
    _assert_as_peft_passes(prefix, peft_model)
    np.testing.assert_array_equal(prefix.kv[1], prefix.kv[0])  # pair (2 x 1) mod 2 = 0: PEFT's layout, kept
    loose = load_prefix(tmp_path / "t5" / "adapter_model.safetensors", model_config=base.config)
    np.testing.assert_array_equal(loose.kv, prefix.kv)  # a loose file of a seq2seq model: the same layout


def test_prefix__peft_gives_a_seq2seq_prefix_s_odd_pairs_to_no_layer(perturb, tiny_t5_path, tmp_path):
    """Why probe reads a seq2seq prefix in the decoder's self-attention only: PEFT would fill the cross-attention's
    cache from pairs (2i + 1) mod layers, then empties it (the encoder's output, prompted or not, fills it again), so
    those slots change nothing. Should a PEFT release use them, this fails and they must be read."""
    from transformers import AutoModelForSeq2SeqLM

    peft_model = _saved_prefix(
        AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path), tmp_path, perturb, task_type="SEQ_2_SEQ_LM"
    )
    weight = peft_model.prompt_encoder["default"].embedding.weight
    ids, labels = torch.tensor([[5, 17, 42, 1]]), torch.tensor([[8, 9, 1]])
    with torch.no_grad():
        before = peft_model(input_ids=ids, labels=labels).logits
        slots = weight.view(3, 4, -1)  # [n, 2 x layers, token_dim]: pair 1 is slots 2 and 3
        slots[:, 2:] += 5.0
        after_odd = peft_model(input_ids=ids, labels=labels).logits
        slots[:, :2] += 5.0
        after_even = peft_model(input_ids=ids, labels=labels).logits
    assert torch.equal(before, after_odd)
    assert (after_even - after_odd).abs().max() > 1e-2  # pair 0, which both decoder layers read, does


def test_prefix__the_bundled_encoders_prefix_is_what_peft_passes_it(perturb, tmp_path):
    from transformers import AutoModel

    from probe.core.models import bundled_model_path

    base = AutoModel.from_pretrained(bundled_model_path())
    peft_model = _saved_prefix(base, tmp_path / "enc", perturb, task_type="FEATURE_EXTRACTION", n=4)
    prefix = load_prefix(tmp_path / "enc", model_config=base.config)
    assert (prefix.num_layers, prefix.num_heads, prefix.length, prefix.head_dim) == (6, 12, 4, 32)
    _assert_as_peft_passes(prefix, peft_model)


def test_prefix__a_loose_weights_file_reads_with_its_models_geometry(perturb, tiny_gpt2_path, tmp_path):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    peft_model = _saved_prefix(base, tmp_path / "a", perturb)
    loose = tmp_path / "weights.safetensors"
    shutil.copy(tmp_path / "a" / "adapter_model.safetensors", loose)
    prefix = load_prefix(loose, model_config=base.config)
    _assert_as_peft_passes(prefix, peft_model)
    with pytest.raises(ValueError, match="loose weights file.*--model"):
        load_prefix(loose)


def test_prefix__a_prefix_of_another_geometry_or_layer_is_refused_in_one_line(perturb, tiny_gpt2_path, tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config

    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    _saved_prefix(base, tmp_path / "a", perturb)
    other = GPT2Config(n_embd=32, n_layer=3, n_head=2)
    with pytest.raises(ValueError, match="2 layers x 2 key-value heads; the model has 3 layers"):
        load_prefix(tmp_path / "a", model_config=other)
    with pytest.raises(ValueError, match="not layers x 2 x token_dim"):
        unflatten(np.zeros((3, 100), np.float32), num_layers=2, num_heads=2)
    prefix = load_prefix(tmp_path / "a")
    with pytest.raises(ValueError, match="the prefix has 2 layers: pick one from 0 to 1"):
        prefix.vectors(2, "key")
    with pytest.raises(ValueError, match="LORA.*not a prefix"):
        from peft import LoraConfig, get_peft_model

        lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), LoraConfig(r=2))
        lora.save_pretrained(tmp_path / "lora")
        load_prefix(tmp_path / "lora")
