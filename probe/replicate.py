"""``probe replicate``: Lester et al. (2021) section 7's claims about learned prompts, as measured numbers.

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

import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.data import BUNDLED, train_test
from probe.drift import RunSummary, summarize_run
from probe.index import VocabIndex
from probe.inits import PAPER_INITS
from probe.measures import control_vectors, duplicate_top1, neighbor_coherence
from probe.models import LoadedModel, load_model
from probe.reports import FAITHFULNESS_CAVEAT
from probe.runs import Run, find_runs
from probe.tokens import label_token_ids
from probe.training import TrainConfig
from probe.util import atomic_write_json, atomic_write_text

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
RUNS = "runs"


@dataclass(frozen=True)
class ReplicateConfig:
    """What ``probe replicate`` trains and measures.

    Attributes:
        model / data: as in :class:`probe.training.TrainConfig`.
        inits: initialisations to compare.
        lengths: prompt lengths.
        seeds: seeds per (init, length).
        steps: training steps per run.
        k: neighbourhood size for the findings (the paper reads top-5).
        bootstrap: bootstrap resamples for the intervals.
    """

    model: str = "default"
    data: str = BUNDLED
    inits: tuple[str, ...] = tuple(i.value for i in PAPER_INITS)
    lengths: tuple[int, ...] = (1, 5, 20, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 150
    k: int = 5
    bootstrap: int = 2000

    @classmethod
    def quick(cls, **overrides: Any) -> ReplicateConfig:
        """The ``--quick`` grid: 2 seeds, 40 steps (its time on 2 CPU cores is in the README)."""
        return replace(cls(seeds=(0, 1), steps=40), **overrides)

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole grid."""
        out = {}
        for init in self.inits:
            for length in self.lengths:
                for seed in self.seeds:
                    out[f"{init}-p{length}-s{seed}"] = TrainConfig(
                        model=self.model,
                        data=self.data,
                        init=init,
                        length=length,
                        seed=seed,
                        steps=self.steps,
                        snapshot_every=max(1, self.steps // 2),
                        eval_every=self.steps,
                    )
        return out


def train_grid(config: ReplicateConfig, out: str | os.PathLike[str], *, progress: bool = True) -> list[Run]:
    """Train (or reuse) every run of the grid under ``out/runs``."""
    from probe.demo import ensure_runs

    model = load_model(config.model, device="cpu")
    return ensure_runs(Path(out) / RUNS, config.run_configs(), model=model, progress=progress)


# ----------------------------------------------------------------------------- statistics


def bootstrap_ci(values: np.ndarray, *, n: int = 2000, seed: int = 0, stat=np.mean) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of ``stat(values)``."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = np.array([stat(values[rng.integers(0, values.size, values.size)]) for _ in range(n)])
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def diff_ci(a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean(a) - mean(b), resampling each group."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    draws = [a[rng.integers(0, a.size, a.size)].mean() - b[rng.integers(0, b.size, b.size)].mean() for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference with the pooled standard deviation."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / max(a.size + b.size - 2, 1))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


# ----------------------------------------------------------------------------- findings


@dataclass
class Finding:
    """One row of the report."""

    number: int
    name: str
    paper: str
    measured: str
    holds: str
    runs_used: int
    values: dict[str, Any] = field(default_factory=dict)


def characteristic_words(data: str, *, per_class: int = 25) -> set[str]:
    """The top TF-IDF words of each class (classes as documents), lower-cased."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    splits = train_test(data)
    docs: dict[str, list[str]] = {name: [] for name in splits.train.label_names}
    for text, label in zip(splits.train.texts, splits.train.labels, strict=True):
        docs[label].append(text)
    vectorizer = TfidfVectorizer(stop_words="english", lowercase=True, token_pattern=r"(?u)\b[a-zA-Z]{3,}\b")
    matrix = vectorizer.fit_transform([" ".join(v) for v in docs.values()]).toarray()
    vocab = np.array(vectorizer.get_feature_names_out())
    words: set[str] = set()
    for row in matrix:
        words |= set(vocab[np.argsort(-row)[:per_class]].tolist())
    return words


def _read_runs(runs: list[Run], model: LoadedModel, index: VocabIndex, k: int) -> list[RunSummary]:
    """The finished runs' summaries (convergence is not needed here, so it is not computed)."""
    return [summarize_run(run, model, index=index, k=k, convergence=False) for run in runs if run.status == "finished"]


def _fmt_ci(value: float, ci: tuple[float, float], pct: bool = False) -> str:
    if pct:
        return f"{value:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


N_CONTROL = 500
"""Control vectors per kind (random-uniform, sampled vocabulary rows, random token sets)."""


@dataclass
class FindingsContext:
    """What every finding reads, built once: the runs' summaries, the labels, and the controls' neighbours."""

    runs: list[Run]
    model: LoadedModel
    index: VocabIndex
    data: str
    k: int
    bootstrap: int
    readings: list[RunSummary]
    labels: list[str]
    label_ids: dict[str, set[int]]
    all_label_ids: set[int]
    random_ids: np.ndarray  # int64 [N_CONTROL, k] neighbours of the paper's random vectors
    vocab_ids: np.ndarray  # int64 [N_CONTROL, k] neighbours of sampled frequent tokens
    random_rows: np.ndarray  # int64 [N_CONTROL, k] random token sets
    chance: float  # share of random vectors with a label token in their top-k


def build_context(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: str | None = None,
    model: LoadedModel | None = None,
) -> FindingsContext:
    """Read the finished runs in ``runs_dir`` and the controls once, for all findings.

    Raises:
        ValueError: no finished runs, or runs of different models.
    """
    runs = [r for r in find_runs(runs_dir) if r.status == "finished"]
    if not runs:
        raise ValueError(f"'{runs_dir}' has no finished runs; train them with `probe replicate`")
    models = {r.manifest["model"] for r in runs}
    if len(models) > 1:
        raise ValueError(f"runs in '{runs_dir}' use different models {sorted(models)}; measure one model at a time")
    model = model or load_model(next(iter(models)), device="cpu")
    index = VocabIndex.for_model(model)
    labels = runs[0].labels
    label_ids = {label: set(label_token_ids(model.tokenizer, label)) for label in labels}
    all_label_ids = set().union(*label_ids.values()) if label_ids else set()
    controls = control_vectors(model, index, N_CONTROL, seed=0)
    _, random_ids = index.search(controls["random-uniform control"], k)
    _, vocab_ids = index.search(controls["sampled-vocab control"], k)
    rng = np.random.default_rng(0)
    return FindingsContext(
        runs=runs,
        model=model,
        index=index,
        data=data or runs[0].manifest.get("config", {}).get("data", BUNDLED),
        k=k,
        bootstrap=bootstrap,
        readings=_read_runs(runs, model, index, k),
        labels=labels,
        label_ids=label_ids,
        all_label_ids=all_label_ids,
        random_ids=random_ids,
        vocab_ids=vocab_ids,
        random_rows=index.token_ids[rng.integers(0, index.size, size=(N_CONTROL, k))],
        chance=float(np.mean([bool(all_label_ids & set(row.tolist())) for row in random_ids])),
    )


def semantic_clusters(c: FindingsContext) -> Finding:
    """1. Semantic clusters: learned top-k neighbourhoods against the controls' coherence."""
    learned = np.concatenate([r.coherence for r in c.readings])
    learned = learned[np.isfinite(learned)]
    control_random = neighbor_coherence(c.index, c.random_ids)
    control_rows = neighbor_coherence(c.index, c.random_rows)
    vocab_neighbourhoods = neighbor_coherence(c.index, c.vocab_ids)  # a real token's own top-k: the ceiling
    by_init = {
        init: float(np.nanmean(np.concatenate([r.coherence for r in c.readings if r.init == init])))
        for init in sorted({r.init for r in c.readings})
    }
    d = cohens_d(learned, control_random)
    ci = diff_ci(learned, control_random, n=c.bootstrap)
    return Finding(
        1,
        "Semantic clusters",
        "the top-5 neighbours of learned tokens form tight semantic clusters; random vectors show none",
        f"mean pairwise cosine of top-{c.k}: learned {learned.mean():.3f}, paper's random-vector control "
        f"{control_random.mean():.3f}, {c.k} random tokens {control_rows.mean():.3f}, a frequent token's own "
        f"neighbourhood {vocab_neighbourhoods.mean():.3f}; learned - random-vector control "
        f"{learned.mean() - control_random.mean():.3f} [{ci[0]:.3f}, {ci[1]:.3f}], Cohen's d {d:.2f}; by init: "
        + ", ".join(f"{i} {v:.3f}" for i, v in by_init.items()),
        "yes" if ci[0] > 0 and learned.mean() > control_rows.mean() else "no",
        len(c.readings),
        {
            "learned": float(learned.mean()),
            "control_random": float(control_random.mean()),
            "control_rows": float(control_rows.mean()),
            "vocab_neighbourhoods": float(vocab_neighbourhoods.mean()),
            "diff_ci": ci,
            "cohens_d": d,
            "by_init": by_init,
        },
    )


def labels_persist(c: FindingsContext) -> Finding | None:
    """2. Class labels persist: class-label positions keep their own label in the top-k."""
    kept = []
    for r in c.readings:
        if r.init != "class-label":
            continue
        for i, label in enumerate(c.labels[: r.length]):
            kept.append(float(bool(c.label_ids[label] & set(r.final_ids[i].tolist()))))
    kept_arr = np.array(kept)
    if kept_arr.size:
        ci = bootstrap_ci(kept_arr, n=c.bootstrap)
        return Finding(
            2,
            "Class labels persist",
            "with class-label init, the class label often stays the nearest neighbour after training",
            f"{_fmt_ci(kept_arr.mean(), ci, pct=True)} of label positions keep their own label in the top-{c.k} "
            f"(random-vector control: {c.chance:.0%} have any label)",
            "yes" if ci[0] >= 0.5 else ("partly" if ci[0] > c.chance else "no"),
            sum(1 for r in c.readings if r.init == "class-label"),
            {"share": float(kept_arr.mean()), "ci": ci, "control": c.chance, "positions": int(kept_arr.size)},
        )
    return None


def labels_elsewhere(c: FindingsContext) -> Finding | None:
    """3. Labels appear under other inits."""
    other = [
        float(bool(c.all_label_ids & set(row.tolist())))
        for r in c.readings
        if r.init != "class-label"
        for row in r.final_ids
    ]
    other_arr = np.array(other)
    vocab_chance = float(np.mean([bool(c.all_label_ids & set(row.tolist())) for row in c.vocab_ids]))
    if other_arr.size:
        ci = bootstrap_ci(other_arr, n=c.bootstrap)
        return Finding(
            3,
            "Labels appear under other inits",
            "class labels also appear among the neighbours of prompts not initialised from them",
            f"{_fmt_ci(other_arr.mean(), ci, pct=True)} of positions have a label token in the top-{c.k} "
            f"(controls: random vectors {c.chance:.0%}, sampled vocabulary rows {vocab_chance:.0%})",
            "yes" if ci[0] > max(c.chance, vocab_chance) else "no",
            sum(1 for r in c.readings if r.init != "class-label"),
            {"share": float(other_arr.mean()), "ci": ci, "control_random": c.chance, "control_vocab": vocab_chance},
        )
    return None


def repeated_neighbours(c: FindingsContext) -> Finding | None:
    """4. Long prompts repeat neighbours: shared top-1 by length, against the same runs at init."""
    dup_rows = []
    for r in c.readings:
        if r.length < 2:
            continue
        final_dup = np.array([bool(x) for x in duplicate_top1(r.final_ids[:, 0])], float)
        init_dup = np.array([bool(x) for x in duplicate_top1(r.init_ids[:, 0])], float)
        dup_rows.append(
            {
                "init": r.init,
                "length": r.length,
                "seed": r.seed,
                "final": final_dup.mean(),
                "initial": init_dup.mean(),
                "values": final_dup,
            }
        )
    dup = pd.DataFrame(dup_rows)
    if not dup.empty:
        by_length = dup.groupby("length")[["final", "initial"]].mean()
        longest, shortest = by_length.index.max(), by_length.index.min()
        long_vals = np.concatenate(dup[dup["length"] == longest]["values"].to_list())
        ci = bootstrap_ci(long_vals, n=c.bootstrap)
        grows = (
            by_length["final"].is_monotonic_increasing
            and by_length.loc[longest, "final"] > by_length.loc[shortest, "final"]
        )
        return Finding(
            4,
            "Long prompts repeat neighbours",
            "with long prompts, several positions share the same nearest neighbour",
            "share of positions whose top-1 is shared, by length: "
            + ", ".join(f"p={p}: {row.final:.0%} (at init {row.initial:.0%})" for p, row in by_length.iterrows())
            + f"; at p={longest}: {_fmt_ci(long_vals.mean(), ci, pct=True)}",
            "yes" if grows and ci[0] > by_length.loc[longest, "initial"] else ("partly" if grows else "no"),
            len(dup),
            {"by_length": by_length.reset_index().to_dict("records"), "ci_longest": ci},
        )
    return None


def domain_words(c: FindingsContext) -> Finding:
    """5. Domain words: share of neighbours that are the data's characteristic words."""
    words = characteristic_words(c.data)
    display = c.model.vocabulary

    def domain_share(ids: np.ndarray) -> np.ndarray:
        return np.array([np.mean([display.surface(int(t)) in words for t in row]) for row in ids])

    learned_share = np.concatenate([domain_share(r.final_ids) for r in c.readings])
    control_share = domain_share(c.vocab_ids)
    counter: Counter[str] = Counter()
    for r in c.readings:
        counter.update({display.surface(int(t)) for t in r.final_ids.ravel()})
    recurring = [(w, c) for w, c in counter.most_common() if c >= 2][:15]
    ci = diff_ci(learned_share, control_share, n=c.bootstrap)
    return Finding(
        5,
        "Domain words",
        "neighbours include domain words of the task (e.g. 'science', 'technology' for topic data)",
        f"{learned_share.mean():.1%} of top-{c.k} neighbours are characteristic words of the data (top TF-IDF per "
        f"class), against {control_share.mean():.1%} for sampled vocabulary rows; difference "
        f"[{ci[0]:.1%}, {ci[1]:.1%}]. Recurring across runs: " + ", ".join(f"{w} ({c})" for w, c in recurring[:10]),
        "yes" if ci[0] > 0 else "no",
        len(c.readings),
        {
            "learned": float(learned_share.mean()),
            "control": float(control_share.mean()),
            "diff_ci": ci,
            "recurring": recurring,
            "characteristic_words": sorted(words),
        },
    )


def accuracy_by_length(c: FindingsContext) -> tuple[Finding, pd.DataFrame]:
    """6. Accuracy by length and init, soft and discretised (with the table)."""
    acc = pd.DataFrame(
        [
            {
                "init": r.init,
                "length": r.length,
                "seed": r.seed,
                "accuracy": r.accuracy,
                "discrete_accuracy": r.discrete_accuracy,
                "zero_shot": r.zero_shot,
            }
            for r in c.readings
        ]
    )
    table = (
        acc.groupby(["init", "length"])
        .agg(
            accuracy=("accuracy", "mean"),
            accuracy_sd=("accuracy", "std"),
            discrete=("discrete_accuracy", "mean"),
            zero_shot=("zero_shot", "mean"),
            seeds=("seed", "count"),
        )
        .reset_index()
    )
    gap = float((acc["accuracy"] - acc["discrete_accuracy"]).mean())
    best = table.loc[table["accuracy"].idxmax()]
    zero = float(acc["zero_shot"].mean())
    finding = Finding(
        6,
        "Accuracy by length and init",
        "longer prompts and class-label init help (at small scale); random-uniform init is worst",
        f"best {best['init']} p={int(best['length'])}: {best['accuracy']:.3f}; zero-shot {zero:.3f}; "
        f"mean gap soft - discretised {gap:+.3f}. By init: "
        + ", ".join(f"{i} {v:.3f}" for i, v in acc.groupby("init")["accuracy"].mean().items()),
        "see table",
        len(c.readings),
        {"gap_soft_minus_discrete": gap, "zero_shot": zero},
    )
    return finding, table


def measure_findings(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: str | None = None,
    model: LoadedModel | None = None,
) -> tuple[list[Finding], pd.DataFrame, dict[str, Any]]:
    """Measure the six findings from the finished runs in ``runs_dir`` alone.

    Returns:
        (findings, accuracy table by init and length, context: model, data, seeds, settings, controls).

    Raises:
        ValueError: no finished runs, or runs of different models.
    """
    c = build_context(runs_dir, k=k, bootstrap=bootstrap, data=data, model=model)
    findings = [semantic_clusters(c), labels_persist(c), labels_elsewhere(c), repeated_neighbours(c), domain_words(c)]
    accuracy, table = accuracy_by_length(c)
    found = [f for f in [*findings, accuracy] if f is not None]
    readings, runs = c.readings, c.runs
    seeds = sorted({r.seed for r in readings if r.seed is not None})
    context = {
        "model": c.model.name,
        "data": c.data,
        "runs": len(readings),
        "seeds": seeds,
        "inits": sorted({r.init for r in readings}),
        "lengths": sorted({r.length for r in readings}),
        "steps": sorted({int(run.manifest.get("steps", 0)) for run in runs if run.status == "finished"}),
        "k": c.k,
        "bootstrap": c.bootstrap,
        "controls": f"{N_CONTROL} random-uniform [-0.5, 0.5] vectors and {N_CONTROL} rows of the 5,000 most "
        "frequent tokens, seed 0",
    }
    return found, table, context


def render(findings: list[Finding], table: pd.DataFrame, context: dict[str, Any]) -> str:
    """The markdown report."""
    lines = [
        "# Lester et al. (2021), section 7, measured",
        "",
        f"Model `{context['model']}`, data `{context['data']}`, {context['runs']} runs: inits "
        f"{', '.join(context['inits'])} x lengths {context['lengths']} x seeds {context['seeds']}, "
        f"{context['steps']} steps. Neighbourhoods of k={context['k']} from the final snapshots; intervals are "
        f"95% percentile bootstraps ({context['bootstrap']} resamples). Controls: {context['controls']}.",
        "",
        "| # | finding | paper says | measured here | holds? | runs used |",
        "|---:|---|---|---|---|---:|",
    ]
    for f in findings:
        lines.append(f"| {f.number} | {f.name} | {f.paper} | {f.measured} | {f.holds} | {f.runs_used} |")
    lines += [
        "",
        "## Accuracy by init and length (test split)",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Caveats",
        "",
        "- The default model is a 22M-parameter sentence encoder (all-MiniLM-L6-v2) classifying by cosine to "
        "label-name embeddings, not T5-XXL generating labels; the paper's claims are about much larger models.",
        f"- {FAITHFULNESS_CAVEAT}",
        "",
    ]
    return "\n".join(lines)


def replicate(config: ReplicateConfig, out: str | os.PathLike[str], *, progress: bool = True) -> str:
    """Train the grid, measure the findings, and write ``report.md`` and ``report.json`` into ``out``."""
    started = time.time()
    train_grid(config, out, progress=progress)
    return write_report(config, out, started=started)


def write_report(config: ReplicateConfig, out: str | os.PathLike[str], *, started: float | None = None) -> str:
    """Measure the findings from ``out/runs`` and write ``report.md``, ``report.json`` and the figures."""
    started = started if started is not None else time.time()
    findings, table, context = measure_findings(
        Path(out) / RUNS, k=config.k, bootstrap=config.bootstrap, data=config.data
    )
    context["config"] = dataclasses.asdict(config)
    context["seconds"] = round(time.time() - started, 1)
    text = render(findings, table, context)
    atomic_write_text(Path(out) / REPORT_MD, text)
    atomic_write_json(
        Path(out) / REPORT_JSON,
        json.loads(
            json.dumps(
                {
                    "context": context,
                    "findings": [dataclasses.asdict(f) for f in findings],
                    "accuracy": table.to_dict("records"),
                },
                default=_jsonable,
            )
        ),
    )
    _figures(table, findings, Path(out))
    return text


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _figures(table: pd.DataFrame, findings: list[Finding], out: Path) -> None:
    import plotly.express as px

    fig = px.line(
        table,
        x="length",
        y="accuracy",
        color="init",
        markers=True,
        log_x=True,
        title="Test accuracy by prompt length and init",
    )
    atomic_write_text(out / "accuracy.html", fig.to_html(include_plotlyjs="cdn"))
    dup = next((f for f in findings if f.number == 4), None)
    if dup:
        frame = pd.DataFrame(dup.values["by_length"])
        fig = px.bar(
            frame,
            x="length",
            y=["initial", "final"],
            barmode="group",
            title="Share of positions whose top-1 token repeats elsewhere",
        )
        atomic_write_text(out / "duplicates.html", fig.to_html(include_plotlyjs="cdn"))
