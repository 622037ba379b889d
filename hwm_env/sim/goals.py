"""Reachable goal poses for the goal-reaching benchmark (DESIGN.md section 10).

A goal is the start pose plus a bounded random offset on the torso (hip), arm and neck
joints, with the base still and the grippers as they were. It is made reachable by
construction: the simulator is driven from the start with the goal action held for
`settle_steps`, and the pose it actually reaches (after contacts with the table and the
objects) is the goal state; the head-camera image there is the goal image.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import HWMSimEnv, SimState

# Joints a goal moves: hip yaw/roll/pitch (the torso), both arms, the neck.
GOAL_JOINTS = (0, 1, 2, *layout.LEFT_ARM_INDICES, *layout.RIGHT_ARM_INDICES, layout.NECK_INDEX)
SUCCESS_THRESHOLD = 0.1  # rad, mean absolute error over GOAL_JOINTS


@dataclasses.dataclass
class Goal:
    """A goal pose reached from `start`: the action that holds it, the state and image there."""

    action: np.ndarray  # (25,) float32, in [-1, 1]
    state: np.ndarray  # (25,) float32, the measured state reached
    frame: np.ndarray  # (res, res, 3) uint8, the head-camera image at the goal
    start: SimState  # the snapshot the goal was reached from


def joint_error(state: np.ndarray, goal_state: np.ndarray) -> float:
    """Mean absolute joint-angle error (rad) over GOAL_JOINTS; success is < SUCCESS_THRESHOLD."""
    state, goal_state = np.asarray(state, dtype=np.float64), np.asarray(goal_state, dtype=np.float64)
    if state.shape[-1] != layout.STATE_DIM or goal_state.shape[-1] != layout.STATE_DIM:
        raise ValueError(
            f"joint_error expects 25-d states, got shapes {state.shape} and {goal_state.shape}"
        )
    dims = list(GOAL_JOINTS)
    return float(np.abs(state[..., dims] - goal_state[..., dims]).mean())


class GoalSampler:
    """Draws reachable goals from the env's current state, deterministically from `seed`.

    Args:
        seed: seeds the offsets; the same seed and start give the same goals.
        max_offset: largest offset per joint, in action units (a fraction of the joint's
            half range; 0.3 moves a 2.9 rad shoulder by up to 0.44 rad).
        settle_steps: control steps the goal action is held to reach the goal
            (default: 1.5 s of control, enough for every servo to settle).
    """

    def __init__(self, seed: int | None = 0, max_offset: float = 0.3, settle_steps: int | None = None):
        if not 0 < max_offset <= 2:
            raise ValueError(f"max_offset must be in (0, 2] action units, got {max_offset}")
        if settle_steps is not None and settle_steps < 1:
            raise ValueError(f"settle_steps must be >= 1, got {settle_steps}")
        self.rng = np.random.default_rng(seed)
        self.max_offset = float(max_offset)
        self.settle_steps = settle_steps

    def sample(self, env) -> Goal:
        """A goal reached from the env's current state; the env is restored to that state after."""
        env: HWMSimEnv = env.unwrapped
        start = env.get_state()
        start_action = env.action_from_state(env.joint_state())
        goal_action = start_action.copy()
        dims = list(GOAL_JOINTS)
        goal_action[dims] += self.rng.uniform(-self.max_offset, self.max_offset, len(dims))
        goal_action[layout.BASE_SLICE] = 0.0  # the base stays where it is
        goal_action = np.clip(goal_action, -1.0, 1.0).astype(np.float32)
        frame, state = self.reach(env, start, goal_action)
        return Goal(action=goal_action, state=state, frame=frame, start=start)

    def reach(self, env, start: SimState, goal_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hold `goal_action` from `start`; return (image, measured state) there. Restores the env."""
        env: HWMSimEnv = env.unwrapped
        saved = env.get_state()
        steps = self.settle_steps or max(1, round(1.5 * env.control_hz))
        try:
            env.set_state(start)
            frame = None
            for _ in range(steps):
                frame, *_ = env.step(goal_action)
            state = env.joint_state()
        finally:
            env.set_state(saved)
        return frame, state
