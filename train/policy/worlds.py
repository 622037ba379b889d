"""The two worlds PPO trains in, as SB3 VecEnvs: a world model's imagination and HWM-Sim-v0, posing one task alike.

Both speak SB3's protocol through `hwm_env.sb3` (same-step autoreset, the terminal
observation and `TimeLimit.truncated`, so PPO bootstraps the value where an episode is cut
short). Both start episodes at the task's start distribution (policy-training seed domain),
run `horizon` steps, see `TaskObservation`s and move the task's joints through a `Commander`.
They differ where a world model must differ from the world:

| | `ImaginedTask` | `SimTask` |
|---|---|---|
| starts | a fixed pool of real task starts (their settle frames are the context) | a fresh task episode per reset |
| dynamics | the world model, one batched call per step | N simulators |
| reward | the task reward of the probe's reading of the predicted frame | the task reward of the simulator's state |
| real frames | the pool's settle frames | every start's settle frames and every step |

Imagined episodes are short (DIAMOND, IRIS and Dreamer imagine ~15 steps from real
starts): a world model stays on the data manifold that long, and the bootstrapped value
carries the rest of the task.
"""
from __future__ import annotations

import numpy as np

from hwm_env.sb3 import BatchedVecEnv, HWMVecEnv
from train.policy.commander import Commander
from train.policy.observation import TaskObservation

SEED_CHUNK = 4096  # policy-training seeds drawn at a time


class EpisodeSeeds:
    """The policy-training domain's stream `seed`, one episode seed after another."""

    def __init__(self, seed: int, domain: str = "policy-training"):
        self.seed, self.domain, self.used = int(seed), domain, 0
        self.table = np.zeros(0, np.int64)

    def next(self) -> int:
        from hwm_env.seeds import episode_seeds

        if self.used == len(self.table):
            self.table = episode_seeds(self.domain, self.seed, self.used + SEED_CHUNK)[:, 0]
        self.used += 1
        return int(self.table[self.used - 1])


def draw_task_starts(task, count: int, seed: int, resolution: int, progress: bool = False):
    """`count` episodes of `task` from the policy-training stream `seed`; returns (episodes, real frames).

    Real frames: the `settle_steps` frames each start holds its pose for, the robot's own
    experience. Drawing a scene and, for aim, simulating the goal view are the task's set-up
    (a user gives the goal), not frames a robot lives through, so they do not count.
    """
    from tqdm.auto import tqdm

    from hwm_env.sim.env import HWMSimEnv

    sim = HWMSimEnv(resolution=resolution)
    seeds = EpisodeSeeds(seed)
    try:
        episodes = [task.sample_episode(sim, seeds.next())
                    for _ in tqdm(range(count), desc=f"{task.name} starts", disable=not progress, dynamic_ncols=True)]
    finally:
        sim.close()
    return episodes, count * task.settle_steps


class TaskPolicyWorld:
    """What both worlds add to a `BatchedVecEnv` (a mixin, first in the bases): commands and observations."""

    def _set_up(self, num_envs: int, observation: TaskObservation, commander: Commander) -> None:
        self.task_observation, self.commander = observation, commander
        self.commands = np.zeros((num_envs, 2 * commander.action_dim), np.float32)

    def _episodes(self, indices) -> list:
        raise NotImplementedError

    def _readings(self, indices) -> np.ndarray:
        """The probe's readings (n, K) of the current frames of `indices`."""
        raise NotImplementedError

    def _restart_commands(self, indices) -> None:
        self.commands[indices] = self.commander.start(np.stack([episode.hold_action
                                                                for episode in self._episodes(indices)]))

    def step_async(self, actions: np.ndarray) -> None:
        self.commands = self.commander.step(self.commands, actions)
        super().step_async(self.commander.action(self.commands))

    def _observe(self, indices):
        indices = list(indices)
        return self.task_observation.build(self._readings(indices), self._episodes(indices), self.commands[indices])


class ImaginedTask(TaskPolicyWorld, HWMVecEnv):
    """The task inside a world model: `HWMVecEnv(task=...)` episodes from a pool of real task starts."""

    def __init__(self, task, pool, observation: TaskObservation, commander: Commander, num_envs: int, horizon: int,
                 seed: int | None = None, **env_kwargs):
        super().__init__(num_envs=num_envs, max_episode_steps=horizon, obs_mode="rgb", task=task, **env_kwargs)
        try:
            imagination = self.vector_env.imagination
            if imagination.task_reward.probe.target_names != observation.probe.target_names:
                raise ValueError("the env's probe reads other targets than the observation's: give both the same probe")
            imagination.context_source.use_pool(pool)
            self._set_up(self.num_envs, observation, commander)
        except Exception:
            self.close()
            raise
        self.observation_space, self.action_space = observation.space, commander.space
        self.seed(seed)

    def _start_episodes(self, indices, seeds, options) -> None:
        super()._start_episodes(indices, seeds, options)
        self._restart_commands(indices)

    def _episodes(self, indices) -> list:
        return [self.vector_env.imagination.task_episodes[i] for i in indices]

    def _readings(self, indices) -> np.ndarray:
        return self.vector_env.imagination.probe_readings[list(indices)]  # read with the reward, every step


class SimTask(TaskPolicyWorld, BatchedVecEnv):
    """The task in N HWM-Sim-v0 simulators: fresh policy-training starts, the true task reward, real frames counted."""

    def __init__(self, task, observation: TaskObservation, commander: Commander, num_envs: int, horizon: int,
                 resolution: int, seed: int = 0):
        from hwm_env.sim.env import HWMSimEnv

        self.task, self.horizon = task, int(horizon)
        self.sims = [HWMSimEnv(resolution=resolution, task=task) for _ in range(num_envs)]
        self.real_frames = 0  # settle frames of every start, then every step (as `draw_task_starts` counts)
        self.seeds = EpisodeSeeds(seed)
        self._set_up(num_envs, observation, commander)
        super().__init__(num_envs, observation.space, commander.space)
        self.elapsed = np.zeros(num_envs, np.int64)
        self.frames = np.zeros((num_envs, resolution, resolution, 3), np.uint8)

    def _start_episodes(self, indices, seeds, options) -> None:
        if seeds and seeds[0] is not None:  # reset() after seed(): the stream starts over
            self.seeds = EpisodeSeeds(seeds[0])
        for i in indices:
            sim = self.sims[i].unwrapped
            sim.episode = None  # the task-free step while the episode is drawn
            sim.episode = self.task.sample_episode(sim, self.seeds.next())
            self.real_frames += self.task.settle_steps
            self.frames[i] = sim.episode.start_frame
            self.elapsed[i] = 0
        self._restart_commands(indices)

    def _advance(self, actions: np.ndarray):
        rewards = np.zeros(self.num_envs)
        for i, sim in enumerate(self.sims):
            self.frames[i], rewards[i], *_ = sim.step(actions[i])
        self.elapsed += 1
        self.real_frames += self.num_envs
        truncated = self.elapsed >= self.horizon
        return rewards, np.zeros_like(truncated), truncated

    def _info(self, i: int) -> dict:
        return {"step": int(self.elapsed[i])}

    def _episodes(self, indices) -> list:
        return [self.sims[i].unwrapped.episode for i in indices]

    def _readings(self, indices) -> np.ndarray:
        return self.task_observation.read(self.frames[list(indices)])

    def _sub_env(self, i: int):
        return self.sims[i]

    def close(self) -> None:
        for sim in self.sims:
            sim.close()
