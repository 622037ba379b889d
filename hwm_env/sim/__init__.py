"""HWM-Sim-v0, the MuJoCo reference simulator (see `env.HWMSimEnv`).

Submodules: `layout` (the 25-d state/action layout, no MuJoCo), `env` (the Gymnasium
env and `SimState` snapshots), `exploration` (scripted data policy), `goals`
(`GoalSampler` for goal-reaching benchmarks), `dynamics` (`SimDynamics`, the simulator
as a batched planning model), `commands` (`hwm data sim`). Attributes are imported
lazily so that the CLI does not load MuJoCo until a command needs it.
"""
from __future__ import annotations

import importlib

from hwm_env.sim.layout import ACTION_DIM, ACTION_NAMES, STATE_NAMES

_LAZY = {
    "HWMSimEnv": "hwm_env.sim.env",
    "SimState": "hwm_env.sim.env",
    "ExplorationPolicy": "hwm_env.sim.exploration",
    "GoalSampler": "hwm_env.sim.goals",
    "Goal": "hwm_env.sim.goals",
    "SimDynamics": "hwm_env.sim.dynamics",
    "RenderingUnavailableError": "hwm_env.sim.rendering",
}

__all__ = ["ACTION_DIM", "ACTION_NAMES", "STATE_NAMES", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwm_env.sim' has no attribute '{name}'")
