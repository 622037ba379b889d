"""`HWMVecEnv`: the batched world-model env as a stable-baselines3 `VecEnv`.

SB3 does not take Gymnasium vector envs, and `DummyVecEnv` would call the model once per
env. This adapter keeps ONE batched model call per step and speaks SB3's protocol:
`step` returns `(obs, rewards, dones, infos)` with same-step autoreset, the final
observation in `infos[i]["terminal_observation"]` and `infos[i]["TimeLimit.truncated"]`.

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


class HWMVecEnv(VecEnv):
    """`num_envs` imagined episodes for SB3; keyword arguments as `HWMVectorEnv` (and `HWMEnv`)."""

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS, **env_kwargs):
        env_kwargs.pop("autoreset_mode", None)
        self.vector_env = HWMVectorEnv(
            num_envs=num_envs, max_episode_steps=max_episode_steps, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs
        )
        super().__init__(
            num_envs=self.vector_env.num_envs,
            observation_space=self.vector_env.single_observation_space,
            action_space=self.vector_env.single_action_space,
        )
        self._actions: np.ndarray | None = None

    def reset(self):
        """Reset every env with the seeds of `seed()` and the options of `set_options()` (then forgotten)."""
        indices = list(range(self.num_envs))
        self.vector_env.reset_envs(indices, self._seeds, self._options)
        self.reset_infos = [self.vector_env.imagination.info(i) for i in indices]
        self._reset_seeds()
        self._reset_options()
        return self.vector_env.current_observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions, self._actions = self._actions, None
        observations, rewards, terminations, truncations, vector_info = self.vector_env.step(actions)
        dones = terminations | truncations
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            info = {"step": int(vector_info["step"][i])}
            if "latent" in vector_info:
                info["latent"] = vector_info["latent"][i]
            if dones[i]:
                info["terminal_observation"] = vector_info["final_obs"][i]
                info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            infos.append(info)
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return list(self.vector_env.imagination.frames_of(range(self.num_envs)))

    # SB3 reaches attributes and methods of the sub-envs through these; all sub-envs share one
    # vector env here, so they answer from it.
    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        method = getattr(self.vector_env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]
