"""look-at: bring a named object to the image centre (the camera must find an object, not a pose)."""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import OBJECT_POSITION_NAMES, mujoco
from hwm_env.tasks.base import Readout, Task, TaskEpisode, angle_from_axis

HIP_YAW, HIP_ROLL, HIP_PITCH = 0, 1, 2


class LookAtTask(Task):
    """Turn the head camera until a named object sits on the optical axis (the image centre).

    Start: a scene drawn as by `reset` and a named object drawn uniformly; draws are
    rejected (deterministically, all from the episode's seed) until, after settling, the
    object is in view — in front of the camera, its centre not hidden behind another geom
    (a ray from the camera hits it first) — at an angle in [0.15, 0.45] rad from the
    optical axis, and resting on the table (moved < 1 cm while settling: a reset can put
    a hand inside an object and throw it). `episode.object_index` is the object,
    `episode.target` its start direction in the camera frame (unit vector).

    ## Action space
    | indices | meaning | range |
    |---|---|---|
    | 0, 1, 2 (HIP_YAW, HIP_ROLL, HIP_PITCH), 20 (NECK_PITCH) | controlled | [-1, 1] |
    | 24 (ANGULAR_VELOCITY) | base yaw rate, controlled | [-1, 1] |
    | all others (incl. 23, base forward speed) | held at `hold_action` | +- 1e-4 |

    ## Observation
    The head-camera frame. Scored on the readout's object centres (OBJECT_POSITION_NAMES).

    ## Reward
    `-error`, error = angle (rad) between the object's camera-frame direction and the
    optical axis (+z).

    ## Success
    error < 0.05 rad (~2 px from the centre at 64 px, 85 degree field of view).

    ## Episode end
    Truncated after 48 steps; never terminated.
    """

    name = "look-at"
    controlled = (HIP_YAW, HIP_ROLL, HIP_PITCH, layout.NECK_INDEX, layout.ANGULAR_VELOCITY_INDEX)
    success_threshold = 0.05
    max_episode_steps = 48
    required_targets = OBJECT_POSITION_NAMES

    def __init__(self, start_angle: tuple[float, float] = (0.15, 0.45), max_draws: int = 500):
        if not 0 <= start_angle[0] < start_angle[1] < 0.7:
            raise ValueError(f"LookAtTask: start_angle must be (low, high) rad with 0 <= low < high < 0.7, "
                             f"got {start_angle}")
        self.start_angle = (float(start_angle[0]), float(start_angle[1]))
        self.max_draws = int(max_draws)

    # ------------------------------------------------------------------ start distribution
    def sample_episode(self, env, seed: int) -> TaskEpisode:
        env = env.unwrapped
        rng = self._scene_rng(seed)
        for _ in range(self.max_draws):
            env._reset_scene(rng)
            index = int(rng.integers(len(env._object_bodies)))
            if not self._acceptable(env, index):  # cheap check before rendering the context
                continue
            settled = self._settle_named_object(env, index, lambda: self._acceptable(env, index))
            if settled is None:
                continue
            hold, frames, actions = settled
            direction = env.object_positions().reshape(-1, 3)[index].astype(np.float64)
            return self._episode(env, seed, frames, actions, hold, index, direction / np.linalg.norm(direction))
        raise RuntimeError(f"look-at: no acceptable start in {self.max_draws} draws from seed {seed}")

    def _acceptable(self, env, index: int) -> bool:
        point = env.object_positions().reshape(-1, 3)[index].astype(np.float64)
        angle = float(angle_from_axis(point))
        return point[2] > 0 and self.start_angle[0] <= angle <= self.start_angle[1] and visible(env, index)

    # ------------------------------------------------------------------ measures
    def error(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        return angle_from_axis(readout.objects[..., episode.object_index, :])

    # ------------------------------------------------------------------ oracle
    def scripted_action(self, env, episode: TaskEpisode) -> np.ndarray:
        """Proportional control: hip yaw takes the horizontal angle, the neck the vertical one.

        Each joint is commanded to its measured angle plus the object's angle off the axis
        (the pose that would centre it), so the servo closes the loop; what a joint cannot
        take beyond its range goes to hip pitch (vertical) or the base yaw rate (horizontal).
        """
        env = env.unwrapped
        point = env.object_positions().reshape(-1, 3)[episode.object_index].astype(np.float64)
        right = np.arctan2(point[0], point[2])  # + object right of the centre
        down = -np.arctan2(point[1], point[2])  # + object below the centre
        state = env.joint_state().astype(np.float64)
        low, high = env.joint_ranges[:, 0], env.joint_ranges[:, 1]
        goal = state.copy()
        goal[layout.BASE_SLICE] = 0.0
        yaw = state[HIP_YAW] - right  # hip yaw + turns left
        goal[HIP_YAW] = np.clip(yaw, low[HIP_YAW], high[HIP_YAW])
        neck = state[layout.NECK_INDEX] + down  # neck + looks down
        goal[layout.NECK_INDEX] = np.clip(neck, low[layout.NECK_INDEX], high[layout.NECK_INDEX])
        goal[HIP_PITCH] = np.clip(state[HIP_PITCH] + (neck - goal[layout.NECK_INDEX]), low[HIP_PITCH], high[HIP_PITCH])
        action = env.action_from_state(goal).astype(np.float64)
        action[layout.ANGULAR_VELOCITY_INDEX] = np.clip(2.0 * (yaw - goal[HIP_YAW]) / layout.MAX_ANGULAR_SPEED, -1, 1)
        return self._with_controlled(episode, action)


def visible(env, index: int) -> bool:
    """Whether a ray from the head camera to object `index`'s centre meets that object first."""
    data, model = env.data, env.model
    camera = data.cam_xpos[env._camera_id].astype(np.float64)
    body = int(env._object_bodies[index])
    vector = data.xpos[body] - camera
    geom = np.array([-1], dtype=np.int32)
    head = int(model.cam_bodyid[env._camera_id])  # the ray starts just outside the head: never hit it
    distance = mujoco.mj_ray(model, data, camera, vector, None, 1, head, geom)
    return distance >= 0 and model.geom_bodyid[geom[0]] == body
