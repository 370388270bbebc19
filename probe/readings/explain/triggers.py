"""The trigger scan: each of the N most frequent tokens (and any the caller adds) appended to a few short held-out
texts, scored in batched passes, read as :mod:`.attribution` reads occlusions (under the prompt minus on the frozen
model; under a loss objective, the change in minus each text's own loss). See :mod:`.attribution`'s docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probe.core.names import CLASSIFICATION
from probe.core.progress import progress_bar
from probe.core.tokens import text_list
from probe.formats.effects import Effects
from probe.readings.explain.contrast import aggregate, loss_label, minus_loss, probabilities, zero_shot_probabilities
from probe.readings.explain.costs import check_rows
from probe.readings.explain.readout import Readout, prompt_of


def scan_texts(readout: Readout, count: int = 2, words: int = 8) -> list[str]:
    """``count`` short held-out texts for the trigger scan: the first test texts of different classes, cut to
    their first ``words`` words (short texts keep a scan of 10,000 tokens within minutes)."""
    return [text for _, text in scan_rows(readout, count, words)]


def scan_rows(readout: Readout, count: int = 2, words: int = 8) -> list[tuple[int, str]]:
    """:func:`scan_texts` with the test row each text was cut from (whose target it is read against under a loss
    objective)."""
    test = readout.splits.test
    chosen: list[tuple[int, str]] = []
    seen: set[str] = set()
    for row, (text, label) in enumerate(zip(test.texts, test.labels, strict=True)):
        if label not in seen and len(chosen) < count:
            chosen.append((row, " ".join(text.split()[:words])))
            seen.add(label)
    for row, text in enumerate(test.texts):  # fewer classes than texts asked for
        if len(chosen) >= count:
            break
        cut = " ".join(text.split()[:words])
        if cut not in [c for _, c in chosen]:
            chosen.append((row, cut))
    return chosen


def scan_candidates(readout: Readout, tokens: int, include: list[str] | None = None) -> list[str]:
    """The ``tokens`` most frequent searchable tokens as words (their surface forms, each once), then ``include``."""
    from probe.core.tokens import frequency_ranks

    model = readout.model
    allowed = np.zeros(model.vocab_size, dtype=bool)
    allowed[readout.index.token_ids] = True
    words: list[str] = []
    seen: set[str] = set()
    for token in frequency_ranks(model.vocabulary, allowed):
        word = model.vocabulary.surface(int(token)).strip()
        if word and word not in seen and not word.startswith("##"):
            words.append(word)
            seen.add(word)
            if len(words) >= tokens:
                break
    return words + [w for w in include or [] if w not in seen]


def trigger_scan(
    prompt: Any,
    readout: Readout,
    *,
    tokens: int = 10_000,
    include: list[str] | None = None,
    texts: list[str] | None = None,
    progress: bool = False,
    budget_minutes: float | None = None,
) -> Effects:
    """The trigger scan (see the module docstring).

    Args:
        prompt: the soft prompt.
        readout: the model, data and task it was trained with.
        tokens: how many of the most frequent tokens to scan.
        include: words scanned besides them (a suspected trigger).
        texts: the texts each token is appended to (default :func:`scan_texts`).
        progress: show progress bars.
        budget_minutes: refuse, before any is scored, when scoring every scan text with every token (through the
            prompt and on the frozen model) would take longer (None: no budget).

    Raises:
        ValueError: a non-positive number of tokens; their scoring over ``budget_minutes``; ``texts`` given under a
            loss objective (each text is read against its own target: the scan's texts are cut from the test
            split).
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens is {tokens!r}; expected a positive number of tokens to scan")
    include = text_list(include, "include")  # the arguments first, before the readout is used
    given = text_list(texts, "texts") if texts is not None else None
    if given == []:
        raise ValueError("texts is empty; give the texts each token is appended to, or leave texts= out (the default)")
    vectors = prompt_of(readout, prompt).vectors
    if readout.objective != CLASSIFICATION and given is not None:
        raise ValueError(
            f"the trigger scan under the objective {readout.objective!r} reads each text against its own "
            "target; leave texts= out (short texts cut from the test split are read, with their targets)"
        )
    base = given if given is not None else scan_texts(readout)
    words = scan_candidates(readout, tokens, include)
    scored = 2 * len(base) * (len(words) + 1)
    check_rows(readout, vectors, scored, "the trigger scan", budget_minutes, less="fewer tokens")
    if readout.objective != CLASSIFICATION:
        return _loss_triggers(readout, vectors, words, progress)
    variants = [f"{text} {word}" for word in words for text in base]
    shown = "trigger scan" if progress else None
    base_p = probabilities(readout, base, vectors, shown)
    var_p = probabilities(readout, variants, vectors, shown)
    base_z = zero_shot_probabilities(readout, base, "triggers", progress)
    var_z = zero_shot_probabilities(readout, variants, "triggers", progress)
    rows = np.tile(np.arange(len(base)), len(words))
    units = [word for word in words for _ in base]
    table = aggregate(readout.labels, units, var_p - base_p[rows], var_z - base_z[rows], len(base))
    return Effects(kind="triggers", labels=list(readout.labels), table=table, texts=len(base))


def _loss_triggers(readout: Readout, vectors: np.ndarray, words: list[str], progress: bool) -> Effects:
    """:func:`trigger_scan` under a loss objective: a token's effect is the mean over the scan's texts of the change
    in minus the loss (each text read against its own test row's target) when the token is appended, under the
    prompt minus on the frozen model; the table's one label is the objective's (:func:`.contrast.loss_label`)."""
    rows = scan_rows(readout)
    owners, base = [r for r, _ in rows], [t for _, t in rows]
    variants = [f"{text} {word}" for word in words for text in base]
    aims = owners * len(words)
    repeat = np.tile(np.arange(len(base)), len(words))
    bar = progress_bar(2, "trigger scan", enabled=progress)
    effects = []
    for on in (True, False):
        before = minus_loss(readout, vectors, base, owners, on)
        effects.append(minus_loss(readout, vectors, variants, aims, on) - before[repeat])
        bar.update(1)
    bar.close()
    units = [word for word in words for _ in base]
    label = loss_label(readout)
    table = aggregate([label], units, effects[0][:, None], effects[1][:, None], len(base))
    return Effects(kind="triggers", labels=[label], table=table, texts=len(base), objective=readout.objective)
