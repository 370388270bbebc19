"""Tensor files a prompt is saved in: safetensors, ``.pt``/``.pth``/``.bin`` and ``.npy``/``.npz``, read within
the read budget and never unpickled (``torch.load(weights_only=True)``, ``np.load(allow_pickle=False)``). A loose
multitask weights file is read as what it is: one prompt per task (:func:`multitask_prompts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from probe.core.io import MAX_POSITIONS, check_budget
from probe.core.softprompt import Role, SoftPrompt, check_vectors

PEFT_PROMPT_KEY = "prompt_embeddings"
MULTITASK_KEYS = ("prefix_task_cols", "prefix_task_rows")
"""The per-task factors a multitask prompt saves beside ``prompt_embeddings``: task t's prompt is
``prompt_embeddings * (cols[t] @ rows[t])`` (elementwise)."""


def _plain(tensor: Any, what: str) -> Any:
    """A tensor that holds its numbers: a meta tensor (a shape without data) or a quantised one (probe reads float
    vectors) is refused in one line.

    Raises:
        ValueError: naming the tensor and what it is.
    """
    if isinstance(tensor, torch.Tensor) and tensor.is_meta:
        raise ValueError(f"{what} is a meta tensor: a shape without numbers; save the prompt's values, not its shape")
    if isinstance(tensor, torch.Tensor) and tensor.is_quantized:
        raise ValueError(
            f"{what} is a quantised tensor ({tensor.dtype}); save the prompt as floats (tensor.dequantize())"
        )
    return tensor


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
    tensors = _read_safetensors(path)
    if key is None and any(k in tensors for k in MULTITASK_KEYS):
        return multitask_prompts(tensors, path)  # a loose multitask weights file: per task, never the shared rows alone
    name, tensor = _pick_tensor(tensors, key, path)
    return [SoftPrompt(vectors=check_vectors(tensor, what=f"{path}[{name}]"), source=str(path), metadata=_loose(name))]


def _load_torch_file(path: Path, key: str | None) -> list[SoftPrompt]:
    obj, name = _read_torch(path), None
    if isinstance(obj, torch.Tensor):
        tensor = _plain(obj, f"'{path}'")
    elif isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise ValueError(f"'{path}' holds a dict without tensors (keys {list(obj)[:10]}); expected a prompt")
        if key is None and any(k in tensors for k in MULTITASK_KEYS):
            return multitask_prompts(tensors, path)
        name, tensor = _pick_tensor(tensors, key, path)
        tensor = _plain(tensor, f"'{path}'[{name}]")
    else:
        raise TypeError(f"'{path}' holds a {type(obj).__name__}; expected a tensor or a dict of tensors")
    return [SoftPrompt(vectors=check_vectors(tensor, what=str(path)), source=str(path), metadata=_loose(name))]


def _loose(name: str | None) -> dict[str, Any]:
    """A loose file's metadata: whether its tensor is a PEFT adapter's weights, whose rows' split between a seq2seq
    model's encoder and decoder only the adapter's config records (:func:`probe.formats.prompts.decoder_rows`)."""
    return {"loose_peft_weights": True} if name == PEFT_PROMPT_KEY else {}


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


def multitask_prompts(
    tensors: dict[str, Any], path: Path, *, base_model: str | None = None, metadata: dict[str, Any] | None = None
) -> list[SoftPrompt]:
    """One prompt per task of a multitask prompt: ``prompt_embeddings * (cols[t] @ rows[t])`` (PEFT's own formula),
    the task's id in ``metadata["task_id"]``; never the shared ``prompt_embeddings`` alone, which no task uses. A
    seq2seq adapter's task gives two: its encoder's rows (role "encoder", first) and its decoder's (role "decoder"),
    which PEFT puts before the decoder's input.

    Raises:
        ValueError: the tensors are missing or their shapes do not fit together.
    """
    missing = [k for k in (PEFT_PROMPT_KEY, *MULTITASK_KEYS) if k not in tensors]
    if missing:
        raise ValueError(f"'{path}' is a multitask prompt without {missing}; it cannot be read as one")
    shared = torch.as_tensor(tensors[PEFT_PROMPT_KEY]).float()
    cols, rows = (torch.as_tensor(tensors[k]).float() for k in MULTITASK_KEYS)
    if cols.ndim != 3 or rows.ndim != 3 or shared.ndim != 2 or cols.shape[1] != shared.shape[0]:
        shapes = {k: tuple(torch.as_tensor(tensors[k]).shape) for k in (PEFT_PROMPT_KEY, *MULTITASK_KEYS)}
        raise ValueError(
            f"'{path}': a multitask prompt's tensors {shapes} do not fit: expected [n, d], [T, n, r], [T, r, d]"
        )
    if cols.shape[0] != rows.shape[0] or cols.shape[2] != rows.shape[1] or rows.shape[2] != shared.shape[1]:
        shapes = {k: tuple(torch.as_tensor(tensors[k]).shape) for k in (PEFT_PROMPT_KEY, *MULTITASK_KEYS)}
        raise ValueError(
            f"'{path}': a multitask prompt's tensors {shapes} do not fit: expected [n, d], [T, n, r], [T, r, d]"
        )
    n = (metadata or {}).get("num_virtual_tokens", shared.shape[0])
    parts = (metadata or {}).get("num_transformer_submodules") or (2 if shared.shape[0] == 2 * n else 1)
    if shared.shape[0] != n * parts or parts > 2:  # errors.md 193: PEFT refuses such an adapter too
        raise ValueError(
            f"'{path}': a multitask prompt's {PEFT_PROMPT_KEY} has {shared.shape[0]} rows, but its config says "
            f"num_virtual_tokens={n} x num_transformer_submodules={parts}; expected 1 (encoder or decoder-only "
            "model) or 2 (seq2seq) x num_virtual_tokens rows: give the adapter's own config"
        )
    halves: list[tuple[Role | None, slice]] = [(None, slice(0, n))]
    if parts == 2:  # seq2seq: the first n rows go before the encoder's input, the others the decoder's
        halves = [("encoder", slice(0, n)), ("decoder", slice(n, 2 * n))]
    prompts = []
    for task in range(cols.shape[0]):
        vectors = shared * (cols[task] @ rows[task])
        meta = {**(metadata or {}), "peft_type": "MULTITASK_PROMPT_TUNING", "task_id": task, "num_tasks": cols.shape[0]}
        for role, rows_of in halves:
            what = f"{path}[task {task}{f', {role}' if role else ''}]"
            prompts.append(
                SoftPrompt(
                    check_vectors(vectors[rows_of], what=what),
                    source=str(path),
                    base_model=base_model,
                    metadata=meta,
                    role=role,
                )
            )
    return prompts
