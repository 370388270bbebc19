"""The names of the accuracies probe measures: one name each, in code, JSON, tables and the page.

Older files used other spellings (``accuracy``, ``discrete_accuracy``, ``zero_shot``, ``discretised``); readers
pass every key through :func:`measure_name`, so those files still read.
"""

from __future__ import annotations

import numbers

SOFT = "soft_accuracy"
"""The soft prompt's test accuracy."""
DISCRETISED = "discretised_accuracy"
"""The test accuracy with every position replaced by its nearest token's embedding."""
ZERO_SHOT = "zero_shot_accuracy"
"""The frozen model's test accuracy without a prompt."""
HARD_PROMPT = "hard_prompt_accuracy"
"""The test accuracy of the best real-token prompt (``probe explain``)."""

MEASURES: dict[str, str] = {
    SOFT: "soft prompt",
    DISCRETISED: "discretised",
    ZERO_SHOT: "zero-shot",
    HARD_PROMPT: "hard prompt",
}
"""Each measure and how the page and the reports label it."""

CLASSIFICATION = "classification"
"""The objective of classification over label words (records that name no objective measured it)."""
TARGET_LIKELIHOOD = "target-likelihood"
"""The free-text target objective: each example's mean log-likelihood of its target text under the prompt."""
USER_LOSS = "user-loss"
"""A caller's own loss, ``loss(model, batch) -> per-example loss``: what a prompt does is how low it makes it."""
OBJECTIVES = (CLASSIFICATION, TARGET_LIKELIHOOD, USER_LOSS)
"""The objectives a reading of what a prompt does is measured on; every such record names its own."""

OLD_NAMES: dict[str, str] = {
    "accuracy": SOFT,
    "soft": SOFT,
    "discrete_accuracy": DISCRETISED,
    "discretised": DISCRETISED,
    "discrete": DISCRETISED,
    "zero_shot": ZERO_SHOT,
    "hard_prompt": HARD_PROMPT,
}
"""Spellings of earlier versions, still read."""


REPORT_KEYS_BEFORE: dict[str, str] = {
    SOFT: "soft",
    DISCRETISED: "discretised",
    ZERO_SHOT: "zero_shot",
    HARD_PROMPT: "hard_prompt",
}
"""The key each measure had in a report's ``accuracies`` before it had one name: the report's JSON still writes
it beside the new one, so scripts that parse the old key keep working."""


def with_old_keys(values: dict[str, float]) -> dict[str, float]:
    """``values`` by measure name, with each measure's older report key beside it (:data:`REPORT_KEYS_BEFORE`)."""
    return {**values, **{REPORT_KEYS_BEFORE[k]: v for k, v in values.items() if k in REPORT_KEYS_BEFORE}}


def measure_name(key: str) -> str:
    """The one name of a measure written under ``key`` (an old spelling or the name itself)."""
    return OLD_NAMES.get(key, key)


def label(key: str) -> str:
    """How a measure is shown (the name itself for keys that are not accuracies)."""
    return MEASURES.get(measure_name(key), key)


def check_accuracies(accuracies: object) -> None:
    """Refuse accuracies a report would carry as measured that are none (errors.md 203).

    Raises:
        ValueError: not a dict of measure name -> accuracy in [0, 1] (None or NaN: not measured).
    """
    if accuracies is None:
        return
    values = accuracies.values() if isinstance(accuracies, dict) else [object()]
    if any(v is not None and not (isinstance(v, numbers.Real) and (v != v or 0 <= float(v) <= 1)) for v in values):
        raise ValueError(
            f"accuracies is {accuracies!r}; expected {{measure name: accuracy in [0, 1]}} ({{'soft_accuracy': 0.8}})"
        )
