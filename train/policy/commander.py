"""How policy outputs become commanded actions: target offsets (or steps) around the episode's start command."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from train.policy.settings import TaskSettings


class Commander:
    """Policy outputs -> commanded actions, around the command the episode started with.

    The command state of N episodes is (N, 2A): the current command, then the start command.
    `action_mode="offset"`: the controlled entries are set to `start + max_offset * u`;
    `"delta"`: they move by `max_delta * u` from the current command. `control="goal-joints"`
    gives the policy the planning benchmark's action box: the hip, arm and neck joints a
    goal moves; legs and grippers hold their start command and the base is told to stand
    still. `"all"` moves every entry.
    """

    def __init__(self, action_dim: int, task: TaskSettings, low, high):
        from hwm_env.sim import layout

        self.base_dims: list[int] = []
        if task.control == "goal-joints":
            from hwm_env.sim.goals import GOAL_JOINTS

            if action_dim != layout.ACTION_DIM:
                raise ValueError(f"control 'goal-joints' needs the {layout.ACTION_DIM}-d HWM-Sim-v0/1X action layout, "
                                 f"the model has {action_dim}-d actions; use control 'all'")
            self.dims = np.asarray(GOAL_JOINTS)
            self.base_dims = list(range(action_dim))[layout.BASE_SLICE]
        else:
            self.dims = np.arange(action_dim)
        self.action_dim, self.task = action_dim, task
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.space = spaces.Box(-1.0, 1.0, (len(self.dims),), np.float32)

    def start(self, actions: np.ndarray) -> np.ndarray:
        """The command state (N, 2A) of episodes whose last action was `actions` (N, A)."""
        commanded = np.asarray(actions, np.float32).copy()
        commanded[:, self.base_dims] = 0.0
        commanded = np.clip(commanded, self.low, self.high)
        return np.concatenate([commanded, commanded], axis=1)

    def step(self, commands: np.ndarray, policy_actions) -> np.ndarray:
        """The next command state for policy outputs u (N, len(dims)), clipped to [-1, 1]."""
        u = np.clip(np.asarray(policy_actions, np.float32), -1.0, 1.0).reshape(len(commands), len(self.dims))
        commanded, start = commands[:, : self.action_dim].copy(), commands[:, self.action_dim:]
        if self.task.action_mode == "offset":
            commanded[:, self.dims] = start[:, self.dims] + self.task.max_offset * u
        else:
            commanded[:, self.dims] += self.task.max_delta * u
        return np.concatenate([np.clip(commanded, self.low, self.high), start], axis=1).astype(np.float32)

    def action(self, commands: np.ndarray) -> np.ndarray:
        """What to send to the env: the current commands (N, A)."""
        return np.ascontiguousarray(commands[:, : self.action_dim])
