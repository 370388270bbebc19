"""Deprecated: moved to :mod:`probe.formats.discovery` (opening a run folder in any layout, finding runs; beside
:mod:`probe.formats.run`, which reads probe's own); removed in probe 0.3.0."""

from probe.core.deprecation import moved_module

__getattr__, __dir__ = moved_module(__name__, "probe.formats.discovery")
