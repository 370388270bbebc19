"""PEFT's key-value prompts (``PREFIX_TUNING``, ``CARTRIDGE``): a key and a value per layer, read as PEFT hands them
to the model.

PEFT saves ``prompt_embeddings`` ``[n, layers x 2 x token_dim]`` (a projected prefix is saved as its projection's
output) and views it as ``[n, 2 x layers, kv_heads, head_dim]``, permuted to ``[2 x layers, kv_heads, n,
head_dim]``: slot ``2l`` is layer l's key and ``2l + 1`` its value (``token_dim = kv_heads x head_dim`` with
grouped-query attention). A seq2seq adapter (``num_transformer_submodules=2``) gives decoder layer i's
self-attention the slots of pair ``(2i) mod layers``, as PEFT's concatenate-and-split does (so with an even number
of layers, layers i and i + layers/2 share a pair); the pairs ``(2i + 1) mod layers`` it would give the
cross-attention do nothing, since PEFT empties that cache. The prefix fills the first n cache positions; the real
tokens' positions start at n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from probe.core.io import MAX_POSITIONS
from probe.formats.adapters import KV_KINDS, read_adapter_config, read_adapter_tensors
from probe.formats.tensors import PEFT_PROMPT_KEY, _pick_tensor, _read_safetensors, _read_torch

Part = Literal["key", "value"]
PARTS: tuple[Part, Part] = ("key", "value")


@dataclass(frozen=True, repr=False)
class PrefixPrompt:
    """A prefix: per layer, a key and a value for each of its n positions.

    Attributes:
        kv: float32 [layers, 2, kv_heads, n, head_dim], layer l's key at ``kv[l, 0]`` and value at ``kv[l, 1]``,
            in the order the model's attention layers receive them.
        peft_type: ``PREFIX_TUNING`` or ``CARTRIDGE``.
        source: where it was read.
        base_model: the model the adapter names, if any.
        metadata: the adapter config (paths recorded, never followed).
    """

    kv: np.ndarray
    peft_type: str
    source: str
    base_model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: np.ndarray | None = field(default=None, compare=False)
    """The flat prefix as the file holds it, float32 [n, layers x 2 x token_dim], in PEFT's own layout (for a seq2seq
    adapter not :meth:`flat`'s: see there)."""

    @property
    def num_layers(self) -> int:
        return int(self.kv.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.kv.shape[2])

    @property
    def length(self) -> int:
        """Number of prefix positions n."""
        return int(self.kv.shape[3])

    @property
    def head_dim(self) -> int:
        return int(self.kv.shape[4])

    def vectors(self, layer: int, part: Part) -> np.ndarray:
        """float32 [n, kv_heads x head_dim]: each position's key (or value) at ``layer``, its heads side by side
        (the layout of a real token's key in the model's cache, read the same way).

        Raises:
            ValueError: a layer the prefix does not have, or a part other than "key" / "value".
        """
        check_layer(layer, self.num_layers)
        if part not in PARTS:
            raise ValueError(f"part is {part!r}; expected 'key' or 'value'")
        heads = self.kv[layer, PARTS.index(part)]  # [H, n, hd]
        return np.ascontiguousarray(heads.transpose(1, 0, 2).reshape(self.length, -1))

    def flat(self) -> np.ndarray:
        """float32 [n, layers x 2 x kv_heads x head_dim]: the prefix as a flat tensor whose pair l is layer l's key and
        value (the inverse of :func:`unflatten`), what a readout sets to read what the prefix does. For a causal or
        encoder model it is PEFT's own tensor; a seq2seq adapter's tensor gives decoder layer i pair ``2i mod
        layers`` instead, which a readout of a seq2seq model reads from this per-layer layout
        (:func:`probe.tasks.base.attach_prompt`)."""
        return flatten(self.kv)

    def __repr__(self) -> str:
        return (
            f"PrefixPrompt({self.peft_type}, {self.length} positions x {self.num_layers} layers x "
            f"{self.num_heads} heads x {self.head_dim}, {self.source!r})"
        )


def check_layer(layer: Any, layers: int) -> int:
    """``layer`` as a layer index from 0 to ``layers - 1``.

    Raises:
        ValueError: not an integer in range (errors.md 141).
    """
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not 0 <= layer < layers:
        raise ValueError(f"layer is {layer!r}; the prefix has {layers} layers: pick one from 0 to {layers - 1}")
    return int(layer)


def kv_geometry(config: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of a transformers config, as PEFT reads them for a prefix.

    Raises:
        ValueError: the config names no layer count, head count or hidden size.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = _first(text, ("num_hidden_layers", "num_layers", "n_layer", "num_decoder_layers"))
    heads = _first(text, ("num_attention_heads", "n_head", "num_heads"))
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or _first(text, ("hidden_size", "n_embd", "d_model")) // heads
    return int(layers), int(kv_heads), int(head_dim)


def _first(config: Any, names: tuple[str, ...]) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"the model config has none of {names}; probe cannot tell the prefix's geometry")


def unflatten(flat: Any, *, num_layers: int, num_heads: int, submodules: int = 1, what: str = "prefix") -> np.ndarray:
    """PEFT's flat prefix ``[n, layers x 2 x token_dim]`` as ``[layers, 2, kv_heads, n, head_dim]`` (see the module
    docstring for the layout).

    Raises:
        ValueError: not 2-D, not finite, or a width that is not ``layers x 2 x heads x head_dim`` (errors.md 140).
    """
    array = np.asarray(flat.detach().float().cpu().numpy() if hasattr(flat, "detach") else flat, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[0] > MAX_POSITIONS:
        raise ValueError(f"{what} has shape {array.shape}; expected [positions, layers x 2 x token_dim]")
    n, width = array.shape
    if width % (2 * num_layers * num_heads):
        raise ValueError(
            f"{what} has width {width}, which is not layers x 2 x token_dim for {num_layers} layers and "
            f"{num_heads} key-value heads; is it the adapter of another model?"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds NaN or Inf; the prefix is broken")
    head_dim = width // (2 * num_layers * num_heads)
    slots = array.reshape(n, 2 * num_layers, num_heads, head_dim).transpose(1, 2, 0, 3)  # [2L, H, n, hd]
    pairs = [(2 * i) % num_layers if submodules == 2 else i for i in range(num_layers)]
    return np.ascontiguousarray(np.stack([slots[2 * p : 2 * p + 2] for p in pairs]))


def flatten(kv: np.ndarray) -> np.ndarray:
    """``[layers, 2, kv_heads, n, head_dim]`` as PEFT's flat prefix ``[n, layers x 2 x token_dim]`` (the inverse of
    :func:`unflatten` for one submodule)."""
    layers, _, heads, n, head_dim = kv.shape
    slots = kv.reshape(2 * layers, heads, n, head_dim)  # [2L, H, n, hd]
    return np.ascontiguousarray(slots.transpose(2, 0, 1, 3).reshape(n, -1))


def is_prefix_adapter(path: str | Path) -> bool:
    """Whether ``path`` is a PEFT adapter folder of a key-value kind (``PREFIX_TUNING``, ``CARTRIDGE``)."""
    from probe.formats.schema import read_json

    p = Path(path)
    config_path = p / "adapter_config.json"
    if not (p.is_dir() and config_path.is_file()):
        return False
    try:
        config = read_json(config_path, what="adapter config", max_bytes=2**20)
    except ValueError:
        return False
    return isinstance(config, dict) and config.get("peft_type") in KV_KINDS


def load_prefix(path: str | Path, *, model_config: Any = None, key: str | None = None) -> PrefixPrompt:
    """Read a prefix from a PEFT adapter folder, or from a loose weights file given the model's config.

    Args:
        path: a ``PREFIX_TUNING`` / ``CARTRIDGE`` adapter folder, or a ``.safetensors`` / ``.pt`` / ``.bin`` file
            holding ``prompt_embeddings`` ``[n, layers x 2 x token_dim]``.
        model_config: the transformers config of the model; needed for a loose file (it records no geometry),
            checked against the adapter's own otherwise.
        key: the tensor's name in a file holding several.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a key-value adapter, or a geometry that does not match (errors.md 140, 142).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"prefix path '{path}' does not exist")
    if p.is_dir():
        config = read_adapter_config(p, kv=True)
        tensors = read_adapter_tensors(p)
        layers, heads = config["num_layers"], config["num_attention_heads"]
        if model_config is not None and kv_geometry(model_config)[:2] != (layers, heads):
            want = kv_geometry(model_config)
            raise ValueError(
                f"adapter '{p}' is a prefix for {layers} layers x {heads} key-value heads; the model has "
                f"{want[0]} layers x {want[1]} key-value heads: read it with the model it was trained on"
            )
        submodules, peft_type, base = config.get("num_transformer_submodules", 1), config["peft_type"], None
        base = config.get("base_model_name_or_path")
    else:
        if model_config is None:
            raise ValueError(
                f"'{p}' is a loose weights file: a prefix's layers and heads are in the adapter config, so read it "
                "with its model (--model, or load_prefix(..., model_config=model.model.config))"
            )
        tensors = _read_safetensors(p) if p.suffix == ".safetensors" else _read_torch(p)
        if not isinstance(tensors, dict):
            tensors = {PEFT_PROMPT_KEY: tensors}
        layers, heads, _ = kv_geometry(model_config)
        submodules = 2 if getattr(model_config, "is_encoder_decoder", False) else 1  # PEFT's default for seq2seq
        config, peft_type, base = {}, "PREFIX_TUNING", None
    name, tensor = _pick_tensor(tensors, key or (PEFT_PROMPT_KEY if PEFT_PROMPT_KEY in tensors else None), p)
    kv = unflatten(tensor, num_layers=layers, num_heads=heads, submodules=submodules, what=f"'{p}'[{name}]")
    if config and kv.shape[3] != config["num_virtual_tokens"]:
        raise ValueError(
            f"adapter '{p}': the prefix has {kv.shape[3]} positions, but the config says "
            f"num_virtual_tokens={config['num_virtual_tokens']}"
        )
    if model_config is not None and kv.shape[4] != kv_geometry(model_config)[2]:
        raise ValueError(
            f"'{p}' has head_dim {kv.shape[4]}; the model's is {kv_geometry(model_config)[2]}: read it with the "
            "model it was trained on"
        )
    raw = np.ascontiguousarray(
        tensor.detach().float().cpu().numpy() if hasattr(tensor, "detach") else tensor, np.float32
    )
    return PrefixPrompt(kv=kv, peft_type=peft_type, source=str(p), base_model=base, metadata=config, raw=raw)


def prefix_steps(folder: str | Path) -> dict[int, Path]:
    """Step -> prefix adapter folder of a folder's numbered snapshots (``checkpoint-N/``, ``step_N/``, ... as in
    :mod:`probe.formats.layouts`), in step order; empty when it holds none."""
    from probe.formats.layouts import STEP_NAME

    p = Path(folder)
    if not p.is_dir():
        return {}
    found = {}
    for child in p.iterdir():
        m = STEP_NAME.match(child.name)
        if m and is_prefix_adapter(child):
            found[int(m.group(1))] = child
    return dict(sorted(found.items()))
