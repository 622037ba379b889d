"""Masked-HWM: the world-model face of the ST-transformer (checks, actions, MaskGIT, checkpoints).

Same API as Flow-HWM so envs and planners take either: `predict` returns the future token
grids for given past grids and actions (in dataset units; normalised inside), `rollout`
predicts one latent frame at a time and slides the window.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from models.blocks import ActionNormalizer
from models.world_model import WorldModel
from models.masked.maskgit import (
    corrupt_tokens, digits_to_tokens, maskgit_decode, masked_cross_entropy, random_future_mask, uniform,
)
from models.masked.st_transformer import UNMASK_MODES, MaskedConfig, STTransformer

FAMILY = "masked"


class MaskedHWM(WorldModel):
    """ST-MaskGIT world model over discrete tokens; see `st_transformer.py` for how actions enter."""

    config_class = MaskedConfig
    family = FAMILY

    def __init__(self, config: MaskedConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.action_normalizer = ActionNormalizer(config.action_dim)
        self.transformer = STTransformer(config)

    # -- Masked-HWM attributes (num_past, num_future, action_dim, device: models.world_model) --
    @property
    def levels(self) -> list[int] | None:
        """FSQ levels when the head is factorised (one softmax per digit), else None."""
        return self.config.fsq_levels if self.config.factorized_head else None

    # -- training / teacher-forced evaluation ----------------------------------------------
    def forward(self, past_tokens, past_actions, future_tokens, future_actions, future_mask) -> torch.Tensor:
        """Logits (B, F, h, w, head_size) of the future tokens; True in future_mask = masked."""
        past_tokens, past_actions, future_tokens, future_actions = self._check(
            past_tokens, past_actions, future_tokens, future_actions
        )
        future_mask = future_mask.to(self.device)
        if future_mask.dtype != torch.bool or future_mask.shape != future_tokens.shape:
            raise ValueError(
                f"future_mask must be bool with the shape of future_tokens {tuple(future_tokens.shape)}, "
                f"got {future_mask.dtype} {tuple(future_mask.shape)}"
            )
        return self.transformer(past_tokens, self.action_normalizer(past_actions), future_tokens, future_mask,
                                self.action_normalizer(future_actions))

    # -- generation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, past_latents, past_actions, future_actions, *, steps: int | None = None,
                cfg_scale: float | None = None, temperature: float | None = None,
                generator=None, readout: str = "tokens") -> torch.Tensor:
        """Future token grids (B, F, h, w) int64 for past grids (B, P, h, w) and actions (B, P|F, A).

        steps: MaskGIT steps; temperature: 0 = argmax; None = the checkpoint's defaults.
        generator: one torch.Generator, or a list of B (row i draws from generator i only).
        readout "mean" (factorised head): expected FSQ digits (B, F, h, w, len(levels)) float32
        instead of tokens, for the tokenizer's `decode_digits`: blurrier frames of higher PSNR.
        cfg_scale does not apply to Masked-HWM and must be None.
        """
        if cfg_scale is not None:
            raise ValueError("cfg_scale does not apply to Masked-HWM (no classifier-free guidance); pass None")
        steps = self.config.num_sampling_steps if steps is None else int(steps)
        temperature = self.config.temperature if temperature is None else float(temperature)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        past_tokens, past_actions, _, future_actions = self._check(past_latents, past_actions, None, future_actions)
        context = self.transformer.encode_context(past_tokens, self.action_normalizer(past_actions))
        future_actions = self.action_normalizer(future_actions)
        batch, frames = future_actions.shape[:2]
        return maskgit_decode(
            lambda tokens, mask: self.transformer.future_logits(context, tokens, mask, future_actions),
            (batch, frames, *self.config.token_grid), steps, temperature, self.config.unmask_mode,
            levels=self.levels, generator=generator, device=self.device, readout=readout,
        )

    @torch.no_grad()
    def rollout(self, past_latents, past_actions, future_actions, *, steps: int | None = None,
                cfg_scale: float | None = None, temperature: float | None = None,
                generator=None, readout: str = "tokens") -> torch.Tensor:
        """(B, H, h, w): predict one latent frame per action of future_actions (B, H, A), sliding the window.

        readout "mean": (B, H, h, w, len(levels)) expected digits, see `predict`; the window then
        slides on the nearest tokens (the digits rounded).
        """
        past_tokens, past_actions, _, future_actions = self._check(past_latents, past_actions, None, future_actions,
                                                                   any_future_length=True)
        predicted = []
        for step in range(future_actions.shape[1]):
            action = future_actions[:, step : step + 1]
            predicted.append(self.predict(past_tokens, past_actions, action, steps=steps, cfg_scale=cfg_scale,
                                          temperature=temperature, generator=generator, readout=readout))
            next_tokens = predicted[-1] if readout == "tokens" else digits_to_tokens(predicted[-1], self.levels)
            past_tokens = torch.cat([past_tokens[:, 1:], next_tokens], 1)
            past_actions = torch.cat([past_actions[:, 1:], action], 1)
        return torch.cat(predicted, 1)

    # -- objective -------------------------------------------------------------------------
    def training_batch(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None):
        """Mask the future (cosine schedule) and corrupt all frames; returns (inputs, targets, mask)."""
        future_tokens = batch["future_tokens"].to(self.device)
        past_tokens = batch["past_tokens"].to(self.device)
        size, frames = future_tokens.shape[:2]
        mask = random_future_mask(size, future_tokens[0].numel(), generator, self.device).view(future_tokens.shape)
        rate, vocab = self.config.max_corrupt_rate, self.config.vocab_size
        if self.config.static_history_fraction > 0:
            # A still history: the frames alone then say nothing about motion, only the actions do.
            still = uniform((size,), generator, self.device) < self.config.static_history_fraction
            past_tokens = torch.where(still.view(-1, 1, 1, 1), past_tokens[:, -1:].expand_as(past_tokens), past_tokens)
        inputs = {
            "past_tokens": corrupt_tokens(past_tokens, rate, vocab, generator),
            "past_actions": batch["past_actions"],
            "future_tokens": corrupt_tokens(future_tokens, rate, vocab, generator),
            "future_actions": batch["future_actions"],
            "future_mask": mask,
        }
        return inputs, future_tokens, mask

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_config(self, action_names: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
        """config.json of a Masked-HWM checkpoint (the trainer writes it into `final/`)."""
        names = list(action_names) if action_names is not None else [f"action_{i}" for i in range(self.action_dim)]
        if len(names) != self.action_dim:
            raise ValueError(f"action_names has {len(names)} names, the model has action_dim {self.action_dim}")
        return {
            "family": FAMILY,
            "model": dataclasses.asdict(self.config),
            "num_past": self.num_past,
            "num_future": self.num_future,
            "action_dim": self.action_dim,
            "action_names": names,
            "vocab_size": self.config.vocab_size,
            "token_grid": list(self.config.token_grid),
            "tokenizer": "tokenizer",
            **extra,
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "MaskedHWM":
        from models.checkpoint import load_checkpoint, load_state_strict, resolve_checkpoint

        path = resolve_checkpoint(path)
        state_dict, config = load_checkpoint(path, FAMILY)
        if "model" not in config:
            raise ValueError(f"{path}/config.json: missing the 'model' section (the MaskedConfig)")
        model = cls(config_from_dict(config["model"], source=f"{path}/config.json"))
        load_state_strict(model, state_dict, path / "model.safetensors")
        return model.eval()

    # -- input checks ----------------------------------------------------------------------
    def _check(self, past_tokens, past_actions, future_tokens, future_actions, any_future_length: bool = False):
        config = self.config
        past_tokens = self._check_tokens(past_tokens, "past_latents")
        if past_tokens.shape[1] != config.num_past:
            raise ValueError(
                f"past_latents has {past_tokens.shape[1]} latent frames; this model takes num_past={config.num_past}"
            )
        batch = past_tokens.shape[0]
        past_actions = self._check_actions(past_actions, "past_actions", batch, config.num_past)
        future_actions = self._check_actions(future_actions, "future_actions", batch, None)
        frames = future_actions.shape[1]
        if not any_future_length and not 1 <= frames <= config.num_future:
            raise ValueError(
                f"future_actions has {frames} frames; this model predicts 1 to num_future={config.num_future} "
                "latent frames per call (use rollout for longer horizons)"
            )
        if future_tokens is not None:
            future_tokens = self._check_tokens(future_tokens, "future_tokens")
            if future_tokens.shape[:2] != (batch, frames):
                raise ValueError(
                    f"future_tokens has shape {tuple(future_tokens.shape)}, expected (B={batch}, F={frames}, h, w) "
                    "to match future_actions"
                )
        return past_tokens, past_actions, future_tokens, future_actions

    def _check_tokens(self, tokens, name: str) -> torch.Tensor:
        grid_h, grid_w = self.config.token_grid
        vocab = self.config.vocab_size
        expected = f"(B, T, {grid_h}, {grid_w}) integer token ids in [0, {vocab})"
        if not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(tokens)
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise ValueError(f"{name} must be {expected}, got dtype {tokens.dtype} (continuous latents belong to Flow-HWM)")
        if tokens.dim() != 4 or tuple(tokens.shape[2:]) != (grid_h, grid_w):
            raise ValueError(f"{name} must be {expected}; got shape {tuple(tokens.shape)} (wrong token grid for this checkpoint?)")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
            raise ValueError(f"{name} has token ids in [{int(tokens.min())}, {int(tokens.max())}], outside the vocabulary [0, {vocab})")
        return tokens.to(self.device, torch.long)

    def _check_actions(self, actions, name: str, batch: int, frames: int | None) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(actions)
        expected = f"(B={batch}, {frames if frames is not None else 'F'}, A={self.action_dim})"
        if actions.dim() != 3 or actions.shape[0] != batch or actions.shape[2] != self.action_dim or (
            frames is not None and actions.shape[1] != frames
        ):
            raise ValueError(f"{name} must have shape {expected}, got {tuple(actions.shape)}")
        if not actions.is_floating_point():
            actions = actions.float()
        if not torch.isfinite(actions).all():
            raise ValueError(f"{name} contains NaN or inf")
        return actions.to(self.device, torch.float32)


def config_from_dict(values: Mapping[str, Any], source: str = "config") -> MaskedConfig:
    """A MaskedConfig from a dict (config.json's `model`, or a YAML section); unknown keys are errors."""
    known = {f.name for f in dataclasses.fields(MaskedConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown Masked-HWM config keys {unknown}; known: {sorted(known)}")
    return MaskedConfig(**dict(values))


def masked_objective(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Trainer objective: cross-entropy on the masked future tokens after corruption of all frames."""
    core = getattr(model, "_orig_mod", model)  # the module under torch.compile
    inputs, targets, mask = core.training_batch(batch)
    logits = model(**inputs)
    loss, accuracy = masked_cross_entropy(logits, targets, mask, core.levels)
    return loss, {"masked_accuracy": float(accuracy), "mask_ratio": float(mask.float().mean())}


__all__ = ["MaskedHWM", "MaskedConfig", "masked_objective", "config_from_dict", "UNMASK_MODES"]
