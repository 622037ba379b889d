"""push: move a named object along a goal direction on the table (contact: the hardest task)."""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import OBJECT_NAMES, OBJECT_POSITION_NAMES
from hwm_env.tasks.base import Readout, Task, TaskEpisode
from hwm_env.tasks.control import (ARM_INDICES, HIP_PITCH_INDEX, HIP_YAW_INDEX, SIDES, base_to_room,
                                   grip_step, lift_idle_arm, room_to_base, shoulder_side)
from hwm_env.tasks.reach import APPROACH_HEIGHT, SHOULDERS, ReachTask

# Largest horizontal half extent of each object (box corner, ball, cylinder, block end), m
_FOOTPRINT = {"red_box": 0.057, "green_ball": 0.04, "blue_cylinder": 0.035, "yellow_block": 0.074}
_FINGER_REACH = 0.053  # m from the grip site to the outer face of a finger, along the fingers' gap axis
_SWEEP_HEIGHT = 0.035  # m above the table: the grip site while sweeping (fingertips 1 cm above the table)


class PushTask(Task):
    """Push a named object at least 5 cm along a goal direction (base frame) across the table.

    Start: a scene drawn as by `reset`, a named object drawn uniformly and a direction
    at an angle drawn uniformly in [-45, 45] degrees from straight ahead (away from the
    robot, where a hand can push); draws are rejected (deterministically, from the
    episode's seed) unless, after settling, the object rests on the table (moved < 1 cm
    while settling), the object and the point 12 cm behind it (where the hand starts
    the push) are within `reach_radius` of the nearer shoulder and at least 0.45 m from
    it (nearer, the arm cannot point the hand down), the object can travel 10 cm along
    the direction without leaving the table, and no other object lies within 9 cm of
    its path (from 15 cm behind to 12 cm ahead). `episode.target` is
    [direction x, y (unit, base frame), start centre x, y, z (base frame, m), arm (0 left, 1 right)].

    Displacements are measured in the base frame, from `HeadKinematics.camera_to_base`
    of the readout's state and object centres, so that they need no room coordinates;
    the base frame stays put because the base is not controlled.

    ## Action space
    | indices | meaning | range |
    |---|---|---|
    | 0, 2 (HIP_YAW, HIP_PITCH) | turning and leaning the torso extend the reach | [-1, 1] |
    | 6-12, 13-19 (both arms) | controlled | [-1, 1] |
    | all others (legs, neck, hands, base commands fixed at 0) | held at `hold_action` | +- 1e-4 |

    ## Observation
    The head-camera frame. Scored on the readout's 21 joint angles and object centres.

    ## Reward
    `displacement - 0.1 * hand distance`: the object's displacement along the direction
    since the start (m) minus a shaping term, 0.1 x the distance (m) from the nearer grip
    site to the object's centre, which rewards bringing a hand to the object before it moves.

    ## Success
    error == 0: displacement >= 0.05 m along the direction, the move within 30 degrees of
    it (|across| <= tan 30 x along) and the object still on the table (dropped < 3 cm).
    error = max(0, 0.05 - along) + max(0, |across| - tan 30 x along) + max(0, drop - 0.03)
    (m). The last two terms are not in the brief: without them a uniform-random policy,
    whose arms thrash across the table, "succeeded" on 8 of 15 seeds by knocking the
    object anywhere roughly forward or off the table.

    ## Episode end
    Truncated after 64 steps; never terminated.
    """

    name = "push"
    controlled = (HIP_YAW_INDEX, HIP_PITCH_INDEX, *layout.LEFT_ARM_INDICES, *layout.RIGHT_ARM_INDICES)
    success_threshold = 0.05  # m the object must move along the direction
    max_episode_steps = 64
    required_targets = layout.JOINT_NAMES + OBJECT_POSITION_NAMES
    shaping = 0.1  # reward per m of hand-object distance
    cone = float(np.tan(np.radians(30)))  # the move must stay within 30 degrees of the direction

    def __init__(self, max_angle: float = np.pi / 4, reach_radius: float = 0.72, max_draws: int = 1000):
        if not 0 <= max_angle <= np.pi / 2:
            raise ValueError(f"PushTask: max_angle must be in [0, pi/2] rad, got {max_angle}")
        self.max_angle = float(max_angle)
        self.reach_radius = float(reach_radius)
        self.max_draws = int(max_draws)
        self._reach = ReachTask()  # hand distances and kinematics

    # ------------------------------------------------------------------ start distribution
    def sample_episode(self, env, seed: int) -> TaskEpisode:
        env = env.unwrapped
        rng = self._scene_rng(seed)
        for _ in range(self.max_draws):
            env._reset_scene(rng)
            index = int(rng.integers(len(env._object_bodies)))
            angle = rng.uniform(-self.max_angle, self.max_angle)
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            if not self._acceptable(env, index, direction):
                continue
            settled = self._settle_named_object(env, index, lambda: self._acceptable(env, index, direction))
            if settled is None:
                continue
            hold, frames, actions = settled
            centre = room_to_base(env, env.object_poses()[index, :3])
            side = SIDES.index(shoulder_side(centre - 0.12 * direction))
            target = np.concatenate([direction[:2], centre, [side]])
            return self._episode(env, seed, frames, actions, hold, index, target)
        raise RuntimeError(f"push: no acceptable start in {self.max_draws} draws from seed {seed}")

    def _acceptable(self, env, index: int, direction: np.ndarray) -> bool:
        poses = room_to_base(env, env.object_poses()[:, :3])
        centre = poses[index]
        for point in (centre, centre - 0.12 * direction):
            distance = np.linalg.norm((point - SHOULDERS[shoulder_side(point)])[:2])
            if not 0.45 <= distance <= self.reach_radius:
                return False
        end = env.object_poses()[index, :3] + base_to_room(env, 0.1 * direction)
        low = env._table_center - env._table_half_extent + 0.04
        high = env._table_center + env._table_half_extent - 0.04
        if np.any(end[:2] < low) or np.any(end[:2] > high):
            return False
        start, stop = centre - 0.15 * direction, centre + 0.12 * direction
        for other, position in enumerate(poses):
            if other != index and _distance_to_segment(position[:2], start[:2], stop[:2]) < 0.09:
                return False
        return True

    # ------------------------------------------------------------------ measures
    def displacement(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """(...) the named object's displacement (m) along the direction since the start."""
        return self.offsets(readout, episode)[..., 0]

    def offsets(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """(..., 3) the named object's move since the start: along the direction, across it, up (m)."""
        i = episode.object_index
        centre = self._reach.kinematics.camera_to_base(readout.state, readout.objects[..., i:i + 1, :])[..., 0, :]
        moved = centre - episode.target[2:5]
        direction = episode.target[:2]
        across = moved[..., :2] @ np.array([-direction[1], direction[0]])
        return np.stack([moved[..., :2] @ direction, across, moved[..., 2]], axis=-1)

    def error(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """max(0, 0.05 - along) + how far the move leaves the 30-degree cone + how far the object fell (m)."""
        along, across, up = np.moveaxis(self.offsets(readout, episode), -1, 0)
        short = np.maximum(0.0, self.success_threshold - along)
        off_course = np.maximum(0.0, np.abs(across) - self.cone * np.maximum(along, 0.0))
        fallen = np.maximum(0.0, -up - 0.03)
        return short + off_course + fallen

    def is_success(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        return self.error(readout, episode) <= 0.0

    def reward(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        hand = self._reach.error(readout, episode)
        return self.displacement(readout, episode) - self.shaping * hand

    # ------------------------------------------------------------------ oracle
    def scripted_action(self, env, episode: TaskEpisode) -> np.ndarray:
        """IK in phases: above the pre-contact point, down to sweep height, sweep along the direction.

        The pre-contact point is behind the object (opposite the direction) by its
        footprint plus a finger; the fingers' gap axis is turned along the direction so
        one finger's broad face pushes. The hand rises before it travels, so it does not
        sweep other objects away. Phases follow the commanded grip site (the plan: the
        measured arm lags it by centimetres and would flip phases back and forth). The sweep
        moves at most 2 cm a frame (a faster hit sends the ball rolling off the table);
        after 6 cm of displacement the hand stops.
        """
        env = env.unwrapped
        ik = self._reach._ik_for(env)
        side, other = SIDES[int(episode.target[5])], SIDES[1 - int(episode.target[5])]
        body = env._object_bodies[episode.object_index]
        centre = env.data.xpos[body].astype(np.float64)
        direction = base_to_room(env, np.append(episode.target[:2], 0.0))
        start = room_to_base(env, centre)
        moved = (start[:2] - episode.target[2:4]) @ episode.target[:2]
        planned = ik.site_at(side, ik.commanded())
        offset = planned - centre
        along = offset @ direction
        lateral = np.linalg.norm(offset[:2] - along * direction[:2])
        clearance = _FOOTPRINT[OBJECT_NAMES[episode.object_index]] + _FINGER_REACH
        low = env.table_height + _SWEEP_HEIGHT
        pre = centre - direction * (clearance + 0.03)
        high = env.table_height + APPROACH_HEIGHT
        sweeping = False
        if moved >= 0.06:
            target = planned  # done: hold the hand where it is
        elif planned[2] < low + 0.02 and along < -0.03 and lateral < 0.03:
            target = centre + direction * 0.05  # sweep: the leading finger pushes the object ahead
            target[2] = low
            sweeping = True
        elif along < -(clearance - 0.01) and lateral < 0.02:
            target = np.array([pre[0], pre[1], low])  # above the pre-contact point: descend
        elif planned[2] < high - 0.05:
            target = np.array([planned[0], planned[1], high])  # up first, clear of the objects
        else:
            target = np.array([pre[0], pre[1], high])
        joints = [HIP_YAW_INDEX, HIP_PITCH_INDEX, *ARM_INDICES[side]]
        angles = grip_step(ik, side, target, joints, max_step=0.02 if sweeping else 0.04, gap_axis=direction,
                           weights=[0.3, 0.3] + [1.0] * 7)
        angles[list(ARM_INDICES[other])] = lift_idle_arm(ik, other, angles, env.table_height + 0.12)
        action = env.action_from_state(np.concatenate([angles, np.zeros(4)]))
        return self._with_controlled(episode, action)


def _distance_to_segment(point: np.ndarray, start: np.ndarray, stop: np.ndarray) -> float:
    segment = stop - start
    t = np.clip((point - start) @ segment / (segment @ segment), 0.0, 1.0)
    return float(np.linalg.norm(point - (start + t * segment)))
