"""probe.readings.projection: UMAP and PCA maps, determinism, trustworthiness, placing prompts, the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probe.core.threads import configure_threads
from probe.readings.projection import MapConfig, fit_map, membership_weights


@pytest.fixture(scope="module")
def small_umap(default_model, default_index, tmp_path_factory):
    cache = tmp_path_factory.mktemp("maps")
    config = MapConfig(n_vocab=1500, n_epochs=100)
    return fit_map(default_model, default_index, config, cache_dir=cache), cache, config


@pytest.mark.slow
def test_umap__deterministic_with_a_seed_at_any_thread_count(small_umap, default_model, default_index):
    vmap, _, config = small_umap
    threads = torch.get_num_threads()
    try:  # 1 and 2 threads round FAISS's sgemm differently; the map must not notice (a CI failure once)
        configure_threads(1 if threads > 1 else 2)
        again = fit_map(default_model, default_index, config, use_cache=False)
    finally:
        configure_threads(threads)
    np.testing.assert_allclose(vmap.coords, again.coords, atol=1e-4)


@pytest.mark.slow
def test_umap__trustworthiness_floor_and_beats_pca(small_umap, default_model, default_index, tmp_path):
    vmap, _, config = small_umap
    assert vmap.trustworthiness > 0.8
    assert vmap.coords.shape == (len(vmap.token_ids), 2)
    pca = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=config.n_vocab), cache_dir=tmp_path)
    assert vmap.trustworthiness > pca.trustworthiness + 0.05


@pytest.mark.slow
def test_umap__tokens_land_among_themselves(small_umap, default_model):
    vmap, _, _ = small_umap
    e = default_model.embeddings_numpy()
    placed = vmap.transform(e[vmap.token_ids[:50]])
    # a sample token's own weight is 1 (distance 0 = rho), so it lands near its fitted coordinates
    spread = np.ptp(vmap.coords, axis=0).max()
    assert np.median(np.linalg.norm(placed - vmap.coords[:50], axis=1)) < 0.05 * spread


@pytest.mark.slow
def test_umap__cache_is_reused_and_partial_files_are_refitted(small_umap, default_model, default_index):
    vmap, cache, config = small_umap
    files = sorted((cache / "maps").iterdir())
    assert [f.suffix for f in files] == [".json", ".safetensors"]
    again = fit_map(default_model, default_index, config, cache_dir=cache)
    np.testing.assert_array_equal(again.coords, vmap.coords)
    assert again.fit_seconds == vmap.fit_seconds  # read back, not refitted
    blob = files[1].read_bytes()
    files[1].write_bytes(blob[: len(blob) // 2])
    meta = json.loads(files[0].read_text())
    refit = fit_map(default_model, default_index, MapConfig(**meta["config"]), cache_dir=cache)
    np.testing.assert_allclose(refit.coords, vmap.coords, atol=1e-4)
    assert files[1].read_bytes() != blob[: len(blob) // 2]


def test_pca__transform_reproduces_the_fit(default_model, default_index, tmp_path):
    vmap = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=3000), cache_dir=tmp_path)
    e = default_model.embeddings_numpy()
    np.testing.assert_allclose(vmap.transform(e[vmap.token_ids]), vmap.coords, atol=1e-4)
    assert vmap.trustworthiness > 0.6


def test_map__extra_ids_join_the_sample(default_model, default_index, tmp_path):
    rare = np.array([default_index.token_ids[-1]])
    vmap = fit_map(
        default_model, default_index, MapConfig(method="pca", n_vocab=100), extra_ids=rare, cache_dir=tmp_path
    )
    assert rare[0] in vmap.token_ids and len(vmap.token_ids) == 101


def test_membership_weights__umap_normalisation():
    d = np.array([[0.1, 0.2, 0.4, 0.8], [0.0, 0.0, 0.5, 0.5]])
    w = membership_weights(d)
    assert np.allclose(w[:, 0], 1.0)
    np.testing.assert_allclose(w.sum(1), np.log2(4), rtol=1e-3)
    assert (np.diff(w[0]) <= 0).all()


def test_map_config__errors():
    with pytest.raises(ValueError, match="map method 'tsne' is not known"):
        MapConfig(method="tsne")
    with pytest.raises(ValueError, match="n_vocab is 3"):
        MapConfig(n_vocab=3)


def test_map_budget__a_fit_over_it_is_refused_before_it_starts_and_a_cached_map_is_not_refitted(
    small_umap, default_model, default_index, tmp_path, monkeypatch
):
    monkeypatch.delenv("PROBE_BUDGET_MINUTES", raising=False)
    monkeypatch.delenv("PROBE_BUDGET_GB", raising=False)
    _, cache, config = small_umap
    cached = fit_map(default_model, default_index, config, cache_dir=cache, budget_minutes=1e-6, budget_gb=1e-6)
    assert cached.token_ids.size == config.n_vocab  # read from the cache: nothing to fit, nothing refused
    fresh = tmp_path / "fresh"
    with pytest.raises(
        ValueError,
        match=r"^the UMAP map of 1,500 tokens would take about .* over the time budget "
        r"of 1e-06 min \(budget_minutes=\); raise it with budget_minutes=1, or fit it on fewer",
    ):
        fit_map(default_model, default_index, config, cache_dir=fresh, budget_minutes=1e-6)
    monkeypatch.setenv("PROBE_BUDGET_GB", "0.001")  # the environment's budget, as probe dashboard --budget-gb sets it
    with pytest.raises(
        ValueError,
        match=r"^the UMAP map of 1,500 tokens would hold about 0\.\d\d GB, over the memory budget of 0\.001 GB "
        r"\(\$PROBE_BUDGET_GB\); raise it with --budget-gb 0\.\d",
    ):
        fit_map(default_model, default_index, config, cache_dir=fresh)
    assert not fresh.exists() or not any(fresh.rglob("*.safetensors"))  # refused before anything was written
    # PCA, the dashboard's fallback while UMAP fits, is never refused: the page always has a map
    pca = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=3000), cache_dir=fresh)
    assert pca.coords.shape == (3000, 2)


def test_map_cost__memory_grows_with_the_sample_and_the_compiled_cache_is_found(tmp_path, monkeypatch):
    from probe.readings.map_cost import compiled, map_bytes

    config = MapConfig()
    assert 0 < map_bytes(3000, 384, config) < map_bytes(30000, 384, config) < map_bytes(30000, 4096, config)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not compiled()
    (tmp_path / "umap_abc").mkdir()
    (tmp_path / "umap_abc" / "layouts.rdist-31.py311.nbi").write_bytes(b"")
    assert compiled()
