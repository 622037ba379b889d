"""Humanoid World Models as Gymnasium environments.

Importing this package registers `HWM-Sim-v0` (the MuJoCo reference simulator),
`HWM-Flow-v0` and `HWM-Masked-v0` (world models that generate the next frames).
"""
from __future__ import annotations

import os

from hwm_env import threads as _threads

# MuJoCo picks its GL backend at import time; EGL renders headless on CPU-only machines.
os.environ.setdefault("MUJOCO_GL", "egl")
# OpenMP reads its wait policy when torch loads: set it first (hwm_env/threads.py says why).
_threads.set_default_wait_policy()
_threads.install_fork_guard()

import gymnasium as gym  # noqa: E402

__version__ = "0.5.0"


def _register(env_id: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(env_id, **kwargs)


_register("HWM-Sim-v0", entry_point="hwm_env.sim.env:HWMSimEnv", max_episode_steps=1000)
_register(
    "HWM-Flow-v0",
    entry_point="hwm_env.world_model_env:HWMEnv",
    vector_entry_point="hwm_env.vector_env:HWMVectorEnv",
    max_episode_steps=200,
    kwargs={"checkpoint": "flow-default"},
)
_register(
    "HWM-Masked-v0",
    entry_point="hwm_env.world_model_env:HWMEnv",
    vector_entry_point="hwm_env.vector_env:HWMVectorEnv",
    max_episode_steps=200,
    kwargs={"checkpoint": "masked-default"},
)
