"""Scoring a policy in HWM-Sim-v0 on the planning benchmark's goal set, and the row it makes."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from hwm_env.sim.goals import VIEW_JOINT_NAMES, success_summary
from planners.benchmark import Protocol, score
from train.policy.commander import Commander
from train.policy.observation import GoalObservation, LatentFeatures, latent_distance


def evaluate_in_sim(act: Callable[[Any, np.random.Generator], np.ndarray], episodes, sim, features: LatentFeatures,
                    observation: GoalObservation, commander: Commander, protocol: Protocol, frame_stride: int = 1,
                    description: str = "evaluate", progress: bool = True) -> dict[str, Any]:
    """Run `act(observation, rng)` from each benchmark episode's start for `protocol.steps` frames.

    The policy acts every `frame_stride` frames (one world-model step); `rng` is seeded by
    the episode's planner seed, the same for every row. Scored by the benchmark's own
    `score`: the final view error (success measure) and pose error, in rad.
    """
    from tqdm.auto import tqdm

    view_errors, pose_errors, distances = [], [], []
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
        result = score(sim, episode, [])
        view_errors.append(result.view_error)
        pose_errors.append(result.pose_error)
        distances.append(float(latent_distance(current, goal_features)[0]))
    return {"view_errors": view_errors, "pose_errors": pose_errors, "final_distances": distances,
            "seconds": time.perf_counter() - start_time}


def ppo_actor(model) -> Callable:
    return lambda observation, rng: model.predict(observation, deterministic=True)[0]


def random_actor(action_dim: int) -> Callable:
    return lambda observation, rng: rng.uniform(-1.0, 1.0, (1, action_dim)).astype(np.float32)


def hold_actor(action_dim: int) -> Callable:
    return lambda observation, rng: np.zeros((1, action_dim), np.float32)


def summarize(row: str, label: str, trained_in: str, evaluation: dict, protocol: Protocol, **details) -> dict:
    return {
        "row": row, "policy": label, "trained_in": trained_in,
        **success_summary(evaluation["view_errors"], protocol.success_threshold),
        "final_pose_error_mean": float(np.mean(evaluation["pose_errors"])),
        "final_latent_distance_mean": float(np.mean(evaluation["final_distances"])),
        "error_joints": list(VIEW_JOINT_NAMES),
        "eval_seconds": evaluation["seconds"],
        **details,
        "final_errors": [float(error) for error in evaluation["view_errors"]],
    }
