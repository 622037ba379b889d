"""Run a tokenizer over whole data sets: pre-encoding, and reconstruction quality.

Pre-encoding writes `latents.bin` (continuous) or `tokens.bin` (discrete) beside each
`hwm-v1` split, with a JSON description and a copy of the tokenizer checkpoint, so world
models train without running the encoder per step. Frames are read from the memory map
in batches; nothing is loaded whole.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from models.checkpoint import read_config, resolve_checkpoint
from models.paths import require_folder
from models.tokenizers import Tokenizer, load_tokenizer
from models.data.hwm_format import METADATA_FILE, HWMDataset, write_encoding


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; use --device cpu or auto")
    return device


def split_dirs(data_dir: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The hwm-v1 split folders under `data_dir` (or `data_dir` itself when it is a split)."""
    data_dir = require_folder(data_dir, "data")
    if split is not None:
        data_dir = data_dir / split
        if not (data_dir / METADATA_FILE).is_file():
            raise FileNotFoundError(f"{data_dir}: not an hwm-v1 split (no {METADATA_FILE})")
    if (data_dir / METADATA_FILE).is_file():
        return [data_dir]
    found = sorted(child for child in data_dir.iterdir() if (child / METADATA_FILE).is_file())
    if not found:
        raise FileNotFoundError(f"{data_dir}: no hwm-v1 splits (sub-folders with {METADATA_FILE}) found")
    return found


def check_resolution(split: HWMDataset, tokenizer: Tokenizer) -> None:
    size = (int(split.metadata["height"]), int(split.metadata["width"]))
    if size != tuple(tokenizer.image_size):
        raise ValueError(
            f"{split.path}: frames are {size[0]}x{size[1]} but the tokenizer expects "
            f"{tokenizer.image_size[0]}x{tokenizer.image_size[1]}"
        )


def _frame_batches(split: HWMDataset, batch_size: int, desc: str, limit: int | None = None
                   ) -> Iterator[tuple[int, np.ndarray]]:
    from tqdm.auto import tqdm

    total = len(split) if limit is None else min(limit, len(split))
    with tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True) as progress:
        for start in range(0, total, batch_size):
            frames = np.array(split.frames[start : min(start + batch_size, total)])  # (n, H, W, 3) uint8, a writable copy
            yield start, frames
            progress.update(len(frames))


def encode_split(split_dir: str | os.PathLike, tokenizer: Tokenizer, tokenizer_dir: str | os.PathLike,
                 batch_size: int = 256) -> Path:
    """Encode every frame of one split; returns the written `latents.bin` / `tokens.bin`."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if tokenizer.temporal_compression != 1:
        raise ValueError(
            f"pre-encoding hwm-v1 splits needs a per-frame tokenizer (temporal_compression 1); this one "
            f"compresses time by {tokenizer.temporal_compression}"
        )
    split = HWMDataset(split_dir)
    check_resolution(split, tokenizer)
    kind = "latents" if tokenizer.kind == "continuous" else "tokens"
    tokenizer_dir = resolve_checkpoint(tokenizer_dir)
    config = {**tokenizer.describe(), "checkpoint": read_config(tokenizer_dir)}

    def encoded_batches() -> Iterator[np.ndarray]:
        for _, frames in _frame_batches(split, batch_size, desc=f"encode {split.path.name}"):
            encoded = tokenizer.encode(torch.from_numpy(frames)[None])[0]  # (n, C, h, w) | (n, h, w)
            yield encoded.cpu().numpy()

    return write_encoding(split.path, kind, encoded_batches(), config, tokenizer_dir,
                          temporal_compression=tokenizer.temporal_compression)


def encode_dataset(data_dir: str | os.PathLike, tokenizer_name_or_path: str | os.PathLike,
                   batch_size: int = 256, device: str = "auto", split: str | None = None) -> list[Path]:
    """Encode every split under `data_dir` (or the one named `split`) with one tokenizer."""
    splits = split_dirs(data_dir, split)
    tokenizer_dir = resolve_checkpoint(tokenizer_name_or_path)
    tokenizer = load_tokenizer(tokenizer_dir, device=resolve_device(device))
    return [encode_split(path, tokenizer, tokenizer_dir, batch_size) for path in splits]


@torch.no_grad()
def evaluate_tokenizer(tokenizer: Tokenizer, split_dir: str | os.PathLike, batch_size: int = 256,
                       max_frames: int | None = None) -> dict:
    """Reconstruction quality on raw frames: {"psnr": dB, "ssim": float, "frames": int} (per-frame means)."""
    from train.metrics import psnr, ssim

    if tokenizer.temporal_compression != 1:
        raise ValueError("evaluate_tokenizer runs per frame; this tokenizer compresses time "
                         f"by {tokenizer.temporal_compression}")
    split = HWMDataset(split_dir)
    check_resolution(split, tokenizer)
    psnr_sum, ssim_sum, count = 0.0, 0.0, 0
    for _, frames in _frame_batches(split, batch_size, desc=f"eval {split.path.name}", limit=max_frames):
        target = torch.from_numpy(frames).to(tokenizer.device)
        reconstruction = tokenizer.decode(tokenizer.encode(target[None]))[0]  # (n, H, W, 3) uint8
        psnr_sum += float(psnr(reconstruction, target).double().sum())
        ssim_sum += float(ssim(reconstruction, target).double().sum())
        count += len(frames)
    return {"psnr": psnr_sum / count, "ssim": ssim_sum / count, "frames": count}
