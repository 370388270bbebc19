"""``probe.explain(prompt, readout, ...)``: everything ``probe explain`` measures on one prompt, as one record
(:func:`probe.readings.explain.record.explain`).

This name was once the module of the readings of what a prompt does; ``from probe.explain import Readout`` (and
``importance``, ``harden``, ``layer_lens``) still works, deprecated: they are in :mod:`probe.readings.explain`.
"""

from probe.core.deprecation import callable_module, moved_module

__getattr__, __dir__ = moved_module(__name__, "probe.readings.explain")
callable_module(__name__, "probe.readings.explain.record.explain")
