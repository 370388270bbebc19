"""Progress bars: tqdm's own choice (widgets in a notebook that has ipywidgets, text elsewhere), without its warning.

``tqdm.auto`` warns "IProgress not found" when it is imported in a notebook that lacks ipywidgets, then draws text
bars all the same. transformers and huggingface_hub import it as they are imported, so the warning reached a
notebook through probe's first use. :func:`quiet_tqdm` imports it first with that one warning silenced (the filters
are restored at once; every other warning still shows); probe calls it where it serves a public name.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from typing import Any

NO_WIDGETS = "IProgress not found"
"""The start of tqdm's warning in a notebook without ipywidgets."""


def quiet_tqdm() -> None:
    """Import ``tqdm.auto`` once, without its warning about ipywidgets (it falls back to text bars all the same)."""
    if "tqdm.auto" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NO_WIDGETS)
        import tqdm.auto  # noqa: F401


def progress_bar(
    total: int,
    desc: str,
    *,
    enabled: bool = True,
    unit: str = "pass",
    initial: int = 0,
    iterable: Iterable[Any] | None = None,
) -> Any:
    """A tqdm bar that leaves no trace when done (hidden unless ``enabled``), over ``iterable`` if given; what every
    reading and the trainer show."""
    quiet_tqdm()
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=False, disable=not enabled)
