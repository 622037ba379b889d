"""stable-baselines3's `VecEnv` protocol over a batch of episodes stepped together, and `HWMVecEnv`.

SB3 does not take Gymnasium vector envs, and `DummyVecEnv` would call the model once per
env. `BatchedVecEnv` speaks SB3's protocol once for every batched env here: `step` returns
`(obs, rewards, dones, infos)` with same-step autoreset, the final observation in
`infos[i]["terminal_observation"]` and `infos[i]["TimeLimit.truncated"]`. A subclass says
only how to start episodes, advance the batch and observe it. `HWMVecEnv` is the world
model's batch (ONE model call per step); the policy experiment's goal-reaching envs
(`train/policy/`) build on it and on this base.

    from stable_baselines3 import PPO
    from hwm_env.sb3 import HWMVecEnv
    venv = HWMVecEnv(num_envs=16, checkpoint="flow-default", obs_mode="latent", max_episode_steps=50)
    PPO("MlpPolicy", venv).learn(10_000)
"""
from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from hwm_env.vector_env import HWMVectorEnv

DEFAULT_MAX_EPISODE_STEPS = 200  # as the registered HWM-Flow-v0 / HWM-Masked-v0


def observation_of(observation, index):
    """The observation of env `index` (an int) or envs `index` (a list) out of a batched one (array or dict)."""
    if isinstance(observation, dict):
        return {key: value[index] for key, value in observation.items()}
    return observation[index]


class BatchedVecEnv(VecEnv):
    """SB3's `VecEnv` over `num_envs` episodes that a subclass starts, advances and observes as one batch.

    A subclass implements:
    | method | does |
    |---|---|
    | `_start_episodes(indices, seeds, options)` | starts new episodes there (one seed / options per index, or None) |
    | `_advance(actions)` | steps every env with `actions` (N, ...); returns rewards, terminated, truncated (N,) |
    | `_observe(indices)` | the batched observation of those envs |
    | `_sub_env(i)` | the object `get_attr` / `set_attr` / `env_method` reach for env i |
    and may override `_info(i)`, the info of env i after the step (default `{}`).
    """

    _actions: np.ndarray | None = None  # from step_async, for step_wait

    def _start_episodes(self, indices: list[int], seeds: Sequence[int | None], options: Sequence[dict | None]) -> None:
        raise NotImplementedError

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _observe(self, indices: list[int]):
        raise NotImplementedError

    def _sub_env(self, i: int):
        raise NotImplementedError

    def _info(self, i: int) -> dict[str, Any]:
        return {}

    # --- SB3's protocol ---------------------------------------------------------------------

    def reset(self):
        """Start every env with the seeds of `seed()` and the options of `set_options()` (then forgotten)."""
        everyone = list(range(self.num_envs))
        self._start_episodes(everyone, self._seeds, self._options)
        self.reset_infos = [self._info(i) for i in everyone]
        self._reset_seeds()
        self._reset_options()
        return self._observe(everyone)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        actions, self._actions = self._actions, None
        if actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        rewards, terminated, truncated = self._advance(actions)
        dones = np.asarray(terminated | truncated, dtype=bool)
        done = np.flatnonzero(dones).tolist()
        finished = {}
        if done:  # same-step autoreset: report the final observation, then start over at once
            terminal = self._observe(done)
            finished = {i: {"terminal_observation": observation_of(terminal, row),
                            "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
                        for row, i in enumerate(done)}
            self._start_episodes(done, [None] * len(done), [None] * len(done))
        infos = [{**self._info(i), **finished.get(i, {})} for i in range(self.num_envs)]
        return self._observe(list(range(self.num_envs))), np.asarray(rewards, np.float32), dones, infos

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self._sub_env(i), attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._indices(indices):
            setattr(self._sub_env(i), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self._sub_env(i), method_name)(*method_args, **method_kwargs) for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]


class HWMVecEnv(BatchedVecEnv):
    """`num_envs` imagined episodes for SB3; keyword arguments as `HWMVectorEnv` (and `HWMEnv`).

    Infos carry `step` (and `latent` in rgb mode) of the episode the returned observation belongs to.
    """

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS, **env_kwargs):
        env_kwargs.pop("autoreset_mode", None)
        # This class resets finished episodes itself (same step, with the options of `_start_episodes`).
        self.vector_env = HWMVectorEnv(
            num_envs=num_envs, max_episode_steps=max_episode_steps, autoreset_mode=AutoresetMode.DISABLED, **env_kwargs
        )
        super().__init__(
            num_envs=self.vector_env.num_envs,
            observation_space=self.vector_env.single_observation_space,
            action_space=self.vector_env.single_action_space,
        )

    def _start_episodes(self, indices, seeds, options) -> None:
        self.vector_env.reset_envs(indices, seeds, options)

    def _advance(self, actions):
        _, rewards, terminated, truncated, _ = self.vector_env.step(actions)  # ONE batched model call
        return rewards, terminated, truncated

    def _observe(self, indices):
        return observation_of(self.vector_env.current_observations(), indices)

    def _info(self, i: int) -> dict[str, Any]:
        return self.vector_env.imagination.info(i)

    def _sub_env(self, i: int):
        return self.vector_env  # every sub-env lives in the one vector env

    def close(self) -> None:
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return list(self.vector_env.imagination.frames_of(range(self.num_envs)))
