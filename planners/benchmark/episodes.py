"""The benchmark's episodes: seeded start/goal pairs, the planner's action box, and the score of an episode."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hwm_env.sim.goals import joint_error, view_error
from planners.benchmark.protocol import Protocol

FIXED_COMMAND_WIDTH = 1e-4  # action units: the planner box around the start command of joints it does not move


@dataclasses.dataclass
class Episode:
    """One start/goal pair, identical for every row."""

    index: int
    planner_seed: int  # seeds the planner, the world model's sampling noise and the random baseline
    start: Any  # SimState after the settle frames
    start_frame: np.ndarray  # (H, W, 3) uint8, the observation at the start
    start_state: np.ndarray  # (25,) float32
    context_frames: np.ndarray  # (settle_steps, H, W, 3) uint8, ending at start_frame
    context_actions: np.ndarray  # (settle_steps, 25) float32, the action into each context frame
    hold_action: np.ndarray  # (25,) the action that holds the start pose
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # (25,) float32


def make_episodes(env, protocol: Protocol, progress: bool = False) -> list[Episode]:
    """Start and goal of each episode, all drawn from `protocol.seed`."""
    from tqdm.auto import tqdm

    from hwm_env.context import drive_sim
    from hwm_env.sim.goals import GoalSampler

    episodes = []
    seeds = np.random.SeedSequence(protocol.seed).spawn(protocol.episodes)
    for index, sequence in enumerate(tqdm(seeds, desc="episodes (start, goal)", disable=not progress)):
        reset_seed, goal_seed, planner_seed = (int(value) for value in sequence.generate_state(3))
        env.reset(seed=reset_seed)
        hold_action = env.action_from_state(env.joint_state())
        context = drive_sim(env, lambda: hold_action, protocol.settle_steps)
        start, start_state = env.get_state(), env.joint_state()
        goal = GoalSampler(seed=goal_seed, max_offset=protocol.max_goal_offset).sample(env)  # env back at start
        episodes.append(Episode(
            index=index, planner_seed=planner_seed, start=start, start_frame=context.frames[-1],
            start_state=start_state, context_frames=context.frames, context_actions=context.actions,
            hold_action=hold_action, goal_frame=goal.frame, goal_state=goal.state,
        ))
    return episodes


def action_box(hold_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the planner: the full range on the goal joints, the start command elsewhere."""
    from hwm_env.sim.goals import GOAL_JOINTS

    low = hold_action.astype(np.float32) - FIXED_COMMAND_WIDTH
    high = hold_action.astype(np.float32) + FIXED_COMMAND_WIDTH
    low[list(GOAL_JOINTS)], high[list(GOAL_JOINTS)] = -1.0, 1.0
    return low, high


@dataclasses.dataclass
class EpisodeResult:
    view_error: float
    pose_error: float
    plan_seconds: list[float]  # wall-clock
    plan_cpu_seconds: list[float]  # process CPU time, all threads (inflated by spinning OpenMP threads when shared)


def score(env, episode: Episode, plan_seconds=(), plan_cpu_seconds=()) -> EpisodeResult:

    state = env.joint_state()
    return EpisodeResult(view_error(state, episode.goal_state), joint_error(state, episode.goal_state),
                         list(plan_seconds), list(plan_cpu_seconds))
