"""``probe frontier``'s grid: faithfulness weights λ x seeds, one init and length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe.experiments.grid import Cost
from probe.experiments.sweep import OnePromptSettings, Plan
from probe.readings.explain.search import SearchSettings
from probe.training.config import TrainConfig, check_weight

AIM = {"gain_retained": 0.8, "agreement": 0.9, "soft_within": 0.015}
"""The aim a point is measured against: its reading keeps 80% of the gain over zero-shot and agrees with the soft
prompt on 90% of the test rows, while its soft accuracy is within 1.5 points of the unconstrained runs'."""


@dataclass(frozen=True, kw_only=True)
class FrontierConfig(OnePromptSettings):
    """What ``probe frontier`` trains: faithfulness weights x seeds (see :class:`SweepSettings` for the rest)."""

    weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    hard_lengths: tuple[int, ...] = ()
    """Lengths of a hard prompt found by the exact search from the run whose nearest tokens score best, each a point
    of the frontier (:func:`probe.experiments.frontier.measure.hard_prompts`); multiples of ``length``."""
    hard_steps: int = 50
    """Steps of each of those searches."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights:
            raise ValueError("a frontier needs at least one weight and one seed")
        for value in self.hard_lengths:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % self.length:
                raise ValueError(
                    f"a hard-prompt length is {value!r}; expected a positive multiple of the prompt's {self.length} "
                    f"positions ({self.length}, {2 * self.length}, {4 * self.length}, ...)"
                )
        if isinstance(self.hard_steps, bool) or not isinstance(self.hard_steps, int) or self.hard_steps < 1:
            raise ValueError(f"hard_steps is {self.hard_steps!r}; expected a positive number of search steps")
        named: dict[str, float] = {}
        for weight in self.weights:
            check_weight(weight, "a faithfulness weight", upper=1.0)
            other = named.setdefault(run_name(weight, 0), weight)
            if other != weight:
                raise ValueError(
                    f"weights {other!r} and {weight!r} both name the run '{run_name(weight, 0)}' (a run name keeps 6 "
                    "significant digits); give weights that differ within them"
                )

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """The ``--quick`` sweep: weights 0, 0.5 and 1, one seed, 60 steps, the figures on 400 test rows."""
        return {"weights": (0.0, 0.5, 1.0), "seeds": (0,), "steps": 60, "test_size": 400}

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole sweep."""
        return {
            run_name(weight, seed): self.train_config(seed=seed, faithfulness_weight=weight)
            for weight in self.weights
            for seed in self.seeds
        }

    def reading_cost(self, plan: Plan[Any]) -> Cost:
        # each run's prompt and its nearest tokens scored on the test rows; each hard prompt's search (a step: a
        # gradient and its candidates' passes, about 1 + candidates / 3 training steps) and its scoring
        searches = len(self.hard_lengths)
        steps = searches * self.hard_steps * (1 + SearchSettings().candidates / 3)
        return Cost(rows=2 * (self.test_size or 0) * (len(plan.configs) + searches), steps=steps)


def run_name(weight: float, seed: int) -> str:
    """The folder name of the run with faithfulness weight ``weight`` and seed ``seed`` (``lambda0.1-s0``)."""
    return f"lambda{weight:g}-s{seed}"
