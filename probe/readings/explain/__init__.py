"""What a prompt does, not only where it sits: position importance, the best real-token prompt, a layer lens.

- :func:`importance`: accuracy and loss with each position removed, read as its nearest token, or as the mean
  vocabulary embedding, with paired bootstrap intervals.
- :func:`harden`: the best real-token prompt, PEZ-style (Wen et al. 2023), resumable.
- :func:`layer_lens`: every position's hidden state at every layer against a per-layer contextual vocabulary,
  and the logit lens for causal LMs.
- :func:`explain`: all three as one :class:`probe.formats.explain_record.ExplainRecord` (``explain.json``).

:class:`Readout` holds what they share: the model, its index, the task settings and the data.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "Readout": "readout",
    "importance": "ablation",
    "harden": "hardening",
    "layer_lens": "lens",
    "contextual_vocabulary": "lens",
    "explain": "record",
    "save_explain": "record",
    "score_stand_ins": "faithfulness",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        from probe.core.progress import quiet_tqdm

        quiet_tqdm()  # before transformers imports tqdm.auto, which warns in a notebook without ipywidgets
        return getattr(import_module(f"probe.readings.explain.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'probe.readings.explain' has no attribute {name!r}")
