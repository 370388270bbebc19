"""Prompt files: PEFT prompt-tuning adapters, safetensors, .pt/.pth/.bin and .npy, each a :class:`Loader`.

Nothing is unpickled: ``.pt``/``.pth``/``.bin`` go through ``torch.load(weights_only=True)`` and ``.npy``
through ``np.load(allow_pickle=False)``. :mod:`probe.formats.prompts` chooses among these and the other formats.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probe.core.io import MAX_POSITIONS, check_budget
from probe.core.softprompt import Role, SoftPrompt, check_vectors

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_BIN = "adapter_model.bin"
PEFT_PROMPT_KEY = "prompt_embeddings"
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


# --------------------------------------------------------------------------- loaders


@dataclass(frozen=True)
class Loader:
    """One source format: ``detect`` says whether a path holds it, ``load`` reads every prompt in it."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, str | None], list[SoftPrompt]]


# ---- tensor files


def _pick_tensor(tensors: dict[str, Any], key: str | None, path: Path) -> tuple[str, Any]:
    if key is not None:
        if key not in tensors:
            raise ValueError(f"'{path}' has no tensor named '{key}'; it holds {sorted(tensors)}")
        return key, tensors[key]
    two_d = {k: v for k, v in tensors.items() if getattr(v, "ndim", None) == 2}
    if len(two_d) == 1:
        return next(iter(two_d.items()))
    if PEFT_PROMPT_KEY in tensors:
        return PEFT_PROMPT_KEY, tensors[PEFT_PROMPT_KEY]
    if not tensors:
        raise ValueError(f"'{path}' holds no tensors; expected one 2-D prompt tensor")
    if len(tensors) == 1:
        return next(iter(tensors.items()))
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in tensors.items()}
    raise ValueError(f"'{path}' holds several tensors {shapes}; name the prompt with key= (--key on the CLI)")


def _file_size(path: Path, kind: str) -> int:
    """The file's size, refused when empty or over the read budget (for formats whose data must all be in the
    file, the size on disk bounds what they load)."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"'{path}' is empty (0 bytes); expected {kind}")
    check_budget(size, f"'{path}'")
    return size


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _file_size(path, "a safetensors file")  # safetensors checks that every tensor lies within the file
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"'{path}' is not a readable safetensors file (truncated or corrupt?): {e}") from e


def _read_torch(path: Path) -> Any:
    import pickle

    _file_size(path, "a torch tensor file")
    _refuse_compressed_members(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"'{path}' holds Python objects beyond tensors; probe refuses to unpickle them (they can run code). "
            "Save the prompt as a plain tensor or with safetensors"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ValueError(f"'{path}' is not a readable torch tensor file (truncated or corrupt?): {e}") from e


def _load_safetensors(path: Path, key: str | None) -> list[SoftPrompt]:
    name, tensor = _pick_tensor(_read_safetensors(path), key, path)
    return [SoftPrompt(vectors=check_vectors(tensor, what=f"{path}[{name}]"), source=str(path))]


def _load_torch_file(path: Path, key: str | None) -> list[SoftPrompt]:
    obj = _read_torch(path)
    if isinstance(obj, torch.Tensor):
        tensor = obj
    elif isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise ValueError(f"'{path}' holds a dict without tensors (keys {list(obj)[:10]}); expected a prompt")
        _, tensor = _pick_tensor(tensors, key, path)
    else:
        raise TypeError(f"'{path}' holds a {type(obj).__name__}; expected a tensor or a dict of tensors")
    return [SoftPrompt(vectors=check_vectors(tensor, what=str(path)), source=str(path))]


def _refuse_compressed_members(path: Path) -> None:
    """``torch.save`` writes a zip of stored members; a compressed member could inflate far beyond the file, and
    ``torch.load`` would inflate it whole, so such a file is refused before it is read."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # the legacy format: its data is in the file, bounded by the file size
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [m.filename for m in archive.infolist() if m.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"'{path}' is not a readable torch tensor file (truncated or corrupt?): {e}") from e
    if packed:
        raise ValueError(
            f"'{path}' holds compressed members ({packed[0]}, ...); torch.save never compresses, so probe does not "
            "inflate them. Save the prompt again with torch.save or safetensors"
        )


def _npy_header(stream: Any, what: str, data_bytes: int | None) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, refused when the array would be over the budget, hold objects, or need
    more bytes than follow the header."""
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ValueError(f"{what} is not a readable .npy array: {e}") from e
    if dtype.hasobject:
        raise ValueError(
            f"{what} holds Python objects; probe refuses to unpickle .npy object arrays. Save a plain float array"
        )
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if len(shape) >= 1 and shape[0] > MAX_POSITIONS:
        raise ValueError(f"{what}: an array of shape {shape} has over {MAX_POSITIONS} positions; it is not a prompt")
    check_budget(count * dtype.itemsize, what)
    if data_bytes is not None and count * dtype.itemsize > data_bytes - stream.tell():
        raise ValueError(f"{what} is truncated: its header declares shape {shape}, the file holds less")
    return shape, dtype


def _check_npz(path: Path) -> None:
    """Every member of an .npz, read from its own header and inflated only as far as the budget."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as stream:
                    _npy_header(stream, f"'{path}' member {member.filename}", None)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        raise ValueError(f"'{path}' is not a readable .npz archive: {e}") from e


def _load_npy(path: Path, key: str | None) -> list[SoftPrompt]:
    import zipfile

    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"'{path}' is empty (0 bytes); expected a .npy array")
    if zipfile.is_zipfile(path):  # an .npz (renamed .npy, say): each member checked before anything is inflated
        _check_npz(path)
    else:
        with open(path, "rb") as stream:
            _npy_header(stream, f"'{path}'", size)
    try:
        array = np.load(str(path), allow_pickle=False)
    except ValueError as e:
        raise ValueError(
            f"'{path}' holds Python objects (or is corrupt); probe refuses to unpickle .npy object arrays. "
            "Save a plain float array"
        ) from e
    except (OSError, EOFError) as e:
        raise ValueError(f"'{path}' is not a readable .npy file: {e}") from e
    if isinstance(array, np.lib.npyio.NpzFile):  # an .npz renamed .npy
        with array:
            _, array = _pick_tensor({k: array[k] for k in array.files}, key, path)
    return [SoftPrompt(vectors=check_vectors(array, what=str(path)), source=str(path))]


# ---- PEFT adapters


def _int_field(config: dict[str, Any], name: str, default: int | None, path: Path) -> int:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"adapter config '{path}': {name} is {value!r}; expected a positive integer")
    if not 0 < value <= MAX_POSITIONS:
        raise ValueError(f"adapter config '{path}': {name} is {value}; expected 1 to {MAX_POSITIONS}")
    return value


def read_adapter_config(folder: Path) -> dict[str, Any]:
    """Read and check a PEFT prompt-tuning ``adapter_config.json``. Paths in it are recorded, never followed.

    Raises:
        ValueError: not JSON, not prompt tuning, or fields of the wrong type or size.
    """
    from probe.formats.schema import read_json

    path = folder / ADAPTER_CONFIG
    config = read_json(path, what="adapter config", max_bytes=2**20)
    if not isinstance(config, dict):
        raise ValueError(f"'{path}' holds a {type(config).__name__}; expected a JSON object")
    peft_type = config.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise ValueError(
            f"'{path}' is a {peft_type!r} adapter; probe reads PROMPT_TUNING adapters, whose vectors live in "
            "the vocabulary's embedding space"
        )
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
    name, tensor = _pick_tensor(tensors, key or (PEFT_PROMPT_KEY if PEFT_PROMPT_KEY in tensors else None), path)
    vectors = check_vectors(tensor, what=f"{path}[{name}]")
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


def _suffix(*suffixes: str) -> Callable[[Path], bool]:
    return lambda p: p.is_file() and p.suffix.lower() in suffixes


LOADERS: tuple[Loader, ...] = (
    Loader("peft", f"a PEFT prompt-tuning folder with {ADAPTER_CONFIG}", is_adapter, _load_adapter),
    Loader("safetensors", "a .safetensors file", _suffix(".safetensors"), _load_safetensors),
    Loader(
        "torch",
        "a .pt/.pth tensor or dict of tensors, read with weights_only",
        _suffix(".pt", ".pth", ".bin"),
        _load_torch_file,
    ),
    Loader("npy", "a .npy float array", _suffix(".npy", ".npz"), _load_npy),
)
"""The file formats, in the order they are tried."""


def looks_complete(path: Path) -> bool:
    """Whether a tensor file or an adapter folder is whole, by a cheap look at its structure: a file another
    process is still writing (``torch.save``, ``np.save``) is not listed as a snapshot until it is."""
    import zipfile

    if path.is_dir():
        weights = [path / ADAPTER_SAFETENSORS, path / ADAPTER_BIN]
        return (path / ADAPTER_CONFIG).is_file() and any(w.is_file() and looks_complete(w) for w in weights)
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            with open(path, "rb") as f:
                head = int.from_bytes(f.read(8), "little")
                ends = [t["data_offsets"][1] for k, t in json.loads(f.read(head)).items() if k != "__metadata__"]
            return 8 + head + max(ends, default=0) <= size
        if zipfile.is_zipfile(path):
            return True  # a zip's directory is written last: a torch.save or an .npz still being written has none
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                return False  # a zip without its directory yet
        if suffix == ".npy":
            with open(path, "rb") as f:
                _npy_header(f, str(path), size)
            return True
        return suffix in (".pt", ".pth", ".bin")  # torch's legacy format: nothing cheap to check
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return False


def read_prompt_file(path: Path) -> list[SoftPrompt]:
    """The prompts in one adapter folder or tensor file (a snapshot of another tool's run, say).

    Raises:
        FileNotFoundError: ``path`` is none of these formats.
    """
    for loader in LOADERS:
        if loader.detect(path):
            return loader.load(path, None)
    raise FileNotFoundError(f"'{path}' is neither a PEFT adapter folder nor a tensor file probe reads")
