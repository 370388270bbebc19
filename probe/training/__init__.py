"""Training a soft prompt: initialisations, the trainer, callbacks and recorders for other loops, and the readable
terms. The tasks it trains on are in :mod:`probe.tasks`.

``from probe.training import TrainConfig, train`` (the names of the earlier ``probe.training`` module) still works,
deprecated: use ``probe.TrainConfig`` and ``probe.train``, or the modules that hold them.
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "TrainConfig": "config",
    "parse_scale": "config",
    "CONFIG_FORMAT": "config",
    "Optimizer": "config",
    "train": "trainer",
    "Trainer": "trainer",
    "make_optimizer": "trainer",
    "TrainingCallback": "callbacks",
    "StepRecord": "callbacks",
    "RunFolder": "callbacks",
    "save_adapter": "callbacks",
}
_TASKS = {"TASK_FORMS", "TaskForm"}

__all__ = sorted([*_NAMES, *_TASKS])


def __getattr__(name: str) -> Any:
    from probe.core.deprecation import renamed

    if name in _NAMES:
        return renamed(f"probe.training.{name}", f"probe.training.{_NAMES[name]}.{name}")
    if name in _TASKS:
        return renamed(f"probe.training.{name}", f"probe.tasks.forms.{name}")
    raise AttributeError(f"module 'probe.training' has no attribute {name!r}")
