"""The built-in per-frame conv autoencoder: 64x64 RGB -> 8x8 latents, continuous or FSQ.

One network, two bottlenecks: `continuous` squashes C channels with tanh so Flow-HWM
gets unit-scale latents; `fsq` quantizes len(levels) channels to a grid of codes so
Masked-HWM gets tokens. The image end works on pixel-(un)shuffled input: full-resolution
convolutions dominate the cost of small conv nets on CPU, and folding 2x2 pixels into
channels keeps the detail while quartering that cost.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from models.tokenizers.base import Tokenizer, frames_to_unit, inference_autocast, unit_to_frames
from models.tokenizers.fsq import FSQ

QUANTIZERS = ("continuous", "fsq")


@dataclass
class AutoencoderConfig:
    """Architecture of the built-in tokenizer (stored in the checkpoint's config.json)."""

    image_size: list[int] = field(default_factory=lambda: [64, 64])  # (H, W)
    quantizer: str = "continuous"  # "continuous" (Flow) | "fsq" (Masked)
    latent_channels: int = 8  # continuous only; FSQ uses len(fsq_levels) channels
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # 1,000 codes
    pixel_shuffle: int = 2  # pixels folded into channels at the image end
    channels: list[int] = field(default_factory=lambda: [64, 128, 128])  # width per resolution, fine -> coarse
    res_blocks: int = 1  # per resolution, in encoder and decoder
    bottleneck_blocks: int = 2  # extra residual blocks at the latent resolution
    norm_groups: int = 8  # GroupNorm groups (0 = no normalisation)
    # more residual blocks per resolution in the decoder only, one count per entry of `channels`
    # (fine -> coarse; [] = none): grows a trained decoder (train.init_allow_new=true), since a
    # residual block starts as identity, while its encoder, and so its latents, stay as they are
    decoder_extra_blocks: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got '{self.quantizer}'")
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be [H, W], got {self.image_size}")
        factor = self.spatial_compression
        if any(side % factor for side in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by the spatial compression {factor}")
        if self.norm_groups and any(width % self.norm_groups for width in self.channels):
            raise ValueError(f"channels {self.channels} must be divisible by norm_groups {self.norm_groups}")
        extra = self.decoder_extra_blocks
        if extra and (len(extra) != len(self.channels) or any(int(count) < 0 for count in extra)):
            raise ValueError(f"decoder_extra_blocks must be [] or {len(self.channels)} counts >= 0 (one per entry of "
                             f"channels), got {extra}")

    @property
    def spatial_compression(self) -> int:
        return self.pixel_shuffle * 2 ** (len(self.channels) - 1)

    @property
    def code_channels(self) -> int:
        return self.latent_channels if self.quantizer == "continuous" else len(self.fsq_levels)


def _norm(channels: int, groups: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if groups else nn.Identity()


class ResBlock(nn.Module):
    """norm-SiLU-conv twice plus the input; the second conv starts at zero so each block starts as identity."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths, groups, shuffle = config.channels, config.norm_groups, config.pixel_shuffle
        layers: list[nn.Module] = [nn.PixelUnshuffle(shuffle), nn.Conv2d(3 * shuffle**2, widths[0], 3, padding=1)]
        for level, width in enumerate(widths):
            if level > 0:
                layers.append(nn.Conv2d(widths[level - 1], width, 3, stride=2, padding=1))  # halve H, W
            layers += [ResBlock(width, groups) for _ in range(config.res_blocks)]
        layers += [ResBlock(widths[-1], groups) for _ in range(config.bottleneck_blocks)]
        layers += [_norm(widths[-1], groups), nn.SiLU(), nn.Conv2d(widths[-1], config.code_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # channels-last: 2-3x faster convolutions on CPU (oneDNN), and the fast layout on CUDA too
        images = images.contiguous(memory_format=torch.channels_last)
        return self.layers(images)  # (N, 3, H, W) -> (N, code_channels, h, w)


class Decoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths, groups, shuffle = config.channels[::-1], config.norm_groups, config.pixel_shuffle
        extra_counts = list(config.decoder_extra_blocks or [0] * len(widths))[::-1]  # coarse -> fine, as widths
        layers: list[nn.Module] = [nn.Conv2d(config.code_channels, widths[0], 3, padding=1)]
        layers += [ResBlock(widths[0], groups) for _ in range(config.bottleneck_blocks)]
        self.level_ends: dict[int, int] = {}  # index in `layers` -> the level whose extra blocks follow it
        for level, width in enumerate(widths):
            if level > 0:  # double H, W: conv to 4x channels, then pixel shuffle
                layers += [nn.Conv2d(widths[level - 1], 4 * width, 3, padding=1), nn.PixelShuffle(2)]
            layers += [ResBlock(width, groups) for _ in range(config.res_blocks)]
            self.level_ends[len(layers) - 1] = level
        layers += [_norm(widths[-1], groups), nn.SiLU(), nn.Conv2d(widths[-1], 3 * shuffle**2, 3, padding=1),
                   nn.PixelShuffle(shuffle)]
        self.layers = nn.Sequential(*layers)
        # apart from `layers`, so a decoder without them has the same parameter names as before
        self.extra = nn.ModuleList(
            nn.Sequential(*[ResBlock(width, groups) for _ in range(int(count))])
            for width, count in zip(widths, extra_counts)
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes.contiguous(memory_format=torch.channels_last)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.level_ends:
                x = self.extra[self.level_ends[index]](x)
        return x  # (N, code_channels, h, w) -> (N, 3, H, W), about [-1, 1]


class ConvTokenizer(Tokenizer):
    """Per-frame conv autoencoder behind the common tokenizer interface.

    Training uses `forward(images)` on float images in [-1, 1]; everything else uses
    `encode`/`decode` on uint8 frames.
    """

    temporal_compression = 1
    encode_batch_frames = 256  # frames per network call inside encode/decode (bounds memory)

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.image_size = tuple(config.image_size)
        self.spatial_compression = config.spatial_compression
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if config.quantizer == "fsq":
            self.kind = "discrete"
            self.fsq = FSQ(config.fsq_levels)
            self.vocab_size = self.fsq.codebook_size
        else:
            self.kind = "continuous"
            self.fsq = None
            self.latent_channels = config.latent_channels
        self.to(memory_format=torch.channels_last)

    # --- float paths (training) ----------------------------------------------------------

    def bottleneck(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, H, W) in [-1, 1] -> codes (N, code_channels, h, w): tanh latents or FSQ grid points."""
        pre = self.encoder(images)
        if self.fsq is None:
            return torch.tanh(pre)
        return self.fsq(pre.float().movedim(1, -1)).movedim(-1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct images (N, 3, H, W) in [-1, 1]."""
        return self.decoder(self.bottleneck(images))

    # --- uint8 interface ------------------------------------------------------------------

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        batch, time = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*T, H, W, 3)
        outputs = []
        for chunk in flat.split(self.encode_batch_frames):
            with inference_autocast(chunk.device):
                pre = self.encoder(frames_to_unit(chunk))
            pre = pre.float()
            if self.fsq is None:
                outputs.append(torch.tanh(pre))  # (n, C, h, w)
            else:
                outputs.append(self.fsq.codes_to_indices(self.fsq(pre.movedim(1, -1))))  # (n, h, w)
        return torch.cat(outputs).contiguous().unflatten(0, (batch, time))  # (B, T, C, h, w) | (B, T, h, w)

    @property
    def fsq_levels(self) -> list[int] | None:
        return None if self.fsq is None else self.fsq.levels_list

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self._decode_codes(latents if self.fsq is None else self.fsq.indices_to_codes(latents).movedim(-1, 2))

    def _decode_digits(self, digits: torch.Tensor) -> torch.Tensor:
        return self._decode_codes(self.fsq.digits_to_codes(digits).movedim(-1, 2))

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, C, h, w): tanh latents or FSQ code points -> uint8 frames (B, T, H, W, 3)."""
        batch, time = codes.shape[:2]
        flat = codes.flatten(0, 1)
        frames = []
        for chunk in flat.split(self.encode_batch_frames):
            with inference_autocast(chunk.device):
                images = self.decoder(chunk)
            frames.append(unit_to_frames(images))  # (n, H, W, 3) uint8
        return torch.cat(frames).contiguous().unflatten(0, (batch, time))  # (B, T, H, W, 3)

    # --- checkpoints ------------------------------------------------------------------------

    def checkpoint_config(self) -> dict:
        """config.json of a tokenizer checkpoint: family, kind, quantizer, architecture, image size."""
        return {
            "family": "tokenizer",
            "type": "builtin",
            "kind": self.kind,
            "quantizer": self.config.quantizer,
            "image_size": list(self.image_size),
            "model": dataclasses.asdict(self.config),
            **{k: v for k, v in self.describe().items() if k not in ("kind", "image_size")},
        }

    def save(self, directory: str | os.PathLike, extra_config: dict | None = None) -> Path:
        return save_checkpoint(directory, self.state_dict(), {**self.checkpoint_config(), **(extra_config or {})})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "ConvTokenizer":
        state_dict, config = load_checkpoint(path, family="tokenizer")
        if "model" not in config:
            raise ValueError(f"{path}/config.json: no 'model' entry (the autoencoder architecture)")
        try:
            model_config = AutoencoderConfig(**config["model"])
        except TypeError as error:
            raise ValueError(f"{path}/config.json: 'model' does not match AutoencoderConfig ({error})") from error
        if config.get("quantizer", model_config.quantizer) != model_config.quantizer:
            raise ValueError(
                f"{path}/config.json: quantizer '{config.get('quantizer')}' disagrees with "
                f"model.quantizer '{model_config.quantizer}'"
            )
        tokenizer = cls(model_config)
        load_state_strict(tokenizer, state_dict, path)
        return tokenizer.eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def psnr_of_images(reconstruction: torch.Tensor, images: torch.Tensor) -> float:
    """Mean PSNR (dB) of float images in [-1, 1]; a cheap training-time signal, not the eval metric."""
    mse = F.mse_loss(reconstruction.clamp(-1, 1), images, reduction="none").flatten(1).mean(1)
    return float((10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean())
