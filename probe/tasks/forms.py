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

FORM_WORDS = {
    "cosine": "the pooled sentence embedding's cosine to each label name's",
    "verbaliser": "the label tokens' scores at an output marker",
    "generate": "the model generating the label",
    "classifier-head": "the SEQ_CLS adapter's own classifier head",
    "custom": "the caller's own scoring function",
}
"""Each reading form in words, for the sentence that says what a figure measured."""


def describe_form(form: str | None) -> str:
    """What a record says it measured, in words: ``"cosine (the pooled sentence embedding's cosine ...)"``; a form
    this probe does not know is named as recorded, and a record from before the task was recorded says so."""
    if form is None:
        return "a task the record does not name (written before probe recorded it)"
    return f"{form} ({FORM_WORDS[form]})" if form in FORM_WORDS else form


def unknown_task(what: str) -> ValueError:
    """The one-line error when the task of ``what`` cannot be known: the choices, never a default."""
    return ValueError(
        f"the task of {what} cannot be known; say which it was trained on: --task cosine|verbaliser|generate "
        "(form=), or for another objective pass score=(model, batch) -> logits over the labels, "
        "loss=(model, batch) -> each example's loss, or task=a Task class, to Readout"
    )
