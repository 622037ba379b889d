"""A task inside a world-model env: starts from the task's start distribution, reward read by the state probe.

`gym.make("HWM-Flow-v0", task="reach")` must pose the same problem as
`gym.make("HWM-Sim-v0", task="reach")`, with only the dynamics imagined:
- **Starts**: each reset draws a task episode in the reference simulator (the task's seeded
  start distribution) and uses its settle frames as the model's context, so an imagined
  episode begins where a simulated one would.
- **Reward**: the task's reward is defined on state, which a predicted frame only shows. The
  state probe (`models/probe.py`, shipped `probe-default`) reads the state and the objects'
  positions off each predicted frame; the task's reward, error and success predicate are
  evaluated on that readout. `info["is_success"]` and `info["task_error"]` are therefore the
  world model's and the probe's belief, not the truth (the simulator env has the truth).
"""
from __future__ import annotations

import collections
import os
from typing import Any

import numpy as np

from hwm_env.context import Context, strided_context


class TaskContextSource:
    """Contexts at task starts: the last `num_past` (strided) settle frames of a task episode.

    By default every sample draws a fresh episode in the reference simulator. `use_pool`
    restricts the starts to given episodes (drawn uniformly: imagined training from a fixed
    set of real starts, whose frames are all the real data it sees), and `queue` makes the
    next samples the given episodes in order (scoring a policy on a fixed episode list).
    """

    def __init__(self, task, num_past: int, image_size: tuple[int, int], action_dim: int, frame_stride: int = 1):
        height, width = image_size
        if height != width:
            raise ValueError(f"the reference simulator renders square frames; the tokenizer expects {height}x{width}")
        if action_dim != 25:
            raise ValueError(f"task '{task.name}' runs in HWM-Sim-v0 (25-d actions); the model takes {action_dim}-d")
        self.task = task
        self.num_past, self.frame_stride, self.resolution = num_past, frame_stride, height
        self._sim = None
        self.pool: list = []
        self.pending: collections.deque = collections.deque()

    def use_pool(self, episodes) -> None:
        """Draw every later start uniformly from `episodes` (TaskEpisodes of this task); empty: fresh draws."""
        self.pool = [self._check(episode) for episode in episodes]

    def queue(self, episodes) -> None:
        """The next samples are `episodes`, in order (before the pool or fresh draws)."""
        self.pending.extend(self._check(episode) for episode in episodes)

    def _check(self, episode):
        if getattr(episode, "task", None) != self.task.name:
            raise ValueError(f"a '{self.task.name}' env needs '{self.task.name}' task episodes, "
                             f"got {getattr(episode, 'task', type(episode).__name__)!r}")
        return episode

    @property
    def sim(self):
        if self._sim is None:
            from hwm_env.sim.env import HWMSimEnv

            self._sim = HWMSimEnv(resolution=self.resolution)
        return self._sim

    def sample(self, rng: np.random.Generator) -> Context:
        from hwm_env.context import SEED_LIMIT

        if self.pending:
            episode = self.pending.popleft()
        elif self.pool:
            episode = self.pool[int(rng.integers(len(self.pool)))]
        else:
            episode = self.task.sample_episode(self.sim, int(rng.integers(SEED_LIMIT)))
        frames, actions = strided_context(episode.context_frames, episode.context_actions, self.num_past,
                                          self.frame_stride)
        return Context(frames=frames, actions=actions, task_episode=episode)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None


class ProbeTaskReward:
    """The task's reward, error and success of predicted frames, read through a state probe (one batched call)."""

    def __init__(self, task, probe: str | os.PathLike = "probe-default", device="cpu"):
        from models.probe import load_probe
        from planners.task_cost import check_probe_for_task

        self.task = task
        self.probe_source = str(probe)
        self.probe = load_probe(probe, device=device)
        check_probe_for_task(self.probe, task, self.probe_source)  # names the targets a probe lacks

    def check_image_size(self, image_size: tuple[int, int]) -> None:
        if tuple(self.probe.image_size) != tuple(image_size):
            raise ValueError(f"{self.probe_source}: the probe reads {self.probe.image_size[0]}x"
                             f"{self.probe.image_size[1]} frames, the world model makes {image_size[0]}x"
                             f"{image_size[1]}; train a probe at that size (hwm train probe)")

    def __call__(self, frames: np.ndarray, episodes: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """frames (n, H, W, 3) uint8, one task episode each -> rewards, errors (n,) float, successes (n,) bool."""
        return self.score(self.probe.predict(frames), episodes)

    def score(self, values: np.ndarray, episodes: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same from the probe's readings `values` (n, K) of the frames (`target_names` order)."""
        from hwm_env.tasks import Readout

        rewards, errors, successes = (np.zeros(len(values)), np.zeros(len(values)), np.zeros(len(values), bool))
        for row, episode in enumerate(episodes):
            readout = Readout.from_targets(values[row], list(self.probe.target_names), self.task.name)
            rewards[row] = float(self.task.reward(readout, episode))
            errors[row] = float(self.task.error(readout, episode))
            successes[row] = bool(self.task.is_success(readout, episode))
        return rewards, errors, successes
