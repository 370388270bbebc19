"""Training toward a readable prompt: the straight-through faithfulness term and the projection term."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probe.tasks.kinds import make_task, prompt_parameter, wrap_with_prompt
from probe.training.readable import faithfulness_loss, projected, projection_loss, projection_targets


@pytest.fixture()
def task(default_model):
    rows = default_model.embeddings_numpy()[[2000, 3000, 4000]] + 0.05
    return make_task(default_model, wrap_with_prompt(default_model, rows), ["joy", "fear"])


def test_faithfulness_loss__at_1_is_the_loss_at_the_nearest_tokens_with_its_gradient_passed_through(
    task, default_model, default_index
):
    texts, targets = ["I won the prize", "a shadow in the hall"], [0, 1]
    weight = prompt_parameter(task.peft_model)
    loss = faithfulness_loss(task.peft_model, lambda: task.loss(texts, targets), default_model, weight=1.0)
    (through,) = torch.autograd.grad(loss, weight)
    _, ids = default_index.search(weight.detach().numpy(), 1)
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.copy_(default_model.embeddings[ids[:, 0]])
    at_tokens = task.loss(texts, targets)
    (direct,) = torch.autograd.grad(at_tokens, weight)
    with torch.no_grad():
        weight.copy_(saved)
    assert float(loss.detach()) == pytest.approx(float(at_tokens), rel=1e-5)
    torch.testing.assert_close(through, direct, rtol=1e-4, atol=1e-6)
    mixed = faithfulness_loss(task.peft_model, lambda: task.loss(texts, targets), default_model, weight=0.5)
    assert float(mixed) == pytest.approx(0.5 * float(task.loss(texts, targets)) + 0.5 * float(at_tokens), rel=1e-5)
    with pytest.raises(ValueError, match="faithfulness weight is -0.5; expected a number of at least 0"):
        faithfulness_loss(task.peft_model, lambda: task.loss(texts, targets), default_model, weight=-0.5)


def test_projected__only_inside_the_block(task, default_model):
    texts = ["I won the prize"]
    before = task.scores(texts)
    with projected(task.peft_model, default_model.embeddings[:3]):
        inside = task.scores(texts)
    assert not torch.allclose(before, inside) and torch.allclose(task.scores(texts), before)


def test_projection_loss__pulls_toward_the_targets_and_refuses_bad_ones(default_model, default_index):
    targets = projection_targets("text:the ocean and the stars", default_model, default_index, 5, [])
    tokens = [default_model.vocabulary.display[int(default_index.token_ids[t])] for t in targets]
    assert tokens == ["ocean", "stars", "ocean", "stars", "ocean"] or tokens[:2] == ["the", "ocean"]
    prompt = torch.nn.Parameter(torch.randn(5, default_model.dim))
    vocab = torch.from_numpy(default_index.unit)
    optimizer = torch.optim.Adam([prompt], lr=0.05)
    first = float(projection_loss(prompt, torch.from_numpy(targets), vocab))
    for _ in range(30):
        optimizer.zero_grad()
        projection_loss(prompt, torch.from_numpy(targets), vocab).backward()
        optimizer.step()
    assert float(projection_loss(prompt, torch.from_numpy(targets), vocab)) < first / 2
    _, ids = default_index.search(prompt.detach().numpy(), 1)
    assert (ids[:, 0] == default_index.token_ids[targets]).all()  # the reading now says the text
    with pytest.raises(ValueError, match="has no usable tokens"):
        projection_targets("text:[CLS] [SEP]", default_model, default_index, 3, [])
    with pytest.raises(ValueError, match="needs every position to start as a token"):
        projection_targets("init", default_model, default_index, 3, [[], [], []])
    with pytest.raises(ValueError, match="is not known"):
        projection_targets("nearest", default_model, default_index, 3, [])


@pytest.mark.slow
def test_train__with_both_terms_records_them_and_moves_the_reading(tmp_path, default_model):
    from dataclasses import replace

    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    base = replace(TrainConfig(), init="class-label", length=4, steps=10, eval_every=10, snapshot_every=10, lr=0.05)
    config = replace(base, faithfulness_weight=0.5, project_to="text:ocean stars", project_weight=1.0)
    run = train(config, tmp_path / "r", model=default_model, progress=False)
    assert run.manifest.config["faithfulness_weight"] == 0.5 and run.manifest.config["project_to"] == "text:ocean stars"
    assert all(np.isfinite(run.metrics()["loss"]))
    with pytest.raises(ValueError, match="project_weight needs a target"):
        replace(base, project_weight=1.0)


def test_projection_loss__a_temperature_or_shapes_it_cannot_use_are_one_line():
    """τ = 0 gave NaN and τ < 0 a loss that pushes each position away from its target; arrays and misfit shapes
    failed deep in torch (errors.md 198)."""
    prompt, targets, vocabulary = torch.randn(3, 8), torch.tensor([0, 1, 2]), F.normalize(torch.randn(5, 8), dim=-1)
    assert float(projection_loss(prompt, targets, vocabulary)) > 0
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="temperature is .*; expected a positive number"):
            projection_loss(prompt, targets, vocabulary, temperature=bad)
    with pytest.raises(TypeError, match="projection_loss: prompt is a ndarray; expected a torch tensor"):
        projection_loss(prompt.numpy(), targets, vocabulary)
    with pytest.raises(ValueError, match=r"prompt \(3, 8\), targets \(3,\), vocabulary \(5, 4\); expected"):
        projection_loss(prompt, targets, vocabulary[:, :4])
