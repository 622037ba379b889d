"""reach: bring a hand to a named object on the table (the arms, seen from the head)."""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import OBJECT_POSITION_NAMES
from hwm_env.tasks.base import Readout, Task, TaskEpisode
from hwm_env.tasks.control import (ARM_INDICES, HIP_PITCH_INDEX, HIP_YAW_INDEX, SIDES, GripIK, grip_step, lift_idle_arm,
                                   room_to_base, shoulder_side)

# Shoulders in the base frame with the hips straight (scene.xml: torso at z 0.93, shoulders 0.4 above, 0.23 aside)
SHOULDERS = {"left": np.array([0.0, 0.23, 1.33]), "right": np.array([0.0, -0.23, 1.33])}
APPROACH_HEIGHT = 0.17  # m above the table top: the grip site travels this high, above every object


class ReachTask(Task):
    """Bring either hand's grip site (between the fingers) to a named object's centre.

    Start: a scene drawn as by `reset` and a named object drawn uniformly; draws are
    rejected (deterministically, from the episode's seed) unless, after settling, the
    object rests on the table (moved < 1 cm while settling), lies within
    `reach_radius` = 0.7 m (horizontally, base frame) of the nearer shoulder (`SHOULDERS`,
    the shoulder joints with the hips straight; over 80 episodes the scripted policy
    succeeded on 90-100% of objects up to 0.75 m and 71% beyond) and both hands start
    more than `min_start_error` = 0.15 m from it (holding still never succeeds). `episode.target` is the object's start centre in the base
    frame (m) and the arm the scripted policy uses (0 left, 1 right).

    Hands come from `HeadKinematics.hands_in_camera(readout.state)`, so a probe's
    predicted state scores exactly as the simulator's would.

    ## Action space
    | indices | meaning | range |
    |---|---|---|
    | 0, 2 (HIP_YAW, HIP_PITCH) | turning and leaning the torso extend the reach | [-1, 1] |
    | 6-12, 13-19 (both arms) | controlled | [-1, 1] |
    | all others (legs, neck, hands, base) | held at `hold_action` | +- 1e-4 |

    ## Observation
    The head-camera frame. Scored on the readout's 21 joint angles (hands by forward
    kinematics) and the object centres.

    ## Reward
    `-error`, error = distance (m) from the nearer grip site to the object's centre.

    ## Success
    error < `success_threshold` = 0.08 m. The brief's 0.05 m is only reachable by getting
    the fingers around the object, and the open gripper (7.4 cm between the fingers) is
    narrower than the red box (8 cm) and the ball (8 cm diameter), and 2 mm wider than
    the cylinder: with fingertips resting on an object's top the grip site is 6.5 cm
    (box, ball) to 7.5 cm (cylinder) from its centre. 0.08 m counts a hand touching or
    straddling any of the four objects.

    ## Episode end
    Truncated after 48 steps; never terminated.
    """

    name = "reach"
    controlled = (HIP_YAW_INDEX, HIP_PITCH_INDEX, *layout.LEFT_ARM_INDICES, *layout.RIGHT_ARM_INDICES)
    success_threshold = 0.08
    max_episode_steps = 48
    required_targets = layout.JOINT_NAMES + OBJECT_POSITION_NAMES

    def __init__(self, reach_radius: float = 0.7, min_start_error: float = 0.15, max_draws: int = 500):
        if not 0.2 <= reach_radius <= 1.0:
            raise ValueError(f"ReachTask: reach_radius must be in [0.2, 1.0] m, got {reach_radius}")
        self.reach_radius = float(reach_radius)
        self.min_start_error = float(min_start_error)
        self.max_draws = int(max_draws)
        self._kinematics = None
        self._ik: dict[int, GripIK] = {}

    @property
    def kinematics(self):
        if self._kinematics is None:
            from hwm_env.sim.kinematics import HeadKinematics

            self._kinematics = HeadKinematics()
        return self._kinematics

    # ------------------------------------------------------------------ start distribution
    def sample_episode(self, env, seed: int) -> TaskEpisode:
        env = env.unwrapped
        rng = self._scene_rng(seed)
        for _ in range(self.max_draws):
            env._reset_scene(rng)
            index = int(rng.integers(len(env._object_bodies)))
            if not self._acceptable(env, index):
                continue
            settled = self._settle_named_object(env, index, lambda: self._acceptable(env, index))
            if settled is None:
                continue
            hold, frames, actions = settled
            centre = room_to_base(env, env.object_poses()[index, :3])
            side = SIDES.index(shoulder_side(centre))
            return self._episode(env, seed, frames, actions, hold, index, np.append(centre, side))
        raise RuntimeError(f"reach: no acceptable start in {self.max_draws} draws from seed {seed}")

    def _acceptable(self, env, index: int) -> bool:
        centre = room_to_base(env, env.object_poses()[index, :3])
        shoulder = SHOULDERS[shoulder_side(centre)]
        if np.linalg.norm((centre - shoulder)[:2]) > self.reach_radius:
            return False
        return float(self.error(Readout.from_sim(env), _Named(index))) > self.min_start_error

    # ------------------------------------------------------------------ measures
    def hand_distances(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """(..., 2) distance (m) from the left / right grip site to the named object's centre."""
        hands = self.kinematics.hands_in_camera(readout.state)  # (..., 2, 3)
        target = readout.objects[..., episode.object_index, :]
        return np.linalg.norm(hands - target[..., None, :], axis=-1)

    def error(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        return self.hand_distances(readout, episode).min(axis=-1)

    # ------------------------------------------------------------------ oracle
    def scripted_action(self, env, episode: TaskEpisode) -> np.ndarray:
        """Damped-least-squares IK in phases: over the object at APPROACH_HEIGHT, then down onto it.

        The other hand is kept at least 12 cm above the table, clear of the table when the
        hips lean. The hand points down; it descends once the commanded grip site is within
        2 cm of the object horizontally (the commanded pose, not the measured one, decides the
        phase: a lagging arm would flip it back and forth), to the height where the fingertips meet the object's top
        (or pass beside it, where it fits between the fingers).
        """
        env = env.unwrapped
        ik = self._ik_for(env)
        side = SIDES[int(episode.target[3])]
        other = SIDES[1 - int(episode.target[3])]
        body = env._object_bodies[episode.object_index]
        centre = env.data.xpos[body].astype(np.float64)
        yaw = env.data.qpos[env._base_qpos[2]]
        planned = ik.site_at(side, ik.commanded())  # the phase follows the plan, not the lagging arm
        top = centre[2] + env._object_rest_height[episode.object_index]
        grip = ik.grip_position(side)
        if grip[2] < env.table_height + 0.03 and np.linalg.norm((grip - centre)[:2]) > 0.05:
            # a start can leave the hand below the table top, even under its edge: first up and back
            target = planned + [-0.05 * np.cos(yaw), -0.05 * np.sin(yaw), 0.15]
        elif np.linalg.norm((planned - centre)[:2]) > 0.02:
            target = np.array([centre[0], centre[1], env.table_height + APPROACH_HEIGHT])
        else:
            target = np.array([centre[0], centre[1], top + 0.02])  # fingertips 2.5 cm below the grip site
        joints = [HIP_YAW_INDEX, HIP_PITCH_INDEX, *ARM_INDICES[side]]
        angles = grip_step(ik, side, target, joints, max_step=0.06, weights=[0.3, 0.3] + [1.0] * 7)
        angles[list(ARM_INDICES[other])] = lift_idle_arm(ik, other, angles, env.table_height + 0.12)
        action = env.action_from_state(np.concatenate([angles, np.zeros(4)]))
        return self._with_controlled(episode, action)

    def _ik_for(self, env) -> GripIK:
        key = id(env)
        if key not in self._ik or self._ik[key].env is not env:
            self._ik = {key: GripIK(env)}
        return self._ik[key]


class _Named:
    """The part of an episode `error` reads, for checks before an episode exists."""

    def __init__(self, object_index: int):
        self.object_index = object_index
