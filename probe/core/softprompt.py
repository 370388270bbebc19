"""SoftPrompt: p vectors in a model's input-embedding space, checked on the way in.

A leaf module: every loader (files, adapters, runs) and every reading builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from probe.core.io import MAX_POSITIONS

Role = Literal["encoder", "decoder"]


@dataclass(frozen=True, eq=False, repr=False)
class SoftPrompt:
    """A learned (or initial) soft prompt.

    Attributes:
        vectors: float32 [p, d], one row per prompt position.
        source: where it came from (a path, or a description).
        role: "encoder" or "decoder" for the two halves of a seq2seq adapter, else None.
        step: training step of a snapshot, else None.
        base_model: the model the prompt was trained on, when the file records it.
        metadata: anything else the source recorded (adapter config, run init).
    """

    vectors: np.ndarray
    source: str
    role: Role | None = None
    step: int | None = None
    base_model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", check_vectors(self.vectors, what=self.source))
        if self.role not in (None, "encoder", "decoder"):
            raise ValueError(f"role '{self.role}' is not known; expected 'encoder', 'decoder' or None")

    def __repr__(self) -> str:
        where = f" step {self.step}" if self.step is not None else ""
        role = f" {self.role}" if self.role else ""
        return f"SoftPrompt({self.source!r}{where}{role}, {self.length} x {self.dim})"

    @property
    def length(self) -> int:
        """Number of positions p."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension d."""
        return int(self.vectors.shape[1])

    def check_dim(self, dim: int, model_name: str = "the model") -> SoftPrompt:
        """Return self if its dimension is ``dim``.

        Raises:
            ValueError: naming both dimensions.
        """
        if self.dim != dim:
            raise ValueError(
                f"prompt {self.source} has shape {tuple(self.vectors.shape)} (dim {self.dim}), but model "
                f"'{model_name}' has dim {dim}; load the model the prompt was trained on"
            )
        return self


def as_prompt(prompt: Any) -> SoftPrompt:
    """A :class:`SoftPrompt` from what a reading is handed: a prompt, float32 [p, d] vectors or a tensor, a PEFT
    prompt-tuning model (its prompt as it is now, as :func:`probe.track` reads it), or a prefix
    (:class:`probe.formats.prefix.PrefixPrompt`, as its flat keys and values, which a readout runs as a prefix).

    Raises:
        TypeError: none of these.
    """
    if isinstance(prompt, SoftPrompt):
        return prompt
    if getattr(prompt, "prompt_encoder", None) is not None and hasattr(prompt, "active_adapter"):
        config = prompt.peft_config[prompt.active_adapter]
        base = getattr(config, "base_model_name_or_path", None)
        role: Role | None = "encoder" if (getattr(config, "num_transformer_submodules", None) or 1) > 1 else None
        return SoftPrompt(
            vectors=live_vectors(prompt),
            source=f"<{type(prompt).__name__}>",
            base_model=base,
            metadata=config.to_dict(),
            role=role,
        )
    if callable(getattr(prompt, "flat", None)) and hasattr(prompt, "kv"):  # a prefix: PEFT's flat keys and values
        return SoftPrompt(prompt.flat(), source=prompt.source, base_model=prompt.base_model, metadata=prompt.metadata)
    return SoftPrompt(vectors=check_vectors(prompt), source="<array>")


def live_vectors(peft_model: Any) -> np.ndarray:
    """float32 [p, d]: the prompt a PEFT prompt-learning model feeds its model now, as PEFT saves it (P-tuning's
    encoder output, not its encoder's input rows; CPT's tokens plus their delta), with the encoder in eval mode (no
    dropout). A seq2seq model's prompt tuning or P-tuning: its encoder's rows, the only ones PEFT feeds.

    Raises:
        ValueError: a multitask model, whose every task has its own prompt (the shared rows alone are none).
    """
    adapter = peft_model.active_adapter
    config = peft_model.peft_config[adapter]
    kind = str(getattr(config.peft_type, "value", config.peft_type))
    if kind == "MULTITASK_PROMPT_TUNING":
        raise ValueError(
            "a MULTITASK_PROMPT_TUNING model has one prompt per task, and its shared rows alone are none of them: "
            "save it (peft_model.save_pretrained(DIR), or the Trainer's checkpoints) and read a task's prompt "
            "with probe.load_prompt(DIR, task_id=T) (probe report DIR --task-id T)"
        )
    encoder = peft_model.prompt_encoder[adapter]
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            vectors = peft_model.get_prompt_embedding_to_save(adapter).float().numpy().copy()
    finally:
        encoder.train(training)
    return vectors[: config.num_virtual_tokens] if kind in ("PROMPT_TUNING", "P_TUNING", "CPT") else vectors


def check_vectors(vectors: Any, *, what: str = "prompt") -> np.ndarray:
    """Validate and convert prompt vectors to float32 [p, d] numpy.

    Raises:
        TypeError: not an array or tensor.
        ValueError: not 2-D, no rows or columns, or not finite.
    """
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to("cpu", torch.float32).numpy()
    if not isinstance(vectors, np.ndarray):
        raise TypeError(f"{what}: expected a 2-D tensor or array, got {type(vectors).__name__}")
    if vectors.dtype.kind not in "fiu":
        raise TypeError(f"{what}: expected numbers, got dtype {vectors.dtype}")
    if vectors.ndim != 2:
        raise ValueError(
            f"{what}: expected a 2-D prompt [positions, dim], got shape {tuple(vectors.shape)}; "
            "pass the prompt embedding matrix, or name it with key="
        )
    if vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise ValueError(f"{what}: prompt has shape {tuple(vectors.shape)}; it needs at least one position")
    if vectors.shape[0] > MAX_POSITIONS:
        raise ValueError(f"{what}: prompt has {vectors.shape[0]} positions; expected at most {MAX_POSITIONS}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors)).any(axis=1).sum())
        raise ValueError(f"{what}: {bad} of {vectors.shape[0]} positions hold NaN or Inf; the prompt is broken")
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(vectors, axis=1)
    if not np.isfinite(norms).all():
        bad = int((~np.isfinite(norms)).sum())
        raise ValueError(
            f"{what}: {bad} of {vectors.shape[0]} positions have values so large (up to {np.abs(vectors).max():.3g}) "
            "that their norm overflows float32; the prompt is broken"
        )
    return vectors
