"""probe: make soft prompts readable.

Load a prompt-tuned model's soft prompt, find the nearest vocabulary tokens of every position, track how
they drift during training, and compare initialisations; then ask what the prompt does.

Importing ``probe`` is cheap: every name below is imported from its layer on first use, so ``probe --help``
needs neither torch nor transformers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_NAMES: dict[str, str] = {
    "DEFAULT_MODEL": "probe.core.models",
    "LoadedModel": "probe.core.models",
    "load_model": "probe.core.models",
    "TokenFilter": "probe.core.index",
    "VocabIndex": "probe.core.index",
    "SoftPrompt": "probe.core.softprompt",
    "load_prompt": "probe.formats.prompts",
    "load_prompts": "probe.formats.prompts",
    "Manifest": "probe.formats.manifest",
    "Run": "probe.formats.run",
    "find_runs": "probe.formats.discovery",
    "load_run": "probe.formats.discovery",
    "NearestTokenReport": "probe.readings.reports",
    "nearest_tokens": "probe.readings.reports",
    "PrefixPrompt": "probe.formats.prefix",
    "load_prefix": "probe.formats.prefix",
    "PrefixReport": "probe.readings.prefix_report",
    "prefix_layers": "probe.readings.prefix",
    "prefix_map": "probe.readings.prefix_map",
    "drift_table": "probe.readings.drift",
    "compare_prompts": "probe.readings.compare",
    "Readout": "probe.readings.explain.readout",
    "importance": "probe.readings.explain.ablation",
    "harden": "probe.readings.explain.hardening",
    "layer_lens": "probe.readings.explain.lens",
    "explain": "probe.explain",
    "score_stand_ins": "probe.readings.explain.faithfulness",
    "input_attribution": "probe.readings.explain.attribution",
    "trigger_scan": "probe.readings.explain.triggers",
    "faithfulness_loss": "probe.training.readable",
    "projection_loss": "probe.training.readable",
    "projection_targets": "probe.training.readable",
    "TrainConfig": "probe.training.config",
    "train": "probe.training.trainer",
    "track": "probe.training.integrations",
    "ProbeCallback": "probe.training.integrations",
}
_DEPRECATED = {"explain_prompt": "explain", "faithfulness": "score_stand_ins", "record": "track"}
"""Old public names: each still serves what replaced it, with a warning naming the release that removes it."""

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "Manifest",
    "NearestTokenReport",
    "PrefixPrompt",
    "PrefixReport",
    "ProbeCallback",
    "Readout",
    "Run",
    "SoftPrompt",
    "TokenFilter",
    "TrainConfig",
    "VocabIndex",
    "__version__",
    "compare_prompts",
    "drift_table",
    "explain",
    "faithfulness_loss",
    "find_runs",
    "harden",
    "importance",
    "input_attribution",
    "layer_lens",
    "load_model",
    "load_prefix",
    "load_prompt",
    "load_prompts",
    "load_run",
    "nearest_tokens",
    "prefix_layers",
    "prefix_map",
    "projection_loss",
    "projection_targets",
    "score_stand_ins",
    "track",
    "train",
    "trigger_scan",
]

if TYPE_CHECKING:
    from probe.core.index import TokenFilter, VocabIndex
    from probe.core.models import DEFAULT_MODEL, LoadedModel, load_model
    from probe.core.softprompt import SoftPrompt
    from probe.formats.discovery import find_runs, load_run
    from probe.formats.manifest import Manifest
    from probe.formats.prefix import PrefixPrompt, load_prefix
    from probe.formats.prompts import load_prompt, load_prompts
    from probe.formats.run import Run
    from probe.readings.compare import compare_prompts
    from probe.readings.drift import drift_table
    from probe.readings.explain.ablation import importance
    from probe.readings.explain.attribution import input_attribution
    from probe.readings.explain.faithfulness import score_stand_ins
    from probe.readings.explain.hardening import harden
    from probe.readings.explain.lens import layer_lens
    from probe.readings.explain.readout import Readout
    from probe.readings.explain.record import explain
    from probe.readings.explain.triggers import trigger_scan
    from probe.readings.prefix import prefix_layers
    from probe.readings.prefix_map import prefix_map
    from probe.readings.prefix_report import PrefixReport
    from probe.readings.reports import NearestTokenReport, nearest_tokens
    from probe.training.config import TrainConfig
    from probe.training.integrations import ProbeCallback, track
    from probe.training.readable import faithfulness_loss, projection_loss, projection_targets
    from probe.training.trainer import train


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        from probe.core.deprecation import warn_renamed

        warn_renamed(f"probe.{name}", f"probe.{_DEPRECATED[name]}")
        return __getattr__(_DEPRECATED[name])
    if name in _NAMES:
        from probe.core.progress import quiet_tqdm

        quiet_tqdm()  # before transformers imports tqdm.auto, which warns in a notebook without ipywidgets
        module = import_module(_NAMES[name])
        value = module if module.__name__ == f"probe.{name}" else getattr(module, name)  # probe.explain: callable
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
