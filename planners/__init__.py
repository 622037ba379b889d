"""Planners (random shooting, CEM, MPPI) and the MPC loop, over batched latent rollouts.

Names are imported lazily (PEP 562) so `hwm --help`, which imports `planners.commands`,
does not pay for torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "RandomShooting": "planners.random_shooting",
    "CEM": "planners.cem",
    "MPPI": "planners.mppi",
    "MPC": "planners.mpc",
    "FilteredPlanner": "planners.plan_filter",
    "LatentGoalCost": "planners.costs",
    "ImageGoalCost": "planners.costs",
    "CallableCost": "planners.costs",
    "WorldModelDynamics": "planners.dynamics",
    "WorldModelContext": "planners.dynamics",
    "load_world_model_dynamics": "planners.dynamics",
    "SamplingPlanner": "planners.base",
    "bounds_from_space": "planners.base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'planners' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
