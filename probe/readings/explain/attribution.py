"""What the prompt makes the model use in its input: two readings that compare the prompted model with the frozen
one, each word's or token's effect on the class probabilities under the prompt minus the same effect without it.

- :func:`input_attribution`, by occlusion: each word of a text deleted in turn (one batched pass over every
  variant). A word's effect on class c is p(c | text) - p(c | text without the word), every occurrence of it
  deleted at once. Aggregated over the split (the mean over every text read, a text without the word adding 0,
  so one text cannot put a rare word first), it gives per class the words whose influence the prompt raised
  most. Words are the text's whitespace-separated words, so every tokenizer reads the same units. The 100 most
  frequent English words, and words without a letter or digit, are not occluded: they rarely carry a class, and
  skipping them saves about a third of the passes. By default a word is occluded only where it occurs in at
  least two of the texts read (``min_count``): a split-level reading does not rest on one text, and on 200 AG
  News test texts this halves the passes (4,357 occluded variants to 2,358).
- :func:`probe.readings.explain.triggers.trigger_scan`: each of the N most frequent tokens (and any the caller
  adds) appended to a few short held-out texts, scored in batched passes. A token's effect on class c is the mean
  of p(c | text + token) - p(c | text). It gives per class the tokens that push predictions toward it most under
  the prompt.

The frozen model's side of both depends only on the model, the task and the texts, so it is cached (probe's
cache): a second prompt read on the same texts costs only its own passes.

Under the free-text target objective, input attribution reads each text's own target instead of the classes: a
word's effect is log p(target | text) - log p(target | text without the word), each the mean over the target's
tokens (the negated loss of :meth:`Task.outcome`), under the prompt minus on the frozen model; the table's one
label is :data:`probe.core.data.TARGET_CLASS`. Its frozen side is not cached. The trigger scan reads the same
change when a token is appended to each scan text, each text read against the target of the test row it was cut
from. Under a caller's loss (:class:`probe.tasks.user.LossTask`) the same holds with minus that loss, each variant
read against its text's own label or target; the table's one label is :data:`LOSS_LABEL`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from probe.core.names import CLASSIFICATION
from probe.core.tokens import text_list
from probe.formats.effects import Effects
from probe.readings.explain.contrast import (
    CACHE_FORMAT,
    LOSS_LABEL,
    aggregate,
    loss_label,
    minus_loss,
    probabilities,
    zero_shot_probabilities,
)
from probe.readings.explain.costs import check_rows
from probe.readings.explain.readout import Readout, prompt_of
from probe.readings.explain.triggers import scan_candidates, scan_rows, scan_texts, trigger_scan

__all__ = [  # the trigger scan and the shared sides have their own modules; these names are still read from here
    "CACHE_FORMAT",
    "FUNCTION_WORDS",
    "LOSS_LABEL",
    "OCCLUSION_BUDGET",
    "check_occlusion_budget",
    "input_attribution",
    "occlusion_plan",
    "occlusions",
    "rows_scored",
    "scan_candidates",
    "scan_rows",
    "scan_texts",
    "trigger_scan",
    "zero_shot_probabilities",
]

FUNCTION_WORDS = 100
"""The most frequent English words (wordfreq) that occlusion skips."""
OCCLUSION_BUDGET = 200_000_000
"""Characters of occluded variants input attribution makes at most by default (about 200 MB of text; 200 news
texts take about 1 MB): a 1 MB text would otherwise ask for tens of GB."""


def _function_words() -> set[str]:
    from wordfreq import top_n_list

    return set(top_n_list("en", FUNCTION_WORDS))


def occlusions(text: str, skip: set[str]) -> list[tuple[str, str]]:
    """(word, the text without it) for every distinct word of ``text`` not in ``skip`` and with a letter or digit.

    A word is lowercased and stripped of surrounding punctuation (that form is its name in the table); every
    occurrence of it is deleted at once, so a text is scored once per word it holds, however often it repeats.
    """
    words = text.split()
    names = [word.strip(".,;:!?\"'()[]{}").lower() for word in words]
    out = []
    for name in dict.fromkeys(names):
        if name and name not in skip and any(ch.isalnum() for ch in name):
            out.append((name, " ".join(w for w, n in zip(words, names, strict=True) if n != name)))
    return out


def check_occlusion_budget(texts: list[str], max_chars: int = OCCLUSION_BUDGET) -> None:
    """Refuse texts whose occluded variants would hold more than ``max_chars`` characters (a bound: every word
    occluded), before any is made.

    Raises:
        ValueError: naming the texts' size, the budget and what to do.
    """
    at_most = sum(len(text.split()) * len(text) for text in texts)
    if at_most > max_chars:
        longest = max(len(text) for text in texts)
        raise ValueError(
            f"input attribution over these {len(texts)} texts (the longest {longest:,} characters) would make up to "
            f"{at_most:,} characters of occluded variants, over the budget of {max_chars:,}; read shorter texts (the "
            "model reads its first max_length tokens of each) or fewer, or raise max_chars"
        )


def occlusion_plan(texts: list[str], min_count: int = 2) -> tuple[list[str], list[str], list[int]]:
    """(words, variants, owners): every occlusion :func:`input_attribution` scores, the word deleted, the text
    without it and the index of that text, for the words that occur in at least ``min_count`` of ``texts``."""
    skip = _function_words()
    per_text = [occlusions(text, skip) for text in texts]
    held = Counter(word for pairs in per_text for word, _ in pairs)
    words, variants, owners = [], [], []
    for t, pairs in enumerate(per_text):
        for word, variant in pairs:
            if held[word] >= min_count:
                words.append(word)
                variants.append(variant)
                owners.append(t)
    return words, variants, owners


def input_attribution(
    prompt: Any,
    readout: Readout,
    *,
    texts: list[str] | None = None,
    size: int = 200,
    min_count: int = 2,
    max_chars: int = OCCLUSION_BUDGET,
    progress: bool = False,
    budget_minutes: float | None = None,
) -> Effects:
    """Occlusion attribution through the prompt (see the module docstring).

    Args:
        prompt: the soft prompt (a :class:`SoftPrompt`, vectors, or a PEFT model).
        readout: the model, data and task it was trained with.
        texts: the texts to read (default: the first ``size`` test texts).
        size: how many test texts by default.
        min_count: occlude only words held by at least this many of the texts (1: every word; at most the
            number of texts, so one text is read whole).
        max_chars: the most text the occluded variants may hold in all (each is its text less one word): a budget
            on memory and time, checked before any variant is made.
        progress: show progress bars.
        budget_minutes: refuse, before any is scored, when scoring the texts and their variants (through the prompt
            and on the frozen model) would take longer (None: no budget).

    Raises:
        ValueError: no text with a word to occlude, a prompt of another dimension, variants over ``max_chars``, or
            their scoring over ``budget_minutes``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size is {size!r}; expected a positive number of test texts to read")
    texts = text_list(texts, "texts") if texts is not None else readout.splits.test.texts[:size]
    vectors = prompt_of(readout, prompt).vectors
    if min_count < 1:
        raise ValueError(f"min_count is {min_count}; expected how many texts a word must occur in (1 or more)")
    least = min(min_count, max(1, len(texts)))  # one text is read whole
    check_occlusion_budget(texts, max_chars)
    units, variants, owner = occlusion_plan(texts, least)
    if not variants:
        raise ValueError(
            f"input attribution found no word to occlude in the {len(texts)} texts (content words held by at least "
            f"{least} of them); give more texts with content words, or min_count=1"
        )
    owner_rows = np.asarray(owner)
    rows = 2 * (len(texts) + len(variants))
    check_rows(readout, vectors, rows, "input attribution", budget_minutes, less="fewer texts (size=)")
    if readout.objective != CLASSIFICATION:
        return _target_attribution(readout, vectors, texts, units, variants, owner_rows, least)
    shown = "attribution" if progress else None
    full_p = probabilities(readout, texts, vectors, shown)
    var_p = probabilities(readout, variants, vectors, shown)
    full_z = zero_shot_probabilities(readout, texts, "attribution", progress)
    var_z = zero_shot_probabilities(readout, variants, "attribution", progress)
    table = aggregate(readout.labels, units, full_p[owner_rows] - var_p, full_z[owner_rows] - var_z, len(texts))
    return Effects(kind="attribution", labels=list(readout.labels), table=table, texts=len(texts), min_count=least)


def rows_scored(readout: Readout, attribution_texts: int = 0, trigger_tokens: int = 0) -> int:
    """The texts input attribution over ``attribution_texts`` test texts and a trigger scan of ``trigger_tokens``
    tokens score, counted before any is scored (each twice: through the prompt and zero-shot, a cached side
    included).

    Raises:
        ValueError: the occluded variants would pass the occlusion budget (:func:`check_occlusion_budget`).
    """
    rows = 0
    if attribution_texts:
        texts = readout.splits.test.texts[:attribution_texts]
        check_occlusion_budget(texts)
        _, variants, _ = occlusion_plan(texts, min(2, max(1, len(texts))))
        rows += 2 * (len(texts) + len(variants))
    if trigger_tokens:
        rows += 2 * trigger_tokens * len(scan_texts(readout))
    return rows


def _target_attribution(
    readout: Readout,
    vectors: np.ndarray,
    texts: list[str],
    units: list[str],
    variants: list[str],
    owner: np.ndarray,
    least: int,
) -> Effects:
    """:func:`input_attribution` under an objective other than classification (see the module docstring): the first
    texts of the test split, each read against its own target (a text, or under a caller's loss its label or
    target), an effect being the change in minus the example's loss (the target's log-likelihood)."""
    test = readout.splits.test
    if texts != test.texts[: len(texts)]:
        raise ValueError(
            f"input attribution under the objective {readout.objective!r} reads each text against its own target; "
            "leave texts= out (the test split's first texts are read, with their targets)"
        )

    kept = [i for i, v in enumerate(variants) if v.strip()]  # a text that was one word leaves nothing to read
    units, variants, owner = [units[i] for i in kept], [variants[i] for i in kept], owner[kept]
    mine, aims = list(range(len(texts))), [int(i) for i in owner]
    effects = [
        minus_loss(readout, vectors, texts, mine, on)[owner] - minus_loss(readout, vectors, variants, aims, on)
        for on in (True, False)
    ]
    label = loss_label(readout)
    table = aggregate([label], units, effects[0][:, None], effects[1][:, None], len(texts))
    return Effects(
        kind="attribution",
        labels=[label],
        table=table,
        texts=len(texts),
        min_count=least,
        objective=readout.objective,
    )
