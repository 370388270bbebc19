"""Findings 1 to 5 of Lester et al. (2021), section 7: where learned prompts sit, each against the runs' own init
and a random control (see :mod:`.context` for the shared reading)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from probe.core.stats import pooled_mean, verdict
from probe.experiments.replicate.context import (
    MOVED_COS,
    SMALLEST_EFFECT,
    FindingsContext,
    Reading,
    by_init,
    characteristic_words,
    fmt,
    init_lines,
    make_finding,
    read,
)
from probe.experiments.replicate.record import Finding
from probe.readings.drift import RunSummary
from probe.readings.measures import duplicate_top1, neighbour_coherence


def semantic_clusters(c: FindingsContext) -> Finding:
    """1. Semantic clusters: learned top-k neighbourhoods against their own init and the random-vector control."""
    control_random = float(neighbour_coherence(c.index, c.random_ids).mean())
    control_rows = float(neighbour_coherence(c.index, c.random_rows).mean())
    ceiling = float(neighbour_coherence(c.index, c.vocab_ids).mean())  # a real token's own top-k

    def reading_of(readings: list[RunSummary]) -> Reading:
        return read(c, readings, lambda r: r.coherence, lambda r: r.init_coherence, {"random vectors": control_random})

    reading = reading_of(c.readings)
    smallest = SMALLEST_EFFECT["coherence"]
    per_init = by_init(c, c.readings, reading_of, smallest)
    return make_finding(
        1,
        "Semantic clusters",
        "the top-5 neighbours of learned tokens form tight semantic clusters; random vectors show none",
        f"mean pairwise cosine of top-{c.k}: learned {fmt(reading.estimate, reading.interval)}, the same runs at "
        f"init {reading.at_init:.3f}, random-vector control {control_random:.3f}, {c.k} random tokens "
        f"{control_rows:.3f}, a frequent token's own neighbourhood {ceiling:.3f}" + init_lines(per_init),
        reading,
        smallest,
        per_init,
        control_random,
        control_rows=control_rows,
        vocab_neighbourhoods=ceiling,
    )


def labels_persist(c: FindingsContext) -> Finding | None:
    """2. Class labels persist: class-label positions keep their own label in the top-k, after moving."""
    readings = [r for r in c.readings if r.init == "class-label"]
    if not readings:
        return None

    def kept(ids: np.ndarray, length: int) -> np.ndarray:
        return np.array(
            [float(bool(c.label_ids[label] & set(ids[i].tolist()))) for i, label in enumerate(c.labels[:length])]
        )

    reading = read(
        c,
        readings,
        lambda r: kept(r.final_ids, r.length),
        lambda r: kept(r.init_ids, r.length),
        {"random vectors": c.chance},
        against_init=False,  # at init every label position holds its label: the ceiling, not a control to beat
        travel_of=lambda r: r.cos_to_init[: len(c.labels)],  # the label positions only
    )
    smallest = SMALLEST_EFFECT["share"]
    moved = reading.travel < MOVED_COS
    decided = verdict(list(reading.margins.values()), smallest)
    finding = make_finding(
        2,
        "Class labels persist",
        "with class-label init, the class label often stays the nearest neighbour after training",
        f"{fmt(reading.estimate, reading.interval, pct=True)} of label positions keep their own label in the "
        f"top-{c.k} (at init {reading.at_init:.0%}; random vectors have any label {c.chance:.0%}); the label "
        f"positions' mean cosine to their init is {reading.travel:.2f}"
        + ("" if moved else f", above {MOVED_COS}: they barely trained, so what they keep is their init"),
        reading,
        smallest,
        {"class-label": {**reading.as_dict(), "verdict": decided if moved else "unclear"}},
        c.chance,
        positions=int(sum(min(r.length, len(c.labels)) for r in readings)),
        moved=moved,
    )
    if not moved and finding.verdict == "yes":
        finding.verdict = "unclear"
    return finding


def labels_elsewhere(c: FindingsContext) -> Finding | None:
    """3. Labels appear under other inits, beyond where those inits started."""
    readings = [r for r in c.readings if r.init != "class-label"]
    if not readings:
        return None

    def has_label(ids: np.ndarray) -> np.ndarray:
        return np.array([float(bool(c.all_label_ids & set(row.tolist()))) for row in ids])

    vocab_chance = float(has_label(c.vocab_ids).mean())

    def reading_of(subset: list[RunSummary]) -> Reading:
        return read(
            c,
            subset,
            lambda r: has_label(r.final_ids),
            lambda r: has_label(r.init_ids),
            {"random vectors": c.chance, "vocabulary rows": vocab_chance},
        )

    reading = reading_of(readings)
    smallest = SMALLEST_EFFECT["share"]
    per_init = by_init(c, readings, reading_of, smallest)
    return make_finding(
        3,
        "Labels appear under other inits",
        "class labels also appear among the neighbours of prompts not initialised from them",
        f"{fmt(reading.estimate, reading.interval, pct=True)} of positions have a label token in the top-{c.k} "
        f"(the same runs at init {reading.at_init:.0%}; random vectors {c.chance:.0%}, sampled vocabulary rows "
        f"{vocab_chance:.0%})" + init_lines(per_init, pct=True),
        reading,
        smallest,
        per_init,
        c.chance,
        control_vocab=vocab_chance,
    )


def _duplicates(ids: np.ndarray) -> np.ndarray:
    return np.array([float(bool(d)) for d in duplicate_top1(ids[:, 0])])


def repeated_neighbours(c: FindingsContext) -> Finding | None:
    """4. Long prompts repeat neighbours: shared top-1 at the longest length, against init and random vectors."""
    readings = [r for r in c.readings if r.length >= 2]
    if not readings:
        return None
    longest = max(r.length for r in readings)
    # the paper's random vectors, in prompts of the same length: how often a top-1 repeats by chance
    groups = [c.random_ids[i : i + longest] for i in range(0, len(c.random_ids) - longest + 1, longest)]
    random_dup = float(np.mean([_duplicates(g).mean() for g in groups])) if groups else float("nan")
    controls = {"random vectors": random_dup} if np.isfinite(random_dup) else {}

    def reading_of(subset: list[RunSummary]) -> Reading:
        return read(c, subset, lambda r: _duplicates(r.final_ids), lambda r: _duplicates(r.init_ids), controls)

    long_runs = [r for r in readings if r.length == longest]
    reading = reading_of(long_runs)
    smallest = SMALLEST_EFFECT["share"]
    per_init = by_init(c, long_runs, reading_of, smallest)
    by_length = [
        {
            "length": length,
            "final": pooled_mean([_duplicates(r.final_ids) for r in readings if r.length == length]),
            "initial": pooled_mean([_duplicates(r.init_ids) for r in readings if r.length == length]),
        }
        for length in sorted({r.length for r in readings})
    ]
    finals = [row["final"] for row in by_length]
    grows = len(finals) > 1 and all(b >= a for a, b in itertools.pairwise(finals)) and finals[-1] > finals[0]
    return make_finding(
        4,
        "Long prompts repeat neighbours",
        "with long prompts, several positions share the same nearest neighbour",
        "share of positions whose top-1 is shared, by length: "
        + ", ".join(f"p={row['length']}: {row['final']:.0%} (at init {row['initial']:.0%})" for row in by_length)
        + f"; at p={longest}: {fmt(reading.estimate, reading.interval, pct=True)}, random vectors "
        f"{random_dup:.0%}; grows with length: {'yes' if grows else 'no'}" + init_lines(per_init, pct=True),
        reading,
        smallest,
        per_init,
        random_dup,
        by_length=by_length,
        longest=longest,
        grows_with_length=grows,
    )


def domain_words(c: FindingsContext) -> Finding:
    """5. Domain words: share of neighbours that are the data's characteristic words, beyond init and chance."""
    words = characteristic_words(c.data)
    display = c.model.vocabulary

    def domain_share(ids: np.ndarray) -> np.ndarray:
        return np.array([np.mean([display.surface(int(t)) in words for t in row]) for row in ids])

    control = float(domain_share(c.vocab_ids).mean())

    def reading_of(subset: list[RunSummary]) -> Reading:
        return read(
            c,
            subset,
            lambda r: domain_share(r.final_ids),
            lambda r: domain_share(r.init_ids),
            {"vocabulary rows": control},
        )

    reading = reading_of(c.readings)
    smallest = SMALLEST_EFFECT["share"] / 2
    per_init = by_init(c, c.readings, reading_of, smallest)
    counter: Counter[str] = Counter()
    for r in c.readings:
        counter.update({display.surface(int(t)) for t in r.final_ids.ravel()} & words)
    recurring = [(w, n) for w, n in counter.most_common() if n >= 2][:15]
    return make_finding(
        5,
        "Domain words",
        "neighbours include domain words of the task (e.g. 'science', 'technology' for topic data)",
        f"{fmt(reading.estimate, reading.interval, pct=True)} of top-{c.k} neighbours are characteristic words "
        f"of the data (top TF-IDF per class); the same runs at init {reading.at_init:.0%}, sampled vocabulary "
        f"rows {control:.0%}. Domain words recurring across runs: "
        + (", ".join(f"{w} ({n})" for w, n in recurring[:10]) or "none")
        + init_lines(per_init, pct=True),
        reading,
        smallest,
        per_init,
        None,
        control_vocab=control,
        recurring=recurring,
        characteristic_words=sorted(words),
    )
