"""Loading a soft prompt from any format probe reads, chosen by what the path holds, not by a flag.

The formats are listed here, in the formats layer (files, runs, hard prompts); a plugin adds its own with
:func:`register_loader`, and is tried first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from probe.core.softprompt import Role, SoftPrompt, check_vectors
from probe.formats import discovery, files, hard_prompt
from probe.formats.files import Loader

logger = logging.getLogger(__name__)

__all__ = ["Loader", "Role", "SoftPrompt", "check_vectors", "load_prompt", "load_prompts", "loaders", "register_loader"]

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
    """
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
) -> SoftPrompt:
    """Load one soft prompt, detecting the format from what the path holds.

    Args:
        path: a PEFT adapter folder, ``.safetensors``, ``.pt``/``.pth``, ``.npy``, a ``hard-prompt.json`` or a run
            folder (probe's own or another tool's).
        model: a :class:`probe.LoadedModel`; when given, the prompt's dim must equal the model's.
        key: which tensor to take from a file holding several.
        role: for seq2seq adapters, "encoder" (default) or "decoder".

    Returns:
        The :class:`SoftPrompt`.

    Raises:
        FileNotFoundError: missing path or unknown format.
        ValueError: wrong shape, non-finite values, wrong dim, or no prompt with that role.
    """
    prompts = load_prompts(path, key=key)
    if role is not None:
        chosen = [p for p in prompts if p.role == role]
        if not chosen:
            roles = [p.role for p in prompts]
            raise ValueError(f"'{path}' has no {role} prompt (it holds roles {roles}); drop role= or use another")
        prompt = chosen[0]
    else:
        prompt = prompts[0]
    if model is not None:
        prompt.check_dim(model.dim, model.name)
    return prompt
