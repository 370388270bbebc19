"""probe.training.inits: each initialisation gives exactly what it promises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probe.training.inits import InitMethod, candidate_tokens, initialise, resolve_scale

LABELS = ["joy", "anger", "fear", "sadness"]


def test_random_uniform__inside_the_bound_and_seeded(default_model):
    a = initialise("random-uniform", default_model, 30, seed=3)
    b = initialise("random-uniform", default_model, 30, seed=3)
    assert a.vectors.shape == (30, 384)
    assert a.vectors.min() >= -0.5 and a.vectors.max() <= 0.5 and a.vectors.max() > 0.49
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, initialise("random-uniform", default_model, 30, seed=4).vectors)


def test_random_uniform__vocab_norm_scale_matches_vocabulary(default_model):
    init = initialise("random-uniform", default_model, 200, scale="vocab-norm")
    vocab_norm = np.linalg.norm(default_model.embeddings_numpy(), axis=1).mean()
    assert np.linalg.norm(init.vectors, axis=1).mean() == pytest.approx(vocab_norm, rel=0.05)
    assert resolve_scale(0.5, default_model) == 0.5
    with pytest.raises(ValueError, match="expected a positive number or 'vocab-norm'"):
        resolve_scale(-1.0, default_model)


def test_sampled_vocab__rows_of_the_5000_most_frequent(default_model):
    init = initialise("sampled-vocab", default_model, 50, seed=0)
    top = set(candidate_tokens(default_model, 5000).tolist())
    ids = [ids[0] for ids in init.token_ids]
    assert len(set(ids)) == 50 and set(ids) <= top
    np.testing.assert_array_equal(init.vectors, default_model.embeddings_numpy()[ids])
    vocab = default_model.vocabulary
    assert not vocab.special[ids].any() and not vocab.unused[ids].any()


def test_class_label__label_means_then_sampled_vocab(default_model):
    tok = default_model.tokenizer
    labels = ["joy", "world news"]
    init = initialise("class-label", default_model, 5, labels=labels, seed=0)
    e = default_model.embeddings_numpy()
    np.testing.assert_allclose(init.vectors[0], e[tok.convert_tokens_to_ids("joy")], rtol=1e-6)
    np.testing.assert_allclose(init.vectors[1], e[tok.convert_tokens_to_ids(["world", "news"])].mean(0), rtol=1e-6)
    assert init.token_ids[1] == tok.convert_tokens_to_ids(["world", "news"])
    top = set(candidate_tokens(default_model, 5000).tolist())
    assert all(ids[0] in top for ids in init.token_ids[2:])


def test_class_label__warns_when_prompt_shorter_than_labels(default_model):
    with pytest.warns(UserWarning, match="shorter than the 4 labels"):
        init = initialise("class-label", default_model, 2, labels=LABELS)
    assert init.details["labels"] == ["joy", "anger"]


def test_text__cycled_to_length(default_model):
    init = initialise("text", default_model, 5, text="classify the feeling")
    ids = default_model.tokenizer("classify the feeling", add_special_tokens=False)["input_ids"]
    assert [t[0] for t in init.token_ids] == [ids[i % len(ids)] for i in range(5)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "glove"}, "init 'glove' is not known"),
        ({"method": "class-label"}, "needs the class labels"),
        ({"method": "text"}, "needs a non-empty text"),
        ({"method": "sampled-vocab", "length": 0}, "prompt length is 0"),
        ({"method": "sampled-vocab", "length": 20, "top_n": 10}, "needs 20 distinct tokens but only 10"),
    ],
)
def test_initialise__errors(default_model, kwargs, message):
    kwargs = {"length": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        initialise(kwargs.pop("method"), default_model, kwargs.pop("length"), **kwargs)


def test_init_method__survives_a_json_round_trip_through_the_config():
    import json

    from probe.training.config import TrainConfig

    for method in InitMethod:
        config = TrainConfig(init=method, init_text="hello world" if method is InitMethod.TEXT else None)
        back = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert back == config and InitMethod.parse(back.init) is method
    with pytest.raises(ValueError, match="not known"):
        InitMethod.parse("zeros")


def test_random_uniform__norm_is_the_documented_0_29_sqrt_d(default_model):
    init = initialise("random-uniform", default_model, 200, seed=0)
    norms = np.linalg.norm(init.vectors, axis=1)
    assert np.abs(init.vectors).max() <= 0.5
    assert norms.mean() == pytest.approx(0.5 * math.sqrt(default_model.dim / 3), rel=0.02)  # 5.66 for d = 384


def test_class_label__a_string_for_labels_is_refused(default_model):
    with pytest.raises(TypeError, match="labels is 'joy', a single string; expected a list of text"):
        initialise("class-label", default_model, 5, labels="joy", seed=0)  # never the labels j, o, y
