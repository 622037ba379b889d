"""The benchmark's episodes: task starts from the planning seed domain, goal images, and the score of an episode.

Every episode is a task episode (`hwm_env.tasks`) drawn from the `planning` seed domain
(`hwm_env/seeds.py`), never from the stream `hwm data sim` trains on. The planner sees the
task through a goal image: the task's own (aim: the image at the goal pose) or, where the
task has none, the last frame of the task's scripted (privileged) controller run from the
start for the episode's length, the way DINO-WM takes goals from expert trajectories.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from planners.benchmark.protocol import Protocol


@dataclasses.dataclass
class Episode:
    """One task episode and its goal image, identical for every row."""

    index: int
    planner_seed: int  # seeds the planner, the world model's sampling noise and the random baseline
    task_episode: Any  # hwm_env.tasks.TaskEpisode
    goal_frame: np.ndarray  # (H, W, 3) uint8
    start_error: float  # the task's error at the start

    @property
    def start(self):
        return self.task_episode.start

    @property
    def start_frame(self) -> np.ndarray:
        return self.task_episode.start_frame

    @property
    def context_frames(self) -> np.ndarray:
        return self.task_episode.context_frames

    @property
    def context_actions(self) -> np.ndarray:
        return self.task_episode.context_actions

    @property
    def hold_action(self) -> np.ndarray:
        return self.task_episode.hold_action


def scripted_rollout(env, task, task_episode, steps: int) -> np.ndarray:
    """Run the task's scripted controller from the start for `steps` frames; the last frame. Restores the env."""
    saved = env.get_state()
    try:
        env.set_state(task_episode.start)
        frame = task_episode.start_frame
        for _ in range(steps):
            frame = env.step(task.scripted_action(env, task_episode))[0]
    finally:
        env.set_state(saved)
    return frame


def make_episodes(env, task, protocol: Protocol, progress: bool = False, domain: str = "planning") -> list[Episode]:
    """The protocol's episodes of `task`, from `domain`'s set `protocol.seed_set` (`hwm_env/seeds.py`)."""
    from tqdm.auto import tqdm

    from hwm_env.seeds import episode_seeds, seed_set
    from hwm_env.tasks import Readout

    table = episode_seeds(domain, seed_set(protocol.seed_set), protocol.episodes, words=2)
    episodes = []
    for index, (episode_seed, planner_seed) in enumerate(tqdm(table, desc=f"{task.name} episodes",
                                                              disable=not progress)):
        task_episode = task.sample_episode(env, int(episode_seed))  # leaves env at the start
        goal_frame = task_episode.goal_frame
        if goal_frame is None:
            goal_frame = scripted_rollout(env, task, task_episode, protocol.steps)
        start_error = float(task.error(Readout.from_sim(env), task_episode))
        episodes.append(Episode(index=index, planner_seed=int(planner_seed), task_episode=task_episode,
                                goal_frame=goal_frame, start_error=start_error))
    return episodes


@dataclasses.dataclass
class EpisodeResult:
    error: float  # the task's error at the end (rad or m)
    success: bool
    plan_seconds: list[float]  # wall-clock
    plan_cpu_seconds: list[float]  # process CPU time, all threads (inflated by spinning OpenMP threads when shared)


def score(env, task, episode: Episode, plan_seconds=(), plan_cpu_seconds=()) -> EpisodeResult:
    """The task's error and success predicate on the simulator's truth at the episode's end."""
    from hwm_env.tasks import Readout

    readout = Readout.from_sim(env)
    return EpisodeResult(float(task.error(readout, episode.task_episode)),
                         bool(task.is_success(readout, episode.task_episode)),
                         list(plan_seconds), list(plan_cpu_seconds))
