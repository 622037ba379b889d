"""A pixel loss for Masked-HWM training: the model's one-step mean readout, decoded, vs the true frame.

Cross-entropy scores each FSQ digit on its own; what the user sees is the decoder's picture of
the expected digits (`readout="mean"`). Here that picture enters the loss: with every future
token masked and the true past given (one-step decoding's case), the expected digits of the
factorised head go through a frozen FSQ decoder and the squared error to the frame that truly
followed is added, `weight` times, to the masked cross-entropy. The decoder is frozen and its
encoder must be the one that encoded the data, so tokens stay valid; the trained model carries
that tokenizer, the one it was taught to be decoded by. A decoder fitted to the model's
readouts first (`hwm train readout-decoder`) is the intended partner (README).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.masked import masked_objective
from models.masked.maskgit import expected_digits
from models.tokenizers.autoencoder import ConvTokenizer, psnr_of_images
from models.tokenizers.base import frames_to_unit
from models.data.hwm_format import HWMDataset
from models.data.windows import WindowDataset


@dataclass
class PixelLossConfig:
    """`pixel` section of a Masked-HWM preset; weight 0 = cross-entropy only."""

    weight: float = 0.0  # times the mean squared error in [-1, 1] pixel units (MSE ~0.02 at 23 dB)
    tokenizer: str = ""  # FSQ tokenizer folder whose decoder scores the readout ("" = the data's tokenizer)


class WindowsWithFrames(Dataset):
    """A token WindowDataset over an hwm-v1 split whose items also carry `future_frames` (F, H, W, 3) uint8."""

    def __init__(self, windows: WindowDataset):
        if not isinstance(windows.split, HWMDataset) or windows.source != "tokens":
            raise ValueError(f"{windows.split.path}: a pixel loss needs an hwm-v1 split of raw frames with "
                             "pre-encoded tokens (a 1X tokenized split has no frames to compare with)")
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        item = self.windows[index]
        first = item["start"] + self.windows.num_past * self.windows.frame_stride
        rows = first + self.windows.frame_stride * np.arange(self.windows.num_future)
        item["future_frames"] = torch.from_numpy(np.asarray(self.windows.split.frames[rows]))
        return item


def load_pixel_tokenizer(path: str | Path, data_tokenizer_dir: Path | None, levels) -> ConvTokenizer:
    """The frozen FSQ tokenizer of the pixel loss; its encoder and levels must be the data's."""
    if data_tokenizer_dir is None:
        raise ValueError("a pixel loss needs the tokenizer that encoded the data beside its tokens "
                         "(tokens_tokenizer/, written by hwm data encode)")
    data_tokenizer = ConvTokenizer.from_checkpoint(data_tokenizer_dir)
    tokenizer = ConvTokenizer.from_checkpoint(path) if path else data_tokenizer
    if tokenizer.fsq_levels != list(levels or []):
        raise ValueError(f"pixel.tokenizer={path}: FSQ levels {tokenizer.fsq_levels}, the tokens' are {levels}")
    ours, theirs = tokenizer.encoder.state_dict(), data_tokenizer.encoder.state_dict()
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k], theirs[k]) for k in ours):
        raise ValueError(f"pixel.tokenizer={path}: its encoder is not the one that encoded the data "
                         f"({data_tokenizer_dir}); only a decoder fitted with the encoder frozen keeps the tokens valid")
    return tokenizer.eval().requires_grad_(False)


def decoded_readout(model, tokenizer: ConvTokenizer, batch) -> torch.Tensor:
    """Images (B*F, 3, H, W) in [-1, 1]: the one-step mean readout of the whole future, decoded (differentiable)."""
    future = batch["future_tokens"]
    mask = torch.ones(future.shape, dtype=torch.bool, device=future.device)
    logits = model(batch["past_tokens"], batch["past_actions"], torch.zeros_like(future), batch["future_actions"], mask)
    digits = expected_digits(logits, getattr(model, "_orig_mod", model).levels)  # (B, F, h, w, d)
    codes = tokenizer.fsq.digits_to_codes(digits).flatten(0, 1).movedim(-1, 1)
    return tokenizer.decoder(codes).float()


def pixel_objective(tokenizer: ConvTokenizer, weight: float):
    """objective(model, batch) -> (masked cross-entropy + weight * readout MSE, metrics)."""
    if not weight > 0:
        raise ValueError(f"pixel.weight must be > 0 for a pixel loss, got {weight}")

    def objective(model, batch):
        cross_entropy, metrics = masked_objective(model, batch)
        decoder_device = next(tokenizer.decoder.parameters()).device
        if decoder_device != cross_entropy.device:
            tokenizer.to(cross_entropy.device)
        images = frames_to_unit(batch["future_frames"].flatten(0, 1))
        decoded = decoded_readout(model, tokenizer, batch)
        mse = (decoded - images).square().mean()
        metrics.update(cross_entropy=float(cross_entropy.detach()), readout_psnr=psnr_of_images(decoded.detach(), images))
        return cross_entropy + weight * mse, metrics

    return objective


__all__ = ["PixelLossConfig", "WindowsWithFrames", "load_pixel_tokenizer", "decoded_readout", "pixel_objective"]
