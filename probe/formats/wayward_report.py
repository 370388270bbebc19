"""Deprecated: moved to :mod:`probe.experiments.wayward.record`;
each sweep is one package of :mod:`probe.experiments`. Removed in probe 0.3.0."""

from probe.core.deprecation import moved_module

__getattr__, __dir__ = moved_module(__name__, "probe.experiments.wayward.record")
