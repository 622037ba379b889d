"""MPPI in the TD-MPC2 style: elite-weighted Gaussian refits with an std schedule.

Each iteration samples around the mean, keeps the `num_elites` lowest-cost sequences and
weights them by exp(-temperature * (cost - cost_min) / spread), spread being the std of
the elite costs. TD-MPC2 uses exp(temperature * (v - v_max)) on raw values, which ties the
temperature to the units of the cost: with large costs all weight lands on one elite
and the std collapses at once, with small ones (latent MSEs are ~0.01) the weights are
uniform. Measuring cost gaps in units of the elites' spread keeps `temperature` (an
inverse temperature) meaning the same for any cost. The mean and std are refit from the
weighted elites; the std starts at `max_std` each plan and is held in [min_std, max_std]
(TD-MPC2: 2 and 0.05), so it shrinks as the elites agree. Defaults: TD-MPC2's 512
samples, 64 elites, 6 iterations, temperature 0.5; horizon 5 rather than 3 because we
have no terminal value function to score what lies beyond the horizon.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from planners.base import Cost, Dynamics, SamplingPlanner, check_elites, check_positive, gaussian_samples


class MPPI(SamplingPlanner):
    """Model-predictive path integral control over (H, A) action sequences in [low, high]."""

    name = "MPPI"

    def __init__(
        self,
        horizon: int = 5,
        num_samples: int = 512,
        num_elites: int = 64,
        iterations: int = 6,
        temperature: float = 0.5,
        min_std: float = 0.05,
        max_std: float = 2.0,
        low: float | Sequence[float] | torch.Tensor = -1.0,
        high: float | Sequence[float] | torch.Tensor = 1.0,
        seed: int | None = None,
    ):
        super().__init__(horizon, num_samples, low, high, seed)
        check_elites(self.name, num_samples, num_elites, iterations)
        check_positive(self.name, temperature=temperature, min_std=min_std, max_std=max_std)
        if min_std > max_std:
            raise ValueError(f"{self.name}: min_std ({min_std}) must not exceed max_std ({max_std})")
        self.num_elites = int(num_elites)
        self.iterations = int(iterations)
        self.temperature = float(temperature)
        self.min_std = float(min_std)  # unit-box widths: 1.0 is half the [low, high] range
        self.max_std = float(max_std)

    @torch.no_grad()
    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor:
        """Return the elite-weighted mean after `iterations` refits, (H, A) in action units."""
        action_dim = int(dynamics.action_dim)
        self.bounds(action_dim)  # fail before any rollout if the bounds do not fit
        mean = self.warm_start(action_dim, executed_steps)
        if mean is None:
            mean = torch.zeros(self.horizon, action_dim)  # the middle of the bounds
        std = torch.full_like(mean, self.max_std)
        for _ in range(self.iterations):
            candidates = gaussian_samples(mean, std, self.num_samples, self.generator)  # (N, H, A)
            costs = self.score(dynamics, cost, state, candidates)  # (N,)
            elite_costs, elite_index = costs.topk(self.num_elites, largest=False)
            elites = candidates[elite_index]  # (K, H, A)
            spread = elite_costs.std(correction=0).clamp_min(1e-12)  # scale-free gaps (module docstring)
            weights = torch.softmax(-self.temperature * (elite_costs - elite_costs.min()) / spread, dim=0)
            weights = weights[:, None, None]  # (K, 1, 1)
            mean = (weights * elites).sum(dim=0)
            std = (weights * (elites - mean) ** 2).sum(dim=0).sqrt().clamp(self.min_std, self.max_std)
        return self.remember(mean)

    def hyperparameters(self) -> dict:
        return {
            **super().hyperparameters(),
            "num_elites": self.num_elites,
            "iterations": self.iterations,
            "temperature": self.temperature,
            "min_std": self.min_std,
            "max_std": self.max_std,
        }
