"""``probe replicate``: Lester et al. (2021) section 7's claims about learned prompts, as measured numbers.

The grid is :mod:`.config`, the measurement :mod:`.context`, :mod:`.findings` and :mod:`.accuracy`, the record
:mod:`.record` (``report.json``, ``report.md``), the figures :mod:`.figure`, the Findings page's table :mod:`.table`,
and :mod:`.report` runs it as a :class:`probe.experiments.sweep.Sweep`.

It trains prompts over inits x lengths x seeds, then measures each claim from the saved runs alone (the final
snapshot, the manifest, the training data), each against a control, with percentile-bootstrap intervals. The
measurement half (:func:`measure_findings`) reads only run folders, so anyone can recompute the table.

Findings:
1. Semantic clusters: the top-5 neighbours of a learned position are similar to each other.
2. Class labels persist: with class-label init, the label is still among its position's neighbours.
3. Labels appear under other inits.
4. Long prompts repeat neighbours (top-1 shared between positions), growing with length.
5. Domain words: the neighbours are the data set's characteristic words.
6. Accuracy by length and init, soft and discretised.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "ReplicateConfig": "config",
    "train_grid": "config",
    "missing_runs": "config",
    "estimate_seconds": "config",
    "FindingsContext": "context",
    "build_context": "context",
    "characteristic_words": "context",
    "SMALLEST_EFFECT": "context",
    "N_CONTROL": "context",
    "semantic_clusters": "findings",
    "labels_persist": "findings",
    "labels_elsewhere": "findings",
    "repeated_neighbours": "findings",
    "domain_words": "findings",
    "accuracy_by_length": "accuracy",
    "measure_findings": "report",
    "render": "report",
    "replicate": "report",
    "write_report": "report",
}
_NAMES |= {name: "record" for name in ("Finding", "ReplicateReport", "REPORT_MD", "REPORT_JSON", "PERCENT_FINDINGS")}
_NAMES |= {"SWEEP": "report", "RUNS": "probe.experiments.grid"}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        module = _NAMES[name]
        return getattr(import_module(module if "." in module else f"probe.experiments.replicate.{module}"), name)
    raise AttributeError(f"module 'probe.experiments.replicate' has no attribute {name!r}")
