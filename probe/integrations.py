"""Alias kept for scripts written against probe 0.1's flat layout: ``probe.integrations`` is now
:mod:`probe.training.integrations`."""

from probe.training.integrations import *  # noqa: F403
from probe.training.integrations import __all__  # noqa: F401
