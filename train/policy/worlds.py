"""The two worlds PPO trains in, as SB3 VecEnvs: a world model's imagination and HWM-Sim-v0.

Both speak SB3's protocol through `hwm_env.sb3` (same-step autoreset, terminal
observation, truncation flags live there); `GoalReaching` adds what the task needs in
either world: the goals, the command state, the goal-conditioned observation and the final
latent distance of each finished episode.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hwm_env.sb3 import BatchedVecEnv, HWMVecEnv
from train.policy.commander import Commander
from train.policy.data_goals import DataGoals
from train.policy.observation import GoalObservation, LatentFeatures, latent_distance
from train.policy.settings import PolicyExperiment, TaskSettings

SEED_LIMIT = 2**31 - 1


class GoalReaching:
    """The goal-reaching task on top of a `BatchedVecEnv` (a mixin; listed first in the bases).

    Holds per env the goal image and its features and the `Commander` state (current and
    start command); turns policy outputs into commanded actions before the world steps, and
    marks each finished episode's info with its `final_distance` (the reward is minus it).
    """

    def _set_up_task(self, num_envs: int, features: LatentFeatures, policy: str, task: TaskSettings,
                     image_size: Sequence[int], action_dim: int, action_low, action_high) -> None:
        self.features, self.task = features, task
        self.observation = GoalObservation(policy, features.dim, image_size, action_low, action_high)
        self.commander = Commander(action_dim, task, action_low, action_high)
        height, width = image_size
        self.commands = np.zeros((num_envs, 2 * action_dim), np.float32)
        self.goal_features = np.zeros((num_envs, features.dim), np.float32)
        self.goal_frames = np.zeros((num_envs, height, width, 3), np.uint8)

    def _goal_observation(self, indices: Sequence[int], current):
        """`current`: what the policy sees of the current frames of `indices` (features or pixels)."""
        goal = self.observation.view(self.goal_features[indices], self.goal_frames[indices])
        return self.observation.build(current, goal, self.commands[indices])

    def step_async(self, actions: np.ndarray) -> None:
        self.commands = self.commander.step(self.commands, actions)
        super().step_async(self.commander.action(self.commands))

    def step_wait(self):
        observations, rewards, dones, infos = super().step_wait()
        for i in np.flatnonzero(dones):
            infos[i]["final_distance"] = -float(rewards[i])
        return observations, rewards, dones, infos


class ImaginedGoalReaching(GoalReaching, HWMVecEnv):
    """Goal reaching inside a world model: `HWMVecEnv` episodes with data-set starts and goals.

    Every step is imagined for all envs in one batched model call; the reward is the env's
    goal reward (minus the latent distance of the predicted frame to the goal image). Every
    episode, the first and each one after a truncation, starts from a new context and goal
    drawn by `DataGoals`.
    """

    def __init__(self, data: str, policy: str, task: TaskSettings, seed: int | None = None, num_envs: int = 1,
                 **env_kwargs):
        super().__init__(num_envs=num_envs, max_episode_steps=task.horizon,
                         obs_mode="latent" if policy == "mlp" else "rgb", context_source=data, **env_kwargs)
        try:
            self.runner = runner = self.vector_env.runner
            self.goals = DataGoals(data, runner.num_past, runner.image_size, runner.action_dim, task,
                                   runner.frame_stride)
            self._set_up_task(self.num_envs, LatentFeatures(runner.tokenizer), policy, task, runner.image_size,
                              runner.action_dim, runner.action_low, runner.action_high)
        except Exception:
            self.close()
            raise
        self.observation_space, self.action_space = self.observation.space, self.commander.space
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        return super().seed(seed)

    def _start_episodes(self, indices, seeds, options) -> None:
        starts = [self.goals.sample(self.rng) for _ in indices]  # reset options: context, its actions, goal image
        super()._start_episodes(indices, seeds, starts)  # the env encodes the goals for its reward
        self.goal_frames[indices] = np.stack([start["goal"] for start in starts])
        self.goal_features[indices] = self.features(self.vector_env.imagination.goal_latents[indices])
        self.commands[indices] = self.commander.start(np.stack([start["actions"][-1] for start in starts]))

    def _observe(self, indices):
        raw = super()._observe(indices)  # latents (mlp) or frames (cnn)
        return self._goal_observation(indices, self.features(raw) if self.observation.policy == "mlp" else raw)


def make_imagination_env(experiment: PolicyExperiment, policy: str, seed: int) -> ImaginedGoalReaching:
    """Goal reaching in the experiment's world model, with starts and goals from its data set."""
    return ImaginedGoalReaching(
        experiment.data, policy, experiment.task, seed=seed, num_envs=experiment.num_envs,
        checkpoint=experiment.checkpoint_name, device=experiment.device, steps=experiment.sampling_steps,
    )


class SimGoalReaching(GoalReaching, BatchedVecEnv):
    """The same task in HWM-Sim-v0, for the sim-trained baselines: N simulators, one batched encode per step.

    A start follows the data's distribution: reset with a fresh seed, the exploration policy
    that made the data drives P frames (the context the imagination starts from), and the
    goal is the frame it reaches k steps later (simulated ahead from a snapshot, then
    restored). Every simulator step counts in `real_frames`, the look-ahead included: a
    robot would have to live through it.
    """

    def __init__(self, num_envs: int, tokenizer, policy: str, task: TaskSettings, num_past: int,
                 frame_stride: int = 1, seed: int | None = None):
        from hwm_env.sim.env import HWMSimEnv

        height, width = tokenizer.image_size
        if height != width:
            raise ValueError(f"HWM-Sim-v0 renders square frames; the tokenizer expects {height}x{width}")
        self.sims = [HWMSimEnv(resolution=height) for _ in range(num_envs)]
        sim_space = self.sims[0].action_space
        self._set_up_task(num_envs, LatentFeatures(tokenizer), policy, task, (height, width), sim_space.shape[0],
                          sim_space.low, sim_space.high)
        super().__init__(num_envs, self.observation.space, self.commander.space)
        self.num_past, self.frame_stride = int(num_past), int(frame_stride)
        self._seed_envs(seed)
        self.real_frames = 0
        self.elapsed = np.zeros(num_envs, np.int64)
        self.frames = np.zeros((num_envs, height, width, 3), np.uint8)
        self.current_features = np.zeros((num_envs, self.features.dim), np.float32)

    def _seed_envs(self, seed: int | None) -> None:
        self.rngs = [np.random.default_rng(sequence) for sequence in np.random.SeedSequence(seed).spawn(self.num_envs)]

    def _start_episodes(self, indices, seeds, options) -> None:
        from hwm_env.context import drive_sim, exploration_policy

        if seeds and seeds[0] is not None:  # reset() after seed(): the simulators' seeds start over
            self._seed_envs(seeds[0])
        for i in indices:
            sim, rng = self.sims[i], self.rngs[i]
            episode_seed = int(rng.integers(SEED_LIMIT))
            sim.reset(seed=episode_seed)
            act = exploration_policy(sim, episode_seed)
            context = drive_sim(sim, act, self.num_past, self.frame_stride)
            k = int(rng.integers(self.task.goal_min_steps, self.task.goal_max_steps + 1))
            start = sim.get_state()
            for _ in range(k * self.frame_stride - 1):
                sim.advance(act())
            self.goal_frames[i] = sim.step(act())[0]
            sim.set_state(start)
            self.real_frames += (self.num_past + k) * self.frame_stride
            self.frames[i] = context.frames[-1]
            self.commands[i] = self.commander.start(context.actions[-1:])[0]
            self.elapsed[i] = 0
        encoded = self.features.encode(np.concatenate([self.frames[indices], self.goal_frames[indices]]))
        self.current_features[indices], self.goal_features[indices] = encoded[: len(indices)], encoded[len(indices):]

    def _advance(self, actions: np.ndarray):
        for i, sim in enumerate(self.sims):
            for _ in range(self.frame_stride):
                frame, *_ = sim.step(actions[i])
            self.frames[i] = frame
        self.real_frames += self.num_envs * self.frame_stride
        self.current_features = self.features.encode(self.frames)  # one batched encode
        self.elapsed += 1
        truncated = self.elapsed >= self.task.horizon
        return -latent_distance(self.current_features, self.goal_features), np.zeros_like(truncated), truncated

    def _observe(self, indices):
        return self._goal_observation(indices, self.observation.view(self.current_features[indices],
                                                                     self.frames[indices]))

    def _sub_env(self, i: int):
        return self.sims[i]

    def close(self) -> None:
        for sim in self.sims:
            sim.close()
