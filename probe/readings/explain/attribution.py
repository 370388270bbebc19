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
- :func:`trigger_scan`: each of the N most frequent tokens (and any the caller adds) appended to a few short
  held-out texts, scored in batched passes. A token's effect on class c is the mean of p(c | text + token) -
  p(c | text). It gives per class the tokens that push predictions toward it most under the prompt.

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

import dataclasses
import hashlib
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from probe.core.data import TARGET_CLASS
from probe.core.io import cache_file
from probe.core.names import CLASSIFICATION, TARGET_LIKELIHOOD
from probe.core.softprompt import as_prompt
from probe.core.tokens import text_list
from probe.formats.effects import Effects
from probe.readings.explain.readout import Readout, progress_bar

LOSS_LABEL = "<loss>"
"""The one label of input attribution under a caller's loss: an effect is a change in minus the example's loss."""

FUNCTION_WORDS = 100
"""The most frequent English words (wordfreq) that occlusion skips."""
CACHE_FORMAT = 1
OCCLUSION_BUDGET = 200_000_000
"""Characters of occluded variants input attribution makes at most by default (about 200 MB of text; 200 news
texts take about 1 MB): a 1 MB text would otherwise ask for tens of GB."""


def _probabilities(readout: Readout, texts: list[str], vectors: np.ndarray | None, progress: str | None) -> np.ndarray:
    """float [N, L]: class probabilities of ``texts`` with the prompt ``vectors`` (None: the frozen model)."""
    length = 1 if vectors is None else vectors.shape[0]
    task = readout.task(length)
    if vectors is not None:
        readout.set_prompt(vectors)  # sets the prompt (and checks its dimension)
    chunk, out = 4096, []
    bar = progress_bar(len(texts), progress or "", progress is not None)
    for start in range(0, len(texts), chunk):
        scores = task.score_all(texts[start : start + chunk], prompt=vectors is not None) * task.logit_scale
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        out.append(p / p.sum(axis=1, keepdims=True))
        bar.update(min(chunk, len(texts) - start))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, len(readout.labels)), np.float32)


def _zero_shot(readout: Readout, texts: list[str], kind: str, progress: bool) -> np.ndarray:
    """The frozen model's probabilities of ``texts``, from probe's cache when it has them."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    key = {"format": CACHE_FORMAT, **readout.key(), "texts_sha256": digest, "rows": len(texts)}
    entry = cache_file(f"{kind}-zero-shot", key)
    hit = entry.read(
        check=lambda a: a["p"].shape == (len(texts), len(readout.labels)) and bool(np.isfinite(a["p"]).all())
    )
    if hit is not None:
        return hit["p"]
    p = _probabilities(readout, texts, None, f"{kind}, frozen model" if progress else None)
    entry.write({"p": p.astype(np.float32)})
    return p.astype(np.float32)


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


def _aggregate(labels: list[str], units: list[str], prompted: np.ndarray, zero: np.ndarray, texts: int) -> pd.DataFrame:
    """Effects per (unit, label) from per-variant effects [V, L], each a mean over all ``texts`` read (a text
    without the unit adds 0), so a unit is ranked by its influence on the split, and one text cannot put a rare
    word first; ``mean_where_present`` is the mean over the texts that hold it."""
    frame = pd.DataFrame({"unit": np.repeat(units, len(labels)), "label": np.tile(labels, len(units))})
    frame["prompted"] = prompted.reshape(-1)
    frame["zero_shot"] = zero.reshape(-1)
    table = frame.groupby(["unit", "label"], sort=True).agg(
        prompted=("prompted", "sum"), zero_shot=("zero_shot", "sum"), count=("prompted", "size")
    )
    table = table.reset_index()
    table["mean_where_present"] = (table["prompted"] - table["zero_shot"]) / table["count"]
    table[["prompted", "zero_shot"]] /= texts
    table["effect"] = table["prompted"] - table["zero_shot"]
    return table[["unit", "label", "effect", "prompted", "zero_shot", "count", "mean_where_present"]]


def input_attribution(
    prompt: Any,
    readout: Readout,
    *,
    texts: list[str] | None = None,
    size: int = 200,
    min_count: int = 2,
    max_chars: int = OCCLUSION_BUDGET,
    progress: bool = False,
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

    Raises:
        ValueError: no text with a word to occlude, a prompt of another dimension, or variants over ``max_chars``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size is {size!r}; expected a positive number of test texts to read")
    texts = text_list(texts, "texts") if texts is not None else readout.splits.test.texts[:size]
    vectors = as_prompt(prompt).vectors
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
    if readout.objective != CLASSIFICATION:
        return _target_attribution(readout, vectors, texts, units, variants, owner_rows, least)
    shown = "attribution" if progress else None
    full_p = _probabilities(readout, texts, vectors, shown)
    var_p = _probabilities(readout, variants, vectors, shown)
    full_z = _zero_shot(readout, texts, "attribution", progress)
    var_z = _zero_shot(readout, variants, "attribution", progress)
    table = _aggregate(readout.labels, units, full_p[owner_rows] - var_p, full_z[owner_rows] - var_z, len(texts))
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
        _minus_loss(readout, vectors, texts, mine, on)[owner] - _minus_loss(readout, vectors, variants, aims, on)
        for on in (True, False)
    ]
    label = _loss_label(readout)
    table = _aggregate([label], units, effects[0][:, None], effects[1][:, None], len(texts))
    return Effects(
        kind="attribution",
        labels=[label],
        table=table,
        texts=len(texts),
        min_count=least,
        objective=readout.objective,
    )


def _minus_loss(readout: Readout, vectors: np.ndarray, rows: list[str], owners: list[int], prompt: bool) -> np.ndarray:
    """float [N]: minus the loss of each of ``rows`` read against the target (or label) of its owner, a test row,
    with the prompt ``vectors`` or on the frozen model."""
    data = dataclasses.replace(readout.splits.test.subset(owners), texts=rows)
    task = readout.set_prompt(vectors) if prompt else readout.task(1)
    return -task.outcome(data, prompt=prompt)[1]


def _loss_label(readout: Readout) -> str:
    """The one label of an effects table under a loss objective."""
    return TARGET_CLASS if readout.objective == TARGET_LIKELIHOOD else LOSS_LABEL


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
) -> Effects:
    """The trigger scan (see the module docstring).

    Args:
        prompt: the soft prompt.
        readout: the model, data and task it was trained with.
        tokens: how many of the most frequent tokens to scan.
        include: words scanned besides them (a suspected trigger).
        texts: the texts each token is appended to (default :func:`scan_texts`).
        progress: show progress bars.

    Raises:
        ValueError: a non-positive number of tokens; ``texts`` given under a loss objective (each text is read
            against its own target: the scan's texts are cut from the test split).
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens is {tokens!r}; expected a positive number of tokens to scan")
    include = text_list(include, "include")  # the arguments first, before the readout is used
    given = text_list(texts, "texts") if texts is not None else None
    vectors = as_prompt(prompt).vectors
    if readout.objective != CLASSIFICATION:
        if given is not None:
            raise ValueError(
                f"the trigger scan under the objective {readout.objective!r} reads each text against its own "
                "target; leave texts= out (short texts cut from the test split are read, with their targets)"
            )
        return _loss_triggers(readout, vectors, scan_candidates(readout, tokens, include), progress)
    base = given if given is not None else scan_texts(readout)
    words = scan_candidates(readout, tokens, include)
    variants = [f"{text} {word}" for word in words for text in base]
    shown = "trigger scan" if progress else None
    base_p = _probabilities(readout, base, vectors, shown)
    var_p = _probabilities(readout, variants, vectors, shown)
    base_z = _zero_shot(readout, base, "triggers", progress)
    var_z = _zero_shot(readout, variants, "triggers", progress)
    rows = np.tile(np.arange(len(base)), len(words))
    units = [word for word in words for _ in base]
    table = _aggregate(readout.labels, units, var_p - base_p[rows], var_z - base_z[rows], len(base))
    return Effects(kind="triggers", labels=list(readout.labels), table=table, texts=len(base))


def _loss_triggers(readout: Readout, vectors: np.ndarray, words: list[str], progress: bool) -> Effects:
    """:func:`trigger_scan` under a loss objective: a token's effect is the mean over the scan's texts of the change
    in minus the loss (each text read against its own test row's target) when the token is appended, under the
    prompt minus on the frozen model; the table's one label is the objective's (:func:`_loss_label`)."""
    rows = scan_rows(readout)
    owners, base = [r for r, _ in rows], [t for _, t in rows]
    variants = [f"{text} {word}" for word in words for text in base]
    aims = owners * len(words)
    repeat = np.tile(np.arange(len(base)), len(words))
    bar = progress_bar(2, "trigger scan", progress)
    effects = []
    for on in (True, False):
        before = _minus_loss(readout, vectors, base, owners, on)
        effects.append(_minus_loss(readout, vectors, variants, aims, on) - before[repeat])
        bar.update(1)
    bar.close()
    units = [word for word in words for _ in base]
    label = _loss_label(readout)
    table = _aggregate([label], units, effects[0][:, None], effects[1][:, None], len(base))
    return Effects(kind="triggers", labels=[label], table=table, texts=len(base), objective=readout.objective)
