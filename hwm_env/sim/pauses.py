"""Exploration with pauses: the robot stops, settles and stands still for a while, then goes on.

`ExplorationPolicy` keeps every joint moving, so a world model trained on it has never seen a
robot standing still under a held command, and it predicts motion there: after 30 still frames
with the command held, `flow-default` rolls the unchanged view out at 29.4 dB for the first
frame and 22.6 dB by the fourth, where the tokenizer reconstructs it at 30.4 dB
(`benchmarks/planning_goal_bias.py`). A planner near its goal asks exactly that question.
`PausingPolicy` wraps a policy: between stretches of its actions it holds the last command
(the base stops driving) for `PAUSE_SECONDS`, long enough for the servos to settle (about
1.5 s) and leave still frames; the wrapped policy is not advanced during a pause, so it
resumes where it stopped. (Fine-tuning `flow-default` on a half-paused data set lessened the
drift but did not make it plan better; the README's Planning section has the numbers.)
"""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout

PAUSE_SECONDS = (2.0, 4.0)  # a pause: the servos settle in about 1.5 s, then the robot stands still
MOVE_SECONDS = (2.0, 6.0)  # the wrapped policy acts this long between pauses


class PausingPolicy:
    """`policy` with seeded pauses; the same call protocol (`act()` before each `env.step`)."""

    def __init__(self, env, policy, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.control_hz = float(env.unwrapped.control_hz)
        self.policy = policy
        self.held: np.ndarray | None = None
        self.paused = False
        self.left = self._frames(MOVE_SECONDS)

    def __call__(self) -> np.ndarray:
        return self.act()

    def act(self) -> np.ndarray:
        """The next action (float32, shape (25,)): the wrapped policy's, or the held one in a pause."""
        if self.left <= 0 and self.held is not None:
            self.paused = not self.paused
            self.left = self._frames(PAUSE_SECONDS if self.paused else MOVE_SECONDS)
        self.left -= 1
        if self.paused:
            return self.held.copy()
        action = np.asarray(self.policy.act(), np.float32)
        self.held = action.copy()
        self.held[layout.BASE_SLICE] = 0.0  # a pause stops the base too
        return action

    def _frames(self, seconds: tuple[float, float]) -> int:
        return max(1, int(round(self.rng.uniform(*seconds) * self.control_hz)))
