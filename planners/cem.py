"""Cross-entropy method (CEM), with the DINO-WM planning defaults.

Each iteration samples Gaussian action sequences around a mean, keeps the lowest-cost
`num_elites` and refits the mean and std to them. Defaults follow DINO-WM
(`conf/plan_*.yaml`: horizon 5, 300 samples, top 30, 10-30 optimisation steps, unit
initial std); the std floor `min_std` keeps some exploration once the elites agree.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from planners.base import Cost, Dynamics, SamplingPlanner, check_elites, check_positive, gaussian_samples


class CEM(SamplingPlanner):
    """Cross-entropy method over (H, A) action sequences in [low, high]."""

    name = "CEM"

    def __init__(
        self,
        horizon: int = 5,
        num_samples: int = 300,
        num_elites: int = 30,
        iterations: int = 10,
        init_std: float = 1.0,
        min_std: float = 0.05,
        low: float | Sequence[float] | torch.Tensor = -1.0,
        high: float | Sequence[float] | torch.Tensor = 1.0,
        seed: int | None = None,
    ):
        super().__init__(horizon, num_samples, low, high, seed)
        check_elites(self.name, num_samples, num_elites, iterations)
        check_positive(self.name, init_std=init_std, min_std=min_std)
        self.num_elites = int(num_elites)
        self.iterations = int(iterations)
        self.init_std = float(init_std)  # unit-box width: 1.0 is half the [low, high] range
        self.min_std = float(min_std)

    @torch.no_grad()
    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor:
        """Refit a Gaussian to the elites `iterations` times; return its mean, (H, A) in action units."""
        action_dim = int(dynamics.action_dim)
        self.bounds(action_dim)  # fail before any rollout if the bounds do not fit
        mean = self.warm_start(action_dim, executed_steps)
        if mean is None:
            mean = torch.zeros(self.horizon, action_dim)  # the middle of the bounds
        std = torch.full_like(mean, self.init_std)
        for _ in range(self.iterations):
            candidates = gaussian_samples(mean, std, self.num_samples, self.generator)  # (N, H, A)
            costs = self.score(dynamics, cost, state, candidates)  # (N,)
            elites = candidates[costs.topk(self.num_elites, largest=False).indices]  # (K, H, A)
            mean = elites.mean(dim=0)
            std = elites.std(dim=0, correction=0).clamp_min(self.min_std)
        return self.remember(mean)

    def hyperparameters(self) -> dict:
        return {
            **super().hyperparameters(),
            "num_elites": self.num_elites,
            "iterations": self.iterations,
            "init_std": self.init_std,
            "min_std": self.min_std,
        }
