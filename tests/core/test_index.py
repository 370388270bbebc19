"""probe.core.index: exact cosine k-NN with FAISS and torch, token filters, the on-disk cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probe.core.index import TokenFilter, VocabIndex, normalize_rows


def _brute(vocab, queries, k):
    sims = normalize_rows(queries) @ normalize_rows(vocab).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), order


def test_search__faiss_matches_brute_force():
    rng = np.random.default_rng(0)
    vocab = rng.normal(size=(2000, 48)).astype(np.float32)
    queries = rng.normal(size=(70, 48)).astype(np.float32) * 7.0
    scores, ids = VocabIndex(vocab).search(queries, 10)
    ref_scores, ref_ids = _brute(vocab, queries, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()


def test_search__faiss_and_torch_backends_agree(default_model):
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(64, 384)).astype(np.float32)
    f = VocabIndex.for_model(default_model, backend="faiss")
    t = VocabIndex.for_model(default_model, backend="torch")
    fs, fi = f.search(queries, 8)
    ts, ti = t.search(queries, 8)
    np.testing.assert_array_equal(fi, ti)
    np.testing.assert_allclose(fs, ts, atol=1e-5)


def test_search__zero_rows_and_zero_queries_score_zero():
    vocab = np.eye(4, dtype=np.float32)
    vocab[2] = 0.0
    scores, _ids = VocabIndex(vocab).search(np.zeros((1, 4), np.float32), 4)
    np.testing.assert_array_equal(scores, np.zeros((1, 4)))
    s, _i = VocabIndex(vocab).search(np.array([[0, 0, 1, 0]], np.float32), 1)
    assert s[0, 0] == 0.0  # the zero row is nobody's match above zero


def test_search__batches_give_the_same_answer():
    rng = np.random.default_rng(2)
    vocab = rng.normal(size=(500, 16)).astype(np.float32)
    q = rng.normal(size=(33, 16)).astype(np.float32)
    index = VocabIndex(vocab)
    a = index.search(q, 5, batch_size=4)
    b = index.search(q, 5, batch_size=4096)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("k", [0, -1, 501, 2.5, True])
def test_search__k_out_of_range(k):
    index = VocabIndex(np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32))
    with pytest.raises(ValueError, match="expected an integer from 1 to 500"):
        index.search(np.ones((1, 8), np.float32), k)


def test_search__wrong_dim_and_nan():
    index = VocabIndex(np.ones((10, 8), np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 7\); the vocabulary has dim 8"):
        index.search(np.ones((1, 7), np.float32), 1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        index.search(np.full((1, 8), np.nan, np.float32), 1)


def test_token_filter__default_drops_special_and_unused(default_model, default_index):
    vocab = default_model.vocabulary
    kept = set(default_index.token_ids.tolist())
    unused0 = default_model.tokenizer.convert_tokens_to_ids("[unused0]")
    assert unused0 not in kept
    assert default_model.tokenizer.cls_token_id not in kept
    assert default_model.tokenizer.convert_tokens_to_ids("science") in kept
    assert default_index.size == int((~vocab.special & ~vocab.unused).sum())


def test_token_filter__top_n_frequent(default_model, tmp_path):
    index = VocabIndex.for_model(default_model, token_filter=TokenFilter(top_n_frequent=1000), cache_dir=tmp_path)
    assert index.size == 1000
    the = default_model.tokenizer.convert_tokens_to_ids("the")
    assert the in index.token_ids
    _, ids = index.search(default_model.embeddings_numpy()[[the]], 3)
    assert set(ids[0].tolist()) <= set(index.token_ids.tolist())


def test_token_filter__rejects_bad_n():
    with pytest.raises(ValueError, match="top_n_frequent is 0"):
        TokenFilter(top_n_frequent=0)


def test_cache__reused_and_rebuilt_when_fingerprint_differs(default_model, tmp_path):
    first = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    metas = list((tmp_path / "index").glob("*.json"))
    assert len(metas) == 1
    meta_path = metas[0]
    meta = json.loads(meta_path.read_text())
    assert meta["fingerprint"] == default_model.fingerprint
    again = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.manifold_reference, again.manifold_reference)
    # A cache written by another model (same folder, different fingerprint) is never used.
    meta["fingerprint"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    arrays = meta_path.with_suffix(".safetensors")
    from safetensors.numpy import save

    poisoned = save({"token_ids": np.arange(5, dtype=np.int64), "manifold_reference": np.zeros(5, np.float32)})
    arrays.write_bytes(poisoned)
    rebuilt = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    assert rebuilt.size == first.size
    assert json.loads(meta_path.read_text())["fingerprint"] == default_model.fingerprint


def test_cache__partial_write_is_detected(default_model, tmp_path):
    VocabIndex.for_model(default_model, cache_dir=tmp_path)
    arrays = next((tmp_path / "index").glob("*.safetensors"))
    blob = arrays.read_bytes()
    arrays.write_bytes(blob[: len(blob) // 3])  # a crash mid-write
    index = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    assert index.size > 29_000
    assert arrays.read_bytes() == blob


def test_manifold_reference__vocab_rows_sit_on_the_manifold(default_model, default_index):
    ref = default_index.manifold_reference
    assert ref.size == 5000 and (np.diff(ref) >= 0).all()
    rng = np.random.default_rng(0)
    random = rng.uniform(-0.5, 0.5, size=(50, 384)).astype(np.float32)
    top1 = default_index.search(random, 1)[0][:, 0]
    assert default_index.manifold_percentile(top1).max() < 5  # random vectors are far from every token


def test_threads__faiss_and_torch_in_one_process(default_index):
    import faiss
    import torch

    from probe.core.threads import configure_threads

    n = configure_threads(2)
    assert torch.get_num_threads() == 2 and faiss.omp_get_max_threads() == 2 and n == 2
    q = np.random.default_rng(3).normal(size=(200, 384)).astype(np.float32)
    _s1, i1 = default_index.search(q, 5)
    torch_result = torch.topk(torch.from_numpy(normalize_rows(q)) @ torch.from_numpy(default_index.unit).T, 5)
    np.testing.assert_array_equal(i1, default_index.token_ids[torch_result.indices.numpy()])


def test_threads__a_bad_probe_threads_is_refused_naming_it(monkeypatch):
    from probe.core.threads import configure_threads, env_threads

    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv("PROBE_THREADS", bad)
        with pytest.raises(ValueError, match=f"PROBE_THREADS is '{bad}'; expected a positive number of threads"):
            env_threads()
    with pytest.raises(ValueError, match="threads is -1; expected a positive number"):
        configure_threads(-1)
    monkeypatch.setenv("PROBE_THREADS", "2")
    assert env_threads() == 2
    monkeypatch.setenv("PROBE_THREADS", "0")  # as before: the CPU count
    assert env_threads() is None


def test_normalize_rows__a_row_whose_squares_underflow_reads_as_its_direction():
    """A prompt scaled by 1e-30 kept its rows unnormalised (their float32 squares are 0): cosines of about 1e-31."""
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    scaled = x.copy()
    scaled[1] *= 1e-30
    np.testing.assert_allclose(normalize_rows(scaled), normalize_rows(x), atol=1e-6)
    assert not normalize_rows(np.zeros((2, 4), np.float32)).any()  # no direction: stays zero


def test_vocab_index__token_ids_outside_the_vocabulary_and_a_missing_gpu_are_one_line():
    """Both failed later: an IndexError in the search, an AssertionError at the first torch search (errors.md 205)."""
    import torch

    embeddings = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"token_ids run from 0 to 11; expected rows of the 10 vocabulary"):
        VocabIndex(embeddings, np.array([0, 11]))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine"):
            VocabIndex(embeddings, backend="torch", device="cuda")
    with pytest.raises(ValueError, match="device 'meta' holds no weights; expected a device that computes"):
        VocabIndex(embeddings, backend="torch", device="meta")
    assert VocabIndex(embeddings, np.array([0, 9])).size == 2
