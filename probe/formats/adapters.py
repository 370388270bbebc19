"""PEFT prompt-learning adapters: ``adapter_config.json`` beside ``adapter_model.safetensors`` (or ``.bin``), read
as what each method saved. ``PROMPT_TUNING``, ``P_TUNING`` (its prompt encoder's output), ``MULTITASK_PROMPT_TUNING``
(one prompt per task) and ``CPT`` (its tokens' embeddings plus a bounded delta; the tokens it started as are kept)
are input-embedding rows; ``PREFIX_TUNING`` and ``CARTRIDGE`` (keys and values per layer) are read by
:mod:`probe.formats.prefix` and refused here; non-prompt adapters are refused in one line. Paths in a config are
recorded, never followed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.core.io import MAX_POSITIONS
from probe.core.softprompt import Role, SoftPrompt, check_vectors
from probe.formats.tensors import (
    MULTITASK_KEYS,
    PEFT_PROMPT_KEY,
    _pick_tensor,
    _read_safetensors,
    _read_torch,
    multitask_prompts,
)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_BIN = "adapter_model.bin"
PEFT_KINDS = {"CAUSAL_LM": "causal", "SEQ_2_SEQ_LM": "seq2seq", "FEATURE_EXTRACTION": "encoder"}
"""PEFT's task types as probe's model kinds (a ``SEQ_CLS`` head sits on a model of any kind)."""
PEFT_FORMS = {
    "CAUSAL_LM": "generate",
    "SEQ_2_SEQ_LM": "generate",
    "FEATURE_EXTRACTION": "cosine",
    "SEQ_CLS": "classifier-head",
}
"""PEFT's task types as the task forms probe reads a prompt under (the task of a reading is the task of the
prompt); other task types need the caller's own scoring function."""
PEFT_INITS = {"RANDOM": "random", "TEXT": "text", "SAMPLE_VOCAB": "sampled-vocab"}
"""PEFT's prompt-tuning initialisations as names in a run manifest."""
INPUT_SPACE_KINDS = ("PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT")
"""PEFT's prompt-learning methods whose saved ``prompt_embeddings`` live in the input-embedding space (P-tuning saves
its prompt encoder's output; a multitask prompt is one per task; CPT keeps its tokens' embeddings plus a bounded
delta), so every reading of a soft prompt applies to them."""
KV_KINDS = ("PREFIX_TUNING", "CARTRIDGE")
"""PEFT's methods whose prompt is a key and a value per layer (``[n, layers x 2 x token_dim]``), not input rows."""


def _int_field(config: dict[str, Any], name: str, default: int | None, path: Path) -> int:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"adapter config '{path}': {name} is {value!r}; expected a positive integer")
    if not 0 < value <= MAX_POSITIONS:
        raise ValueError(f"adapter config '{path}': {name} is {value}; expected 1 to {MAX_POSITIONS}")
    return value


def read_adapter_config(folder: Path, *, kv: bool = False) -> dict[str, Any]:
    """Read and check a PEFT prompt-learning ``adapter_config.json``. Paths in it are recorded, never followed.

    Args:
        folder: the adapter folder.
        kv: read a key-value prompt (``PREFIX_TUNING``, ``CARTRIDGE``: :mod:`probe.formats.prefix`) instead of an
            input-space one.

    Raises:
        ValueError: not JSON, not a prompt of the kind asked for, or fields of the wrong type or size.
    """
    from probe.formats.schema import read_json

    path = folder / ADAPTER_CONFIG
    config = read_json(path, what="adapter config", max_bytes=2**20)
    if not isinstance(config, dict):
        raise ValueError(f"'{path}' holds a {type(config).__name__}; expected a JSON object")
    peft_type = config.get("peft_type")
    if peft_type in KV_KINDS and not kv:
        raise ValueError(
            f"'{path}' is a {peft_type} adapter: its prompt is a key and a value per layer, not input-embedding "
            f"rows, so the input-space readings do not apply (read it per layer: probe report, "
            f"probe.prefix_layers; what it does: probe explain --data); they read {', '.join(INPUT_SPACE_KINDS)} "
            "adapters"
        )
    if kv and peft_type not in KV_KINDS:
        raise ValueError(f"'{path}' is a {peft_type!r} adapter, not a prefix; expected one of {', '.join(KV_KINDS)}")
    if peft_type not in INPUT_SPACE_KINDS + KV_KINDS:
        raise ValueError(
            f"'{path}' is a {peft_type!r} adapter, not a soft prompt; probe reads the prompt-learning adapters "
            f"{', '.join(INPUT_SPACE_KINDS)}, whose vectors live in the vocabulary's embedding space, and "
            f"{', '.join(KV_KINDS)} per layer"
        )
    if kv:
        for name in ("num_layers", "num_attention_heads", "token_dim"):
            _int_field(config, name, None, path)
    _int_field(config, "num_virtual_tokens", None, path)
    _int_field(config, "num_transformer_submodules", 1, path)
    base = config.get("base_model_name_or_path")
    if base is not None and not isinstance(base, str):
        raise ValueError(f"'{path}': base_model_name_or_path is {base!r}; expected a string or null")
    return config


def is_adapter(path: Path) -> bool:
    """Whether ``path`` is a folder holding a PEFT adapter config (the one adapter detector)."""
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def read_adapter_tensors(path: Path) -> dict[str, Any]:
    """Every tensor of a PEFT adapter folder (the prompt, and a head saved with it), never unpickled.

    Raises:
        FileNotFoundError: the folder has neither weights file.
        ValueError: the weights cannot be read.
    """
    if (path / ADAPTER_SAFETENSORS).is_file():
        return _read_safetensors(path / ADAPTER_SAFETENSORS)
    if (path / ADAPTER_BIN).is_file():
        obj = _read_torch(path / ADAPTER_BIN)
        if not isinstance(obj, dict):
            raise ValueError(f"'{path / ADAPTER_BIN}' holds a {type(obj).__name__}; expected a state dict")
        return obj
    raise FileNotFoundError(
        f"adapter folder '{path}' has {ADAPTER_CONFIG} but neither {ADAPTER_SAFETENSORS} nor {ADAPTER_BIN}"
    )


def _load_adapter(path: Path, key: str | None) -> list[SoftPrompt]:
    from probe.core.models import canonical_name

    config = read_adapter_config(path)
    tensors = read_adapter_tensors(path)
    if config["peft_type"] == "MULTITASK_PROMPT_TUNING" or all(k in tensors for k in MULTITASK_KEYS):
        base = config.get("base_model_name_or_path")
        return multitask_prompts(tensors, path, base_model=canonical_name(base) if base else None, metadata=config)
    name, tensor = _pick_tensor(tensors, key or (PEFT_PROMPT_KEY if PEFT_PROMPT_KEY in tensors else None), path)
    vectors = check_vectors(tensor, what=f"{path}[{name}]")
    if config["peft_type"] == "CPT":
        config = {**config, "init_token_ids": _cpt_tokens(config, vectors.shape[0], path)}
    p = config["num_virtual_tokens"]
    parts = config.get("num_transformer_submodules", 1)
    if vectors.shape[0] != p * parts:
        raise ValueError(
            f"adapter '{path}': tensor has {vectors.shape[0]} rows, but the config says "
            f"num_virtual_tokens={p} x num_transformer_submodules={parts} = {p * parts}"
        )
    if "token_dim" in config and config["token_dim"] != vectors.shape[1]:
        raise ValueError(
            f"adapter '{path}': tensor has dim {vectors.shape[1]}, but the config says token_dim="
            f"{config['token_dim']!r}"
        )
    base = config.get("base_model_name_or_path")
    common: dict[str, Any] = dict(source=str(path), base_model=canonical_name(base) if base else None, metadata=config)
    if parts == 1:
        return [SoftPrompt(vectors=vectors, **common)]
    roles: list[Role] = ["encoder", "decoder"]
    return [
        SoftPrompt(vectors=vectors[i * p : (i + 1) * p], role=roles[i] if i < 2 else None, **common)
        for i in range(parts)
    ]


def _cpt_tokens(config: dict[str, Any], rows: int, path: Path) -> list[int]:
    """The token ids a CPT prompt started as, one per position (``cpt_token_ids``).

    Raises:
        ValueError: they are not a list of non-negative integers, one per row of the prompt.
    """
    ids = config.get("cpt_token_ids")
    if not isinstance(ids, list) or len(ids) != rows or not all(_token_id(i) for i in ids):
        raise ValueError(
            f"adapter config '{path}': cpt_token_ids is {str(ids)[:60]}; expected one token id per prompt row ({rows})"
        )
    return list(ids)


def _token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def recorded_task_type(prompt: SoftPrompt) -> str | None:
    """The PEFT task type a loaded prompt records (None: none)."""
    return _adapter_config(prompt).get("task_type")


def is_seq2seq_multitask(prompt: SoftPrompt) -> bool:
    """Whether ``prompt`` is half of a seq2seq multitask prompt, whose other n rows PEFT puts before the decoder's
    input (:func:`probe.formats.prompts.decoder_rows`)."""
    config = _adapter_config(prompt)
    return (
        config.get("peft_type") == "MULTITASK_PROMPT_TUNING" and int(config.get("num_transformer_submodules") or 1) > 1
    )


def _adapter_config(prompt: SoftPrompt) -> dict[str, Any]:
    return prompt.metadata.get("adapter") or (prompt.metadata if "peft_type" in prompt.metadata else {})
