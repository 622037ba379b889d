"""Reachable goal poses and the goal-reaching success predicate (DESIGN.md section 10).

A goal is the start pose plus a bounded random offset on the torso (hip), arm and neck
joints, with the base still and the grippers as they were. It is made reachable by
construction: the simulator is driven from the start with the goal action held for
`settle_steps`, and the pose it actually reaches (after contacts with the table and the
objects) is the goal state; the head-camera image there is the goal image.

**Success** (the `aim` task's predicate, `hwm_env/tasks/aim.py`): the final *view error*,
the mean |angle - goal angle| over the four joints that aim the head camera
(`VIEW_JOINT_NAMES`), is below `SUCCESS_THRESHOLD`. These are the joints a goal image pins
down: a 7-DoF arm has many poses that look alike from the head. `joint_error` is the same
over all goal joints.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

from hwm_env.sim import layout

if TYPE_CHECKING:  # the simulator loads MuJoCo; the success predicate must not (planners import it)
    from hwm_env.sim.env import HWMSimEnv, SimState

# Joints a goal moves: hip yaw/roll/pitch (the torso), both arms, the neck.
GOAL_JOINTS = (0, 1, 2, *layout.LEFT_ARM_INDICES, *layout.RIGHT_ARM_INDICES, layout.NECK_INDEX)
VIEW_JOINT_NAMES = ("HIP_YAW", "HIP_ROLL", "HIP_PITCH", "NECK_PITCH")  # the goal joints that aim the camera
VIEW_JOINTS = tuple(layout.JOINT_NAMES.index(name) for name in VIEW_JOINT_NAMES)
# rad, mean absolute error over VIEW_JOINTS: ~1.3 pixels of head-camera rotation at 64 px
# (85 degree field of view, 0.023 rad per pixel), near what an image goal resolves
SUCCESS_THRESHOLD = 0.03


@dataclasses.dataclass
class Goal:
    """A goal pose reached from `start`: the action that holds it, the state and image there."""

    action: np.ndarray  # (25,) float32, in [-1, 1]
    state: np.ndarray  # (25,) float32, the measured state reached
    frame: np.ndarray  # (res, res, 3) uint8, the head-camera image at the goal
    start: SimState  # the snapshot the goal was reached from


def _mean_abs_error(state: np.ndarray, goal_state: np.ndarray, joints: Sequence[int], name: str) -> float:
    state, goal_state = np.asarray(state, dtype=np.float64), np.asarray(goal_state, dtype=np.float64)
    if state.shape[-1] != layout.STATE_DIM or goal_state.shape[-1] != layout.STATE_DIM:
        raise ValueError(f"{name} expects 25-d states, got shapes {state.shape} and {goal_state.shape}")
    return float(np.abs(state[..., list(joints)] - goal_state[..., list(joints)]).mean())


def view_error(state: np.ndarray, goal_state: np.ndarray) -> float:
    """Mean absolute joint-angle error (rad) over VIEW_JOINTS: the success measure."""
    return _mean_abs_error(state, goal_state, VIEW_JOINTS, "view_error")


def joint_error(state: np.ndarray, goal_state: np.ndarray) -> float:
    """Mean absolute joint-angle error (rad) over all GOAL_JOINTS: the pose error, reported beside success."""
    return _mean_abs_error(state, goal_state, GOAL_JOINTS, "joint_error")


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
