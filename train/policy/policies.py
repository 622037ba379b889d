"""Policies as functions of the batched observation: PPO, random, hold, a noisy mix, and aim's feed-forward controller.

Every policy here is `policy(observations (N, D), rng) -> u (N, C)` on `TaskObservation`s,
so one policy runs unchanged in the simulator and in a world model, which is what ranking
policies in imagination needs. The tasks' own scripted controllers read the simulator's
state and cannot run in imagination; they are a sim-only reference row.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def ppo_policy(model) -> Policy:
    """A stable-baselines3 model, deterministic (the mean action)."""
    return lambda observations, rng: model.predict(observations, deterministic=True)[0]


def random_policy(size: int) -> Policy:
    return lambda observations, rng: rng.uniform(-1.0, 1.0, (len(observations), size)).astype(np.float32)


def hold_policy(size: int) -> Policy:
    """u = 0: hold the start pose."""
    return lambda observations, rng: np.zeros((len(observations), size), np.float32)


def noisy_policy(policy: Policy, size: int, epsilon: float) -> Policy:
    """Each step, each env acts uniformly at random with probability `epsilon`, else as `policy`."""
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")

    def act(observations, rng):
        actions = np.asarray(policy(observations, rng), np.float32).copy()
        explore = rng.random(len(observations)) < epsilon
        actions[explore] = rng.uniform(-1.0, 1.0, (int(explore.sum()), size))
        return actions

    return act


def aim_feed_forward_policy(observation, commander, action_from_state: Callable[[np.ndarray], np.ndarray]) -> Policy:
    """aim without feedback: command the goal view angles (the observation's task part) from the first step.

    `action_from_state` is HWM-Sim-v0's map from a 25-d state to the action that commands it
    (joint normalisation); only the view joints' entries are used.
    """
    from hwm_env.sim import layout
    from hwm_env.sim.goals import VIEW_JOINTS
    from train.policy.observation import NUM_OBJECTS

    if observation.task.name != "aim":
        raise ValueError(f"the feed-forward controller is aim's; the observation is '{observation.task.name}'s")
    if list(commander.dims) != list(VIEW_JOINTS):
        raise ValueError(f"aim's controller commands the view joints {list(VIEW_JOINTS)}, the commander moves "
                         f"{list(commander.dims)}")
    view = list(VIEW_JOINTS)
    size = len(view)

    def act(observations, rng):
        goals = observation.part(observations, "task")[:, NUM_OBJECTS:]  # the goal view angles (rad)
        commands = observation.part(observations, "commands")  # current, then start command (controlled)
        targets = np.zeros((len(observations), size), np.float32)
        for row, angles in enumerate(goals):
            state = np.zeros(layout.STATE_DIM)
            state[view] = angles
            targets[row] = action_from_state(state)[view]
        return np.clip((targets - commands[:, size:]) / commander.control.max_offset, -1.0, 1.0)

    return act
