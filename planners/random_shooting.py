"""Random shooting: sample uniformly, keep the best sequence.

The baseline every other planner must beat at equal rollout budget. With a warm start
the previous plan (shifted) is one of the candidates, so a replan never scores worse
than continuing the old plan.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from planners.base import Cost, Dynamics, SamplingPlanner, uniform_samples


class RandomShooting(SamplingPlanner):
    """Best of `num_samples` uniform action sequences in [low, high]."""

    name = "RandomShooting"

    def __init__(
        self,
        horizon: int = 5,
        num_samples: int = 1000,
        low: float | Sequence[float] | torch.Tensor = -1.0,
        high: float | Sequence[float] | torch.Tensor = 1.0,
        seed: int | None = None,
    ):
        super().__init__(horizon, num_samples, low, high, seed)

    @torch.no_grad()
    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor:
        """Return the lowest-cost of the sampled sequences, (H, A) in action units."""
        action_dim = int(dynamics.action_dim)
        self.bounds(action_dim)  # fail before any rollout if the bounds do not fit
        candidates = uniform_samples(self.num_samples, self.horizon, action_dim, self.generator)  # (N, H, A)
        previous = self.warm_start(action_dim, executed_steps)
        if previous is not None:
            candidates[0] = previous
        costs = self.score(dynamics, cost, state, candidates)  # (N,)
        return self.remember(candidates[costs.argmin()])
