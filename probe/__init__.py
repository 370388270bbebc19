"""probe: make soft prompts readable.

Load a prompt-tuned model's soft prompt, find the nearest vocabulary tokens of every position, track how
they drift during training, and compare initialisations.
"""

from probe import hardening as _hardening  # noqa: F401  (registers the hard-prompt loader)
from probe import layouts as _layouts  # noqa: F401  (registers other tools' run layouts)
from probe.index import TokenFilter, VocabIndex
from probe.models import DEFAULT_MODEL, LoadedModel, load_model
from probe.prompts import SoftPrompt, load_prompt, load_prompts
from probe.reports import NearestTokenReport, nearest_tokens
from probe.runs import Run, find_runs, load_run

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("record", "ProbeCallback"):
        from probe import integrations

        return getattr(integrations, name)
    if name in ("importance", "Readout"):
        from probe import explain

        return getattr(explain, name)
    if name == "harden":
        from probe.hardening import harden

        return harden
    if name == "layer_lens":
        from probe.lens import layer_lens

        return layer_lens
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "NearestTokenReport",
    "ProbeCallback",
    "Run",
    "SoftPrompt",
    "TokenFilter",
    "VocabIndex",
    "__version__",
    "find_runs",
    "load_model",
    "load_prompt",
    "load_prompts",
    "load_run",
    "nearest_tokens",
    "record",
]
