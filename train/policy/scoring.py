"""Scoring a policy on a task's episodes, in HWM-Sim-v0 (the truth) and in a world model (what imagination believes).

Both run the same episodes (`planners.benchmark.make_episodes(..., domain="policy-scoring")`)
for the task's length, with the same observation and commands. The simulator scores the
final state with the task's predicate; the world model scores the final predicted frame with
the task's predicate on the probe's reading (its `info["is_success"]`). `hwm bench policies`
ranks policies by both.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from models.intervals import wilson_interval

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # observations (N, D), rng -> u (N, C)


def score_in_sim(policy: Policy, episodes, sim, observation, commander, frames: int, frame_stride: int = 1,
                 description: str = "score in HWM-Sim-v0", progress: bool = True) -> dict[str, Any]:
    """Run `policy` from each episode's start for `frames` frames; the task's final error and success on the truth.

    The policy acts once per world-model step (`frame_stride` frames); its rng is seeded by
    the episode's `planner_seed`, the same for every policy and world.
    """
    from tqdm.auto import tqdm

    from planners.benchmark import score

    task = observation.task
    errors, successes = [], []
    start_time = time.perf_counter()
    for episode in tqdm(episodes, desc=description, disable=not progress, dynamic_ncols=True):
        task_episode = episode.task_episode
        sim.unwrapped.set_state(task_episode.start)
        rng = np.random.default_rng(episode.planner_seed)
        commands = commander.start(task_episode.hold_action[None])
        frame = task_episode.start_frame
        for _ in range(math.ceil(frames / frame_stride)):
            observed = observation.build(observation.read(frame[None]), [task_episode], commands)
            commands = commander.step(commands, policy(observed, rng))
            for _ in range(frame_stride):
                frame, *_ = sim.step(commander.action(commands)[0])
        result = score(sim, task, episode)
        errors.append(result.error)
        successes.append(result.success)
    return {"errors": errors, "successes": successes, "seconds": time.perf_counter() - start_time}


def score_in_imagination(policy: Policy, episodes, observation, commander, frames: int, batch_size: int = 64,
                         description: str = "score in imagination", progress: bool = True,
                         **env_kwargs) -> dict[str, Any]:
    """The same episodes in a world model (`HWMVectorEnv(task=..., **env_kwargs)`), `batch_size` at a time.

    Each batch starts from its episodes' contexts (queued in order) and is stepped with one
    model call per step for ceil(frames / frame_stride) steps; error and success are the
    probe's reading of the last predicted frame.
    """
    from tqdm.auto import tqdm

    from hwm_env.vector_env import HWMVectorEnv

    errors, successes = [], []
    start_time = time.perf_counter()
    size = min(batch_size, len(episodes))
    env = HWMVectorEnv(num_envs=size, obs_mode="rgb", task=observation.task, max_episode_steps=None,
                       autoreset_mode="Disabled", **env_kwargs)
    try:
        imagination = env.imagination
        model_steps = math.ceil(frames / env.runner.frame_stride)
        bar = tqdm(total=len(episodes) * model_steps, desc=description, disable=not progress, dynamic_ncols=True)
        for first in range(0, len(episodes), size):
            chunk = episodes[first: first + size]
            chunk = chunk + [chunk[-1]] * (size - len(chunk))  # a short last batch: the spare envs repeat one
            task_episodes = [episode.task_episode for episode in chunk]
            imagination.context_source.queue(task_episodes)
            env.reset_envs(range(size), [episode.planner_seed for episode in chunk], [None] * size)
            rng = np.random.default_rng(chunk[0].planner_seed)
            commands = commander.start(np.stack([episode.hold_action for episode in task_episodes]))
            for _ in range(model_steps):
                observed = observation.build(imagination.probe_readings, task_episodes, commands)  # read with the reward
                commands = commander.step(commands, policy(observed, rng))
                env.step(commander.action(commands))
                bar.update(min(size, len(episodes) - first))
            real = min(size, len(episodes) - first)
            errors += imagination.task_errors[:real].tolist()
            successes += imagination.task_successes[:real].tolist()
        bar.close()
    finally:
        env.close()
    return {"errors": errors, "successes": successes, "seconds": time.perf_counter() - start_time}


def summarize(row: str, label: str, trained_in: str, evaluation: dict, task: str, **details) -> dict:
    errors = np.asarray(evaluation["errors"], dtype=np.float64)
    successes, episodes = int(sum(evaluation["successes"])), len(errors)
    return {
        "row": row, "policy": label, "trained_in": trained_in, "task": task,
        "successes": successes, "episodes": episodes, "success_rate": successes / episodes,
        "success_interval": list(wilson_interval(successes, episodes)),
        "final_error_mean": float(errors.mean()), "final_error_std": float(errors.std()),
        "eval_seconds": evaluation["seconds"],
        **details,
        "final_errors": [float(error) for error in errors],
    }
