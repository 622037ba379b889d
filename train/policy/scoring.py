"""Scoring a policy in HWM-Sim-v0 on `aim` task episodes of the policy-scoring seed domain, and the row it makes."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from models.intervals import wilson_interval
from planners.benchmark import Protocol, score
from train.policy.commander import Commander
from train.policy.observation import GoalObservation, LatentFeatures, latent_distance


def evaluate_in_sim(act: Callable[[Any, np.random.Generator], np.ndarray], episodes, sim, features: LatentFeatures,
                    observation: GoalObservation, commander: Commander, protocol: Protocol, frame_stride: int = 1,
                    description: str = "evaluate", progress: bool = True) -> dict[str, Any]:
    """Run `act(observation, rng)` from each task episode's start for `protocol.steps` frames.

    The policy acts every `frame_stride` frames (one world-model step); `rng` is seeded by
    the episode's planner seed, the same for every row. Scored by the planning benchmark's
    `score`: the task's final error (rad for aim) and success predicate on the simulator's state.
    """
    from tqdm.auto import tqdm

    from hwm_env.tasks import make_task

    task = make_task(protocol.task)
    errors, successes, distances = [], [], []
    start_time = time.perf_counter()
    for episode in tqdm(episodes, desc=description, disable=not progress, dynamic_ncols=True):
        sim.set_state(episode.start)
        rng = np.random.default_rng(episode.planner_seed)
        commands = commander.start(episode.hold_action[None])  # (1, 2A): the pose held during the settle frames
        frame = episode.start_frame
        goal_features = features.encode(episode.goal_frame[None])
        goal = observation.view(goal_features, episode.goal_frame[None])
        current = features.encode(frame[None])
        for _ in range(math.ceil(protocol.steps / frame_stride)):
            policy_action = act(observation.build(observation.view(current, frame[None]), goal, commands), rng)
            commands = commander.step(commands, policy_action)
            for _ in range(frame_stride):
                frame, *_ = sim.step(commander.action(commands)[0])
            current = features.encode(frame[None])
        result = score(sim, task, episode)
        errors.append(result.error)
        successes.append(result.success)
        distances.append(float(latent_distance(current, goal_features)[0]))
    return {"errors": errors, "successes": successes, "final_distances": distances,
            "seconds": time.perf_counter() - start_time}


def ppo_actor(model) -> Callable:
    return lambda observation, rng: model.predict(observation, deterministic=True)[0]


def random_actor(action_dim: int) -> Callable:
    return lambda observation, rng: rng.uniform(-1.0, 1.0, (1, action_dim)).astype(np.float32)


def hold_actor(action_dim: int) -> Callable:
    return lambda observation, rng: np.zeros((1, action_dim), np.float32)


def summarize(row: str, label: str, trained_in: str, evaluation: dict, protocol: Protocol, **details) -> dict:
    errors = np.asarray(evaluation["errors"], dtype=np.float64)
    successes, episodes = int(sum(evaluation["successes"])), len(errors)
    return {
        "row": row, "policy": label, "trained_in": trained_in, "task": protocol.task,
        "successes": successes, "episodes": episodes, "success_rate": successes / episodes,
        "success_interval": list(wilson_interval(successes, episodes)),
        "final_error_mean": float(errors.mean()), "final_error_std": float(errors.std()),
        "final_latent_distance_mean": float(np.mean(evaluation["final_distances"])),
        "eval_seconds": evaluation["seconds"],
        **details,
        "final_errors": [float(error) for error in errors],
    }
