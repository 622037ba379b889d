"""Training the built-in tokenizer: single frames, a reconstruction loss, the shared Trainer.

The preset (`train/configs/tokenizer/{tiny,default}.yaml`) holds the architecture, the loss
weights and the optimisation knobs; `hwm train tokenizer` picks the bottleneck with
`--quantizer` and takes the image size from the data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.paths import require_folder
from models.tokenizers.autoencoder import QUANTIZERS, AutoencoderConfig, ConvTokenizer, psnr_of_images
from models.tokenizers.base import frames_to_unit
from train.config import config_name, default_run_dir, load_config
from models.data.hwm_format import METADATA_FILE, HWMDataset
from train.trainer import TrainConfig, Trainer

PRESET_FAMILY = "tokenizer"


@dataclass
class ReconstructionLoss:
    """Weights of the per-pixel terms (images in [-1, 1])."""

    l1: float = 1.0  # robust, keeps edges; the main term
    mse: float = 0.0  # what PSNR measures
    gradient: float = 0.0  # L1 between image gradients: the texture detail a pixel loss averages away


@dataclass
class TokenizerTrainingConfig:
    """Schema of `train/configs/tokenizer/*.yaml`."""

    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    loss: ReconstructionLoss = field(default_factory=ReconstructionLoss)
    flip_augment: bool = True  # mirror frames left-right at random: twice the views of a small data set
    # Train the decoder alone (with train.init_from): the latents stay bit-identical, so world
    # models trained on them and data sets encoded with them stay valid while decoding improves.
    freeze_encoder: bool = False
    # FSQ only: feed the decoder, for `code_noise_fraction` of the samples, digits with Gaussian
    # noise of std `code_noise` (in digit units) added, so it learns to decode a world model's
    # uncertain, off-grid predictions (Masked-HWM's mean readout) to the average frame they allow.
    code_noise: float = 0.0
    code_noise_fraction: float = 0.5
    train: TrainConfig = field(default_factory=TrainConfig)


class FrameDataset(torch.utils.data.Dataset):
    """Single frames of an hwm-v1 split, {"frames": uint8 (H, W, 3)}: a per-frame tokenizer sees no time."""

    def __init__(self, split: HWMDataset):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"frames": torch.from_numpy(np.array(self.split.frames[index]))}


def noisy_codes(model: ConvTokenizer, images: torch.Tensor, noise: float, fraction: float) -> torch.Tensor:
    """FSQ codes (B, d, h, w) of images, with N(0, noise) added to the digits of `fraction` of the
    samples (clamped to the digit range; the others stay on the grid)."""
    codes = model.bottleneck(images).movedim(1, -1)  # (B, h, w, d) grid points
    digits = (codes + 1.0) * ((model.fsq.levels - 1) / 2.0)  # on the grid; differentiable for the encoder
    noisy = (digits + noise * torch.randn_like(digits)).clamp(min=torch.zeros_like(model.fsq.levels),
                                                             max=model.fsq.levels - 1)
    chosen = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < fraction
    return model.fsq.digits_to_codes(torch.where(chosen, noisy, digits)).movedim(-1, 1)


def reconstruction_objective(loss: ReconstructionLoss, flip_augment: bool, code_noise: float = 0.0,
                             code_noise_fraction: float = 0.5):
    """objective(model, batch) -> (loss, {"psnr": dB}) for the Trainer."""

    def objective(model: ConvTokenizer, batch: dict[str, torch.Tensor]):
        images = frames_to_unit(batch["frames"])  # (B, H, W, 3) uint8 -> (B, 3, H, W) in [-1, 1]
        if flip_augment and model.training:
            flip = torch.rand(images.shape[0], device=images.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        if code_noise > 0 and model.training:
            reconstruction = model.decoder(noisy_codes(model, images, code_noise, code_noise_fraction)).float()
        else:
            reconstruction = model(images).float()
        error = reconstruction - images
        total = loss.l1 * error.abs().mean()
        if loss.mse:
            total = total + loss.mse * error.square().mean()
        if loss.gradient:
            dy = error[..., 1:, :] - error[..., :-1, :]
            dx = error[..., :, 1:] - error[..., :, :-1]
            total = total + loss.gradient * (dy.abs().mean() + dx.abs().mean())
        return total, {"psnr": psnr_of_images(reconstruction.detach(), images)}

    return objective


def open_training_splits(data_dir: str | os.PathLike) -> tuple[HWMDataset, HWMDataset | None]:
    """(train, val or None): a data set root with train/ (+ val/), or one split folder."""
    data_dir = require_folder(data_dir, "data")
    if (data_dir / METADATA_FILE).is_file():
        return HWMDataset(data_dir), None
    if not (data_dir / "train" / METADATA_FILE).is_file():
        raise FileNotFoundError(
            f"{data_dir}: expected an hwm-v1 data set (train/ and val/ split folders with {METADATA_FILE}) "
            "or one split folder; `hwm data sim` makes one"
        )
    val_dir = data_dir / "val"
    return HWMDataset(data_dir / "train"), HWMDataset(val_dir) if (val_dir / METADATA_FILE).is_file() else None


def tokenizer_config_name(quantizer: str, config: str | os.PathLike) -> str:
    """A tokenizer run's config name: its quantizer, then the preset unless it is `default`
    (so the default runs are named as the shipped tokenizer-continuous and tokenizer-fsq)."""
    preset = config_name(config)
    return quantizer if preset == "default" else f"{quantizer}-{preset}"


def train_tokenizer(data_dir: str | os.PathLike, quantizer: str, config: str | os.PathLike = "default",
                    out_dir: str | os.PathLike | None = None, overrides=()) -> Path:
    """Train the built-in tokenizer on an hwm-v1 data set; return the final checkpoint folder."""
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {QUANTIZERS}, got '{quantizer}'")
    train_split, val_split = open_training_splits(data_dir)
    height, width = int(train_split.metadata["height"]), int(train_split.metadata["width"])
    # the flag picks the bottleneck and the data the image size; user overrides come last
    settings = load_config(TokenizerTrainingConfig, PRESET_FAMILY, config,
                           [f"model.quantizer={quantizer}", f"model.image_size=[{height},{width}]", *overrides])
    model = ConvTokenizer(settings.model)
    if settings.freeze_encoder:
        if not settings.train.init_from:
            raise ValueError("freeze_encoder=true needs train.init_from=CHECKPOINT "
                             "(a random encoder frozen is useless)")
        model.encoder.requires_grad_(False)  # the Trainer optimises only parameters that require grad
    if settings.code_noise < 0 or not 0.0 <= settings.code_noise_fraction <= 1.0:
        raise ValueError(f"code_noise must be >= 0 and code_noise_fraction in [0, 1], got {settings.code_noise} "
                         f"and {settings.code_noise_fraction}")
    if settings.code_noise > 0 and model.fsq is None:
        raise ValueError("code_noise applies to FSQ tokenizers (--quantizer fsq) only")
    out_dir = Path(out_dir or default_run_dir("tokenizer", tokenizer_config_name(quantizer, config)))
    val_text = f", {len(val_split)} validation frames" if val_split is not None else ""
    print(f"tokenizer ({quantizer}): {model.num_parameters() / 1e6:.2f} M parameters, {height}x{width} -> "
          f"{model.latent_grid[0]}x{model.latent_grid[1]}; {len(train_split)} training frames{val_text}; -> {out_dir}"
          + ("; encoder frozen" if settings.freeze_encoder else ""))
    trainer = Trainer(
        settings.train, model,
        reconstruction_objective(settings.loss, settings.flip_augment, settings.code_noise, settings.code_noise_fraction),
        FrameDataset(train_split), out_dir, model.checkpoint_config(),
        val_data=FrameDataset(val_split) if val_split is not None else None,
    )
    return trainer.fit()
