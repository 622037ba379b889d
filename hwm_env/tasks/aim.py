"""aim: turn the head camera to a goal view (the easiest task: joint space, no objects)."""
from __future__ import annotations

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.goals import SUCCESS_THRESHOLD, VIEW_JOINT_NAMES, VIEW_JOINTS, GoalSampler
from hwm_env.tasks.base import Readout, Task, TaskEpisode


class AimTask(Task):
    """Move the four joints that aim the head camera to a goal pose shown by a goal image.

    The goal-reaching task of the planning benchmark as a task: the start is
    `reset(seed)` with the start pose held for `settle_steps` frames; the goal moves the
    view joints (HIP_YAW, HIP_ROLL, HIP_PITCH, NECK_PITCH) by uniform(-0.3, 0.3) rad each,
    kept inside the joint ranges, and is made reachable by commanding it from the start
    and holding it for 1.5 s (as `GoalSampler.reach` does); the arms and everything else
    keep the start command. `episode.target` is the 4 view-joint angles reached there
    (rad, VIEW_JOINTS order) and `episode.goal_frame` the image there.

    ## Action space
    | indices | meaning | range |
    |---|---|---|
    | 0, 1, 2, 20 (HIP_YAW, HIP_ROLL, HIP_PITCH, NECK_PITCH) | controlled | [-1, 1] |
    | all others | held at `hold_action` | +- 1e-4 |

    ## Observation
    The head-camera frame; the goal image is `episode.goal_frame`. Scored on the
    readout's state (VIEW_JOINT_NAMES).

    ## Reward
    `-error`, error = mean |view joints - goal| (rad).

    ## Success
    error < 0.03 rad (`goals.SUCCESS_THRESHOLD`, ~1.3 px of camera rotation at 64 px).

    ## Episode end
    Truncated after 48 steps; never terminated.
    """

    name = "aim"
    controlled = VIEW_JOINTS
    success_threshold = SUCCESS_THRESHOLD
    max_episode_steps = 48
    required_targets = VIEW_JOINT_NAMES

    def __init__(self, max_offset: float = 0.3, goal_seconds: float = 1.5, gain: float = 1.0):
        if not 0 < max_offset <= 1.0:
            raise ValueError(f"AimTask: max_offset must be in (0, 1] rad, got {max_offset}")
        self.max_offset = float(max_offset)
        self.goal_seconds = float(goal_seconds)
        self.gain = float(gain)  # scripted policy: command = goal + gain * (goal - measured)

    def sample_episode(self, env, seed: int) -> TaskEpisode:
        env = env.unwrapped
        rng = self._scene_rng(seed)
        env._reset_scene(rng)
        hold = self._hold_action(env)
        frames, actions = self._settle(env, hold)
        start = env.get_state()
        state = env.joint_state().astype(np.float64)
        goal_state = state.copy()
        low, high = env.joint_ranges[list(VIEW_JOINTS), 0], env.joint_ranges[list(VIEW_JOINTS), 1]
        goal_state[list(VIEW_JOINTS)] = np.clip(
            state[list(VIEW_JOINTS)] + rng.uniform(-self.max_offset, self.max_offset, len(VIEW_JOINTS)), low, high)
        goal_action = hold.copy()
        goal_action[list(VIEW_JOINTS)] = env.action_from_state(goal_state)[list(VIEW_JOINTS)]
        steps = max(1, round(self.goal_seconds * env.control_hz))
        goal_frame, reached = GoalSampler(seed=0, settle_steps=steps).reach(env, start, goal_action)  # restores start
        target = reached[list(VIEW_JOINTS)].astype(np.float64)
        return self._episode(env, seed, frames, actions, hold, None, target, goal_frame)

    def error(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        view = readout.state[..., list(VIEW_JOINTS)]
        return np.abs(view - episode.target).mean(axis=-1)

    def scripted_action(self, env, episode: TaskEpisode) -> np.ndarray:
        """Proportional control on the view joints: the servo targets the goal plus a correction."""
        env = env.unwrapped
        state = env.joint_state().astype(np.float64)
        goal = state.copy()
        measured = state[list(VIEW_JOINTS)]
        goal[list(VIEW_JOINTS)] = episode.target + self.gain * (episode.target - measured) * (
            np.abs(episode.target - measured) < 0.05)  # correct steady-state offsets only once close
        goal[layout.BASE_SLICE] = 0.0
        return self._with_controlled(episode, env.action_from_state(goal))
