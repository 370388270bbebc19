"""Loading a soft prompt from any format probe reads, chosen by what the path holds, not by a flag.

The formats are listed here, in the formats layer (files, runs, hard prompts); a plugin adds its own with
:func:`register_loader`, and is tried first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.softprompt import Role, SoftPrompt, check_vectors
from probe.formats import discovery, files, hard_prompt
from probe.formats.files import Loader

logger = logging.getLogger(__name__)

__all__ = [
    "Loader",
    "Role",
    "SoftPrompt",
    "check_vectors",
    "decoder_rows",
    "load_prompt",
    "load_prompts",
    "loaders",
    "register_loader",
]

BUILT_IN: tuple[Loader, ...] = (hard_prompt.LOADER, discovery.LOADER, *files.LOADERS)
"""probe's own formats, in the order they are tried."""
_PLUGINS: list[Loader] = []


def register_loader(loader: Loader) -> None:
    """Add a source format of your own; later registrations are tried first, before the built-in ones."""
    _PLUGINS.insert(0, loader)


def loaders() -> list[Loader]:
    """Registered source formats, in the order they are tried."""
    return [*_PLUGINS, *BUILT_IN]


def load_prompts(path: str | os.PathLike[str], *, key: str | None = None) -> list[SoftPrompt]:
    """Every prompt a path holds: one, or two (encoder then decoder) for a seq2seq PEFT adapter.

    Raises:
        FileNotFoundError: the path does not exist, or holds none of the known formats.
        TypeError / ValueError: not a path (errors.md 116).
    """
    from probe.core.io import expect_path

    expect_path(path, "path", "a prompt file or folder's path")
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"prompt path '{path}' does not exist")
    for loader in loaders():
        if loader.detect(p):
            logger.debug("loading %s as %s", p, loader.name)
            return loader.load(p, key)
    looked = "; ".join(f"{ld.name} ({ld.description})" for ld in reversed(loaders()))
    raise FileNotFoundError(f"'{path}' holds no soft prompt that probe can read; looked for: {looked}")


def load_prompt(
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    key: str | None = None,
    role: Role | None = None,
    task_id: int | None = None,
) -> SoftPrompt:
    """Load one soft prompt, detecting the format from what the path holds.

    Args:
        path: a PEFT adapter folder, ``.safetensors``, ``.pt``/``.pth``, ``.npy``, a ``hard-prompt.json`` or a run
            folder (probe's own or another tool's).
        model: a :class:`probe.LoadedModel`; when given, the prompt's dim must equal the model's.
        key: which tensor to take from a file holding several.
        role: for seq2seq adapters, "encoder" (default) or "decoder".
        task_id: for a multitask prompt, which task's prompt (there is no default: each task has its own).

    Returns:
        The :class:`SoftPrompt`.

    Raises:
        FileNotFoundError: missing path or unknown format.
        ValueError: wrong shape, non-finite values, wrong dim, or no prompt with that role.
    """
    if role not in (None, "encoder", "decoder"):
        raise ValueError(f"role {role!r} is not known; expected 'encoder' or 'decoder' (a seq2seq adapter's halves)")
    prompts = _task(load_prompts(path, key=key), task_id, path)
    if role is not None:
        chosen = [p for p in prompts if p.role == role]
        if not chosen:
            roles = [p.role for p in prompts]
            if role == "decoder" and prompts[0].metadata.get("run"):  # errors.md 192
                raise ValueError(
                    f"'{path}' is read as a run of its checkpoints, which keeps each one's encoder rows; read a "
                    "checkpoint's decoder rows from its own folder (probe report FOLDER/checkpoint-N --role decoder)"
                )
            raise ValueError(
                f"'{path}' has no {role} prompt (it holds roles {roles}); drop --role (role=) or pick another"
            )
        prompt = chosen[0]
        if role == "decoder" and prompt.metadata.get("peft_type") in ("PROMPT_TUNING", "P_TUNING"):
            raise ValueError(
                f"'{path}' is a seq2seq {prompt.metadata['peft_type']} adapter: PEFT feeds the model its encoder's "
                "rows only (its decoder rows get no gradient and stay as initialised), so they say nothing: drop "
                "--role decoder"
            )
    else:
        prompt = prompts[0]
    if model is not None:
        if not hasattr(model, "dim"):  # a name: the model is loaded by the caller (probe.load_model)
            raise TypeError(
                f"model is a {type(model).__name__}; expected a loaded model (probe.load_model(...)) or None"
            )
        prompt.check_dim(model.dim, model.name)
    return prompt


def _task(prompts: list[SoftPrompt], task_id: int | None, path: Any) -> list[SoftPrompt]:
    """The prompts of task ``task_id`` when ``path`` holds a multitask prompt (one per task).

    Raises:
        ValueError: a multitask prompt without a task id, an id it does not have, or an id for a prompt with no tasks.
    """
    tasks = sorted({p.metadata["task_id"] for p in prompts if "task_id" in p.metadata})
    if not tasks:
        if task_id is not None:
            raise ValueError(f"'{path}' is not a multitask prompt; drop the task id ({task_id})")
        return prompts
    if task_id is None or isinstance(task_id, bool) or task_id not in tasks:
        given = "no task id" if task_id is None else f"task id {task_id!r}"
        raise ValueError(
            f"'{path}' is a multitask prompt of {len(tasks)} tasks, each with its own prompt, and {given} was given; "
            f"pick one with --task-id (task_id=) from 0 to {tasks[-1]}"
        )
    return [p for p in prompts if p.metadata.get("task_id") == task_id]


def decoder_rows(prompt: SoftPrompt, kind: str | None = None) -> np.ndarray | None:
    """float32 [n, d]: the rows PEFT puts before the decoder's input with ``prompt`` before the encoder's (the second
    half of a seq2seq multitask prompt's task, read again from where the prompt was read); None for any other prompt.

    Args:
        kind: the kind of the model the prompt is read with: a loose multitask weights file records no split
            between encoder and decoder, so on a seq2seq model it is refused.

    Raises:
        ValueError: ``prompt`` is itself the decoder's half, its source no longer holds the other half, or a loose
            multitask file on a seq2seq model (errors.md 185).
    """
    from probe.formats.adapters import is_seq2seq_multitask

    multitask = prompt.metadata.get("peft_type") == "MULTITASK_PROMPT_TUNING"
    loose = prompt.metadata.get("loose_peft_weights") or (multitask and "num_virtual_tokens" not in prompt.metadata)
    if loose and kind == "seq2seq":
        raise ValueError(
            f"prompt '{prompt.source}' is a loose {'multitask ' if multitask else ''}PEFT weights file read with a "
            "seq2seq model: PEFT keeps such a prompt's encoder rows first and, by default, as many decoder rows after "
            "them, and only its adapter_config.json says how many; load the adapter folder"
        )
    if not is_seq2seq_multitask(prompt):
        return None
    task = prompt.metadata.get("task_id")
    if prompt.role == "decoder":
        raise ValueError(
            f"prompt '{prompt.source}' (task {task}) is the decoder's half of a seq2seq multitask prompt; what it "
            "does is read with the encoder's half, these rows before the decoder's input as PEFT puts them: drop "
            "--role decoder"
        )
    try:
        found = [p for p in load_prompts(prompt.source) if p.role == "decoder" and p.metadata.get("task_id") == task]
    except (OSError, ValueError):
        found = []
    if not found:
        raise ValueError(
            f"prompt '{prompt.source}' is a seq2seq multitask prompt, but its decoder's rows for task {task} cannot be "
            "read from it; what it does needs them (PEFT puts them before the decoder's input): load the adapter folder"
        )
    return found[0].vectors
