"""Training a soft prompt: tasks, initialisations, evaluation, the trainer, and recorders for other loops.

``from probe.training import TrainConfig, train`` keeps working: the names of the earlier ``probe.training``
module are served from the modules that hold them now, imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "TrainConfig": "config",
    "parse_scale": "config",
    "TASK_FORMS": "config",
    "TaskForm": "config",
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

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(f"probe.training.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'probe.training' has no attribute {name!r}")
