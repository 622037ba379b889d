"""Planner-like data: step changes of the goal joints' targets, each held for a few frames.

`ExplorationPolicy` moves every joint group along smooth minimum-jerk paths, with the base
driving and the grippers toggling. A sampling planner acts differently: from a held pose it
jumps the hip, arm and neck targets to a nearby candidate, holds it for a few frames
(`action_repeat`), and near the goal it nudges them by a few hundredths. A world model
trained only on smooth paths has never seen the servo response to a step command, which is
all a planner asks it about. This policy makes that kind of data: the legs, grippers and
base hold their start commands (as in the planning benchmark) and the goal joints follow
held steps: jumps to a random point near an anchor pose, and small nudges around the
current command, with the anchor itself re-drawn every few seconds. (Fine-tuning `flow-default`
on a 40% mix of such episodes did not make it plan better; the README's Planning section has
the numbers.)
"""
from __future__ import annotations

import numpy as np

from hwm_env.sim.goals import GOAL_JOINTS

JUMP_RANGE = 0.35  # action units an anchor or a jump may lie from the start / anchor (goals go to 0.3)
NUDGE_STD = (0.005, 0.08)  # the range of a nudge's standard deviation, in action units
HOLD_FRAMES = (1, 8)  # a command is held for this many frames (the planning benchmark holds 4)
ANCHOR_SECONDS = (2.0, 5.0)  # how long one anchor pose lasts


class HeldStepPolicy:
    """Held step commands on the goal joints, seeded; the same call protocol as `ExplorationPolicy`.

    `policy = HeldStepPolicy(env, seed)` right after `env.reset()`, then `policy.act()` before
    each `env.step(action)`. Actions are float32 (25,) in [-1, 1].
    """

    def __init__(self, env, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.env = env.unwrapped
        self.reset()

    def reset(self) -> None:
        """Start from the env's current (just reset) pose, held."""
        self.start = np.clip(self.env.action_from_state(self.env.joint_state()).astype(np.float64), -1.0, 1.0)
        self.command = self.start.copy()
        self.anchor = self.start.copy()
        self.hold_left = self._hold_frames()  # the start is held first
        self.anchor_left = self._anchor_frames()

    def __call__(self) -> np.ndarray:
        return self.act()

    def act(self) -> np.ndarray:
        """The next action (float32, shape (25,))."""
        if self.anchor_left <= 0:
            self.anchor = self.start.copy()
            self.anchor[list(GOAL_JOINTS)] += self.rng.uniform(-JUMP_RANGE, JUMP_RANGE, len(GOAL_JOINTS))
            self.anchor = np.clip(self.anchor, -1.0, 1.0)
            self.anchor_left = self._anchor_frames()
        if self.hold_left <= 0:
            self.command = self._next_command()
            self.hold_left = self._hold_frames()
        self.hold_left -= 1
        self.anchor_left -= 1
        return self.command.astype(np.float32)

    def _next_command(self) -> np.ndarray:
        """A jump near the anchor (a planner's first samples), a nudge (its late ones), or a hold."""
        joints = list(GOAL_JOINTS)
        command = self.command.copy()
        kind = self.rng.choice(["jump", "nudge", "hold"], p=[0.4, 0.45, 0.15])
        if kind == "jump":
            scale = self.rng.uniform(0.0, 1.0)
            command[joints] = self.anchor[joints] + scale * self.rng.uniform(-JUMP_RANGE, JUMP_RANGE, len(joints))
        elif kind == "nudge":
            std = self.rng.uniform(*NUDGE_STD)
            command[joints] += self.rng.normal(0.0, std, len(joints))
        return np.clip(command, -1.0, 1.0)

    def _hold_frames(self) -> int:
        return int(self.rng.integers(HOLD_FRAMES[0], HOLD_FRAMES[1] + 1))

    def _anchor_frames(self) -> int:
        return max(1, int(round(self.rng.uniform(*ANCHOR_SECONDS) * self.env.control_hz)))
