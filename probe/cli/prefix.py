"""``probe report`` on a prefix (``PREFIX_TUNING``, ``CARTRIDGE``): the per-layer reading, one line per layer and
position with the nearest real tokens of its key and of its value (``--layer N`` for one layer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from probe.cli.options import emit


def check_budgets(command: Any, prefix: Any, model: Any, layers: list[int] | None) -> None:
    """Print what reading the prefix per layer will take and hold, and refuse it over ``--budget-gb`` (checked
    first, before anything is timed) or ``--budget-minutes``.

    Raises:
        ValueError: a layer the prefix lacks (errors.md 141), or the reading over a budget (errors.md 168).
    """
    from probe.core.budget import check_memory, check_time, shown_gb
    from probe.readings.prefix import check_prefix, estimate_seconds, reference_bytes

    chosen = check_prefix(prefix, model, layers)
    memory = reference_bytes(model, len(chosen))
    less = "read one layer (--layer N)"
    check_memory(memory, "the prefix's per-layer reading", gb=command.budget_gb, less=less)
    seconds = estimate_seconds(model, chosen)
    print(
        f"reading {len(chosen)} layers of the prefix: about {seconds / 60:.1f} min on this machine (one batch and "
        f"one layer's index timed), {shown_gb(memory)} of reference keys and values",
        file=sys.stderr,
        flush=True,
    )
    check_time(seconds, "the prefix's per-layer reading", minutes=command.budget_minutes, less=less)


def is_loose_prefix(path: str, width: int, model: Any) -> bool:
    """Whether a loose tensor of ``width`` columns is a prefix for ``model`` (``layers x 2 x token_dim``) rather than
    input rows."""
    from probe.formats.prefix import kv_geometry

    layers, heads, head_dim = kv_geometry(model.model.config)
    return Path(path).is_file() and width != model.dim and width == layers * 2 * heads * head_dim


def report_prefix(command: Any, model: Any = None) -> int:
    """Read a prefix adapter (or a loose prefix file, with ``model``) per layer and print the report.

    Raises:
        ValueError: options that pick what a prefix does not have (errors.md 143), or a bad layer (errors.md 141).
    """
    from probe.core.index import TokenFilter
    from probe.core.models import load_model
    from probe.formats.prefix import load_prefix
    from probe.readings.prefix import prefix_layers

    given = [
        f"--{name.replace('_', '-')}" for name in ("step", "role", "task_id") if getattr(command, name) is not None
    ]
    if given or command.labels or command.controls:
        extra = given + ["--labels"] * bool(command.labels) + ["--controls"] * bool(command.controls)
        raise ValueError(
            f"'{command.prompt}' is a prefix (keys and values per layer): {', '.join(extra)} picks what it does not "
            "have; its report reads every layer (--layer N for one) and always sets real tokens in text beside it"
        )
    if model is None:
        from probe.formats.prefix import is_prefix_adapter

        assert is_prefix_adapter(command.prompt)
        from probe.formats.adapters import read_adapter_config

        base = read_adapter_config(Path(command.prompt), kv=True).get("base_model_name_or_path")
        model = load_model(
            command.model or base or "default", device="cpu", trust_remote_code=command.trust_remote_code
        )
    prefix = load_prefix(command.prompt, model_config=model.model.config, key=command.key)
    token_filter = TokenFilter(exclude_special=False, exclude_unused=False) if command.all_tokens else None
    layers = None if command.layer is None else [command.layer]
    check_budgets(command, prefix, model, layers)
    report = prefix_layers(prefix, model, k=command.k, layers=layers, token_filter=token_filter)
    emit({"md": report.to_markdown, "json": report.to_json, "csv": report.to_csv}[command.format](), command.out)
    return 0


def drift_prefix(command: Any) -> int:
    """``probe drift FOLDER`` on a folder of prefix checkpoints: a row per step, layer and part.

    Raises:
        ValueError: --task-id or --summary (a prefix has neither), a --step before every checkpoint, or what
            :func:`probe.readings.prefix_drift.prefix_drift` refuses.
    """
    from probe.cli.options import table_text
    from probe.core.models import load_model
    from probe.formats.adapters import read_adapter_config
    from probe.formats.prefix import load_prefix, prefix_steps
    from probe.readings.prefix_drift import prefix_drift

    given = ["--task-id"] * (command.task_id is not None) + ["--summary"] * bool(command.summary_only)
    if given:
        raise ValueError(
            f"'{command.run_path}' holds prefix checkpoints, which have no tasks and one table (a row per step, layer "
            f"and part): drop {' and '.join(given)}"
        )
    found = prefix_steps(command.run_path)
    steps = [s for s in found if command.step is None or s <= command.step]
    if not steps:
        raise ValueError(f"'{command.run_path}' has no prefix checkpoint at or before step {command.step}")
    base = read_adapter_config(found[steps[0]], kv=True).get("base_model_name_or_path")
    model = load_model(command.model or base or "default", device="cpu")
    prefixes = {s: load_prefix(found[s], model_config=model.model.config) for s in steps}
    layers = None if command.layer is None else [command.layer]
    check_budgets(command, prefixes[steps[0]], model, layers)
    drift = prefix_drift(prefixes, model, layers=layers)
    emit(table_text(drift.to_dataframe(), command.format), command.out)
    return 0
