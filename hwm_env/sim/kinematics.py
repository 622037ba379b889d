"""Forward kinematics of the HWM-Sim-v0 robot from a 25-d state alone.

A world model (or a state probe reading its frames) predicts the 25-d state, not the
simulator's full configuration. Because the base of the robot has no roll, pitch or
height freedom, everything above the base — hands, head camera — is a function of the
21 joint angles once the base is put at the origin. That makes task measures that need
hand positions or a robot-fixed frame (reach, push) computable from predicted states,
with the same numbers the simulator would give.

Frames:
- camera frame: x right, y up, z forward, origin at the head camera (the convention of
  `HWMSimEnv.object_positions`: MuJoCo's camera frame with z negated);
- base frame: x forward, y left, z up, origin at the base joint on the floor (the room
  frame when the base is at the origin facing +x).
"""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import CAMERA_NAME, SCENE_PATH, mujoco

GRIP_SITES = ("left_grip", "right_grip")
_FLIP_Z = np.array([1.0, 1.0, -1.0])  # camera frame (z forward) <-> MuJoCo camera frame (z backward)


class HeadKinematics:
    """Forward kinematics of the robot with the base at the origin.

    Hands and camera are functions of the 21 joint angles alone (the base has no
    roll/pitch), so a predicted 25-d state gives hand positions. The hand closures and
    base velocities of the state are ignored. Each call loops over the leading
    dimensions with `mujoco.mj_kinematics` on a private `MjData` (about 10 µs a state).
    """

    def __init__(self):
        self.model = mujoco.MjModel.from_xml_path(str(SCENE_PATH))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._joint_qpos = np.array([m.jnt_qposadr[m.joint(name).id] for name in layout.JOINT_NAMES])
        self._grip_sites = np.array([m.site(name).id for name in GRIP_SITES])
        self._camera = m.camera(CAMERA_NAME).id
        # base joints stay at qpos0 = 0: the base sits at the origin facing +x

    # ------------------------------------------------------------------ public API
    def hands_in_camera(self, states) -> np.ndarray:
        """States (..., 25) -> (..., 2, 3): left_grip / right_grip sites in the camera frame (m)."""
        states = self._check_states(states)
        lead = states.shape[:-1]
        flat = states.reshape(-1, layout.STATE_DIM)
        out = np.empty((len(flat), len(GRIP_SITES), 3))
        for n, state in enumerate(flat):
            position, rotation = self._pose(state)
            offsets = self.data.site_xpos[self._grip_sites] - position  # (2, 3) base frame
            out[n] = (offsets @ rotation) * _FLIP_Z
        return out.reshape(*lead, len(GRIP_SITES), 3)

    def camera_to_base(self, states, points) -> np.ndarray:
        """States (..., 25), points (..., K, 3) in the camera frame -> (..., K, 3) in the base frame (m).

        The leading dimensions of `states` and `points` broadcast against each other.
        """
        states = self._check_states(states)
        points = np.asarray(points, dtype=np.float64)
        if points.ndim < 2 or points.shape[-1] != 3:
            raise ValueError(f"camera_to_base: points must have shape (..., K, 3), got {points.shape}")
        positions, rotations = self.camera_poses(states)  # (..., 3), (..., 3, 3)
        mujoco_frame = points * _FLIP_Z
        return positions[..., None, :] + np.einsum("...ij,...kj->...ki", rotations, mujoco_frame)

    def camera_poses(self, states) -> tuple[np.ndarray, np.ndarray]:
        """States (..., 25) -> camera position (..., 3) and rotation (..., 3, 3) in the base frame.

        The rotation's columns are MuJoCo's camera axes (x right, y up, z backward).
        """
        states = self._check_states(states)
        lead = states.shape[:-1]
        flat = states.reshape(-1, layout.STATE_DIM)
        positions, rotations = np.empty((len(flat), 3)), np.empty((len(flat), 3, 3))
        for n, state in enumerate(flat):
            positions[n], rotations[n] = self._pose(state)
        return positions.reshape(*lead, 3), rotations.reshape(*lead, 3, 3)

    # ------------------------------------------------------------------ internals
    def _pose(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the kinematics for one state; return the camera position and rotation (copies)."""
        self.data.qpos[self._joint_qpos] = state[: layout.NUM_JOINTS]
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)  # camera poses are computed here, not in mj_kinematics
        return self.data.cam_xpos[self._camera].copy(), self.data.cam_xmat[self._camera].reshape(3, 3).copy()

    @staticmethod
    def _check_states(states) -> np.ndarray:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim < 1 or states.shape[-1] != layout.STATE_DIM:
            raise ValueError(f"HeadKinematics: states must have shape (..., {layout.STATE_DIM}), got {states.shape}")
        if not np.all(np.isfinite(states[..., : layout.NUM_JOINTS])):
            raise ValueError("HeadKinematics: the joint angles (state[..., :21]) contain NaN or inf")
        return states
