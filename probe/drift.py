"""Deprecated alias for scripts written against probe 0.1's flat layout: ``probe.drift`` is now
:mod:`probe.readings.drift`; removed in probe 0.3.0."""

from probe.core.deprecation import moved_module

__getattr__, __dir__ = moved_module(__name__, "probe.readings.drift")
