"""A soft deadband on plan changes between MPC replans: keep the big moves, average away the jitter.

A sampling planner with a small budget and a noisy cost (a world model ranks close candidates
poorly) returns a plan that jitters from one replan to the next around where it should rest.
Each replan, every entry of the new plan moves from the previous (shifted) plan by
change * change^2 / (change^2 + scale^2): a change well above `scale` passes almost whole, so
reaching a far goal is not slowed; one well below it is mostly dropped, so near the goal
successive plans are averaged instead of followed. The same trade as speed-adaptive filters of
noisy pointing signals (the 1-euro filter, Casiez et al. 2012). `scale` is in the planner's unit
box ([-1, 1] over [low, high]), like its sampling widths.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from planners.base import Cost, Dynamics, SamplingPlanner


class FilteredPlanner:
    """`planner` whose successive plans pass through the soft deadband; the filtered plan is its warm start."""

    def __init__(self, planner: SamplingPlanner, scale: float):
        if not isinstance(planner, SamplingPlanner):
            raise ValueError(f"FilteredPlanner wraps a SamplingPlanner (CEM, MPPI, ...), got {type(planner).__name__}")
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"FilteredPlanner: scale must be a positive number (unit-box width), got {scale!r}")
        self.planner = planner
        self.scale = float(scale)
        self.horizon = planner.horizon

    def reset(self, seed: int | None = None, initial_plan=None) -> None:
        self.planner.reset(seed=seed, initial_plan=initial_plan)

    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor:
        """The wrapped planner's plan, each entry's change from the previous plan shrunk by the deadband."""
        previous = self.planner.warm_start(int(dynamics.action_dim), executed_steps)  # unit box, or None
        self.planner.plan(dynamics, cost, state, executed_steps=executed_steps)
        planned = self.planner.previous_plan
        if previous is None:  # nothing to filter against: the first plan of an episode without a warm start
            return self.planner.remember(planned)
        change = planned - previous
        squared = change.square()
        return self.planner.remember(previous + change * squared / (squared + self.scale**2))

    def hyperparameters(self) -> dict:
        return {**self.planner.hyperparameters(), "filter_scale": self.scale}

    def __repr__(self) -> str:
        return f"FilteredPlanner({self.planner!r}, scale={self.scale})"
