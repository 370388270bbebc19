"""VocabIndex: exact cosine k-nearest tokens over a model's vocabulary, with FAISS or torch.

Rows are L2-normalised once and searched by inner product (``faiss.IndexFlatIP``), so scores are cosines.
The kept token ids, the vocabulary's own nearest-neighbour cosines (the "token manifold" reference) and the
FAISS index are cached on disk per model fingerprint and token filter; a cache whose fingerprint does not
match, or that was cut short by a crash, is rebuilt and never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from probe.core.io import cache_file
from probe.core.threads import configure_threads
from probe.core.tokens import Vocabulary, frequency_ranks

if TYPE_CHECKING:
    from probe.core.models import LoadedModel

logger = logging.getLogger(__name__)

Backend = Literal["faiss", "torch"]
CACHE_FORMAT = 2
MANIFOLD_SAMPLE = 5_000
"""How many vocabulary tokens (seeded sample) give the reference distribution of nearest-neighbour cosines."""


@dataclass(frozen=True)
class TokenFilter:
    """Which vocabulary tokens may be returned as neighbours.

    Attributes:
        exclude_special: drop the tokenizer's special tokens ([CLS], </s>, ...).
        exclude_unused: drop placeholder tokens ([unused3], <extra_id_0>, reserved tokens).
        exclude_nonprintable: drop byte-fallback pieces and tokens with no visible character.
        top_n_frequent: keep only the N most frequent English words (wordfreq); None keeps all.
    """

    exclude_special: bool = True
    exclude_unused: bool = True
    exclude_nonprintable: bool = False
    top_n_frequent: int | None = None

    def __post_init__(self) -> None:
        n = self.top_n_frequent
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            raise ValueError(f"top_n_frequent is {n!r}; expected a positive integer or None")

    def key(self) -> str:
        """Short stable text for cache keys."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def allowed(self, vocabulary: Vocabulary) -> np.ndarray:
        """bool [V]: which token ids pass the filter."""
        keep = np.ones(len(vocabulary), dtype=bool)
        if self.exclude_special:
            keep &= ~vocabulary.special
        if self.exclude_unused:
            keep &= ~vocabulary.unused
        if self.exclude_nonprintable:
            keep &= ~vocabulary.nonprintable
        if self.top_n_frequent is not None:
            ranked = frequency_ranks(vocabulary, keep)[: self.top_n_frequent]
            keep = np.zeros_like(keep)
            keep[ranked] = True
        return keep


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise float32 rows; zero rows stay zero (their cosine with anything is 0)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms < 1e-18).any():  # a row whose squares underflow float32 (1e-30s): scaled first, as only its
        peak = np.abs(x).max(axis=1, keepdims=True)  # direction is read by a cosine (all-zero rows stay zero)
        x = np.where((norms < 1e-18) & (peak > 0), x / np.where(peak > 0, peak, 1.0), x)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a hard dependency; this is the documented fallback
        return None
    return faiss


class VocabIndex:
    """Exact cosine k-NN over the kept vocabulary rows.

    Build it with :meth:`for_model` (cached) or directly from an embedding matrix.

    Args:
        embeddings: float32 [V, d], the full vocabulary matrix.
        token_ids: int64 [n], which rows may be returned (after the :class:`TokenFilter`).
        fingerprint: the model fingerprint the index belongs to.
        backend: "faiss" (default, falls back to torch if FAISS is missing) or "torch" (matmul + topk).
        device: where the torch backend searches ("cpu", "cuda"); the GPU path, since faiss-gpu wheels lag.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        token_ids: np.ndarray | None = None,
        *,
        fingerprint: str = "",
        backend: Backend = "faiss",
        token_filter: TokenFilter | None = None,
        device: str | torch.device = "cpu",
        _faiss_index: object | None = None,
    ) -> None:
        if backend not in ("faiss", "torch"):
            raise ValueError(f"backend '{backend}' is not known; expected 'faiss' or 'torch'")
        if str(device) != "cpu":  # a GPU this machine lacks failed at the first search
            from probe.core.models import check_device

            check_device(device)
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"vocabulary embeddings must be [V, d] with V > 0, got {embeddings.shape}")
        if token_ids is None:
            token_ids = np.arange(embeddings.shape[0], dtype=np.int64)
        token_ids = np.asarray(token_ids, dtype=np.int64)
        if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= embeddings.shape[0]):
            raise ValueError(
                f"token_ids run from {token_ids.min()} to {token_ids.max()}; expected rows of the "
                f"{embeddings.shape[0]} vocabulary embeddings (0 to V - 1)"
            )
        if token_ids.size == 0:
            raise ValueError("the token filter left no tokens to search; loosen it (e.g. top_n_frequent=None)")
        self.fingerprint = fingerprint
        self.token_filter = token_filter or TokenFilter()
        self.token_ids = token_ids
        self.dim = int(embeddings.shape[1])
        self.vocab_size = int(embeddings.shape[0])
        self.norms = np.linalg.norm(embeddings, axis=1)
        self.unit = normalize_rows(embeddings[token_ids])
        if backend == "faiss" and _faiss() is None:
            logger.warning("faiss is not importable; falling back to the torch backend")
            backend = "torch"
        self.backend: Backend = backend
        self.device = torch.device(device)
        self._faiss_index = _faiss_index
        self._unit_torch: torch.Tensor | None = None
        self.manifold_reference: np.ndarray | None = None
        self.frequency_order: np.ndarray | None = None  # searchable ids, most frequent English word first

    @property
    def size(self) -> int:
        """Number of searchable tokens."""
        return int(self.token_ids.size)

    @property
    def mean_norm(self) -> float:
        """Mean L2 norm of the searchable token embeddings."""
        return float(self.norms[self.token_ids].mean())

    def _index(self):
        if self._faiss_index is None:
            faiss = _faiss()
            index = faiss.IndexFlatIP(self.dim)
            index.add(self.unit)
            self._faiss_index = index
        return self._faiss_index

    def search(
        self, queries: np.ndarray | torch.Tensor, k: int = 5, *, batch_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest tokens by cosine for every query row.

        Args:
            queries: float32 [n, d]; normalised here, zero rows score 0 with everything.
            k: neighbours per query, 1 <= k <= number of searchable tokens.
            batch_size: queries per FAISS / matmul call.

        Returns:
            (cosines float32 [n, k] descending, token_ids int64 [n, k]).

        Raises:
            ValueError: k out of range or queries of the wrong dimension.
        """
        if isinstance(queries, torch.Tensor):
            queries = queries.detach().to("cpu", torch.float32).numpy()
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries have shape {tuple(queries.shape)}; the vocabulary has dim {self.dim}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.size:
            raise ValueError(f"k is {k!r}; expected an integer from 1 to {self.size} (searchable tokens)")
        if not np.isfinite(queries).all():
            raise ValueError("queries hold NaN or Inf; nearest tokens are undefined for them")
        n = queries.shape[0]
        scores = np.empty((n, k), dtype=np.float32)
        rows = np.empty((n, k), dtype=np.int64)
        for start in range(0, n, batch_size):
            q = normalize_rows(queries[start : start + batch_size])
            s, r = self._search_unit(q, int(k))
            scores[start : start + len(q)] = s
            rows[start : start + len(q)] = r
        return scores, self.token_ids[rows]

    def _search_unit(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.backend == "faiss":
            configure_threads()
            s, r = self._index().search(q, k)
            return s, r
        if self._unit_torch is None:
            self._unit_torch = torch.from_numpy(self.unit).to(self.device)
        sims = torch.from_numpy(q).to(self.device) @ self._unit_torch.T
        s, r = torch.topk(sims, k, dim=1)
        return s.cpu().numpy(), r.cpu().numpy()

    def unit_rows(self, token_ids: np.ndarray) -> np.ndarray:
        """Unit-norm embeddings (float32 [n, d]) of searchable ``token_ids``.

        Raises:
            ValueError: an id is filtered out of this index.
        """
        position = np.searchsorted(self.token_ids, token_ids)
        position = np.clip(position, 0, self.size - 1)
        if not np.array_equal(self.token_ids[position], token_ids):
            missing = sorted(set(token_ids.tolist()) - set(self.token_ids.tolist()))[:5]
            raise ValueError(f"token ids {missing} are not searchable in this index (filtered out)")
        return self.unit[position]

    def compute_manifold_reference(self, sample: int = MANIFOLD_SAMPLE, seed: int = 0) -> np.ndarray:
        """Each sampled token's cosine to its nearest *other* token, sorted ascending.

        A prompt position whose top-1 cosine falls low in this distribution sits off the token manifold.

        Returns:
            float32 [min(sample, size)] sorted cosines.
        """
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(self.size, size=min(sample, self.size), replace=False))
        k = min(2, self.size)
        scores, ids = self.search(self.unit[picks], k)
        own = self.token_ids[picks]
        # Duplicate rows can outrank the token itself; take the best score that is not the token.
        nearest_other = np.where(ids[:, 0] == own, scores[:, -1], scores[:, 0])
        self.manifold_reference = np.sort(nearest_other.astype(np.float32))
        return self.manifold_reference

    def manifold_percentile(self, top1: np.ndarray) -> np.ndarray:
        """Percentile (0-100) of each top-1 cosine within the vocabulary's own nearest-neighbour cosines."""
        reference = self.manifold_reference
        if reference is None:
            reference = self.compute_manifold_reference()
        return 100.0 * np.searchsorted(reference, np.asarray(top1), side="right") / reference.size

    # ------------------------------------------------------------------ construction with cache

    @classmethod
    def for_model(
        cls,
        model: LoadedModel,
        *,
        token_filter: TokenFilter | None = None,
        backend: Backend = "faiss",
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
    ) -> VocabIndex:
        """Build (or load from the cache) the index for a loaded model.

        Args:
            model: from :func:`probe.load_model`.
            token_filter: which tokens may be neighbours; default drops special and unused tokens.
            backend: "faiss" or "torch".
            cache_dir: cache root; default ``$PROBE_CACHE_DIR`` or the user cache (``~/.cache/probe``).
            use_cache: read and write the on-disk cache.
        """
        token_filter = token_filter or TokenFilter()
        embeddings = model.embeddings_numpy()
        entry = cache_file(
            "index",
            {"format": CACHE_FORMAT, "fingerprint": model.fingerprint, "filter": asdict(token_filter)},
            cache_dir,
        )
        if use_cache:
            arrays = entry.read(check=lambda a: _valid_cache(a, model.vocab_size))
            if arrays is not None:
                index = cls(
                    embeddings,
                    arrays["token_ids"],
                    fingerprint=model.fingerprint,
                    backend=backend,
                    token_filter=token_filter,
                )
                index.manifold_reference = arrays["manifold_reference"]
                index.frequency_order = arrays.get("frequency_order")
                return index
        token_ids = np.flatnonzero(token_filter.allowed(model.vocabulary)).astype(np.int64)
        index = cls(embeddings, token_ids, fingerprint=model.fingerprint, backend=backend, token_filter=token_filter)
        index.compute_manifold_reference()
        allowed = np.zeros(model.vocab_size, dtype=bool)
        allowed[token_ids] = True
        index.frequency_order = frequency_ranks(model.vocabulary, allowed)
        if use_cache:
            assert index.manifold_reference is not None
            stored = {"token_ids": index.token_ids, "manifold_reference": index.manifold_reference}
            if index.frequency_order is not None:
                stored["frequency_order"] = index.frequency_order
            entry.write(stored, {"size": index.size})  # a read-only or full cache dir must not stop a report
        return index


def _valid_cache(arrays: dict[str, np.ndarray], vocab_size: int) -> bool:
    """What a cached index must satisfy for this model: ids in range, sorted and unique, a 1-D reference."""
    ids, reference = arrays["token_ids"], arrays["manifold_reference"]
    in_range = ids.ndim == 1 and ids.size > 0 and int(ids.min()) >= 0 and int(ids.max()) < vocab_size
    order = arrays.get("frequency_order")
    order_ok = order is None or (
        order.ndim == 1 and (order.size == 0 or (order.min() >= 0 and order.max() < vocab_size))
    )
    reference_ok = reference.shape == (min(MANIFOLD_SAMPLE, ids.size),)  # what compute_manifold_reference makes
    return bool(in_range and (np.diff(ids) > 0).all() and reference_ok and order_ok)


def index_bytes(vocab_size: int, dim: int) -> int:
    """The memory a :class:`VocabIndex` of ``vocab_size`` rows of ``dim`` holds, known before it is built: float32
    [V, dim] twice (the unit rows and FAISS's copy)."""
    return 2 * vocab_size * dim * 4
