"""The planning benchmark's fixed settings: rows, planner defaults, `Protocol`, and planners built from them."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from hwm_env.sim.goals import SUCCESS_THRESHOLD

WORLD_MODELS = ("flow", "masked")
MODELS = ("flow", "masked", "oracle", "random", "hold")
PLANNERS = ("cem", "mppi")
COSTS = ("latent", "image")
MODEL_LABELS = {
    "flow": "Flow-HWM",
    "masked": "Masked-HWM",
    "oracle": "oracle (simulator)",
    "random": "random actions",
    "hold": "hold start pose",
}

# A plan costs num_samples x iterations x horizon x action_repeat one-frame predictions
# (16 x 2 x 1 x 4 = 128) in iterations x horizon x action_repeat batched model calls. With
# the shipped default architectures that takes about 0.75 s per plan for either family (Flow-HWM,
# 2 Euler steps; Masked-HWM, 1 MaskGIT step) on one CPU thread beside other work.
# Replanning after every held action makes up for the small search.
# The sampling width restarts at init_std / max_std every plan, so it is also the noise a
# replan adds to joints the image cannot see well: 0.1 (a twentieth of each joint's range)
# keeps that below the goal offsets (<= 0.3 action units); in 3 oracle episodes 0.3 reached
# 0.097 / 0.038 rad (CEM / MPPI, 3 episodes) where 0.1 reached 0.028 / 0.013. CEM keeps
# the best eighth (DINO-WM: 30 of 300): its mean of 4 elites reached 0.030 rad over 20
# oracle episodes, of 2 elites 0.024 over 10; MPPI weights its 4 elites instead.
# filter_scale: plans pass through a soft deadband across replans (planners/plan_filter.py; 0
# turns it off). On 20 episodes it took Flow-HWM + MPPI from 7/20 to 14/20 (better in 15 of the 20
# paired episodes) and + CEM from 5/20 to 6/20, the oracle from 16/20 to 16/20 (MPPI) and 14/20
# (CEM): the world model's plans jitter near the goal, the simulator's hardly do.
PLANNER_DEFAULTS = {
    "cem": {"horizon": 1, "num_samples": 16, "num_elites": 2, "iterations": 2, "init_std": 0.1, "min_std": 0.02,
            "filter_scale": 0.05},
    "mppi": {"horizon": 1, "num_samples": 16, "num_elites": 4, "iterations": 2, "temperature": 0.5,
             "min_std": 0.02, "max_std": 0.1, "filter_scale": 0.05},
}
QUICK_PLANNER_SETTINGS = {
    "cem": {"num_samples": 6, "num_elites": 2, "iterations": 1},
    "mppi": {"num_samples": 6, "num_elites": 2, "iterations": 1},
}
QUICK_PROTOCOL = {"episodes": 2, "steps": 4, "action_repeat": 2, "settle_steps": 4}


@dataclasses.dataclass
class Protocol:
    """The episode settings every row shares."""

    episodes: int = 20
    steps: int = 48  # frames executed per episode: 3.2 s at 15 Hz (a goal pose settles in 1.5 s)
    action_repeat: int = 4  # frames each planned action is held
    replan_every: int = 1  # planned (held) actions executed between plans
    seed: int = 0
    settle_steps: int = 8  # hold frames before the goal is drawn; the world models' context comes from them
    max_goal_offset: float = 0.3  # GoalSampler: largest offset per goal joint, in action units
    success_threshold: float = SUCCESS_THRESHOLD  # rad, final view error; the default is the one success predicate
    cost_reduce: str = "final"  # distance of the last planned frame ("final") or of all ("sum")
    cost: str = "latent"  # "latent": LatentGoalCost; "image": ImageGoalCost (decoded frames, blurred)
    cost_blur: float = 4.0  # ImageGoalCost's Gaussian sigma, pixels

    def __post_init__(self):
        for name in ("episodes", "steps", "action_repeat", "replan_every", "settle_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be an integer >= 1, got {value!r}")
        if self.steps % self.action_repeat:
            raise ValueError(f"steps ({self.steps}) must be a multiple of action-repeat ({self.action_repeat})")
        if not 0 < self.max_goal_offset <= 2:
            raise ValueError(f"max-goal-offset must be in (0, 2] action units, got {self.max_goal_offset}")
        if not (math.isfinite(self.success_threshold) and self.success_threshold > 0):
            raise ValueError(f"success-threshold must be a positive number of radians, got {self.success_threshold}")
        if self.cost_reduce not in ("final", "sum"):
            raise ValueError(f"cost-reduce must be 'final' or 'sum', got '{self.cost_reduce}'")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {list(COSTS)}, got '{self.cost}'")
        if not (math.isfinite(self.cost_blur) and self.cost_blur >= 0):
            raise ValueError(f"cost-blur must be a number of pixels >= 0, got {self.cost_blur}")

    @property
    def decisions(self) -> int:
        """Held actions executed per episode."""
        return self.steps // self.action_repeat


def planner_settings(planner: str, overrides: dict | None = None, quick: bool = False) -> dict:
    """The planner's hyper-parameters: defaults, then the quick ones, then `overrides` (checked by name)."""
    if planner not in PLANNER_DEFAULTS:
        raise ValueError(f"unknown planner '{planner}'; known: {list(PLANNERS)}")
    settings = dict(PLANNER_DEFAULTS[planner])
    if quick:
        settings.update(QUICK_PLANNER_SETTINGS[planner])
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ValueError(f"{planner}: unknown hyper-parameter '{key}'; known: {sorted(settings)}")
        settings[key] = type(PLANNER_DEFAULTS[planner][key])(value)
    if not settings["filter_scale"]:
        del settings["filter_scale"]  # off: rows and tables name only what planned
    return settings


def parse_overrides(planner: str, pairs: Sequence[str] | None) -> dict:
    """`["horizon=2", "init_std=0.5"]` -> {"horizon": 2, "init_std": 0.5}, typed like the defaults."""
    overrides = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--{planner}: expected KEY=VALUE, got '{pair}'")
        if key not in PLANNER_DEFAULTS[planner]:
            known = sorted(PLANNER_DEFAULTS[planner])
            raise ValueError(f"--{planner}: unknown hyper-parameter '{key}'; known: {known}")
        kind = type(PLANNER_DEFAULTS[planner][key])
        try:
            overrides[key] = kind(text)
        except ValueError:
            raise ValueError(f"--{planner}: {key} must be {kind.__name__}, got '{text}'") from None
    return overrides


def make_planner(planner: str, settings: dict, seed: int, low=-1.0, high=1.0):
    from planners.cem import CEM
    from planners.mppi import MPPI
    from planners.plan_filter import FilteredPlanner

    settings = dict(settings)
    filter_scale = settings.pop("filter_scale", 0.0)
    made = {"cem": CEM, "mppi": MPPI}[planner](**settings, low=low, high=high, seed=seed)
    return FilteredPlanner(made, filter_scale) if filter_scale else made
