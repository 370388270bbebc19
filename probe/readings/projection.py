"""A 2-D map of the vocabulary, fitted once per model, with every prompt and snapshot placed in it.

UMAP (cosine, on the exact k-nearest-neighbour graph from FAISS) is fitted on a seeded vocabulary sample: the
N most frequent tokens plus any extra tokens asked for (the neighbours of the prompts shown). The fitted
coordinates are cached on disk (safetensors + JSON, no pickle) keyed by the model fingerprint and the map's
parameters, and reused across runs and sessions.

Prompts are placed with UMAP's own transform initialisation: each vector goes to the membership-weighted mean
of its ``n_neighbors`` nearest sample tokens (cosine, exact, through FAISS), with the weights UMAP's fuzzy
simplicial set gives (``exp(-(d - rho) / sigma)``). This is deterministic, needs no Numba at page time, and
places a snapshot in milliseconds. UMAP's extra refinement epochs are skipped, so a point sits inside the
region of its neighbours; a position far from every token is still drawn among its nearest tokens, which
is why the map marks off-manifold positions instead of trusting the picture.

PCA (``method="pca"``) is the fast alternative: exact, linear, fitted in about a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from probe.core.index import VocabIndex, normalize_rows
from probe.core.io import CacheEntry, cache_file, cache_root
from probe.core.tokens import frequency_ranks

if TYPE_CHECKING:
    from probe.core.models import LoadedModel

logger = logging.getLogger(__name__)

MAP_FORMAT = 1
Method = Literal["umap", "pca"]


@dataclass(frozen=True)
class MapConfig:
    """Parameters of the vocabulary map (part of its cache key).

    Attributes:
        method: "umap" (cosine) or "pca".
        n_vocab: how many of the most frequent tokens to fit on.
        n_neighbors: UMAP's neighbourhood size (also used to place new points).
        min_dist: UMAP's minimum distance.
        seed: random state of the fit.
        n_epochs: UMAP optimisation epochs (None: UMAP's default, 200 for this size).
    """

    method: Method = "umap"
    n_vocab: int = 10_000
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("umap", "pca"):
            raise ValueError(f"map method '{self.method}' is not known; expected 'umap' or 'pca'")
        if isinstance(self.n_vocab, bool) or not isinstance(self.n_vocab, int) or self.n_vocab < 10:
            raise ValueError(f"n_vocab is {self.n_vocab!r}; expected an integer of at least 10")
        if not 2 <= self.n_neighbors <= 200:
            raise ValueError(f"n_neighbors is {self.n_neighbors}; expected 2 to 200")


@dataclass
class VocabMap:
    """A fitted map: sample token ids, their 2-D coordinates, and how to place new vectors.

    Attributes:
        config: the :class:`MapConfig`.
        fingerprint: the model's fingerprint.
        token_ids: int64 [n] sample tokens.
        coords: float32 [n, 2] their map coordinates.
        trustworthiness: sklearn trustworthiness of the map on a sample (0..1; 1 = neighbours preserved).
        fit_seconds: how long the fit took.
        pca_mean / pca_components: the linear map when ``method == "pca"``.
        space: what was mapped ("": the input embeddings; else as :func:`fit_map`'s ``space``).
    """

    config: MapConfig
    fingerprint: str
    token_ids: np.ndarray
    coords: np.ndarray
    trustworthiness: float
    fit_seconds: float
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None
    space: str = ""
    _index: VocabIndex | None = None
    _unit_sample: np.ndarray | None = None

    @property
    def key(self) -> str:
        """Its cache key (:func:`map_key`)."""
        return map_key(self.fingerprint, self.config, self.token_ids, self.space)

    def attach(self, embeddings: np.ndarray) -> VocabMap:
        """Bind the model's embeddings (needed to place new points); returns self."""
        sample = embeddings[self.token_ids]
        self._index = VocabIndex(sample, fingerprint=self.fingerprint, backend="faiss")
        self._unit_sample = normalize_rows(sample)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Place vectors (float32 [m, d]) in the map: float32 [m, 2]."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.config.method == "pca":
            assert self.pca_mean is not None and self.pca_components is not None
            return ((normalize_rows(vectors) - self.pca_mean) @ self.pca_components.T).astype(np.float32)
        if self._index is None:
            raise ValueError("this map has no embeddings attached; call attach(model embeddings) first")
        k = min(self.config.n_neighbors, self._index.size)
        cos, rows = self._index.search(vectors, k)
        # search returns positions in the sample because the index was built on the sample itself
        weights = membership_weights(1.0 - cos)
        return (np.einsum("mk,mkc->mc", weights, self.coords[rows]) / weights.sum(1, keepdims=True)).astype(np.float32)


def membership_weights(distances: np.ndarray, n_iter: int = 64) -> np.ndarray:
    """UMAP's fuzzy membership of each point to its k neighbours: exp(-(d - rho) / sigma).

    rho is the distance to the nearest neighbour and sigma is found by bisection so that the weights sum
    to log2(k), as in UMAP's ``smooth_knn_dist``.

    Args:
        distances: float [m, k] ascending distances to the k nearest neighbours.

    Returns:
        float64 [m, k] weights in (0, 1].
    """
    d = np.asarray(distances, dtype=np.float64)
    m, k = d.shape
    target = np.log2(k)
    rho = d[:, :1]
    excess = np.maximum(d - rho, 0.0)
    lo, hi = np.zeros((m, 1)), np.full((m, 1), np.inf)
    sigma = np.ones((m, 1))
    for _ in range(n_iter):
        total = np.exp(-excess / sigma).sum(1, keepdims=True)
        too_big = total > target
        hi = np.where(too_big, sigma, hi)
        lo = np.where(too_big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    return np.exp(-excess / np.maximum(sigma, 1e-12))


def sample_ids(
    model: LoadedModel, index: VocabIndex, n_vocab: int, extra_ids: np.ndarray | Sequence[int] | None = None
) -> np.ndarray:
    """The N most frequent searchable tokens plus ``extra_ids`` (sorted, unique)."""
    order = index.frequency_order
    if order is None:
        allowed = np.zeros(model.vocab_size, dtype=bool)
        allowed[index.token_ids] = True
        order = frequency_ranks(model.vocabulary, allowed)
    ids = order[:n_vocab]
    if ids.size < n_vocab:  # tokens wordfreq does not know still belong to the vocabulary
        rest = np.setdiff1d(index.token_ids, ids)
        rng = np.random.default_rng(0)
        ids = np.concatenate([ids, rng.choice(rest, size=min(rest.size, n_vocab - ids.size), replace=False)])
    if extra_ids is not None and len(extra_ids):
        ids = np.concatenate([ids, np.asarray(extra_ids, dtype=np.int64)])
    return np.unique(ids).astype(np.int64)


def map_key(fingerprint: str, config: MapConfig, ids: np.ndarray, space: str = "") -> str:
    """Cache key: model fingerprint, map parameters, the exact sample and the space mapped ("": the input
    embeddings; else what :func:`fit_map`'s ``rows`` are, such as a layer's keys)."""
    h = hashlib.sha256()
    h.update(fingerprint.encode() + (f"|{space}".encode() if space else b""))
    h.update(json.dumps(asdict(config), sort_keys=True).encode())
    h.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def _map_entry(key: str, fingerprint: str, cache_dir: str | os.PathLike[str] | None) -> CacheEntry:
    return cache_file("maps", {"format": MAP_FORMAT, "fingerprint": fingerprint}, cache_dir, name=key)


def load_cached_map(
    model: LoadedModel,
    key: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    rows: np.ndarray | None = None,
) -> VocabMap | None:
    """The cached map with this key (bound to ``rows``, else the model's input embeddings), or None when absent,
    partial, or written for another model."""
    entry = _map_entry(key, model.fingerprint, cache_dir)

    def fits(arrays: dict[str, np.ndarray]) -> bool:
        ids, coords = arrays["token_ids"], arrays["coords"]
        return bool(
            ids.ndim == 1
            and ids.size > 0
            and int(ids.min()) >= 0
            and int(ids.max()) < model.vocab_size
            and coords.shape == (ids.size, 2)
        )

    found = entry.load(check=fits)
    if found is None:
        return None
    meta, arrays = found
    vmap = VocabMap(
        config=MapConfig(**meta["config"]),
        fingerprint=meta["fingerprint"],
        token_ids=arrays["token_ids"],
        coords=arrays["coords"],
        trustworthiness=float(meta["trustworthiness"]),
        fit_seconds=float(meta["fit_seconds"]),
        pca_mean=arrays.get("pca_mean"),
        pca_components=arrays.get("pca_components"),
        space=str(meta.get("space", "")),
    )
    return vmap.attach(model.embeddings_numpy() if rows is None else rows)


def _save_map(vmap: VocabMap, key: str, cache_dir: str | os.PathLike[str] | None) -> None:
    arrays = {"token_ids": vmap.token_ids, "coords": vmap.coords}
    if vmap.pca_mean is not None and vmap.pca_components is not None:
        arrays |= {"pca_mean": vmap.pca_mean, "pca_components": vmap.pca_components}
    meta = {
        "config": asdict(vmap.config),
        "trustworthiness": vmap.trustworthiness,
        "fit_seconds": vmap.fit_seconds,
        "space": vmap.space,
        "created": time.time(),
    }
    _map_entry(key, vmap.fingerprint, cache_dir).write(arrays, meta)


def _import_umap():
    """Import UMAP with Numba's compiled code cached in probe's cache (its JIT dominates a cold start).

    ``NUMBA_CACHE_DIR`` is set only if the user has not set it, and only here, where UMAP is used.
    """
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))
    try:
        import umap
    except ImportError as e:  # pragma: no cover - umap-learn is a dependency
        raise ImportError("the UMAP map needs umap-learn: pip install umap-learn") from e
    return umap


def map_trustworthiness(
    x: np.ndarray, y: np.ndarray, *, sample: int = 2000, n_neighbors: int = 10, seed: int = 0
) -> float:
    """sklearn's trustworthiness (cosine) of a 2-D map on a seeded sample of points."""
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    return float(trustworthiness(x[pick], y[pick], n_neighbors=n_neighbors, metric="cosine"))


def fit_map(
    model: LoadedModel,
    index: VocabIndex,
    config: MapConfig | None = None,
    *,
    extra_ids: np.ndarray | Sequence[int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    budget_minutes: float | None = None,
    budget_gb: float | None = None,
    rows: np.ndarray | None = None,
    space: str = "",
) -> VocabMap:
    """Fit (or load from the cache) the vocabulary map.

    Args:
        model: the model.
        index: its vocabulary index (decides which tokens may be sampled).
        config: the :class:`MapConfig`.
        extra_ids: tokens to include besides the most frequent (e.g. the prompts' neighbours).
        cache_dir: cache root (default: probe's cache).
        use_cache: read and write the cache.
        rows: float32 [vocab, d], each token's row in the space to map, by token id (default: the model's input
            embeddings; a prefix's map is fitted on one layer's keys or values, ``probe.readings.prefix_map``).
        space: what ``rows`` are, in the cache key (required with ``rows``).
        budget_minutes / budget_gb: refuse a fit (not a cached map) whose time or memory estimate passes them,
            before it starts (:mod:`probe.readings.map_cost`; None: ``$PROBE_BUDGET_MINUTES`` /
            ``$PROBE_BUDGET_GB``, as ``probe dashboard --budget-minutes / --budget-gb`` set them; else none).

    Raises:
        ValueError: the fit over a budget, in one line naming what lifts it.
    """
    config = config or MapConfig()
    if rows is not None and not space:
        raise ValueError("fit_map's rows need a space= naming them (it keys the cache)")
    ids = sample_ids(model, index, config.n_vocab, extra_ids)
    key = map_key(model.fingerprint, config, ids, space)
    if use_cache:
        cached = load_cached_map(model, key, cache_dir=cache_dir, rows=rows)
        if cached is not None:
            return cached
    from probe.readings.map_cost import check_map_budget

    rows = model.embeddings_numpy() if rows is None else rows
    check_map_budget(normalize_rows(rows[ids]), config, minutes=budget_minutes, gb=budget_gb)
    vmap = _fit(model, config, ids, rows, space)
    if use_cache:
        _save_map(vmap, key, cache_dir)
    return vmap


def find_cached_map(
    model: LoadedModel,
    index: VocabIndex,
    config: MapConfig,
    *,
    extra_ids: np.ndarray | Sequence[int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> VocabMap | None:
    """The map :func:`fit_map` would return from its cache for these arguments, or None (nothing is fitted)."""
    ids = sample_ids(model, index, config.n_vocab, extra_ids)
    return load_cached_map(model, map_key(model.fingerprint, config, ids), cache_dir=cache_dir)


def _fit(model: LoadedModel, config: MapConfig, ids: np.ndarray, rows: np.ndarray, space: str) -> VocabMap:
    x = normalize_rows(rows[ids])
    started = time.perf_counter()
    pca_mean = pca_components = None
    if config.method == "pca":
        pca_mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - pca_mean, full_matrices=False)
        pca_components = vt[:2].astype(np.float32)
        coords = ((x - pca_mean) @ pca_components.T).astype(np.float32)
    else:
        umap = _import_umap()
        # Exact cosine kNN through FAISS replaces UMAP's NN-descent: exact, and it skips compiling pynndescent,
        # which halves a cold fit (bench/results.md).
        knn, distances = _exact_knn(x, config.n_neighbors)
        reducer = umap.UMAP(
            n_neighbors=config.n_neighbors,
            min_dist=config.min_dist,
            metric="cosine",
            random_state=config.seed,
            n_epochs=config.n_epochs,
            n_jobs=1,  # random_state forces one thread anyway; say so explicitly
            precomputed_knn=(knn.astype(np.int64), distances, None),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "transform will be unavailable": probe places points itself
            coords = reducer.fit_transform(x).astype(np.float32)
        from probe.readings.map_cost import mark_fitted

        mark_fitted()
    seconds = time.perf_counter() - started
    return VocabMap(
        config=config,
        fingerprint=model.fingerprint,
        token_ids=ids,
        coords=coords,
        trustworthiness=map_trustworthiness(x, coords),
        fit_seconds=seconds,
        pca_mean=None if pca_mean is None else pca_mean.astype(np.float32),
        pca_components=pca_components,
        space=space,
    ).attach(rows)


def _exact_knn(x: np.ndarray, k: int, spare: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's ``k`` nearest rows by cosine distance, the same at any thread count.

    FAISS gives ``k + spare`` candidates; their distances are recomputed in float64 and sorted with ties broken
    by row, so the float32 rounding of a multithreaded sgemm (which differs between 1 and 2 threads) cannot
    reorder near-ties, and UMAP, which amplifies any change of its graph, fits the same map.
    """
    wanted = min(k + spare, len(x))
    _, candidates = VocabIndex(x).search(x, wanted)
    x64 = x.astype(np.float64)
    distances = np.empty(candidates.shape, dtype=np.float64)
    for start in range(0, len(x), 1024):  # 1,024 rows x 25 candidates x d float64 at a time: ~80 MB at d=384
        rows = slice(start, start + 1024)
        distances[rows] = 1.0 - np.einsum("nd,nkd->nk", x64[rows], x64[candidates[rows]])
    distances = np.maximum(distances, 0.0)
    order = np.lexsort((candidates, distances), axis=-1)[:, :k]
    knn = np.take_along_axis(candidates, order, axis=1)
    return knn.astype(np.int64), np.take_along_axis(distances, order, axis=1).astype(np.float32)
