"""The names of the task forms: how a prompt's model is asked to do its task. No torch here, so the training
config and the CLI can list them cheaply."""

from __future__ import annotations

from typing import Literal, get_args

TaskForm = Literal["cosine", "verbaliser"]
TASK_FORMS: tuple[str, ...] = get_args(TaskForm)
"""How an encoder model classifies when probe trains it: "cosine" (pooled sentence embedding against the label
names' embeddings, :class:`probe.tasks.kinds.EncoderTask`) or "verbaliser" (the hidden state at an output marker
against the label tokens, :class:`probe.tasks.kinds.VerbaliserTask`). Causal and seq2seq models always generate
the label."""

READING_FORMS = ("cosine", "verbaliser", "generate", "classifier-head", "custom")
"""The task forms a reading runs under: probe's encoder forms, generation (causal and seq2seq models), a
``SEQ_CLS`` adapter's own head, and the caller's own objective."""
