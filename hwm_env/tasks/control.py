"""Privileged helpers for the tasks' scripted controllers: inverse kinematics of the grippers.

The scripted policies are the oracles of the task suite: they read the simulator's
truth and must solve their task on most seeds, so that a task's success rate measures
the planner or world model, not an impossible goal. Reaching and pushing need the
gripper at a point with the hand pointing down; `GripIK` finds joint angles for that by
damped least squares on MuJoCo Jacobians (`mj_jacSite`), on a scratch copy of the
simulator so the env itself is never touched.
"""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import HWMSimEnv, mujoco

SIDES = ("left", "right")
ARM_INDICES = {"left": layout.LEFT_ARM_INDICES, "right": layout.RIGHT_ARM_INDICES}
HIP_PITCH_INDEX = layout.JOINT_NAMES.index("HIP_PITCH")
HIP_YAW_INDEX = layout.JOINT_NAMES.index("HIP_YAW")
_UP = np.array([0.0, 0.0, 1.0])


class GripIK:
    """Joint angles that put a grip site at a point, the hand pointing down (fingers below the wrist).

    Args:
        env: the `HWMSimEnv` (its model; its current state is the starting guess).
        orientation_weight: metres of position error one radian of hand tilt is worth. Small:
            the wrist pitches only +-1 rad and elbows bend one way, so near the body a hand
            pointing straight down is out of reach; a tilted hand still gets there.
        damping: the damped-least-squares regulariser (keeps steps small near singular poses).
    """

    def __init__(self, env, orientation_weight: float = 0.05, damping: float = 3e-3):
        self.env: HWMSimEnv = env.unwrapped
        model = self.env.model
        self.scratch = mujoco.MjData(model)
        self.sites = {side: model.site(f"{side}_grip").id for side in SIDES}
        self.hands = {side: model.body(f"{side}_hand").id for side in SIDES}
        self._dofs = np.array([model.jnt_dofadr[model.joint(name).id] for name in layout.JOINT_NAMES])
        self.orientation_weight = orientation_weight
        self.damping = damping

    def grip_position(self, side: str) -> np.ndarray:
        """The grip site of `side` in the room frame, from the env's current positions."""
        self._load(self.env.data.qpos)
        return self.scratch.site_xpos[self.sites[side]].copy()

    def solve(self, side: str, target: np.ndarray, joints, gap_axis: np.ndarray | None = None,
              iterations: int = 40, weights=None, start: np.ndarray | None = None) -> np.ndarray:
        """The 21 joint angles (rad) that bring `side`'s grip site to `target` (room frame, m).

        Only `joints` (indices into the 21) move; the hand's z axis is driven to point up
        (the fingers hang below the wrist) and, with `gap_axis` (a horizontal unit vector),
        the fingers' gap is turned to lie along it (either sign).
        `weights` scales each joint's step (a small weight makes a joint move last).
        `start` (21 joint angles) is the initial guess, by default the commanded targets:
        solving from the commands rather than the measured (lagging) pose keeps the loop
        "servo follows IK" free of the oscillations of re-solving from a moving arm.
        """
        joints = np.asarray(joints)
        weights = np.ones(len(joints)) if weights is None else np.asarray(weights, dtype=np.float64)
        env, model, data = self.env, self.env.model, self.scratch
        qpos_adr = env._joint_qpos[joints]
        low, high = env.joint_ranges[joints, 0], env.joint_ranges[joints, 1]
        site, hand = self.sites[side], self.hands[side]
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        qpos = env.data.qpos.copy()
        qpos[env._joint_qpos] = self.commanded() if start is None else start
        self._load(qpos)
        for _ in range(iterations):
            rotation = data.xmat[hand].reshape(3, 3)
            position_error = target - data.site_xpos[site]
            rotation_error = np.cross(rotation[:, 2], _UP)  # rotation vector that turns the hand's z up
            if gap_axis is not None:
                gap = rotation[:, 1]
                rotation_error = rotation_error + np.cross(gap, np.sign(gap @ gap_axis + 1e-9) * gap_axis)
            error = np.concatenate([position_error, self.orientation_weight * rotation_error])
            if np.linalg.norm(position_error) < 1e-3 and np.linalg.norm(rotation_error) < 1e-2:
                break
            mujoco.mj_jacSite(model, data, jacp, jacr, site)
            dofs = self._dofs[joints]
            jacobian = np.vstack([jacp[:, dofs], self.orientation_weight * jacr[:, dofs]]) * weights
            free = np.ones(len(joints), dtype=bool)
            current = data.qpos[qpos_adr]
            for _ in range(3):  # a joint pressed against its limit drops out, so the others take over
                masked = jacobian * free
                step = weights * (masked.T @ np.linalg.solve(masked @ masked.T + self.damping * np.eye(6), error))
                blocked = free & (((current <= low + 1e-6) & (step < 0)) | ((current >= high - 1e-6) & (step > 0)))
                if not blocked.any():
                    break
                free &= ~blocked
            data.qpos[qpos_adr] = np.clip(current + step, low, high)
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
        return data.qpos[env._joint_qpos].copy()

    def commanded(self) -> np.ndarray:
        """The 21 joint targets (rad) the servos are driving to now."""
        return self.env.data.ctrl[self.env._joint_actuators].copy()

    def site_at(self, side: str, joints: np.ndarray) -> np.ndarray:
        """`side`'s grip site (room frame) if the 21 joints had the angles `joints`."""
        qpos = self.env.data.qpos.copy()
        qpos[self.env._joint_qpos] = joints
        self._load(qpos)
        return self.scratch.site_xpos[self.sites[side]].copy()

    def _load(self, qpos: np.ndarray) -> None:
        self.scratch.qpos[:] = qpos
        mujoco.mj_kinematics(self.env.model, self.scratch)
        mujoco.mj_comPos(self.env.model, self.scratch)


def shoulder_side(point_in_base: np.ndarray) -> str:
    """The arm whose shoulder is nearer a point (base frame): left for y >= 0."""
    return "left" if point_in_base[1] >= 0 else "right"


def room_to_base(env, points: np.ndarray) -> np.ndarray:
    """Room-frame points (..., 3) -> the base frame (x forward, y left, origin at the base joint)."""
    x, y, yaw = env.unwrapped.data.qpos[env.unwrapped._base_qpos]
    offsets = np.asarray(points, dtype=np.float64) - np.array([x, y, 0.0])
    cos, sin = np.cos(yaw), np.sin(yaw)
    return offsets @ np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def base_to_room(env, vectors: np.ndarray) -> np.ndarray:
    """Base-frame direction vectors (..., 3) -> the room frame (rotation only)."""
    yaw = env.unwrapped.data.qpos[env.unwrapped._base_qpos[2]]
    cos, sin = np.cos(yaw), np.sin(yaw)
    return np.asarray(vectors, dtype=np.float64) @ np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])


def grip_step(ik: GripIK, side: str, target: np.ndarray, joints, max_step: float = 0.05,
              gap_axis: np.ndarray | None = None, weights=None) -> np.ndarray:
    """21 joint targets that move `side`'s commanded grip at most `max_step` m toward `target`.

    The commanded pose (not the lagging measured one) is the reference, so successive
    calls trace a straight-ish path at <= max_step per frame that the servos follow.
    """
    commanded = ik.commanded()
    reference = ik.site_at(side, commanded)
    delta = np.asarray(target, dtype=np.float64) - reference
    distance = np.linalg.norm(delta)
    if distance > max_step:
        delta *= max_step / distance
    return ik.solve(side, reference + delta, joints, gap_axis=gap_axis, weights=weights, start=commanded)


def lift_idle_arm(ik: GripIK, side: str, angles: np.ndarray, min_height: float) -> np.ndarray:
    """`side`'s 7 arm angles that keep its grip site above `min_height` (room z) given the other 21 `angles`.

    The arm a scripted policy does not use would otherwise hang where the start left it:
    when the hips lean to extend the other arm's reach, that hand is pushed into the
    table and blocks the lean.
    """
    arm = list(ARM_INDICES[side])
    grip = ik.site_at(side, angles)
    if grip[2] >= min_height:
        return angles[arm]
    target = np.array([grip[0], grip[1], min_height + 0.02])
    return ik.solve(side, target, arm, iterations=20, start=angles)[arm]
