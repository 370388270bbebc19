"""Deprecated: moved to :mod:`probe.tasks.kinds` (the tasks layer, below training and the readings); removed in
probe 0.3.0."""

from probe.core.deprecation import moved_module

__getattr__, __dir__ = moved_module(__name__, "probe.tasks.kinds")
