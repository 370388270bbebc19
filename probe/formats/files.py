"""Every file format a prompt is read from, as a :class:`Loader` (:data:`LOADERS`): PEFT prompt-learning adapters
(:mod:`probe.formats.adapters`), safetensors, .pt/.pth/.bin and .npy (:mod:`probe.formats.tensors`). Nothing is
unpickled. :mod:`probe.formats.prompts` chooses among these and the other formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probe.core.softprompt import SoftPrompt
from probe.formats.adapters import (
    ADAPTER_BIN,
    ADAPTER_CONFIG,
    ADAPTER_SAFETENSORS,
    PEFT_FORMS,
    PEFT_INITS,
    PEFT_KINDS,
    _load_adapter,
    is_adapter,
    read_adapter_config,
    read_adapter_tensors,
    recorded_task_type,
)
from probe.formats.tensors import PEFT_PROMPT_KEY, _load_npy, _load_safetensors, _load_torch_file, _npy_header

__all__ = [
    "ADAPTER_BIN",
    "ADAPTER_CONFIG",
    "ADAPTER_SAFETENSORS",
    "LOADERS",
    "PEFT_FORMS",
    "PEFT_INITS",
    "PEFT_KINDS",
    "PEFT_PROMPT_KEY",
    "Loader",
    "is_adapter",
    "looks_complete",
    "read_adapter_config",
    "read_adapter_tensors",
    "read_prompt_file",
    "recorded_task_type",
]


@dataclass(frozen=True)
class Loader:
    """One source format: ``detect`` says whether a path holds it, ``load`` reads every prompt in it."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, str | None], list[SoftPrompt]]


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
