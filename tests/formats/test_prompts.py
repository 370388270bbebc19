"""probe.formats.prompts: every source format, PEFT adapters made by PEFT itself, validation and refusals."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from probe.formats.prompts import SoftPrompt, load_prompt, load_prompts


def _peft_adapter(model, task_type, tmp_path, p=4):
    from peft import PromptTuningConfig, get_peft_model

    peft_model = get_peft_model(model, PromptTuningConfig(task_type=task_type, num_virtual_tokens=p))
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_()
    peft_model.save_pretrained(tmp_path)
    return peft_model.prompt_encoder["default"].embedding.weight.detach().clone()


def test_load_prompt__peft_feature_extraction_adapter_of_default(default_model, tmp_path):
    from transformers import AutoModel

    from probe.core.models import bundled_model_path

    base = AutoModel.from_pretrained(bundled_model_path())
    weight = _peft_adapter(base, "FEATURE_EXTRACTION", tmp_path, p=6)
    prompt = load_prompt(tmp_path, model=default_model)
    assert prompt.length == 6 and prompt.dim == 384 and prompt.role is None
    np.testing.assert_array_equal(prompt.vectors, weight.numpy())
    # PEFT wrote an absolute path; probe resolves it to the bundled default by name.
    assert prompt.base_model == "sentence-transformers/all-MiniLM-L6-v2"


def test_load_prompt__peft_causal_adapter(tiny_gpt2_path, tmp_path):
    from transformers import AutoModelForCausalLM

    weight = _peft_adapter(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), "CAUSAL_LM", tmp_path, p=5)
    prompt = load_prompt(tmp_path)
    np.testing.assert_array_equal(prompt.vectors, weight.numpy())


def test_load_prompts__peft_seq2seq_adapter_has_encoder_and_decoder(tiny_t5_path, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    weight = _peft_adapter(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path), "SEQ_2_SEQ_LM", tmp_path, p=3)
    assert weight.shape == (6, 32)
    encoder, decoder = load_prompts(tmp_path)
    assert (encoder.role, decoder.role) == ("encoder", "decoder")
    np.testing.assert_array_equal(encoder.vectors, weight[:3].numpy())
    np.testing.assert_array_equal(decoder.vectors, weight[3:].numpy())
    with pytest.raises(ValueError, match="seq2seq PROMPT_TUNING adapter: PEFT feeds the model its encoder's rows only"):
        load_prompt(tmp_path, role="decoder")
    from peft import PeftModel

    peft = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_path), tmp_path).eval()
    ids, labels = torch.tensor([[5, 17, 42, 1]]), torch.tensor([[8, 9, 1]])
    with torch.no_grad():
        before = peft(input_ids=ids, labels=labels).logits
        peft.prompt_encoder["default"].embedding.weight[3:] += 5.0
        assert torch.equal(before, peft(input_ids=ids, labels=labels).logits)  # why: PEFT never feeds those rows
        peft.prompt_encoder["default"].embedding.weight[:3] += 5.0
        assert not torch.allclose(before, peft(input_ids=ids, labels=labels).logits)  # the encoder's rows it does


def test_load_prompt__peft_bin_adapter(tmp_path):
    vectors = torch.randn(4, 8)
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4, "token_dim": 8})
    )
    torch.save({"prompt_embeddings": vectors}, tmp_path / "adapter_model.bin")
    np.testing.assert_array_equal(load_prompt(tmp_path).vectors, vectors.numpy())


def test_load_prompt__safetensors_single_and_keyed(tmp_path):
    a, b = torch.randn(3, 8), torch.randn(5, 8)
    save_file({"only": a}, tmp_path / "one.safetensors")
    save_file({"a": a, "b": b}, tmp_path / "two.safetensors")
    np.testing.assert_array_equal(load_prompt(tmp_path / "one.safetensors").vectors, a.numpy())
    np.testing.assert_array_equal(load_prompt(tmp_path / "two.safetensors", key="b").vectors, b.numpy())
    with pytest.raises(ValueError, match="several tensors.*key="):
        load_prompt(tmp_path / "two.safetensors")
    with pytest.raises(ValueError, match="no tensor named 'c'"):
        load_prompt(tmp_path / "two.safetensors", key="c")


def test_load_prompt__pt_tensor_and_dict(tmp_path):
    t = torch.randn(4, 8)
    torch.save(t, tmp_path / "t.pt")
    torch.save({"prompt": t, "step": torch.tensor(3)}, tmp_path / "d.pth")
    np.testing.assert_array_equal(load_prompt(tmp_path / "t.pt").vectors, t.numpy())
    np.testing.assert_array_equal(load_prompt(tmp_path / "d.pth").vectors, t.numpy())


def test_load_prompt__npy_like_the_papers_release(tmp_path):
    array = np.random.default_rng(0).normal(size=(100, 768)).astype(np.float32)
    np.save(tmp_path / "prompt.npy", array)
    prompt = load_prompt(tmp_path / "prompt.npy")
    assert prompt.vectors.shape == (100, 768)
    np.testing.assert_array_equal(prompt.vectors, array)


def test_load_prompt__wrong_dim_names_both(default_model, tmp_path):
    np.save(tmp_path / "p.npy", np.ones((4, 768), np.float32))
    with pytest.raises(ValueError, match=r"dim 768.*has dim 384"):
        load_prompt(tmp_path / "p.npy", model=default_model)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones(8, np.float32), "expected a 2-D prompt"),
        (np.ones((2, 3, 4), np.float32), "expected a 2-D prompt"),
        (np.ones((0, 8), np.float32), "at least one position"),
        (np.array([[1.0, np.nan], [0.0, 1.0]], np.float32), "NaN or Inf"),
        (np.array([[1.0, np.inf]], np.float32), "NaN or Inf"),
    ],
)
def test_load_prompt__bad_arrays(tmp_path, array, message):
    np.save(tmp_path / "p.npy", array)
    with pytest.raises(ValueError, match=message):
        load_prompt(tmp_path / "p.npy")


def test_load_prompt__missing_and_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_prompt(tmp_path / "nope.npy")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="looked for: npy.*safetensors.*peft"):
        load_prompt(tmp_path / "notes.txt")


def test_load_prompt__empty_and_truncated_files(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_prompt(tmp_path / "empty.safetensors")
    save_file({"p": torch.randn(4, 8)}, tmp_path / "full.safetensors")
    blob = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_prompt(tmp_path / "cut.safetensors")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_prompt(tmp_path / "empty.pt")


class _Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_load_prompt__refuses_pickled_code_in_torch_files(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    with open(path, "wb") as f:
        pickle.dump({"prompt": _Exploit(str(marker))}, f)
    # torch's zip format as well as a raw pickle
    torch.save({"prompt": _Exploit(str(marker))}, tmp_path / f"evil_zip{suffix}")
    for p in (path, tmp_path / f"evil_zip{suffix}"):
        with pytest.raises(ValueError, match="refuses to unpickle|not a readable torch"):
            load_prompt(p)
    assert not marker.exists()


def test_load_prompt__refuses_pickled_code_in_adapter_bin(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2}))
    torch.save({"prompt_embeddings": _Exploit(str(marker))}, tmp_path / "adapter_model.bin")
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_prompt(tmp_path)
    assert not marker.exists()


def test_load_prompt__refuses_object_npy(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([_Exploit(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_prompt(tmp_path / "evil.npy")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"peft_type": "LORA"}, "'LORA' adapter"),
        ({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 10**9}, "expected 1 to"),
        ({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": "4"}, "expected a positive integer"),
        (
            {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4, "base_model_name_or_path": ["../.."]},
            "expected a string",
        ),
        ({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 3}, r"4 rows.*num_virtual_tokens=3"),
    ],
)
def test_load_prompt__hostile_adapter_configs(tmp_path, config, message):
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    save_file({"prompt_embeddings": torch.randn(4, 8)}, tmp_path / "adapter_model.safetensors")
    with pytest.raises(ValueError, match=message):
        load_prompt(tmp_path)


def test_load_prompt__adapter_base_path_is_recorded_not_followed(tmp_path):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "PROMPT_TUNING",
                "num_virtual_tokens": 4,
                "base_model_name_or_path": "../../etc/passwd",
            }
        )
    )
    save_file({"prompt_embeddings": torch.randn(4, 8)}, tmp_path / "adapter_model.safetensors")
    prompt = load_prompt(tmp_path)
    assert prompt.base_model == "../../etc/passwd"  # kept as text for the user to see, never opened


def test_load_prompt__adapter_without_weights(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}))
    with pytest.raises(FileNotFoundError, match="neither adapter_model.safetensors nor adapter_model.bin"):
        load_prompt(tmp_path)


def test_load_prompt__adapter_config_not_json(tmp_path):
    (tmp_path / "adapter_config.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_prompt(tmp_path)


def test_soft_prompt__rejects_unknown_role():
    with pytest.raises(ValueError, match="role 'middle' is not known"):
        SoftPrompt(vectors=np.ones((2, 3), np.float32), source="x", role="middle")


def test_soft_prompt__rejects_non_numeric():
    with pytest.raises(TypeError, match="expected a 2-D tensor or array"):
        SoftPrompt(vectors=[[1.0]], source="x")


@pytest.mark.parametrize("kind", ["meta", "quantised"])
def test_load_prompt__a_tensor_without_plain_numbers_is_refused_in_one_line(tmp_path, kind):
    if kind == "meta":
        tensor = torch.empty(4, 8, device="meta")
    else:
        tensor = torch.quantize_per_tensor(torch.randn(4, 8), scale=0.1, zero_point=0, dtype=torch.qint8)
    torch.save({"prompt": tensor}, tmp_path / "p.pt")
    torch.save(tensor, tmp_path / "bare.pt")
    for path in (tmp_path / "p.pt", tmp_path / "bare.pt"):
        with pytest.raises(ValueError, match="meta tensor" if kind == "meta" else "quantised tensor") as caught:
            load_prompt(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)
