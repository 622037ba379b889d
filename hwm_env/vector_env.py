"""`HWMVectorEnv`: N imagined episodes stepped by ONE batched world-model call.

The registered `vector_entry_point` of `HWM-Flow-v0` / `HWM-Masked-v0`:

    envs = gym.make_vec("HWM-Flow-v0", num_envs=64, vectorization_mode="vector_entry_point")

A `SyncVectorEnv` would call the model N times per step; this one calls it once. Sub-env
i owns its own `np_random` (seeded `seed + i` by `reset(seed=seed)`, as Gymnasium's
vector envs do), so its trajectory equals a single `HWMEnv` reset with `seed + i` and
fed the same actions. Autoreset follows `metadata["autoreset_mode"]` (next-step by
default; same-step and disabled on request); `max_episode_steps` (from the env spec)
truncates.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hwm_env.world_model_env import OBS_MODES, ImaginationBatch, WorldModelRunner


class HWMVectorEnv(VectorEnv):
    """`num_envs` copies of `HWMEnv` (same arguments; see its docstring) in one batch.

    | | |
    |---|---|
    | `single_action_space` | `Box(-1, 1, (A,), float32)`; `action_space` batches it to (N, A) |
    | `single_observation_space` | as `HWMEnv` for `obs_mode`; batched to (N, ...) |
    | rewards / terminations / truncations | (N,) float64 / bool / bool arrays |
    | infos | `step` (N,), `latent` (N, ...) in rgb mode, `is_success` / `task_error` (N,) with a `task`; same-step autoreset adds `final_obs` / `final_info` |
    | `autoreset_mode` | `"NextStep"` (default), `"SameStep"` or `"Disabled"` (then `reset(options={"reset_mask": m})`) |
    | `precision`, `compile` | as `HWMEnv`; "auto" precision resolves for `num_envs` rows: bf16 from 32 envs on a bf16 CPU |

    Batched steps equal single-env steps when both run in the same precision: "auto" may
    pick bf16 here and fp32 for the single env; pass `precision="fp32"` to both to compare.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: str | os.PathLike = "flow-default",
        obs_mode: str = "rgb",
        context_source: str | os.PathLike = "sim",
        reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None,
        render_mode: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        temperature: float | None = None,
        device: str = "auto",
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task=None,
        probe: str | os.PathLike = "probe-default",
        precision: str = "auto",
        compile: bool | str = False,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}")
        try:
            autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError as error:
            raise ValueError(
                f"autoreset_mode must be one of {[mode.value for mode in AutoresetMode]}, got {autoreset_mode!r}"
            ) from error
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode is not None and render_mode != "rgb_array":
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.num_envs = int(num_envs)
        self.runner = WorldModelRunner(checkpoint, device, steps=steps, cfg_scale=cfg_scale, temperature=temperature,
                                       precision=precision, compile=compile, num_envs=self.num_envs)
        self.imagination = ImaginationBatch(self.runner, self.num_envs, obs_mode, context_source, reward_fn, task, probe)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.autoreset_mode = autoreset_mode
        self.metadata = {**type(self).metadata, "render_fps": self.runner.fps, "autoreset_mode": autoreset_mode}
        self.single_action_space = self.runner.action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = self.runner.observation_space(obs_mode)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.env_rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._pending_reset = np.zeros(self.num_envs, dtype=bool)  # next-step autoreset

    # --- reset ------------------------------------------------------------------------------

    def _seeds(self, seed) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed must be None, an int, or a list of {self.num_envs} seeds; got {len(seeds)} seeds")
        return seeds

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset all envs (or those in `options["reset_mask"]`); `seed` int seeds env i with seed + i."""
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        seeds = self._seeds(seed)
        if mask is None:
            indices = list(range(self.num_envs))
        else:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)")
            indices = np.flatnonzero(mask).tolist()
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        self.reset_envs(indices, [seeds[i] for i in indices], [options] * len(indices))
        observations = self.current_observations()
        infos: dict[str, Any] = {}
        for i in indices:
            infos = self._add_info(infos, self.imagination.info(i), i)
        return observations, infos

    def reset_envs(self, indices: Sequence[int], seeds: Sequence[int | None], options: Sequence[dict | None]) -> None:
        """Reset some envs, each with its own seed (None keeps its generator) and options."""
        rngs = []
        for i, env_seed in zip(indices, seeds):
            if env_seed is not None or self.env_rngs[i] is None:
                rngs.append(seeding.np_random(None if env_seed is None else int(env_seed))[0])
            else:
                rngs.append(self.env_rngs[i])
        self.imagination.reset(indices, rngs, options)  # validates first; raises before changing anything
        for i, rng in zip(indices, rngs):
            self.env_rngs[i] = rng
        self._pending_reset[list(indices)] = False

    # --- step -------------------------------------------------------------------------------

    def step(self, actions):
        imagination = self.imagination
        actions = self.runner.check_actions(actions, self.num_envs)
        not_reset = np.flatnonzero(~imagination.is_reset).tolist()
        if not_reset:
            raise ResetNeeded(f"call reset() before step() (envs {not_reset} were never reset)")
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            reset_indices = np.flatnonzero(self._pending_reset).tolist()
        else:
            reset_indices = []
        resetting = set(reset_indices)
        step_indices = [i for i in range(self.num_envs) if i not in resetting]

        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        if reset_indices:  # next-step autoreset: these envs ignore their action and start over
            self.reset_envs(reset_indices, [None] * len(reset_indices), [None] * len(reset_indices))
        step_rngs = [self.env_rngs[i] for i in step_indices]
        rewards[step_indices] = imagination.step(step_indices, actions[step_indices], step_rngs)  # ONE model call
        if self.max_episode_steps is not None:
            truncations[step_indices] = imagination.elapsed_steps[step_indices] >= self.max_episode_steps
        truncations[step_indices] |= imagination.task_truncated(step_indices)
        done = np.flatnonzero(terminations | truncations).tolist()

        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done:
            for i in done:
                infos = self._add_info(
                    infos, {"final_obs": imagination.observation(i), "final_info": imagination.info(i)}, i
                )
            self.reset_envs(done, [None] * len(done), [None] * len(done))
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._pending_reset[done] = True
        for i in range(self.num_envs):
            infos = self._add_info(infos, imagination.info(i), i)
        return self.current_observations(), rewards, terminations, truncations, infos

    # --- observations -----------------------------------------------------------------------

    def current_observations(self):
        imagination = self.imagination
        everyone = range(self.num_envs)
        if self.obs_mode == "rgb":
            return imagination.frames_of(everyone)
        latents = imagination.past_latents[:, -1].cpu().numpy().copy()  # (N, ...)
        if self.obs_mode == "latent":
            return latents
        return {"rgb": imagination.frames_of(everyone), "latent": latents}

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.imagination.frames_of(range(self.num_envs)))

    def close_extras(self, **kwargs: Any) -> None:
        self.imagination.close()
