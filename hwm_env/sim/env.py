"""`HWM-Sim-v0`: the MuJoCo reference simulator, a humanoid seen from its own head camera.

It is the default data source (`hwm data sim`), the ground truth for fidelity tests and
the world in which plans found in a world model are scored, so it speaks the world
models' language: the 1X 25-d state/action layout and egocentric RGB frames.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ClosedEnvironmentError

from hwm_env.sim import layout
from hwm_env.sim.rendering import import_mujoco, make_renderer

mujoco = import_mujoco()

SCENE_PATH = Path(__file__).with_name("scene.xml")
CAMERA_NAME = "head_camera"
OBJECT_NAMES = ("red_box", "green_ball", "blue_cylinder", "yellow_block")
TABLE_GEOM = "table_top"
BASE_JOINTS = ("base_x", "base_y", "base_yaw")
FINGER_JOINTS = (("left_finger_a", "left_finger_b"), ("right_finger_a", "right_finger_b"))
# (x, y, z) per object in the head camera's frame, as `object_positions()` returns them flattened
OBJECT_POSITION_NAMES = tuple(f"{name.upper()}_{axis}" for name in OBJECT_NAMES for axis in "XYZ")
PHYSICS_TIMESTEP = 0.005  # s; the real step is adjusted so that control_hz * substeps is exact


@dataclasses.dataclass
class SimState:
    """Everything needed to resume the simulation bit-exactly (MuJoCo's integration state).

    `physics` is `mj_getState(..., mjSTATE_INTEGRATION)`: time, qpos, qvel, actuator
    activations, solver warm start, controls, applied forces, mocap poses.
    """

    physics: np.ndarray
    elapsed_steps: int = 0
    control_hz: float | None = None  # the physics substep depends on it; a mismatch is refused

    def copy(self) -> "SimState":
        return dataclasses.replace(self, physics=self.physics.copy())


class HWMSimEnv(gym.Env):
    """A humanoid on a wheeled base at a table with four free objects, seen from its head.

    The robot has the 1X joint layout. All 21 joints are position servos; each hand is a
    two-finger gripper; the base slides on the floor (x, y) and turns (yaw), driven by
    velocity servos. The base has no roll, pitch or height freedom and every robot body
    is gravity-compensated, so the robot stays upright by construction while the leg
    joints (ankles, knee, hips) still tilt and lower the torso, and with it the camera.
    One `step` is one video frame: the action is held for `1 / control_hz` seconds of
    physics (several substeps), then the head camera renders.

    ## Action space
    `Box(-1, 1, (25,), float32)`. Entries outside [-1, 1] are clipped; wrong shapes, NaN
    or inf raise `ValueError`. Every entry maps linearly: joint entries onto the joint's
    range (-1 = lower limit, +1 = upper limit) as the servo's position target.

    | index | name | maps to (-1 .. +1) |
    |---|---|---|
    | 0 | HIP_YAW | joint target -0.6 .. 0.6 rad |
    | 1 | HIP_ROLL | joint target -0.3 .. 0.3 rad |
    | 2 | HIP_PITCH | joint target -0.2 .. 0.9 rad (+ leans forward) |
    | 3 | KNEE_PITCH | joint target -1.0 .. 0.0 rad (0 = straight) |
    | 4 | ANKLE_ROLL | joint target -0.2 .. 0.2 rad |
    | 5 | ANKLE_PITCH | joint target -0.3 .. 0.3 rad |
    | 6 / 13 | LEFT / RIGHT_SHOULDER_PITCH | joint target -2.2 .. 0.7 rad (- raises the arm forward) |
    | 7 / 14 | LEFT / RIGHT_SHOULDER_ROLL | joint target -0.3 .. 1.2 / -1.2 .. 0.3 rad (outward) |
    | 8 / 15 | LEFT / RIGHT_SHOULDER_YAW | joint target -1.2 .. 1.2 rad |
    | 9 / 16 | LEFT / RIGHT_ELBOW_PITCH | joint target -2.2 .. 0.0 rad (0 = straight) |
    | 10 / 17 | LEFT / RIGHT_ELBOW_YAW | joint target -1.3 .. 1.3 rad |
    | 11 / 18 | LEFT / RIGHT_WRIST_PITCH | joint target -1.0 .. 1.0 rad |
    | 12 / 19 | LEFT / RIGHT_WRIST_ROLL | joint target -1.5 .. 1.5 rad |
    | 20 | NECK_PITCH | joint target -0.4 .. 0.7 rad (+ looks down) |
    | 21 / 22 | LEFT / RIGHT_HAND_CLOSURE | gripper closure 0 (open) .. 1 (closed) |
    | 23 | LINEAR_VELOCITY | base forward speed -0.5 .. 0.5 m/s |
    | 24 | ANGULAR_VELOCITY | base yaw rate -1.0 .. 1.0 rad/s (+ turns left) |

    ## Observation space
    `Box(0, 255, (resolution, resolution, 3), uint8)`: the RGB image of the head camera
    (`resolution` 64 by default; 128 or 256 for figures).

    ## Info
    | key | shape | meaning |
    |---|---|---|
    | `state` | (25,) float32 | measured state in the action order: joint angles (rad), hand closures (0-1), base forward speed (m/s), yaw rate (rad/s) |
    | `object_poses` | (4, 7) float32 | world position + quaternion (w, x, y, z) of `OBJECT_NAMES` |
    | `base_pose` | (3,) float32 | base x, y (m) and yaw (rad) in the room |
    | `object_positions` | (12,) float32 | centre of each of `OBJECT_NAMES` in the head camera's frame (m), x right, y up, z forward: `OBJECT_POSITION_NAMES` |

    ## Rewards and episode end
    Reward is always 0.0: the simulator is task-free (goal costs live in the planners).
    `terminated` is always False; `gym.make` adds a 1000-step time limit.

    ## Starting state
    `reset(seed=)` draws, from `self.np_random`, the start pose (ready pose +- 0.2 of each
    joint's half range), hand closures (0-0.3), the base position (x -0.1..0.05 m,
    y +-0.1 m) and heading (+-0.2 rad) and non-overlapping object places on the table.
    `reset(options={"state": SimState})` starts from a snapshot instead.

    ## Tasks (`task=`)
    `HWMSimEnv(task="reach")` or `gym.make("HWM-Sim-v0", task="reach")` (a name of
    `hwm_env.tasks.TASKS` — aim, look-at, reach, push — or a `Task` instance) turns the
    simulator into a task: `reset(seed=)` draws an episode from the task's start
    distribution (its seed drawn from `self.np_random`; the observation is the frame after
    the task's context), `step` returns `reward = task.reward(Readout.from_sim(env))`,
    `info["is_success"]` (bool) and `info["task_error"]` (float, rad or m), and
    `truncated` is True at `task.max_episode_steps`. `env.task` and `env.episode` (a
    `TaskEpisode`: start snapshot, context frames, goal) are public. Without a task
    nothing above changes.

    ## Beyond Gymnasium
    `get_state()` / `set_state(SimState)` snapshot and restore bit-exactly (planners,
    `SimDynamics`); `joint_state()` is `info["state"]`; `action_from_state(state)` is the
    action that commands a measured pose (goal reaching); `advance(action)` is `step`
    without rendering; `render_frame()` renders the current state.

    Args:
        resolution: side of the square camera image in pixels (16-1024).
        control_hz: actions per second; each step runs `round(1 / (control_hz * 0.005))`
            physics substeps.
        render_mode: None or "rgb_array" (`render()` returns the head-camera frame).
        task: None (task-free), a task name or a `hwm_env.tasks.Task`; see "Tasks" above.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, resolution: int = 64, control_hz: float = 15, render_mode: str | None = None, task=None):
        if not isinstance(resolution, (int, np.integer)) or not 16 <= resolution <= 1024:
            raise ValueError(f"resolution must be an int in [16, 1024] pixels, got {resolution!r}")
        if not isinstance(control_hz, (int, float, np.number)) or not 0 < control_hz <= 200:
            raise ValueError(f"control_hz must be in (0, 200], got {control_hz!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.resolution = int(resolution)
        self.control_hz = float(control_hz)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.control_hz}

        self.model = mujoco.MjModel.from_xml_path(str(SCENE_PATH))
        self.num_substeps = max(1, round(1.0 / (self.control_hz * PHYSICS_TIMESTEP)))
        self.model.opt.timestep = 1.0 / (self.control_hz * self.num_substeps)
        self.data = mujoco.MjData(self.model)
        self._index_model()

        self.action_space = spaces.Box(-1.0, 1.0, (layout.ACTION_DIM,), np.float32)
        self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        # The renderer (an EGL context) is made on the first frame, in the process that renders:
        # a context made before a fork hangs the child, and Gymnasium's AsyncVectorEnv builds a
        # throwaway env in the parent before it forks its workers.
        self._renderer = None
        self._closed = False
        self.elapsed_steps = 0
        self._state_size = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_INTEGRATION)
        self._reset_physics(self.ready_targets(), np.zeros(2), np.zeros(3), self._default_object_poses())
        self.task = None
        self.episode = None
        if task is not None:
            from hwm_env.tasks import Task, make_task

            if not isinstance(task, (Task, str)):
                raise ValueError(f"task must be a task name or a hwm_env.tasks.Task, got {type(task).__name__}")
            self.task = task if isinstance(task, Task) else make_task(task)

    # ------------------------------------------------------------------ model plumbing
    def _index_model(self) -> None:
        m = self.model
        joint_ids = [m.joint(name).id for name in layout.JOINT_NAMES]
        self.joint_ranges = m.jnt_range[joint_ids].copy()  # (21, 2) rad
        self._joint_qpos = m.jnt_qposadr[joint_ids]
        self._joint_actuators = np.array([m.actuator(name).id for name in layout.JOINT_NAMES])
        self._finger_qpos = np.array([[m.jnt_qposadr[m.joint(n).id] for n in hand] for hand in FINGER_JOINTS])
        self._finger_actuators = np.array([[m.actuator(n).id for n in hand] for hand in FINGER_JOINTS])
        self._base_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in BASE_JOINTS])
        self._base_qvel = np.array([m.jnt_dofadr[m.joint(n).id] for n in BASE_JOINTS])
        self._base_actuators = np.array([m.actuator(n).id for n in BASE_JOINTS])
        self._object_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in OBJECT_NAMES])
        self._object_bodies = np.array([m.body(n).id for n in OBJECT_NAMES])
        table = m.geom(TABLE_GEOM)
        table_center = m.body_pos[m.geom_bodyid[table.id]] + m.geom_pos[table.id]
        self._table_half_extent = m.geom_size[table.id][:2].copy()
        self._table_center = table_center[:2].copy()
        self.table_height = float(table_center[2] + m.geom_size[table.id][2])
        self._object_rest_height = np.array([self._rest_height(m.geom(n)) for n in OBJECT_NAMES])
        self._camera_id = m.camera(CAMERA_NAME).id

    def _rest_height(self, geom) -> float:
        """Height of an object's centre above the table when it lies in its default orientation."""
        size, kind = self.model.geom_size[geom.id], self.model.geom_type[geom.id]
        if kind == mujoco.mjtGeom.mjGEOM_BOX:
            return float(size[2])
        if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            return float(size[0])
        if kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
            return float(size[1])
        raise ValueError(f"{SCENE_PATH}: object geom '{geom.name}' has an unsupported type {kind}")

    def ready_targets(self) -> np.ndarray:
        """Joint angles (21,) of the ready pose: hands above the table, head looking at it."""
        targets = np.zeros(layout.NUM_JOINTS)
        for name, value in layout.READY_POSE.items():
            targets[layout.JOINT_NAMES.index(name)] = value
        return np.clip(targets, self.joint_ranges[:, 0], self.joint_ranges[:, 1])

    def _default_object_poses(self) -> np.ndarray:
        poses = np.zeros((len(OBJECT_NAMES), 7))
        for i, adr in enumerate(self._object_qpos):
            poses[i] = self.model.qpos0[adr : adr + 7]
        return poses

    # ------------------------------------------------------------------ action <-> state
    def action_to_targets(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split a clipped action into joint targets (rad), hand closures (0-1), base (v, w)."""
        low, high = self.joint_ranges[:, 0], self.joint_ranges[:, 1]
        joints = low + (action[: layout.NUM_JOINTS] + 1.0) * 0.5 * (high - low)
        closures = (action[layout.HAND_SLICE] + 1.0) * 0.5
        base = action[layout.BASE_SLICE] * np.array([layout.MAX_LINEAR_SPEED, layout.MAX_ANGULAR_SPEED])
        return joints, closures, base

    def action_from_state(self, state: np.ndarray) -> np.ndarray:
        """The action that commands a measured 25-d state (inverse of the action mapping), clipped."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (layout.STATE_DIM,) or not np.all(np.isfinite(state)):
            raise ValueError(f"state must be a finite array of shape ({layout.STATE_DIM},), got shape {state.shape}")
        low, high = self.joint_ranges[:, 0], self.joint_ranges[:, 1]
        action = np.empty(layout.ACTION_DIM)
        action[: layout.NUM_JOINTS] = 2.0 * (state[: layout.NUM_JOINTS] - low) / (high - low) - 1.0
        action[layout.HAND_SLICE] = 2.0 * state[layout.HAND_SLICE] - 1.0
        action[layout.BASE_SLICE] = state[layout.BASE_SLICE] / [layout.MAX_LINEAR_SPEED, layout.MAX_ANGULAR_SPEED]
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def joint_state(self) -> np.ndarray:
        """The measured 25-d state (float32) in the action order; see the class docstring."""
        qpos, qvel = self.data.qpos, self.data.qvel
        state = np.empty(layout.STATE_DIM, dtype=np.float64)
        state[: layout.NUM_JOINTS] = qpos[self._joint_qpos]
        state[layout.HAND_SLICE] = np.clip(qpos[self._finger_qpos].mean(axis=1) / layout.FINGER_TRAVEL, 0.0, 1.0)
        yaw = qpos[self._base_qpos[2]]
        vx, vy, yaw_rate = qvel[self._base_qvel]
        state[layout.LINEAR_VELOCITY_INDEX] = vx * np.cos(yaw) + vy * np.sin(yaw)
        state[layout.ANGULAR_VELOCITY_INDEX] = yaw_rate
        return state.astype(np.float32)

    def base_pose(self) -> np.ndarray:
        """Base (x, y, yaw) in the room."""
        return self.data.qpos[self._base_qpos].astype(np.float32)

    def object_poses(self) -> np.ndarray:
        """(num_objects, 7) float32: position and quaternion (w, x, y, z) of each free object."""
        return np.stack([self.data.qpos[adr : adr + 7] for adr in self._object_qpos]).astype(np.float32)

    def object_positions(self) -> np.ndarray:
        """(12,) float32: each object's centre in the head camera's frame (m), `OBJECT_POSITION_NAMES` order.

        Axes: x right, y up, z forward (along the view; positive in front of the camera), i.e.
        MuJoCo's camera frame with z negated (MuJoCo's camera looks along its -z). Computed from
        `data.cam_xpos` / `cam_xmat` and the bodies' `xpos`, the kinematics the renderer draws,
        so they describe the frame `render_frame()` shows.
        """
        rotation = self.data.cam_xmat[self._camera_id].reshape(3, 3)  # columns: camera axes in the world
        offsets = self.data.xpos[self._object_bodies] - self.data.cam_xpos[self._camera_id]  # (4, 3) world
        in_camera = offsets @ rotation  # (4, 3): MuJoCo camera frame (x right, y up, -z forward)
        in_camera[:, 2] *= -1.0
        return in_camera.reshape(-1).astype(np.float32)

    # ------------------------------------------------------------------ snapshots
    def get_state(self) -> SimState:
        """A copy of the full simulation state; `set_state` of it resumes bit-exactly."""
        physics = np.empty(self._state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        return SimState(physics=physics, elapsed_steps=self.elapsed_steps, control_hz=self.control_hz)

    def set_state(self, state: SimState) -> None:
        """Restore a snapshot from `get_state` (of an env with the same scene and control_hz)."""
        if not isinstance(state, SimState):
            raise ValueError(f"set_state expects a SimState from get_state(), got {type(state).__name__}")
        if state.control_hz is not None and state.control_hz != self.control_hz:
            raise ValueError(
                f"SimState was taken at control_hz={state.control_hz}, this env runs at control_hz={self.control_hz}"
            )
        physics = np.asarray(state.physics, dtype=np.float64)
        if physics.shape != (self._state_size,) or not np.all(np.isfinite(physics)):
            raise ValueError(
                f"SimState.physics must be a finite array of shape ({self._state_size},), got {physics.shape}"
            )
        mujoco.mj_setState(self.model, self.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        # Recompute positions for rendering; mj_forward leaves the integration state untouched.
        mujoco.mj_forward(self.model, self.data)
        self.elapsed_steps = int(state.elapsed_steps)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            self.set_state(options["state"])
            return self.render_frame(), self._info()
        if self.task is None:
            self._reset_scene(self.np_random)
            return self.render_frame(), self._info()
        # The episode's own seed comes from np_random: reset(seed=s) gives the same episode every time.
        # While it is drawn there is no episode, and `step` is the task-free step.
        self.episode = None
        self.episode = self.task.sample_episode(self, int(self.np_random.integers(2**31)))
        return self.episode.start_frame.copy(), self._task_info(self._info())

    def _reset_scene(self, rng: np.random.Generator) -> None:
        """Draw a start pose, base pose and object places from `rng` (the task-free reset).

        Tasks call it to draw candidate scenes without recursing into the task reset; the
        order of the draws is that of the task-free `reset`, so `_reset_scene(seeding.np_random(s)[0])`
        is exactly `reset(seed=s)` without a task.
        """
        ready = self.action_from_state(np.concatenate([self.ready_targets(), np.zeros(4)]))
        start = np.clip(ready[: layout.NUM_JOINTS] + rng.uniform(-0.2, 0.2, layout.NUM_JOINTS), -0.95, 0.95)
        joint_targets = self.action_to_targets(np.concatenate([start, np.zeros(4)]))[0]
        closures = rng.uniform(0.0, 0.3, 2)
        base = np.array([rng.uniform(-0.1, 0.05), rng.uniform(-0.1, 0.1), rng.uniform(-0.2, 0.2)])
        self._reset_physics(joint_targets, closures, base, self._sample_object_poses(rng))

    def _sample_object_poses(self, rng: np.random.Generator) -> np.ndarray:
        """Non-overlapping places on the table (10 cm margin to its edges), random yaw."""
        margin = 0.1
        low = self._table_center - self._table_half_extent + margin
        high = self._table_center + self._table_half_extent - margin
        poses = np.zeros((len(OBJECT_NAMES), 7))
        placed: list[np.ndarray] = []
        for i in range(len(OBJECT_NAMES)):
            for _ in range(100):
                xy = rng.uniform(low, high)
                if all(np.linalg.norm(xy - other) > 0.13 for other in placed):
                    break
            placed.append(xy)
            yaw = rng.uniform(-np.pi, np.pi)
            poses[i, :3] = [xy[0], xy[1], self.table_height + self._object_rest_height[i] + 1e-3]
            poses[i, 3:] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        return poses

    def _reset_physics(
        self, joint_targets: np.ndarray, closures: np.ndarray, base: np.ndarray, object_poses: np.ndarray
    ) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._joint_qpos] = joint_targets
        self.data.ctrl[self._joint_actuators] = joint_targets
        fingers = np.repeat(closures[:, None] * layout.FINGER_TRAVEL, 2, axis=1)
        self.data.qpos[self._finger_qpos] = fingers
        self.data.ctrl[self._finger_actuators] = fingers
        self.data.qpos[self._base_qpos] = base
        for adr, pose in zip(self._object_qpos, object_poses):
            self.data.qpos[adr : adr + 7] = pose
        mujoco.mj_forward(self.model, self.data)
        self.elapsed_steps = 0

    def step(self, action):
        self.advance(action)
        if self.task is None or self.episode is None:
            return self.render_frame(), 0.0, False, False, self._info()
        from hwm_env.tasks.base import Readout

        readout = Readout.from_sim(self)
        reward = float(self.task.reward(readout, self.episode))
        truncated = self.elapsed_steps >= self.task.max_episode_steps
        return self.render_frame(), reward, False, truncated, self._task_info(self._info(), readout)

    def _task_info(self, info: dict, readout=None) -> dict:
        """`info` plus the task's `is_success` (bool) and `task_error` (float, rad or m)."""
        from hwm_env.tasks.base import Readout

        readout = Readout.from_sim(self) if readout is None else readout
        info["is_success"] = bool(self.task.is_success(readout, self.episode))
        info["task_error"] = float(self.task.error(readout, self.episode))
        return info

    def advance(self, action) -> None:
        """`step` without rendering: apply the action for one control period (for planners)."""
        action = self._check_action(action)
        joints, closures, (forward_speed, yaw_rate) = self.action_to_targets(action)
        ctrl = self.data.ctrl
        ctrl[self._joint_actuators] = joints
        ctrl[self._finger_actuators] = closures[:, None] * layout.FINGER_TRAVEL
        ax, ay, ayaw = self._base_actuators
        yaw_adr = self._base_qpos[2]
        for _ in range(self.num_substeps):
            # The base servos act in the room frame: re-aim the forward command as the base turns.
            yaw = self.data.qpos[yaw_adr]
            ctrl[ax] = forward_speed * np.cos(yaw)
            ctrl[ay] = forward_speed * np.sin(yaw)
            ctrl[ayaw] = yaw_rate
            mujoco.mj_step(self.model, self.data)
        self.elapsed_steps += 1

    def _check_action(self, action) -> np.ndarray:
        try:
            action = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be a numeric array of shape ({layout.ACTION_DIM},): {error}") from error
        if action.shape != (layout.ACTION_DIM,):
            raise ValueError(f"action must have shape ({layout.ACTION_DIM},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            bad = [layout.ACTION_NAMES[i] for i in np.flatnonzero(~np.isfinite(action))]
            raise ValueError(f"action contains NaN or inf at {bad}")
        return np.clip(action, -1.0, 1.0)  # documented: out-of-range actions are clipped

    def _info(self) -> dict:
        return {"state": self.joint_state(), "object_poses": self.object_poses(), "base_pose": self.base_pose(),
                "object_positions": self.object_positions()}

    def render_frame(self) -> np.ndarray:
        """The head-camera image of the current state (also after `set_state`), whatever render_mode."""
        if self._closed:
            raise ClosedEnvironmentError("HWM-Sim-v0 was closed; it cannot render any more (make a new env)")
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.resolution, self.resolution)
        self._renderer.update_scene(self.data, camera=self._camera_id)
        return self._renderer.render()  # a fresh (H, W, 3) uint8 array

    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_frame()
        return None

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
        self._closed = True

    # Pickling and deepcopy carry the simulation (MjModel and MjData pickle) but not the
    # renderer: a copy makes its own GL context when it first renders.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_renderer"] = None
        return state
