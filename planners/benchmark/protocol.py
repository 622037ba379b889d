"""The planning benchmark's fixed settings: rows, planner defaults, `Protocol`, and planners built from them."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

WORLD_MODELS = ("flow", "masked")
MODELS = ("flow", "masked", "oracle", "random", "hold", "scripted")
PLANNERS = ("cem", "mppi")
COSTS = ("goal", "image", "probe")
MODEL_LABELS = {
    "flow": "Flow-HWM",
    "masked": "Masked-HWM",
    "oracle": "oracle (simulator)",
    "random": "random actions",
    "hold": "hold start pose",
    "scripted": "scripted (privileged)",
}

# A plan costs num_samples x iterations x horizon x action_repeat one-frame predictions
# (16 x 2 x 1 x 4 = 128) in iterations x horizon x action_repeat batched model calls. With
# the shipped default architectures that takes about 0.75 s per plan for either family (Flow-HWM,
# 2 Euler steps; Masked-HWM, 1 MaskGIT step) on one CPU thread beside other work.
# Replanning after every held action makes up for the small search.
# The sampling width restarts at init_std / max_std every plan, so it is also the noise a
# replan adds to joints the image cannot see well: 0.1 (a twentieth of each joint's range)
# keeps that below the goal offsets; CEM keeps the best eighth (DINO-WM: 30 of 300), MPPI
# weights its 4 elites instead. filter_scale: plans pass through a soft deadband across
# replans (planners/plan_filter.py; 0 turns it off): world-model plans jitter near the goal.
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
QUICK_PROTOCOL = {"episodes": 2, "steps": 4, "action_repeat": 2}


@dataclasses.dataclass
class Protocol:
    """The episode settings every row of one task shares."""

    task: str = "aim"  # hwm_env.tasks: aim, look-at, reach, push
    episodes: int = 100
    seed_set: str = "test"  # planning seed domain (hwm_env/seeds.py): "selection" (tuned on), "test" (reported), or an int
    steps: int | None = None  # frames executed per episode (default: the task's max_episode_steps)
    action_repeat: int = 4  # frames each planned action is held
    replan_every: int = 1  # planned (held) actions executed between plans
    cost: str = "goal"  # "goal": latent MSE to the goal image; "image": blurred pixel MSE to it; "probe": -task reward
    cost_reduce: str = "final"  # distance of the last planned frame ("final") or of all ("sum")
    cost_blur: float = 4.0  # "image" cost: Gaussian sigma, pixels
    probe: str = "probe-default"  # the state probe of the "probe" cost

    def __post_init__(self):
        from hwm_env.seeds import seed_set
        from hwm_env.tasks import make_task

        task = make_task(self.task)  # unknown names list the known ones
        seed_set(self.seed_set)
        if self.steps is None and isinstance(self.action_repeat, int) and self.action_repeat >= 1:
            self.steps = task.max_episode_steps - task.max_episode_steps % self.action_repeat
        for name in ("episodes", "steps", "action_repeat", "replan_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be an integer >= 1, got {value!r}")
        if self.steps % self.action_repeat:
            raise ValueError(f"steps ({self.steps}) must be a multiple of action-repeat ({self.action_repeat})")
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
