"""The best real-token prompt: projected-gradient discrete optimisation in the style of PEZ (Wen et al. 2023).

A continuous prompt is kept. For every forward pass it is projected to its nearest tokens (by cosine, over
the searchable vocabulary). The gradient taken at that projected prompt updates the continuous copy (Adam).
Search starts from the soft prompt's nearest tokens. A held-out slice of the training data (seeded,
stratified) scores the projected prompt every ``eval_every`` steps, and the best one seen is kept, so the
result is never worse there than the start. Batches depend only on (seed, step), and the state (continuous
prompt, Adam moments, best so far) is saved every ``eval_every`` steps, so a search resumes where it stopped.

The result is saved as ``hard-prompt.json`` (token ids, their text, accuracies), and probe loads that file
as a prompt: the embedding rows of its token ids.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probe.batching import batches
from probe.cache import read_cache, write_cache
from probe.data import LabelledData
from probe.evaluation import eval_subset
from probe.explain import Readout, _progress, _to_json
from probe.models import canonical_name, load_model
from probe.prompts import Loader, register_loader
from probe.runs import HARD_PROMPT
from probe.softprompt import SoftPrompt, check_vectors
from probe.tasks import prompt_parameter
from probe.util import atomic_write_json

STATE = "hard-prompt-state"
STATE_FORMAT = 1


@dataclass(frozen=True)
class HardPrompt:
    """A prompt made of real tokens, with its accuracy beside the soft prompt's."""

    model: str
    token_ids: list[int]
    tokens: list[str]
    text: str
    accuracy: float
    soft_accuracy: float
    discretised_accuracy: float
    zero_shot_accuracy: float
    holdout_accuracy: float
    start_holdout_accuracy: float
    changed_positions: int
    steps: int
    best_step: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text."""
        return _to_json(self.to_dict())

    def to_markdown(self) -> str:
        """A short readable summary."""
        return "\n".join(
            [
                f"Hard prompt ({len(self.token_ids)} tokens, {self.changed_positions} changed from the nearest-token "
                f"reading, best at step {self.best_step} of {self.steps}): `{self.text}`",
                "",
                "| prompt | test accuracy |",
                "|---|---:|",
                f"| soft | {self.soft_accuracy:.3f} |",
                f"| hard (this search) | {self.accuracy:.3f} |",
                f"| nearest tokens (discretised) | {self.discretised_accuracy:.3f} |",
                f"| zero-shot | {self.zero_shot_accuracy:.3f} |",
                "",
                f"Held-out slice of the training data: {self.start_holdout_accuracy:.3f} at the start, "
                f"{self.holdout_accuracy:.3f} for the prompt kept.",
            ]
        )

    def to_dataframe(self) -> Any:
        """One row per position: the token kept."""
        import pandas as pd

        return pd.DataFrame({"position": range(len(self.token_ids)), "token_id": self.token_ids, "token": self.tokens})


def _holdout(train: LabelledData, share: float, seed: int) -> tuple[LabelledData, LabelledData]:
    """(rows to take gradients on, held-out rows to choose the prompt on): seeded and stratified."""
    held = eval_subset(train, max(len(train.label_names), round(len(train) * share)), seed)
    held_rows = set(held.texts)
    rest = [i for i, t in enumerate(train.texts) if t not in held_rows]
    return train.subset(rest), held


def harden(
    prompt: SoftPrompt | np.ndarray,
    readout: Readout,
    *,
    steps: int = 100,
    lr: float = 0.1,
    batch_size: int = 16,
    eval_every: int = 10,
    holdout: float = 0.2,
    seed: int = 0,
    state_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> HardPrompt:
    """Search for the best real-token prompt from the soft prompt's nearest tokens (see the module docstring).

    Args:
        prompt: the soft prompt.
        readout: the model, data and task settings (:class:`probe.explain.Readout`).
        steps: optimisation steps.
        lr: Adam's learning rate on the continuous prompt.
        batch_size: training texts per step.
        eval_every: score on the held-out slice (and save the state) every this many steps.
        holdout: share of the training data held out to choose the prompt.
        seed: seeds the held-out slice and the batches.
        state_dir: where to keep the resumable state (a search with the same settings continues from it).
        progress: show a progress bar.

    Raises:
        ValueError: non-positive steps or interval, a share outside (0, 1), or a prompt of another dimension.
    """
    if steps < 1 or eval_every < 1 or batch_size < 1:
        raise ValueError(f"steps {steps}, eval_every {eval_every} and batch_size {batch_size} must be positive")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout is {holdout}; expected a share between 0 and 1")
    vectors = check_vectors(prompt.vectors if isinstance(prompt, SoftPrompt) else prompt)
    embeddings = readout.model.embeddings_numpy()
    start_ids = readout.nearest_ids(vectors)
    train, held = _holdout(readout.splits.train, holdout, seed)
    task = readout.task(vectors.shape[0])
    weight = prompt_parameter(task.peft_model)
    continuous = torch.nn.Parameter(torch.from_numpy(embeddings[start_ids].copy()))
    optimizer = torch.optim.Adam([continuous], lr=lr)
    settings = {
        "format": STATE_FORMAT,
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "holdout": holdout,
        "start_ids": start_ids.tolist(),
        "model": readout.model.fingerprint,
    }
    first, best_ids, best_acc, best_step, start_acc = 1, start_ids, -1.0, 0, -1.0
    saved = _load_state(state_dir, settings)
    if saved is not None:
        meta, arrays = saved
        with torch.no_grad():
            continuous.copy_(torch.from_numpy(arrays["continuous"]))
        optimizer.load_state_dict(_adam_state(optimizer, arrays, meta))
        first, best_acc, best_step, start_acc = meta["step"] + 1, meta["best_acc"], meta["best_step"], meta["start_acc"]
        best_ids = arrays["best_ids"]
    else:
        start_acc = best_acc = _accuracy(readout, embeddings[start_ids], held)
    bar = _progress(steps, "hard prompt", progress)
    bar.update(first - 1)
    for step, rows in batches(len(train), batch_size, seed, start=first):
        if step > steps:
            break
        ids = readout.nearest_ids(continuous.detach().numpy())
        with torch.no_grad():
            weight.copy_(torch.from_numpy(embeddings[ids]).to(weight.device, weight.dtype))
        weight.grad = None
        loss = task.loss([train.texts[i] for i in rows], [train.targets[i] for i in rows])
        (grad,) = torch.autograd.grad(loss, weight)
        optimizer.zero_grad()
        continuous.grad = grad.detach().to(continuous.dtype).cpu()
        optimizer.step()
        bar.update(1)
        if step % eval_every == 0 or step == steps:
            ids = readout.nearest_ids(continuous.detach().numpy())
            acc = _accuracy(readout, embeddings[ids], held)
            if acc > best_acc:
                best_ids, best_acc, best_step = ids, acc, step
            _save_state(state_dir, settings, step, continuous, optimizer, best_ids, best_acc, best_step, start_acc)
    bar.close()
    test = readout.splits.test
    display = readout.model.vocabulary.display
    return HardPrompt(
        model=canonical_name(readout.model.name),
        token_ids=[int(i) for i in best_ids],
        tokens=[display[int(i)] for i in best_ids],
        text=str(readout.model.tokenizer.decode([int(i) for i in best_ids])),
        accuracy=_accuracy(readout, embeddings[best_ids], test),
        soft_accuracy=_accuracy(readout, vectors, test),
        discretised_accuracy=_accuracy(readout, embeddings[start_ids], test),
        zero_shot_accuracy=readout.zero_shot(),
        holdout_accuracy=float(best_acc),
        start_holdout_accuracy=float(start_acc),
        changed_positions=int((np.asarray(best_ids) != start_ids).sum()),
        steps=steps,
        best_step=best_step,
        seed=seed,
    )


def _accuracy(readout: Readout, vectors: np.ndarray, data: LabelledData) -> float:
    return float(readout.outcome(vectors, data)[0].mean())


def _state_paths(state_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    folder = Path(state_dir)
    return folder / f"{STATE}.json", folder / f"{STATE}.safetensors"


def _save_state(
    state_dir: Any,
    settings: dict[str, Any],
    step: int,
    continuous: torch.Tensor,
    optimizer: Any,
    best_ids: np.ndarray,
    best_acc: float,
    best_step: int,
    start_acc: float,
) -> None:
    if state_dir is None:
        return
    adam = optimizer.state_dict()["state"].get(0, {})
    arrays = {"continuous": continuous.detach().numpy().copy(), "best_ids": np.asarray(best_ids, np.int64)}
    for key in ("exp_avg", "exp_avg_sq"):
        if key in adam:
            arrays[key] = adam[key].numpy().copy()
    adam_step = float(adam["step"]) if "step" in adam else 0.0
    meta = {
        **settings,
        "step": step,
        "best_acc": best_acc,
        "best_step": best_step,
        "start_acc": start_acc,
        "adam_step": adam_step,
    }
    write_cache(*_state_paths(state_dir), arrays, meta)


def _load_state(state_dir: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    if state_dir is None:
        return None
    return read_cache(*_state_paths(state_dir), settings)


def _adam_state(optimizer: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    state = optimizer.state_dict()
    if "exp_avg" in arrays:
        state["state"] = {
            0: {
                "step": torch.tensor(meta["adam_step"]),
                "exp_avg": torch.from_numpy(arrays["exp_avg"]),
                "exp_avg_sq": torch.from_numpy(arrays["exp_avg_sq"]),
            }
        }
    return state


def save_hard_prompt(hard: HardPrompt, folder: str | os.PathLike[str]) -> Path:
    """Write ``hard-prompt.json`` into ``folder`` atomically; returns its path."""
    path = Path(folder) / HARD_PROMPT
    atomic_write_json(path, hard.to_dict())
    return path


def _is_hard_prompt(path: Path) -> bool:
    return path.is_file() and path.name.endswith(HARD_PROMPT)


def _load_hard_prompt(path: Path, key: str | None) -> list[SoftPrompt]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ids, model_name = [int(i) for i in data["token_ids"]], str(data["model"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"'{path}' is not a hard prompt written by probe (needs 'model' and 'token_ids'): {e}") from e
    model = load_model(model_name, device="cpu")
    if not ids or min(ids) < 0 or max(ids) >= model.vocab_size:
        raise ValueError(f"'{path}' holds token ids outside the vocabulary of '{model_name}' ({model.vocab_size})")
    vectors = model.embeddings_numpy()[ids]
    return [SoftPrompt(vectors=vectors, source=str(path), base_model=model.name, metadata={"hard_prompt": data})]


register_loader(
    Loader("hard-prompt", f"a {HARD_PROMPT} of token ids (probe explain)", _is_hard_prompt, _load_hard_prompt)
)
