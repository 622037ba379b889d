"""Flow-HWM: the MMDiT velocity network plus the data statistics and the world-model API.

Latents are normalised per channel with train-split statistics stored as buffers. With
`predict_residual` (default) the flow runs over the future latent minus the last past
latent, divided by the train-split std of that difference: consecutive latents are close,
so the residual is the part worth generating, and a zero residual already means
"copy the last frame" instead of "grey frame" (the CPU prototype learned faster this way).
Actions are taken in dataset units and normalised by the stored `ActionNormalizer`.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.blocks import ActionNormalizer
from models.world_model import WorldModel
from models.checkpoint import load_checkpoint, load_state_strict
from models.flow.flow_matching import (
    guided_velocity,
    interpolate,
    sample,
    sample_time,
    velocity_target,
)
from models.flow.mmdit import MMDiT, FlowConfig
from models.precision import model_autocast


def _as_float_tensor(name: str, value) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or inf values")


class FlowHWM(WorldModel):
    """Action-conditioned video world model over continuous latents (MMDiT + rectified flow).

    `predict` generates the next `num_future` latents; `rollout` slides the window one
    prediction at a time. `forward(batch)` is the training loss (so DDP wraps it as is).
    """

    family = "flow"
    config_class = FlowConfig

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.network = MMDiT(config)
        self.action_normalizer = ActionNormalizer(config.action_dim)
        channels = config.latent_channels
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))
        self.register_buffer("residual_std", torch.ones(channels))
        self.action_names: list[str] | None = None
        self.metadata: dict[str, Any] = {}  # extra config.json keys (e.g. the data window settings)

    # --- statistics -----------------------------------------------------------------------

    def set_action_stats(self, mean, std, binary_dims: Sequence[int] = ()) -> None:
        self.action_normalizer.set_stats(mean, std, binary_dims)

    def set_latent_stats(self, mean, std, residual_std=None) -> None:
        """Per-channel statistics (C,) of the train split, in latent units (residual_std: normalised units)."""
        channels = self.config.latent_channels
        values = {"mean": mean, "std": std, "residual_std": residual_std if residual_std is not None else [1.0] * channels}
        for name, value in values.items():
            tensor = torch.as_tensor(value, dtype=torch.float32)
            if tensor.shape != (channels,) or not torch.isfinite(tensor).all():
                raise ValueError(f"latent {name} must be {channels} finite values, got shape {tuple(tensor.shape)}")
            values[name] = tensor
        self.latent_mean.copy_(values["mean"])
        self.latent_std.copy_(values["std"].clamp_min(1e-6))
        self.residual_std.copy_(values["residual_std"].clamp_min(1e-6))

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean.view(-1, 1, 1)) / self.latent_std.view(-1, 1, 1)

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std.view(-1, 1, 1) + self.latent_mean.view(-1, 1, 1)

    def encode_target(self, past: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """Normalised (B,P,...) and (B,F,...) latents -> what the flow generates (B,F,C,h,w)."""
        if not self.config.predict_residual:
            return future
        return (future - past[:, -1:]) / self.residual_std.view(-1, 1, 1)

    def decode_target(self, past: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Inverse of `encode_target`: generated (B,F,C,h,w) -> normalised future latents."""
        if not self.config.predict_residual:
            return target
        return past[:, -1:] + target * self.residual_std.view(-1, 1, 1)

    # --- input checks -------------------------------------------------------------------

    def _check_latents(self, name: str, latents, num_latents: int | None) -> torch.Tensor:
        latents = _as_float_tensor(name, latents)
        c = self.config
        expected = (c.latent_channels, c.latent_height, c.latent_width)
        if latents.dim() != 5 or tuple(latents.shape[2:]) != expected or (
                num_latents is not None and latents.shape[1] != num_latents):
            count = num_latents if num_latents is not None else "T"
            raise ValueError(f"{name} has shape {tuple(latents.shape)}; this Flow-HWM expects "
                             f"(B, {count}, {', '.join(map(str, expected))})")
        _check_finite(name, latents)
        return latents

    def _check_actions(self, name: str, actions, num_tokens: int | None, what: str) -> torch.Tensor:
        """(B, N, A) actions; (B, T, k, A) per-frame actions are flattened to (B, T*k, A)."""
        actions = _as_float_tensor(name, actions)
        c = self.config
        if actions.dim() == 4 and actions.shape[2] == c.actions_per_latent:
            actions = actions.flatten(1, 2)
        if actions.dim() != 3 or actions.shape[-1] != c.action_dim or (
                num_tokens is not None and actions.shape[1] != num_tokens):
            count = num_tokens if num_tokens is not None else "T"
            raise ValueError(f"{name} has shape {tuple(actions.shape)}; this Flow-HWM expects "
                             f"(B, {count}, {c.action_dim}) ({what}, action_dim={c.action_dim})")
        _check_finite(name, actions)
        return actions

    def _check_window(self, past_latents, past_actions, future_actions, future_latents=None):
        c = self.config
        past_latents = self._check_latents("past_latents", past_latents, c.num_past)
        past_actions = self._check_actions(
            "past_actions", past_actions, c.num_past_action_tokens,
            f"{c.num_past_action_tokens} action tokens for {c.num_past} past latents")
        future_actions = self._check_actions(
            "future_actions", future_actions, c.num_future_action_tokens,
            f"{c.actions_per_latent} action token(s) per future latent, {c.num_future} future latent(s)")
        tensors = {"past_latents": past_latents, "past_actions": past_actions, "future_actions": future_actions}
        if future_latents is not None:
            tensors["future_latents"] = self._check_latents("future_latents", future_latents, c.num_future)
        batch_sizes = {name: t.shape[0] for name, t in tensors.items()}
        if len(set(batch_sizes.values())) != 1:
            raise ValueError(f"batch sizes differ between inputs: {batch_sizes}")
        return [t.to(self.device, torch.float32) for t in tensors.values()]

    # --- training -------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss of a window batch (WindowDataset keys); returns (loss, metrics)."""
        missing = [k for k in ("past_latents", "future_latents", "past_actions", "future_actions") if k not in batch]
        if missing:
            raise ValueError(f"training batch lacks {missing}; Flow-HWM trains on WindowDataset(source='latents')")
        past_latents, past_actions, future_actions, future_latents = self._check_window(
            batch["past_latents"], batch["past_actions"], batch["future_actions"], batch["future_latents"])
        c = self.config
        past = self.normalize_latents(past_latents)
        data = self.encode_target(past, self.normalize_latents(future_latents))  # x1, (B, F, C, h, w)
        noise = torch.randn_like(data)  # x0
        s = sample_time(data.shape[0], logit_mean=c.time_logit_mean, logit_std=c.time_logit_std,
                        uniform_fraction=c.time_uniform_fraction, device=data.device)
        drop = None
        if c.cfg_dropout > 0 and self.training:  # validation measures the conditional model
            drop = torch.rand(data.shape[0], device=data.device) < c.cfg_dropout
        output = self.network(interpolate(noise, data, s), s, past, self.action_normalizer(past_actions),
                              self.action_normalizer(future_actions), drop).float()
        return F.mse_loss(output, velocity_target(noise, data)), {}

    # --- inference ------------------------------------------------------------------------

    def _resolve_sampling(self, steps, cfg_scale, temperature) -> tuple[int, float]:
        if temperature is not None:
            raise ValueError("temperature does not apply to Flow-HWM (it is a Masked-HWM setting); pass None")
        steps = self.config.num_sampling_steps if steps is None else steps
        cfg_scale = self.config.cfg_scale if cfg_scale is None else cfg_scale
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        cfg_scale = float(cfg_scale)
        if not math.isfinite(cfg_scale):
            raise ValueError(f"cfg_scale must be finite, got {cfg_scale}")
        if cfg_scale != 1.0 and not self.network.supports_guidance:
            raise ValueError("this Flow-HWM was trained with cfg_dropout=0, so it cannot use "
                             f"classifier-free guidance; got cfg_scale={cfg_scale}, use 1")
        return int(steps), cfg_scale

    def velocity_function(self, past: torch.Tensor, past_actions: torch.Tensor, future_actions: torch.Tensor,
                          cfg_scale: float):
        """v(x, s) for the sampler, given normalised context; guided passes share ONE batched call."""
        guided = cfg_scale != 1.0
        batch = past.shape[0]
        if guided:  # conditional rows first, unconditional rows second; new tensors, inputs untouched
            past, past_actions, future_actions = (torch.cat([t, t]) for t in (past, past_actions, future_actions))
            drop = torch.arange(2 * batch, device=past.device) >= batch
        autocast = model_autocast(past.device)  # the caller's precision, else bf16 on CUDA only

        def velocity(x: torch.Tensor, s: float) -> torch.Tensor:
            x_in = torch.cat([x, x]) if guided else x
            s_in = torch.full((x_in.shape[0],), s, device=x.device)
            with autocast:
                v = self.network(x_in, s_in, past, past_actions, future_actions, drop if guided else None).float()
            if not guided:
                return v
            conditional, unconditional = v[:batch], v[batch:]
            return guided_velocity(conditional, unconditional, cfg_scale)

        return velocity

    def _noise(self, shape: tuple[int, ...], generator) -> torch.Tensor:
        """x0 ~ N(0, I) of `shape`, from one generator or one generator per batch row.

        Per-row generators make row i's sample independent of the rest of the batch, so a
        batch of envs steps exactly like the same envs one by one.
        """
        if generator is None or isinstance(generator, torch.Generator):
            where = generator.device if generator is not None else self.device
            return torch.randn(shape, generator=generator, device=where).to(self.device)
        generators = list(generator)
        if len(generators) != shape[0] or not all(isinstance(g, torch.Generator) for g in generators):
            raise ValueError(f"generator must be a torch.Generator or a list of {shape[0]} (one per batch row), "
                             f"got {type(generator).__name__} of length {len(generators)}")
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device).to(self.device) for g in generators])

    @torch.no_grad()
    def predict(self, past_latents, past_actions, future_actions, *, steps: int | None = None,
                cfg_scale: float | None = None, temperature: float | None = None,
                generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """The `num_future` next latents (B, F, C, h, w) float32.

        past_latents (B, P, C, h, w); past_actions (B, P*k, A) (the actions into the past
        latents); future_actions (B, F*k, A) (the actions into the predicted latents), in
        dataset units. `generator` (one, or a list with one per batch row) seeds all noise;
        inputs are never modified.
        """
        steps, cfg_scale = self._resolve_sampling(steps, cfg_scale, temperature)
        past_latents, past_actions, future_actions = self._check_window(past_latents, past_actions, future_actions)
        c = self.config
        past = self.normalize_latents(past_latents)
        velocity = self.velocity_function(past, self.action_normalizer(past_actions),
                                          self.action_normalizer(future_actions), cfg_scale)
        shape = (past.shape[0], c.num_future, c.latent_channels, c.latent_height, c.latent_width)
        generated = sample(velocity, self._noise(shape, generator), steps, c.sampler)
        return self.denormalize_latents(self.decode_target(past, generated))

    @torch.no_grad()
    def rollout(self, past_latents, past_actions, future_actions, *, steps: int | None = None,
                cfg_scale: float | None = None, temperature: float | None = None,
                generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """Autoregressive rollout: future_actions (B, H*k, A) -> latents (B, H, C, h, w).

        Each call predicts the next `num_future` latents, then the window of latents and
        actions slides forward by what was predicted. A last partial chunk repeats its
        final action and is cut back to H.
        """
        c = self.config
        past_latents = self._check_latents("past_latents", past_latents, c.num_past)
        future_actions = self._check_actions("future_actions", future_actions, None,
                                             f"{c.actions_per_latent} action token(s) per future latent")
        if future_actions.shape[1] % c.actions_per_latent:
            raise ValueError(f"future_actions has {future_actions.shape[1]} tokens, not a multiple of "
                             f"actions_per_latent={c.actions_per_latent}")
        horizon = future_actions.shape[1] // c.actions_per_latent
        if horizon < 1:
            raise ValueError("future_actions is empty; rollout needs at least one future latent's actions")
        window_latents, window_actions = past_latents, past_actions
        chunk_tokens = c.num_future_action_tokens
        predictions = []
        for start in range(0, horizon * c.actions_per_latent, chunk_tokens):
            chunk = future_actions[:, start : start + chunk_tokens]
            if chunk.shape[1] < chunk_tokens:
                repeat = chunk[:, -1:].expand(-1, chunk_tokens - chunk.shape[1], -1)
                chunk = torch.cat([chunk, repeat], dim=1)
            predicted = self.predict(window_latents, window_actions, chunk, steps=steps, cfg_scale=cfg_scale,
                                     temperature=temperature, generator=generator)
            predictions.append(predicted)
            window_latents = torch.cat([window_latents.to(predicted.device), predicted], dim=1)[:, -c.num_past:]
            window_actions = torch.cat([torch.as_tensor(window_actions).to(chunk.device, chunk.dtype)
                                        .flatten(1, -2), chunk], dim=1)[:, -c.num_past_action_tokens:]
        return torch.cat(predictions, dim=1)[:, :horizon]

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoint_config(self, **extra: Any) -> dict[str, Any]:
        """config.json of this model: architecture, window sizes, action names, latent layout."""
        c = self.config
        if self.action_names is not None and len(self.action_names) != c.action_dim:
            raise ValueError(f"action_names has {len(self.action_names)} names, action_dim is {c.action_dim}")
        return {
            **self.metadata,
            "family": self.family,
            "model": c.to_dict(),
            "num_past": c.num_past,
            "num_future": c.num_future,
            "action_dim": c.action_dim,
            "action_names": self.action_names,
            "latents": {"kind": "continuous", "channels": c.latent_channels,
                        "height": c.latent_height, "width": c.latent_width},
            **extra,
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "FlowHWM":
        """Load a `family: flow` checkpoint folder (or shipped name); other families raise ValueError."""
        state_dict, config = load_checkpoint(path, family=cls.family)
        if not isinstance(config.get("model"), dict):
            raise ValueError(f"{path}: config.json has no 'model' section with the FlowConfig")
        model = cls(FlowConfig.from_dict(config["model"]))
        load_state_strict(model, state_dict, path)
        model.action_names = config.get("action_names")
        model.metadata = {k: v for k, v in config.items()
                          if k not in ("family", "model", "num_past", "num_future", "action_dim",
                                       "action_names", "latents", "format_version")}
        return model.eval()


def latent_statistics(latents, segment_idx, frame_stride: int = 1, max_frames: int = 20000):
    """Per-channel (mean, std, residual_std) of pre-encoded latents (N, C, h, w).

    residual_std is the std of the normalised difference between latents `frame_stride`
    apart inside one segment: the scale of what `predict_residual` generates. A strided
    subset of at most `max_frames` frames keeps this fast on memory-mapped data.
    """
    latents = np.asarray(latents)
    segment_idx = np.asarray(segment_idx)
    if latents.ndim != 4 or len(segment_idx) != len(latents):
        raise ValueError(f"latents must be (N, C, h, w) with one segment id per frame, got {latents.shape} "
                         f"and {segment_idx.shape}")
    every = max(1, len(latents) // max_frames)
    picks = np.arange(0, len(latents), every)
    sample_latents = torch.from_numpy(np.asarray(latents[picks], dtype=np.float32))
    mean = sample_latents.mean(dim=(0, 2, 3))
    std = sample_latents.std(dim=(0, 2, 3))
    following = picks + frame_stride
    valid = following < len(latents)
    valid[valid] &= segment_idx[picks[valid]] == segment_idx[following[valid]]
    if not valid.any():
        raise ValueError("no two latents frame_stride apart share a segment; cannot measure residual statistics")
    now = torch.from_numpy(np.asarray(latents[picks[valid]], dtype=np.float32))
    later = torch.from_numpy(np.asarray(latents[following[valid]], dtype=np.float32))
    residual_std = ((later - now) / std.clamp_min(1e-6).view(-1, 1, 1)).std(dim=(0, 2, 3))
    for name, value in (("mean", mean), ("std", std), ("residual_std", residual_std)):
        if not torch.isfinite(value).all():
            raise ValueError(f"latent {name} is not finite; the pre-encoded latents contain NaN or inf")
    return mean, std, residual_std
