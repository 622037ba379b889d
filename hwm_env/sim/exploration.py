"""Scripted exploration policy that makes HWM-Sim-v0 training data.

A world model only learns to use actions if the data makes actions matter: every one
of the 25 action dimensions must move, independently of the others, in ways that
change the image. Each body part follows its own schedule of smooth (minimum-jerk)
moves between random waypoints: arms alternate between reaches toward objects on the
table (solved by a few steps of damped least-squares IK, so objects get pushed) and
random poses; grippers open and close; the neck and legs move the camera; the base
turns and drives and returns near its start so the table stays in view most of the time.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import HWMSimEnv, mujoco

HOME_RADIUS = 0.35  # m the base may wander from its start before it drives back
HOME_YAW = 0.8  # rad the base may turn from its start heading before it turns back


def minimum_jerk(u: float) -> float:
    """Smooth 0->1 profile with zero velocity and acceleration at both ends."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


@dataclasses.dataclass
class _Move:
    """One smooth move of a group of action entries from `start` to `end` over `steps`."""

    start: np.ndarray
    end: np.ndarray
    steps: int
    elapsed: int = 0

    def value(self) -> np.ndarray:
        return self.start + (self.end - self.start) * minimum_jerk(self.elapsed / max(self.steps, 1))

    @property
    def done(self) -> bool:
        return self.elapsed >= self.steps


class ExplorationPolicy:
    """Smooth, varied actions for data collection in `HWMSimEnv` (uses privileged sim state).

    `policy = ExplorationPolicy(env, seed)`, or `ExplorationPolicy(seed=seed)` bound to
    the env on first call. After every `env.reset()` call `policy.reset()`; then
    `action = policy(env)` (or `policy.act()`) before each `env.step(action)`.
    Actions are float32 (25,) in [-1, 1]; hand entries are exactly -1 (open) or +1 (closed).
    """

    def __init__(self, env=None, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.env: HWMSimEnv | None = None
        if env is not None:
            self._bind(env)
        self.reset()

    def _bind(self, env) -> None:
        env = env.unwrapped
        if not isinstance(env, HWMSimEnv):
            raise ValueError(f"ExplorationPolicy drives an HWMSimEnv, got {type(env).__name__}")
        self.env = env
        model = env.model
        self._scratch = mujoco.MjData(model)
        self._grip_sites = {side: model.site(f"{side}_grip").id for side in ("left", "right")}
        arm_joints = {
            "left": layout.LEFT_ARM_INDICES[:4],  # shoulder pitch/roll/yaw, elbow pitch solve the reach
            "right": layout.RIGHT_ARM_INDICES[:4],
        }
        self._arm_ik_joints = {
            side: (
                np.array(indices),
                np.array([model.jnt_dofadr[model.joint(layout.JOINT_NAMES[i]).id] for i in indices]),
            )
            for side, indices in arm_joints.items()
        }

    # ------------------------------------------------------------------ public API
    def reset(self, env=None) -> None:
        """Start a new episode from the env's current (just reset) state."""
        if env is not None:
            self._bind(env)
        self._needs_reset = True
        if self.env is not None:
            self._start_episode()

    def _start_episode(self) -> None:
        self.action = self.env.action_from_state(self.env.joint_state()).astype(np.float64)
        self.action[layout.BASE_SLICE] = 0.0
        self.action[layout.HAND_SLICE] = np.where(self.action[layout.HAND_SLICE] > 0, 1.0, -1.0)
        self.home = self.env.base_pose().astype(np.float64)
        self._moves: dict[str, _Move] = {}
        self._hand_hold = self.rng.integers(1, self._steps(1.5), size=2)
        self._returning = False
        self._needs_reset = False

    def __call__(self, env=None) -> np.ndarray:
        return self.act(env)

    def act(self, env=None) -> np.ndarray:
        """The next action (float32, shape (25,)) for `env` (default: the bound env)."""
        if env is not None and env.unwrapped is not self.env:
            self._bind(env)
            self._needs_reset = True
        if self.env is None:
            raise ValueError("ExplorationPolicy has no env: pass it as ExplorationPolicy(env) or policy(env)")
        if self._needs_reset:
            self._start_episode()
        for group, indices in self._groups().items():
            move = self._moves.get(group)
            if move is None or move.done:
                move = self._moves[group] = self._new_move(group, self.action[indices])
            move.elapsed += 1
            self.action[indices] = move.value()
        self._step_hands()
        self._step_base()
        return np.clip(self.action, -1.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ joint groups
    @staticmethod
    def _groups() -> dict[str, list[int]]:
        return {
            "legs": list(layout.LEG_INDICES),
            "left": list(layout.LEFT_ARM_INDICES),
            "right": list(layout.RIGHT_ARM_INDICES),
            "neck": [layout.NECK_INDEX],
        }

    def _steps(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.env.control_hz)))

    def _new_move(self, group: str, current: np.ndarray) -> _Move:
        rng = self.rng
        if group == "legs":
            # Legs tilt and lower the whole upper body: the biggest camera motions besides the base.
            amplitude = rng.uniform(0.1, 0.8)
            end = self._ready_action()[list(layout.LEG_INDICES)] + rng.uniform(-amplitude, amplitude, len(current))
            end = np.where(end > 0.9, 1.8 - end, end)  # reflect off the limits: the knee starts straight
            end = np.where(end < -0.9, -1.8 - end, end)
            return _Move(current.copy(), end, self._steps(rng.uniform(1.0, 3.0)))
        if group == "neck":
            end = rng.uniform(-0.8, 0.9, 1)
            return _Move(current.copy(), end, self._steps(rng.uniform(0.7, 2.5)))
        # arms
        indices = list(layout.LEFT_ARM_INDICES if group == "left" else layout.RIGHT_ARM_INDICES)
        ready = self._ready_action()[indices]
        mode = rng.choice(["reach", "near", "wide"], p=[0.5, 0.35, 0.15])
        if mode == "reach":
            end = self._reach_action(group, current)
        elif mode == "near":
            end = ready + rng.uniform(-0.5, 0.5, len(indices))
        else:
            end = rng.uniform(-0.9, 0.9, len(indices))
        return _Move(current.copy(), np.clip(end, -0.95, 0.95), self._steps(rng.uniform(0.7, 2.0)))

    def _ready_action(self) -> np.ndarray:
        ready = np.zeros(layout.STATE_DIM)
        ready[: layout.NUM_JOINTS] = self.env.ready_targets()
        return self.env.action_from_state(ready).astype(np.float64)

    def _reach_action(self, side: str, current: np.ndarray) -> np.ndarray:
        """Arm action (7,) that brings this side's gripper to (or through) a random object."""
        rng = self.rng
        objects = self.env.object_poses()[:, :3].astype(np.float64)
        on_table = objects[objects[:, 2] > self.env.table_height - 0.02]
        if len(on_table) == 0:
            return current + rng.uniform(-0.3, 0.3, len(current))
        target = on_table[rng.integers(len(on_table))].copy()
        target[:2] += rng.uniform(-0.08, 0.08, 2)  # beside or through it: pushes happen
        target[2] += rng.uniform(0.0, 0.08)
        indices, dofs = self._arm_ik_joints[side]
        joints = self._solve_reach(self._grip_sites[side], indices, dofs, target)
        action = self.env.action_from_state(np.concatenate([joints, np.zeros(4)]))
        arm = list(layout.LEFT_ARM_INDICES if side == "left" else layout.RIGHT_ARM_INDICES)
        end = action[arm].astype(np.float64)
        end[4:] = current[4:] + rng.uniform(-0.4, 0.4, 3)  # elbow yaw and wrist: free
        return end

    def _solve_reach(self, site: int, indices: np.ndarray, dofs: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Damped least-squares IK on a scratch copy of the sim; returns all 21 joint angles."""
        model, scratch = self.env.model, self._scratch
        scratch.qpos[:] = self.env.data.qpos
        qpos_adr = self.env._joint_qpos[indices]
        low, high = self.env.joint_ranges[indices, 0], self.env.joint_ranges[indices, 1]
        jacobian = np.zeros((3, model.nv))
        for _ in range(30):
            mujoco.mj_kinematics(model, scratch)
            mujoco.mj_comPos(model, scratch)
            error = target - scratch.site_xpos[site]
            if np.linalg.norm(error) < 5e-3:
                break
            mujoco.mj_jacSite(model, scratch, jacobian, None, site)
            arm_jacobian = jacobian[:, dofs]  # (3, 4)
            step = arm_jacobian.T @ np.linalg.solve(arm_jacobian @ arm_jacobian.T + 1e-2 * np.eye(3), error)
            scratch.qpos[qpos_adr] = np.clip(scratch.qpos[qpos_adr] + step, low, high)
        return scratch.qpos[self.env._joint_qpos].copy()

    # ------------------------------------------------------------------ hands and base
    def _step_hands(self) -> None:
        self._hand_hold -= 1
        for hand, index in enumerate((layout.LEFT_HAND_INDEX, layout.RIGHT_HAND_INDEX)):
            if self._hand_hold[hand] <= 0:
                self.action[index] = -self.action[index]  # toggle open <-> closed
                self._hand_hold[hand] = self._steps(self.rng.uniform(0.4, 3.0))

    def _step_base(self) -> None:
        x, y, yaw = self.env.base_pose().astype(np.float64)
        offset = self.home[:2] - np.array([x, y])
        heading_error = _wrap(self.home[2] - yaw)
        if np.linalg.norm(offset) > HOME_RADIUS or abs(heading_error) > HOME_YAW:
            self._returning = True
        move = self._moves.get("base")
        if self._returning:
            command = self._return_command(offset, yaw, heading_error)
            if command is None:
                self._returning = False
                self._moves["base"] = _Move(self.action[layout.BASE_SLICE].copy(), np.zeros(2), self._steps(0.3))
            else:
                self.action[layout.BASE_SLICE] = command
                self._moves.pop("base", None)
                return
        move = self._moves.get("base")
        if move is None or move.done:
            move = self._moves["base"] = self._new_base_move(self.action[layout.BASE_SLICE])
        move.elapsed += 1
        self.action[layout.BASE_SLICE] = move.value()

    def _new_base_move(self, current: np.ndarray) -> _Move:
        rng = self.rng
        mode = rng.choice(["still", "turn", "drive", "arc"], p=[0.35, 0.25, 0.2, 0.2])
        speed = rng.uniform(0.2, 0.8) * rng.choice([-1.0, 1.0])
        turn = rng.uniform(0.2, 1.0) * rng.choice([-1.0, 1.0])
        end = {"still": [0.0, 0.0], "turn": [0.0, turn], "drive": [speed, 0.0], "arc": [speed, turn]}[mode]
        return _Move(current.copy(), np.array(end), self._steps(rng.uniform(0.7, 2.5)))

    @staticmethod
    def _return_command(offset: np.ndarray, yaw: float, heading_error: float) -> np.ndarray | None:
        """(forward, turn) in action units that steer the base home; None once it is home."""
        distance = float(np.linalg.norm(offset))
        if distance > 0.12:
            bearing = _wrap(np.arctan2(offset[1], offset[0]) - yaw)
            backwards = abs(bearing) > np.pi / 2  # drive in reverse rather than turn around
            steer = _wrap(bearing - np.pi) if backwards else bearing
            forward = 0.0 if abs(steer) > 0.4 else (-0.6 if backwards else 0.6)
            return np.array([forward, np.clip(1.5 * steer, -0.8, 0.8)])
        if abs(heading_error) > 0.15:
            return np.array([0.0, np.clip(1.5 * heading_error, -0.8, 0.8)])
        return None


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)
