"""How policy outputs become commanded actions: target offsets (or steps) around the episode's start command."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from train.policy.settings import ControlSettings


class Commander:
    """Policy outputs u in [-1, 1] on the task's controlled joints -> 25-d commanded actions.

    The command state of N episodes is (N, 2A): the current command, then the start command
    (the task episode's `hold_action`: the start pose with the base still). `"offset"` sets
    the controlled entries to `start + max_offset * u`, so u = 0 holds the start pose and an
    imperfect policy's error stays bounded; `"delta"` moves them by `max_delta * u` from the
    current command. Every other entry keeps the start command, as the task's action box says.
    """

    def __init__(self, controlled, control: ControlSettings, action_dim: int = 25):
        self.dims = np.asarray(controlled, dtype=np.int64)
        if self.dims.size == 0 or self.dims.min() < 0 or self.dims.max() >= action_dim:
            raise ValueError(f"controlled entries must be indices into the {action_dim}-d action, got {list(self.dims)}")
        self.action_dim, self.control = action_dim, control
        self.space = spaces.Box(-1.0, 1.0, (len(self.dims),), np.float32)

    def start(self, hold_actions: np.ndarray) -> np.ndarray:
        """The command state (N, 2A) of episodes that start holding `hold_actions` (N, A)."""
        commanded = np.clip(np.asarray(hold_actions, np.float32), -1.0, 1.0)
        return np.concatenate([commanded, commanded], axis=1)

    def step(self, commands: np.ndarray, policy_actions) -> np.ndarray:
        """The next command state for policy outputs u (N, len(dims)), clipped to [-1, 1]."""
        u = np.clip(np.asarray(policy_actions, np.float32), -1.0, 1.0).reshape(len(commands), len(self.dims))
        commanded, start = commands[:, : self.action_dim].copy(), commands[:, self.action_dim:]
        if self.control.action_mode == "offset":
            commanded[:, self.dims] = start[:, self.dims] + self.control.max_offset * u
        else:
            commanded[:, self.dims] += self.control.max_delta * u
        return np.concatenate([np.clip(commanded, -1.0, 1.0), start], axis=1).astype(np.float32)

    def action(self, commands: np.ndarray) -> np.ndarray:
        """What to send to the env: the current commands (N, A)."""
        return np.ascontiguousarray(commands[:, : self.action_dim])

    def controlled_commands(self, commands: np.ndarray) -> np.ndarray:
        """(N, 2 C): the current and the start command of the controlled entries (what the policy sees of them)."""
        return np.concatenate([commands[:, self.dims], commands[:, self.action_dim + self.dims]], axis=1)
