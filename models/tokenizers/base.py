"""What every tokenizer shares: the interface, and the input checks behind it.

A tokenizer maps uint8 RGB video (B, T, H, W, 3) to latents (B, T', C, h, w) float32
(continuous) or tokens (B, T', h, w) int64 (discrete) and back. World models, envs and
pre-encoding only see this interface, so the built-in autoencoder and the Cosmos
adapter are interchangeable. Bad input fails here, once, with the expected values named.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

KINDS = ("continuous", "discrete")


class Tokenizer(nn.Module):
    """Base of all tokenizers; subclasses set the attributes and implement `_encode`/`_decode`.

    Attributes: `kind` ("continuous" | "discrete"), `temporal_compression`,
    `spatial_compression`, `image_size` (H, W), `latent_channels` (continuous) or
    `vocab_size` (discrete).
    """

    kind: str
    temporal_compression: int
    spatial_compression: int
    image_size: tuple[int, int]
    latent_channels: int | None = None
    vocab_size: int | None = None

    @property
    def device(self) -> torch.device:
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @property
    def latent_grid(self) -> tuple[int, int]:
        """(h, w) of one latent frame."""
        height, width = self.image_size
        return height // self.spatial_compression, width // self.spatial_compression

    def num_latent_frames(self, num_frames: int) -> int:
        """T' for T input frames (causal video tokenizers keep the first frame alone)."""
        if self.temporal_compression == 1:
            return num_frames
        return 1 + (num_frames - 1) // self.temporal_compression

    def num_frames(self, num_latent_frames: int) -> int:
        """T decoded from T' latent frames."""
        if self.temporal_compression == 1:
            return num_latent_frames
        return 1 + (num_latent_frames - 1) * self.temporal_compression

    @torch.no_grad()
    def encode(self, frames) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) torch or numpy -> latents (B, T', C, h, w) float32 | tokens (B, T', h, w) int64."""
        frames = check_frames(frames, self.image_size, self.temporal_compression).to(self.device)
        return self._encode(frames)

    @torch.no_grad()
    def decode(self, latents) -> torch.Tensor:
        """latents (B, T', C, h, w) | tokens (B, T', h, w) -> uint8 frames (B, T, H, W, 3)."""
        if self.kind == "continuous":
            latents = check_latents(latents, self.latent_channels, self.latent_grid).to(self.device)
        else:
            latents = check_tokens(latents, self.vocab_size, self.latent_grid).to(self.device)
        return self._decode(latents)

    @torch.no_grad()
    def decode_digits(self, digits) -> torch.Tensor:
        """FSQ digits (B, T', h, w, d), fractional allowed -> uint8 frames (B, T, H, W, 3).

        Decodes a Masked-HWM "mean" readout (expected digits) through the FSQ code grid's
        affine map, so off-grid points decode between their neighbours.
        """
        levels = getattr(self, "fsq_levels", None)
        if levels is None:
            raise ValueError(f"{type(self).__name__} cannot decode FSQ digits (only the built-in FSQ tokenizer can); "
                             "decode token ids with decode()")
        digits = _as_tensor(digits, "digits")
        expected = f"(B, T', {self.latent_grid[0]}, {self.latent_grid[1]}, {len(levels)}) floats in [0, level - 1]"
        shape = (*self.latent_grid, len(levels))
        if not digits.is_floating_point() or digits.ndim != 5 or tuple(digits.shape[2:]) != shape:
            raise ValueError(f"digits must be {expected}, got {tuple(digits.shape)} {digits.dtype}")
        digits = digits.float().to(self.device)
        top = torch.tensor([level - 1 for level in levels], dtype=torch.float32, device=digits.device)
        if not torch.isfinite(digits).all() or (digits < 0).any() or (digits > top).any():
            raise ValueError(f"digits must be finite and within [0, level - 1] for levels {list(levels)}")
        return self._decode_digits(digits)

    def _decode_digits(self, digits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """The facts a pre-encoded data set records about the tokenizer that made it."""
        info = {
            "kind": self.kind,
            "temporal_compression": self.temporal_compression,
            "spatial_compression": self.spatial_compression,
            "image_size": list(self.image_size),
        }
        if self.kind == "continuous":
            info["latent_channels"] = self.latent_channels
        else:
            info["vocab_size"] = self.vocab_size
        return info


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if not array.flags.writeable:  # read-only memmaps of a data set: torch wants writable memory
            array = array.copy()
        return torch.from_numpy(array)
    if isinstance(value, torch.Tensor):
        return value
    raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")


def check_frames(frames, image_size: tuple[int, int], temporal_compression: int = 1) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) at the tokenizer's resolution; T = 1 + k * temporal_compression."""
    frames = _as_tensor(frames, "frames")
    height, width = image_size
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 RGB in [0, 255], got dtype {frames.dtype}")
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (B, T, {height}, {width}, 3), got {tuple(frames.shape)}")
    if tuple(frames.shape[2:4]) != (height, width):
        raise ValueError(
            f"frames are {frames.shape[2]}x{frames.shape[3]} but this tokenizer expects {height}x{width} "
            f"(shape (B, T, {height}, {width}, 3)); resize the data or use a tokenizer trained at that size"
        )
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise ValueError(f"frames are empty: shape {tuple(frames.shape)}")
    if temporal_compression > 1 and (frames.shape[1] - 1) % temporal_compression:
        raise ValueError(
            f"this tokenizer compresses time by {temporal_compression}: the number of frames must be "
            f"1 + {temporal_compression}k (1, {1 + temporal_compression}, {1 + 2 * temporal_compression}, ...), "
            f"got {frames.shape[1]}"
        )
    return frames


def check_latents(latents, channels: int, grid: tuple[int, int]) -> torch.Tensor:
    """Finite float (B, T', C, h, w) latents, returned as float32."""
    latents = _as_tensor(latents, "latents")
    expected = f"(B, T', {channels}, {grid[0]}, {grid[1]})"
    if not latents.is_floating_point():
        raise ValueError(f"latents must be floating point {expected}, got dtype {latents.dtype}")
    if latents.ndim != 5 or tuple(latents.shape[2:]) != (channels, *grid):
        raise ValueError(f"latents must have shape {expected}, got {tuple(latents.shape)}")
    latents = latents.float()
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or inf")
    return latents


def check_tokens(tokens, vocab_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """Integer (B, T', h, w) tokens in [0, vocab_size), returned as int64."""
    tokens = _as_tensor(tokens, "tokens")
    expected = f"(B, T', {grid[0]}, {grid[1]})"
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be integers {expected} in [0, {vocab_size}), got dtype {tokens.dtype}")
    if tokens.ndim != 4 or tuple(tokens.shape[2:]) != tuple(grid):
        raise ValueError(f"tokens must have shape {expected}, got {tuple(tokens.shape)}")
    tokens = tokens.long()
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"tokens must lie in [0, {vocab_size}), got values in [{int(tokens.min())}, {int(tokens.max())}]"
        )
    return tokens


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1] (the range networks train in)."""
    return frames.movedim(-1, -3).float().div(127.5).sub(1.0)


def unit_to_frames(images: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3), rounded and clamped."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)


def inference_autocast(device: torch.device):
    """The caller's precision (`models.precision.autocast`) when it chose one; else bf16 autocast on
    CUDA (fast, and Cosmos ships bf16 weights) and plain fp32 elsewhere."""
    from models.precision import model_autocast

    return model_autocast(device)
