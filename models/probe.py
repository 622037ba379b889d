"""The state probe: a small CNN that reads off a frame what it shows of the world state.

It regresses, from one 64x64 frame, the robot's measured 25-d state (`states.bin`, in the
data's `action_names` order, since state and action share it) and, for simulator data, the
4 objects' positions in the head camera's frame (`object_positions.bin`). Scoring a world
model's predicted frames with it asks "is the robot/scene where it should be", which PSNR
cannot; its penultimate features give a Fréchet distance ("is the frame in distribution").

Targets are z-scored with the training split's mean and std, stored in the weights as
buffers, so `predict` answers in target units (rad, 0-1, m/s, m). `hwm train probe` trains
it (train/commands/probe.py); `load_probe` loads a checkpoint folder or `probe-default`.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from models.checkpoint import load_checkpoint, load_state_strict, resolve_checkpoint

FAMILY = "probe"


@dataclass
class ProbeConfig:
    image_size: list[int] = field(default_factory=lambda: [64, 64])  # (H, W)
    channels: list[int] = field(default_factory=lambda: [32, 64, 96, 128])  # one stride-2 conv block each: 64 -> 32 -> 16 -> 8 -> 4
    feature_dim: int = 128  # the penultimate layer (`features`)
    norm_groups: int = 8
    target_names: list[str] = field(default_factory=list)


class ConvBlock(nn.Module):
    """3x3 stride-2 conv, GroupNorm, SiLU: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(norm_groups, out_channels), out_channels)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class StateProbe(nn.Module):
    """Frames (N, H, W, 3) uint8 -> targets (N, D) in target units.

    `forward` maps float images in [-1, 1] (N, 3, H, W) to z-scored targets (training);
    `predict` and `features` take uint8 frames, numpy or torch, and batch internally.
    """

    def __init__(self, config: ProbeConfig):
        super().__init__()
        if not config.target_names:
            raise ValueError("ProbeConfig.target_names is empty: a probe needs at least one target")
        height, width = config.image_size
        stride = 2 ** len(config.channels)
        if height % stride or width % stride:
            raise ValueError(f"probe image_size {height}x{width} must be divisible by {stride} "
                             f"({len(config.channels)} stride-2 blocks)")
        self.config = config
        widths = (3, *config.channels)
        self.blocks = nn.Sequential(*[ConvBlock(a, b, config.norm_groups) for a, b in zip(widths[:-1], widths[1:])])
        # flatten, not pool: where an object is in the image is what its position target asks
        self.to_features = nn.Sequential(
            nn.Flatten(), nn.Linear(config.channels[-1] * (height // stride) * (width // stride), config.feature_dim),
            nn.SiLU())
        self.head = nn.Linear(config.feature_dim, len(config.target_names))
        dim = len(config.target_names)
        self.register_buffer("target_mean_buffer", torch.zeros(dim))
        self.register_buffer("target_std_buffer", torch.ones(dim))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """PyTorch's default init, except the head, zeroed: an untrained probe predicts the train mean."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    # -- attributes ------------------------------------------------------------------------

    @property
    def target_names(self) -> list[str]:
        return list(self.config.target_names)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(int(x) for x in self.config.image_size)

    @property
    def target_mean(self) -> np.ndarray:
        return self.target_mean_buffer.detach().cpu().numpy().astype(np.float32)

    @property
    def target_std(self) -> np.ndarray:
        return self.target_std_buffer.detach().cpu().numpy().astype(np.float32)

    def set_target_statistics(self, mean, std) -> None:
        """Store the train split's per-target mean and std (std 0 -> 1: a constant target stays 0)."""
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        if mean.shape != (len(self.target_names),) or std.shape != mean.shape:
            raise ValueError(f"target statistics of shape {mean.shape}/{std.shape}, expected ({len(self.target_names)},)")
        std = np.where(std > 1e-6, std, 1.0)
        self.target_mean_buffer.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.target_std_buffer.copy_(torch.as_tensor(std, dtype=torch.float32))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def checkpoint_config(self) -> dict:
        return {"family": FAMILY, "model": asdict(self.config)}

    # -- forward ---------------------------------------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, F) features."""
        return self.to_features(self.blocks(images))  # (N, C, H/16, W/16) -> (N, F)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, D) z-scored targets."""
        return self.head(self.embed(images))

    def normalize(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean_buffer) / self.target_std_buffer

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.target_std_buffer + self.target_mean_buffer

    def _images(self, frames) -> torch.Tensor:
        """uint8 (N, H, W, 3) numpy/torch, checked against image_size -> float (N, 3, H, W) in [-1, 1]."""
        if not isinstance(frames, torch.Tensor):
            frames = torch.from_numpy(np.array(frames))  # a copy: memmaps are read-only
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"probe frames: {tuple(frames.shape)} {frames.dtype}, expected uint8 (N, H, W, 3)")
        if tuple(frames.shape[1:3]) != self.image_size:
            raise ValueError(f"probe trained on {self.image_size[0]}x{self.image_size[1]} frames, got "
                             f"{frames.shape[1]}x{frames.shape[2]} frames; train a probe at that resolution "
                             "(hwm train probe --data DIR)")
        device = self.head.weight.device
        return frames.to(device).movedim(-1, -3).float().div(127.5).sub(1.0)

    @torch.no_grad()
    def _batched(self, frames, fn, batch_size: int) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            count = len(frames)
            outputs = [fn(self._images(frames[start:start + batch_size])) for start in range(0, count, batch_size)]
        finally:
            self.train(was_training)
        if not outputs:
            self._images(frames)  # an empty batch still gets its shape checked
            return torch.zeros(0, self.config.feature_dim if fn == self.embed else len(self.target_names))
        return torch.cat(outputs).float().cpu()

    def predict(self, frames, batch_size: int = 256) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> (N, D) float32 targets in target units (`target_names` order)."""
        return self._batched(frames, lambda x: self.denormalize(self(x)), batch_size).numpy()

    def features(self, frames, batch_size: int = 256) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> (N, F) float32 penultimate features (for a Fréchet distance)."""
        return self._batched(frames, self.embed, batch_size)

    # -- data ------------------------------------------------------------------------------

    def targets_of(self, split) -> np.ndarray:
        """(N, D) float32 true targets of an hwm-v1 split (`HWMDataset`), after checking that the
        split has this probe's resolution and target layout."""
        names = probe_target_names(split)
        if names != self.target_names:
            raise ValueError(f"{split.path}: data targets {names} differ from the probe's {self.target_names} "
                             "(another state layout); train a probe on this kind of data")
        if (split.height, split.width) != self.image_size:
            raise ValueError(f"{split.path}: {split.height}x{split.width} frames, the probe was trained on "
                             f"{self.image_size[0]}x{self.image_size[1]}")
        return probe_targets(split)


def probe_target_names(split) -> list[str]:
    """The targets a probe trained on `split` regresses: the state (named by `action_names`, the
    order state and action share), then the object positions where the split has them."""
    if split.states is None:
        raise ValueError(f"{split.path}: has no states.bin; a state probe needs the measured state")
    return list(split.action_names) + list(split.object_position_names or [])


def probe_targets(split, rows=slice(None)) -> np.ndarray:
    """(n, D) float32: state, then object positions (if any), of the given rows of `split`."""
    parts = [np.asarray(split.states[rows], np.float32)]
    if split.object_positions is not None:
        parts.append(np.asarray(split.object_positions[rows], np.float32))
    return np.concatenate(parts, axis=-1)


def load_probe(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> StateProbe:
    """A `StateProbe` in eval mode from a checkpoint folder or the shipped name `probe-default`."""
    folder = resolve_checkpoint(name_or_path)
    state_dict, config = load_checkpoint(folder, FAMILY)
    try:
        model_config = ProbeConfig(**config["model"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{folder / 'config.json'}: not a valid probe config ({error})") from error
    probe = StateProbe(model_config)
    load_state_strict(probe, state_dict, folder)
    return probe.to(device).eval()
