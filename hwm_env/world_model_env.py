"""`HWM-Flow-v0` / `HWM-Masked-v0`: a trained world model served as a Gymnasium env.

One `step(action)` is one latent frame: the model predicts the next latent from the last
P latents and the actions into them plus `action`, the tokenizer decodes it (skipped in
`latent` mode), and the context window slides by one. With the built-in per-frame
tokenizers that is one frame at the training data's frame rate.

The engine (`WorldModelRunner` + `ImaginationBatch`) holds N imagined episodes and
steps them with ONE batched model call; `HWMEnv` is the N = 1 case, `HWMVectorEnv` and
the SB3 `HWMVecEnv` the N > 1 cases, so all three produce the same numbers for the same
seeds. Every sample is drawn from a `torch.Generator` seeded from the env's own
`np_random` (one seed per env per step), which is what makes the envs deterministic
under `reset(seed=...)` and batched steps equal to single-env steps.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from hwm_env.context import Context, check_context, make_context_source
from hwm_env.threads import call_threads

OBS_MODES = ("rgb", "latent", "dict")
RESET_OPTION_KEYS = ("frames", "actions", "goal")
TORCH_SEED_LIMIT = 2**63 - 1
DEFAULT_FPS = 15  # HWM-Sim-v0's control rate, for checkpoints that do not record their data's fps


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def tokenizer_latent_bounds(tokenizer) -> tuple[float, float]:
    """Value range of a continuous tokenizer's latents (the built-in one squashes with tanh)."""
    bounds = getattr(tokenizer, "latent_bounds", None)
    if bounds is not None:
        return float(bounds[0]), float(bounds[1])
    if type(tokenizer).__name__ == "ConvTokenizer":
        return -1.0, 1.0
    return -np.inf, np.inf


def check_sampler(steps, cfg_scale, temperature) -> dict:
    """The env's sampler options, checked when the env is made rather than at its first step."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be None (the checkpoint's default) or an integer >= 1, got {steps!r}")
    for name, value in (("cfg_scale", cfg_scale), ("temperature", temperature)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < np.inf
        ):
            raise ValueError(f"{name} must be None (the checkpoint's default) or a finite number >= 0, got {value!r}")
    return {"steps": steps, "cfg_scale": cfg_scale, "temperature": temperature}


class WorldModelRunner:
    """A world-model checkpoint with its tokenizer: encode, predict the next latent, decode.

    All tensors stay on `device`; numpy goes in and out at the edges. `precision` ("auto",
    "fp32", "bf16") is resolved once for batches of `num_envs` (`models.precision`) and
    covers prediction and decoding (the context encoding stays in the device's default);
    `compile` (False, True, "auto") compiles the model's hot methods, and the decoder's for
    `num_envs` > 1 (`models.compiled`; "auto" compiles once the env has run long enough to repay it).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike = "flow-default",
        device: str = "auto",
        steps: int | None = None,
        cfg_scale: float | None = None,
        temperature: float | None = None,
        precision: str = "auto",
        compile: bool | str = False,
        num_envs: int = 1,
    ):
        import torch

        from models.compiled import check_compile
        from models.precision import check_precision

        from models.checkpoint import frame_stride, read_config, resolve_checkpoint
        from models.loading import load_world_model_and_tokenizer, nested_tokenizer_dir

        self.path = resolve_checkpoint(checkpoint)
        self.config = read_config(self.path)
        self.family = self.config.get("family")
        tokenizer_dir = nested_tokenizer_dir(self.path)
        if self.family == "flow" and temperature is not None:
            raise ValueError("temperature applies to Masked-HWM checkpoints only; this is a 'flow' checkpoint")
        if self.family == "masked" and cfg_scale is not None:
            raise ValueError("cfg_scale applies to Flow-HWM checkpoints only; this is a 'masked' checkpoint")
        self.device = torch.device(resolve_device(device))
        _, self.model, self.tokenizer = load_world_model_and_tokenizer(self.path, device=self.device)
        if self.tokenizer.temporal_compression != 1:
            raise ValueError(
                f"{tokenizer_dir}: temporal_compression {self.tokenizer.temporal_compression}; the envs step one "
                "latent frame = one video frame and need a per-frame tokenizer (temporal_compression 1)"
            )
        actions_per_latent = getattr(self.model.config, "actions_per_latent", 1)
        past_action_tokens = getattr(self.model.config, "past_action_tokens", None)
        if actions_per_latent != 1 or past_action_tokens not in (None, self.model.num_past):
            raise ValueError(
                f"{self.path}: the model takes {actions_per_latent} action tokens per latent frame; the envs "
                "feed one action per latent frame (train with action_pooling='mean')"
            )
        self.sampler_kwargs = check_sampler(steps, cfg_scale, temperature)
        check_precision(precision)
        check_compile(compile)
        # A Masked-HWM whose checkpoint reads out each token's expected FSQ digits shows those, decoded;
        # its window slides on the nearest tokens (as in `MaskedHWM.rollout`).
        self.mean_readout = getattr(self.model.config, "readout", "tokens") == "mean"
        if self.mean_readout:
            self.sampler_kwargs["readout"] = "mean"
        # Whether `model.predict(generator=[g_0, ..., g_N-1])` draws row i's noise from g_i only;
        # found out on the first batched call (then batched steps equal single-env steps).
        self.per_sample_generators = True
        self.num_past = int(self.model.num_past)
        self.action_dim = int(self.model.action_dim)
        self.kind = self.tokenizer.kind
        self.image_size = tuple(int(side) for side in self.tokenizer.image_size)
        grid = tuple(self.tokenizer.latent_grid)
        if self.kind == "continuous":
            self.latent_shape = (int(self.tokenizer.latent_channels), *grid)
            self.latent_bounds = tokenizer_latent_bounds(self.tokenizer)
        else:
            self.latent_shape = grid
            self.latent_bounds = (0, int(self.tokenizer.vocab_size) - 1)
        self._check_model_matches_tokenizer(tokenizer_dir)
        # One latent frame spans `frame_stride` data frames (the action into it is their mean action).
        self.frame_stride = frame_stride(self.config, f"{self.path}/config.json")
        self.fps = (self.config.get("fps") or DEFAULT_FPS) / self.frame_stride
        self.action_names = self.config.get("action_names")
        self.action_low, self.action_high = self._action_bounds()
        self._set_speed(precision, compile, num_envs)

    def _set_speed(self, precision: str, compile: bool | str, num_envs: int) -> None:
        """Resolve the precision for this batch size and install the compiled methods."""
        from models.compiled import compile_world_model
        from models.precision import resolve_precision

        self.precision = resolve_precision(precision, self.device, batch_size=num_envs)
        # The decoder is compiled for batches only (built-in tokenizers): a single env's step measured 0.94x
        # with it compiled in fp32 and 1.0x in bf16 (benchmarks/step_breakdown.py).
        tokenizer = self.tokenizer if hasattr(self.tokenizer, "decoder") and num_envs > 1 else None
        self.compiled_methods = compile_world_model(self.model, tokenizer, compile)

    @property
    def compile_report(self) -> dict:
        """Whether compiled code runs, its first compilation's seconds, and what fell back to eager."""
        from models.compiled import compile_report

        return compile_report(self.compiled_methods)

    def _check_model_matches_tokenizer(self, tokenizer_dir) -> None:
        """The model's latent layout must be what the nested tokenizer produces."""
        needed = {"flow": "continuous", "masked": "discrete"}.get(self.family)
        if needed is not None and self.kind != needed:
            raise ValueError(
                f"{self.path}: a '{self.family}' model needs a {needed} tokenizer, but {tokenizer_dir} is {self.kind}"
            )
        config = self.model.config
        if self.kind == "continuous":
            names = ("latent_channels", "latent_height", "latent_width")
            expected = tuple(getattr(config, name, None) for name in names)
            produced, what = self.latent_shape, "latents (C, h, w)"
        else:
            expected = (getattr(config, "vocab_size", None), *getattr(config, "token_grid", (None, None)))
            produced, what = (int(self.tokenizer.vocab_size), *self.latent_shape), "tokens (vocab, h, w)"
        if None not in expected and tuple(expected) != tuple(produced):
            raise ValueError(
                f"{self.path}: the model expects {what} {tuple(expected)} but its tokenizer {tokenizer_dir} "
                f"produces {tuple(produced)}"
            )

    def _action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """[-1, 1] per dim (the simulator's units), or the checkpoint's `action_low`/`action_high`."""
        bounds = []
        for key, default in (("action_low", -1.0), ("action_high", 1.0)):
            value = np.asarray(self.config.get(key, default), dtype=np.float32)
            value = np.broadcast_to(value, (self.action_dim,)).copy() if value.ndim == 0 else value
            if value.shape != (self.action_dim,) or not np.isfinite(value).all():
                raise ValueError(
                    f"{self.path}/config.json: '{key}' must be a finite number or a list of {self.action_dim} numbers"
                )
            bounds.append(value)
        if not (bounds[0] < bounds[1]).all():
            raise ValueError(f"{self.path}/config.json: action_low must be below action_high in every dimension")
        return bounds[0], bounds[1]

    # --- spaces -------------------------------------------------------------------------

    def action_space(self) -> spaces.Box:
        return spaces.Box(self.action_low, self.action_high, (self.action_dim,), np.float32)

    def latent_space(self) -> spaces.Box:
        low, high = self.latent_bounds
        if self.kind == "continuous":
            return spaces.Box(low, high, self.latent_shape, np.float32)
        return spaces.Box(low, high, self.latent_shape, np.int64)

    def frame_space(self) -> spaces.Box:
        return spaces.Box(0, 255, (*self.image_size, 3), np.uint8)

    def observation_space(self, obs_mode: str) -> spaces.Space:
        if obs_mode == "rgb":
            return self.frame_space()
        if obs_mode == "latent":
            return self.latent_space()
        return spaces.Dict({"rgb": self.frame_space(), "latent": self.latent_space()})

    # --- model calls ----------------------------------------------------------------------

    def check_actions(self, actions, num_envs: int | None) -> np.ndarray:
        """Finite actions as float32 (num_envs, A), clipped to the action space.

        `num_envs=None` checks one env's action, of shape (A,) exactly (as the simulator does).
        """
        actions = np.asarray(actions)
        if actions.dtype.kind not in "fiu" or actions.dtype == np.bool_:
            raise ValueError(f"actions must be real numbers, got dtype {actions.dtype}")
        expected = (self.action_dim,) if num_envs is None else (num_envs, self.action_dim)
        if actions.shape != expected:
            raise ValueError(f"action must have shape {expected}, got {actions.shape}")
        actions = actions.astype(np.float32).reshape(-1, self.action_dim)
        if not np.isfinite(actions).all():
            raise ValueError("action contains NaN or inf")
        return np.clip(actions, self.action_low, self.action_high)

    def encode(self, frames: np.ndarray):
        """uint8 frames (N, T, H, W, 3) -> latents (N, T, C, h, w) float32 | tokens (N, T, h, w) int64 on device."""
        with call_threads(len(frames), self.device.type):
            latents = self.tokenizer.encode(np.ascontiguousarray(frames)).to(self.device)
        return self.clamp_latents(latents)

    def clamp_latents(self, latents):
        if self.kind != "continuous":
            return latents.long()
        low, high = self.latent_bounds
        return latents.float().clamp(low, high)  # a sampled latent can overshoot the tokenizer's range

    def predict_next(self, past_latents, past_actions, actions, seeds: Sequence[int]):
        """One batched model call: (N, P, ...) latents, (N, P, A) and (N, A) actions -> (next latents (N, ...),
        what `decode` draws of them: the latents, or a mean readout's digits).

        Each env's sampling noise comes from its own generator (one per seed), so env i's
        prediction does not depend on which other envs share the batch.
        """
        import torch

        from models.precision import autocast

        def call(generator):  # inference_mode: no autograd bookkeeping per op (measured 1.02-1.07x a step)
            with torch.inference_mode(), autocast(self.precision, self.device), call_threads(len(seeds), self.device.type):
                return self.model.predict(
                    past_latents, past_actions, actions[:, None],  # future_actions (N, 1, A)
                    generator=generator, **self.sampler_kwargs,
                )

        generators = [torch.Generator(device=self.device).manual_seed(int(seed)) for seed in seeds]
        if len(generators) == 1:
            future = call(generators[0])
        elif self.per_sample_generators:
            try:
                future = call(generators)
            except (TypeError, AttributeError):  # the model takes one generator only
                self.per_sample_generators = False
                warnings.warn(
                    f"{type(self.model).__name__}.predict does not accept one generator per batch row; batched env "
                    "steps stay deterministic under seeds but differ from single-env steps",
                    stacklevel=2,
                )
        if len(generators) > 1 and not self.per_sample_generators:
            batch_seed = int(np.random.SeedSequence([int(seed) for seed in seeds]).generate_state(2, np.uint64)[0] >> 1)
            future = call(torch.Generator(device=self.device).manual_seed(batch_seed))
        if self.mean_readout:  # (N, 1, h, w, digits): slide on the nearest tokens, show the digits
            from models.masked.maskgit import digits_to_tokens

            return self.clamp_latents(digits_to_tokens(future[:, 0], self.model.levels)), future[:, 0]
        latents = self.clamp_latents(future[:, 0])  # (N, 1, ...) -> (N, ...)
        return latents, latents

    def decode(self, view) -> np.ndarray:
        """Latents (N, ...), or a mean readout's FSQ digits (N, h, w, d) float -> uint8 frames (N, H, W, 3)."""
        import torch

        from models.precision import autocast

        with torch.inference_mode(), call_threads(len(view), self.device.type), autocast(self.precision, self.device):
            if self.kind != "continuous" and view.is_floating_point():
                return self.tokenizer.decode_digits(view[:, None])[:, 0].cpu().numpy()
            return self.tokenizer.decode(view[:, None])[:, 0].cpu().numpy()  # (N, 1, H, W, 3) -> (N, H, W, 3)

    def goal_distance(self, latents, goal_latents):
        """Mean squared latent distance per env, (N, ...) x (N, ...) -> (N,).

        Discrete tokens are compared through their FSQ code vectors when the tokenizer has
        them (nearby codes look alike), else as the fraction of differing tokens.
        """
        if self.kind == "continuous":
            return (latents.float() - goal_latents.float()).pow(2).flatten(1).mean(1)
        fsq = getattr(self.tokenizer, "fsq", None)
        if fsq is not None:
            return (fsq.indices_to_codes(latents) - fsq.indices_to_codes(goal_latents)).pow(2).flatten(1).mean(1)
        return (latents != goal_latents).float().flatten(1).mean(1)


class ImaginationBatch:
    """The state of N imagined episodes: context windows, last frames, goals, step counts.

    Methods take the env indices to act on and one `np.random.Generator` per index (the
    envs own their generators). Inputs are validated before any state changes, so an
    error leaves every episode as it was.
    """

    def __init__(
        self,
        runner: WorldModelRunner,
        num_envs: int,
        obs_mode: str = "rgb",
        context_source="sim",
        reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None,
        task=None,
        probe: str | os.PathLike = "probe-default",
    ):
        import torch

        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if reward_fn is not None and not callable(reward_fn):
            raise ValueError(
                f"reward_fn must be callable (latent, frame, action) -> float, got {type(reward_fn).__name__}"
            )
        self.runner = runner
        self.num_envs = num_envs
        self.obs_mode = obs_mode
        self.reward_fn = reward_fn
        self.task_reward = None  # hwm_env.imagined_task.ProbeTaskReward when the env poses a task
        if task is not None:
            from hwm_env.imagined_task import ProbeTaskReward, TaskContextSource
            from hwm_env.tasks import make_task

            task = make_task(task) if isinstance(task, str) else task
            if reward_fn is not None:
                raise ValueError(f"give either task ('{task.name}') or reward_fn, not both: the task defines the reward")
            if str(context_source) != "sim":
                raise ValueError(f"task '{task.name}' starts from its own start distribution in the simulator; "
                                 f"context_source must be 'sim', got {str(context_source)!r}")
            self.task_reward = ProbeTaskReward(task, probe, device=runner.device)
            self.task_reward.check_image_size(runner.image_size)
            self.context_source = TaskContextSource(
                task, runner.num_past, runner.image_size, runner.action_dim, runner.frame_stride)
        else:
            self.context_source = make_context_source(
                context_source, runner.num_past, runner.image_size, runner.action_dim, runner.frame_stride
            )
        self.task_episodes: list[Any] = [None] * num_envs
        # the probe's reading of each env's current frame (task envs; `target_names` order): what the task's
        # reward, error and success were computed from, for anyone who also observes through the probe
        self.probe_readings = None if self.task_reward is None else np.full(
            (num_envs, len(self.task_reward.probe.target_names)), np.nan, np.float32)
        self.task_errors = np.full(num_envs, np.nan)
        self.task_successes = np.zeros(num_envs, dtype=bool)
        latent_dtype = torch.float32 if runner.kind == "continuous" else torch.int64
        device = runner.device
        num_past, height, width = runner.num_past, *runner.image_size
        self.past_latents = torch.zeros((num_envs, num_past, *runner.latent_shape), dtype=latent_dtype, device=device)
        self.past_actions = torch.zeros((num_envs, num_past, runner.action_dim), dtype=torch.float32, device=device)
        self.goal_latents = torch.zeros((num_envs, *runner.latent_shape), dtype=latent_dtype, device=device)
        self.has_goal = np.zeros(num_envs, dtype=bool)
        self.frames = np.zeros((num_envs, height, width, 3), dtype=np.uint8)  # last frame of each env
        self.frame_is_current = np.zeros(num_envs, dtype=bool)  # False in latent mode until rendered
        # what a stale frame is decoded from: the last latent, or the mean readout's digits of it
        self.last_view = None
        if runner.mean_readout:
            digits = len(runner.model.levels)
            self.last_view = torch.zeros((num_envs, *runner.latent_shape, digits), dtype=torch.float32, device=device)
        self.elapsed_steps = np.zeros(num_envs, dtype=np.int64)
        self.is_reset = np.zeros(num_envs, dtype=bool)

    @property
    def needs_frames(self) -> bool:
        """Decode every step? Only if the obs or the reward looks at pixels (a task's probe does)."""
        return self.obs_mode != "latent" or self.reward_fn is not None or self.task_reward is not None

    @property
    def task(self):
        return None if self.task_reward is None else self.task_reward.task

    # --- reset ----------------------------------------------------------------------------

    def _check_goal(self, goal) -> np.ndarray:
        height, width = self.runner.image_size
        goal = np.asarray(goal)
        if goal.dtype != np.uint8 or goal.shape != (height, width, 3):
            raise ValueError(
                f"options['goal'] must be a uint8 frame of shape ({height}, {width}, 3) (the model's frame size), "
                f"got {goal.dtype} {goal.shape}"
            )
        return goal

    def reset(self, indices: Sequence[int], rngs: Sequence[np.random.Generator], options_list: Sequence[dict | None]):
        import torch

        indices = [int(i) for i in indices]
        if not indices:
            return
        runner = self.runner
        given: list[Context | None] = []
        goals: list[np.ndarray | None] = []
        for options in options_list:  # validate everything first: a bad option changes nothing
            options = dict(options or {})
            unknown = sorted(set(options) - set(RESET_OPTION_KEYS))
            if unknown:
                raise ValueError(f"unknown reset options {unknown}; known: {list(RESET_OPTION_KEYS)}")
            if ("frames" in options) != ("actions" in options):
                raise ValueError("reset options 'frames' and 'actions' go together (the actions led into the frames)")
            if "frames" in options and self.task_reward is not None:
                raise ValueError(f"task '{self.task.name}': an episode starts from the task's start distribution; "
                                 "reset options 'frames'/'actions' cannot be given")
            if "frames" in options:
                given.append(check_context(
                    options["frames"], options["actions"], runner.num_past, runner.image_size, runner.action_dim
                ))
            else:
                given.append(None)
            goals.append(self._check_goal(options["goal"]) if options.get("goal") is not None else None)
        contexts = [
            context if context is not None else self.context_source.sample(rng) for context, rng in zip(given, rngs)
        ]
        latents = runner.encode(np.stack([context.frames for context in contexts]))  # (n, P, ...)
        actions = torch.from_numpy(np.stack([context.actions for context in contexts])).to(runner.device)
        goal_rows = [row for row, goal in enumerate(goals) if goal is not None]
        goal_latents = runner.encode(np.stack([goals[row] for row in goal_rows])[:, None])[:, 0] if goal_rows else None

        index = torch.tensor(indices, device=runner.device)
        self.past_latents[index] = latents
        self.past_actions[index] = actions
        self.has_goal[indices] = False
        for position, row in enumerate(goal_rows):
            self.goal_latents[indices[row]] = goal_latents[position]
            self.has_goal[indices[row]] = True
        self.frames[indices] = np.stack([context.frames[-1] for context in contexts])
        self.frame_is_current[indices] = True  # the reset observation is the real last context frame
        for i, context in zip(indices, contexts):
            self.task_episodes[i] = context.task_episode
        if self.task_reward is not None:
            self._read_task(indices)
        self.elapsed_steps[indices] = 0
        self.is_reset[indices] = True

    # --- step -----------------------------------------------------------------------------

    def step(self, indices: Sequence[int], actions: np.ndarray, rngs: Sequence[np.random.Generator]) -> list[float]:
        """Advance the given envs by one latent frame with checked actions (n, A); returns their rewards.

        One env's step runs on one intra-op thread from end to end, not only its model calls:
        indexing its window on two threads woke the second thread every step, which waited for
        a core whenever another process held one (a Flow-HWM step: 44 -> 23 ms at load 3 on the
        2 cores, 1.04x on an idle machine; benchmarks/step_breakdown.py).
        """
        with call_threads(len(indices), self.runner.device.type):
            return self._step(indices, actions, rngs)

    def _step(self, indices: Sequence[int], actions: np.ndarray, rngs: Sequence[np.random.Generator]) -> list[float]:
        import torch

        indices = [int(i) for i in indices]
        if not indices:
            return []
        not_reset = [i for i in indices if not self.is_reset[i]]
        if not_reset:
            raise ResetNeeded(f"call reset() before step() (envs {not_reset} were never reset)")
        runner = self.runner
        seeds = [int(rng.integers(TORCH_SEED_LIMIT)) for rng in rngs]
        index = torch.tensor(indices, device=runner.device)
        past_latents, past_actions = self.past_latents[index], self.past_actions[index]
        action_tensor = torch.from_numpy(actions).to(runner.device)
        next_latents, next_view = runner.predict_next(past_latents, past_actions, action_tensor, seeds)  # (n, ...)
        # Slide the window: drop the oldest latent and its action, append the new ones.
        self.past_latents[index] = torch.cat([past_latents[:, 1:], next_latents[:, None]], dim=1)
        self.past_actions[index] = torch.cat([past_actions[:, 1:], action_tensor[:, None]], dim=1)
        self.elapsed_steps[indices] += 1
        if self.needs_frames:
            self.frames[indices] = runner.decode(next_view)
            self.frame_is_current[indices] = True
        else:
            self.frame_is_current[indices] = False
            if self.last_view is not None:
                self.last_view[index] = next_view
        return self._rewards(indices, next_latents, actions)

    def _read_task(self, indices: list[int]) -> np.ndarray:
        """The probe reads the current frames of `indices` (one batched call); stores the readings, the task's
        errors and successes; returns the rewards."""
        self.probe_readings[indices] = self.task_reward.probe.predict(self.frames[indices])
        rewards, errors, successes = self.task_reward.score(self.probe_readings[indices],
                                                            [self.task_episodes[i] for i in indices])
        self.task_errors[indices], self.task_successes[indices] = errors, successes
        return rewards

    def _rewards(self, indices: list[int], next_latents, actions: np.ndarray) -> list[float]:
        if self.task_reward is not None:
            return self._read_task(indices).tolist()
        if self.reward_fn is not None:
            latents = next_latents.cpu().numpy()
            return [
                float(self.reward_fn(latents[row], self.frames[i].copy(), actions[row].copy()))
                for row, i in enumerate(indices)
            ]
        rewards = [0.0] * len(indices)
        goal_rows = [row for row, i in enumerate(indices) if self.has_goal[i]]
        if goal_rows:
            import torch

            goal_index = torch.tensor([indices[row] for row in goal_rows], device=self.runner.device)
            distances = self.runner.goal_distance(next_latents[goal_rows], self.goal_latents[goal_index])
            for row, distance in zip(goal_rows, distances.tolist()):
                rewards[row] = -float(distance)
        return rewards

    # --- observations -----------------------------------------------------------------------

    def frames_of(self, indices: Sequence[int]) -> np.ndarray:
        """Last frames (n, H, W, 3) of the given envs; in latent mode decoded on demand, in one batch."""
        import torch

        indices = [int(i) for i in indices]
        if not self.is_reset[indices].all():
            raise ResetNeeded("call reset() before asking for frames (render)")
        stale = [i for i in indices if not self.frame_is_current[i]]
        if stale:
            stale_index = torch.tensor(stale, device=self.runner.device)
            views = self.past_latents[stale_index, -1] if self.last_view is None else self.last_view[stale_index]
            self.frames[stale] = self.runner.decode(views)
            self.frame_is_current[stale] = True
        return self.frames[indices].copy()

    def frame(self, i: int) -> np.ndarray:
        return self.frames_of([i])[0]

    def latent(self, i: int) -> np.ndarray:
        return self.past_latents[i, -1].cpu().numpy().copy()

    def observation(self, i: int):
        if self.obs_mode == "rgb":
            return self.frame(i)
        if self.obs_mode == "latent":
            return self.latent(i)
        return {"rgb": self.frame(i), "latent": self.latent(i)}

    def info(self, i: int) -> dict[str, Any]:
        info: dict[str, Any] = {"step": int(self.elapsed_steps[i])}
        if self.obs_mode == "rgb":
            info["latent"] = self.latent(i)
        if self.task_reward is not None:  # the probe's reading of the imagined frame, not the truth
            info["is_success"] = bool(self.task_successes[i])
            info["task_error"] = float(self.task_errors[i])
        return info

    def task_truncated(self, indices: Sequence[int]) -> np.ndarray:
        """(n,) bool: the task's episode length reached (all False without a task)."""
        if self.task_reward is None:
            return np.zeros(len(indices), dtype=bool)
        return self.elapsed_steps[list(indices)] >= self.task.max_episode_steps

    def close(self) -> None:
        self.context_source.close()


class HWMEnv(gym.Env):
    """A world model (Flow-HWM or Masked-HWM) that imagines the next frame for each action.

    `gym.make("HWM-Flow-v0")` / `gym.make("HWM-Masked-v0")` load the shipped defaults;
    `checkpoint=PATH` loads your own (a folder with `model.safetensors`, `config.json` and
    the tokenizer nested as `tokenizer/`). One step = one latent frame = one frame at the
    training data's fps for per-frame tokenizers.

    ## Action space
    | | |
    |---|---|
    | space | `Box(-1, 1, (A,), float32)` (A = 25 for simulator/1X models) |
    | units | the training data's action units (HWM-Sim-v0 actions are already in [-1, 1]); a checkpoint may set `action_low`/`action_high` in config.json |
    | out of range | clipped to the bounds; wrong shape, NaN or inf raise `ValueError` |

    ## Observation space (`obs_mode`)
    | mode | space | notes |
    |---|---|---|
    | `"rgb"` (default) | `Box(0, 255, (H, W, 3), uint8)` | decoded frame; `info["latent"]` has the latent |
    | `"latent"` | continuous: `Box(-1, 1, (C, h, w), float32)` (built-in tokenizer; unbounded for others); discrete: token ids `Box(0, V-1, (h, w), int64)` | no decoding: the fast path for RL |
    | `"dict"` | `Dict(rgb=..., latent=...)` | both |
    The reset observation is the last real context frame (and its latent).

    ## Reset
    `reset(seed=None, options=None)` builds the P-frame context from `context_source`:
    `"sim"` (HWM-Sim-v0 driven P steps by its exploration policy, seeded from `np_random`)
    or a data folder (a seeded random window); `options={"frames": (P,H,W,3) uint8,
    "actions": (P,A)}` overrides it (`actions[i]` led into `frames[i]`). `options={"goal":
    frame}` sets a goal frame (H, W, 3) uint8 for this episode.

    ## Reward and episode end
    `reward_fn(latent, frame, action) -> float` if given; else with a goal the negative mean
    squared distance between the predicted latent and the goal's latent (FSQ codes for
    discrete tokenizers); else 0.0. Never terminates; `max_episode_steps` (200 for the
    registered ids) truncates.

    ## Tasks (`task="aim" | "look-at" | "reach" | "push"`)
    The env poses the same task as `HWM-Sim-v0(task=...)` (`hwm_env/tasks`): each reset starts
    from the task's start distribution (drawn in the simulator; its settle frames are the
    context), the reward is the task's reward of what the state probe (`probe`, default the
    shipped `probe-default`) reads off each predicted frame, `info["is_success"]` and
    `info["task_error"]` are the probe's reading (not the truth), and the episode truncates at
    the task's length. A probe without the targets the task needs is refused at construction.

    ## Sampler
    `steps` (flow steps / MaskGIT steps), `cfg_scale` (Flow only), `temperature` (Masked
    only); None = the checkpoint's default. All noise comes from `np_random`, so the env is
    deterministic under `reset(seed=...)`.

    ## Speed
    `precision`: "auto" (default; fp32 for a single env on the CPU, where bf16 measured
    slower at batch 1, bf16 on CUDA), "fp32", or "bf16" (ValueError where the device has no
    native bf16); see `models.precision`. `compile`: False (default), True, or "auto"
    (compile once the env has spent about one compilation's time stepping); a compiler
    failure warns and runs eager; `env.unwrapped.runner.compile_report` has the compile
    time. See `models.compiled`. A step runs on one intra-op thread (`hwm_env.threads`) and
    compiles the model only, not the decoder; where its milliseconds go (model, decoder,
    Python): `benchmarks/step_breakdown.py`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": DEFAULT_FPS}

    def __init__(
        self,
        checkpoint: str | os.PathLike = "flow-default",
        obs_mode: str = "rgb",
        context_source: str | os.PathLike = "sim",
        reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None,
        render_mode: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        temperature: float | None = None,
        device: str = "auto",
        task=None,
        probe: str | os.PathLike = "probe-default",
        precision: str = "auto",
        compile: bool | str = False,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.runner = WorldModelRunner(checkpoint, device, steps=steps, cfg_scale=cfg_scale, temperature=temperature,
                                       precision=precision, compile=compile, num_envs=1)
        self.imagination = ImaginationBatch(self.runner, 1, obs_mode, context_source, reward_fn, task, probe)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.action_space = self.runner.action_space()
        self.observation_space = self.runner.observation_space(obs_mode)
        self.metadata = {**type(self).metadata, "render_fps": self.runner.fps}

    @property
    def num_past(self) -> int:
        return self.runner.num_past

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.imagination.reset([0], [self.np_random], [options])
        return self.imagination.observation(0), self.imagination.info(0)

    def step(self, action):
        if not self.imagination.is_reset[0]:
            raise ResetNeeded("call reset() before step()")
        actions = self.runner.check_actions(action, None)  # (1, A)
        reward = self.imagination.step([0], actions, [self.np_random])[0]
        truncated = bool(self.imagination.task_truncated([0])[0])
        return self.imagination.observation(0), reward, False, truncated, self.imagination.info(0)

    @property
    def task(self):
        """The task this env poses (`task=`), else None."""
        return self.imagination.task

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.imagination.frame(0)

    def close(self):
        if hasattr(self, "imagination"):
            self.imagination.close()
