"""Fit a Masked-HWM's FSQ decoder to the model's own mean readouts.

The mean readout (`MaskedHWM.predict(readout="mean")`) gives each token's expected FSQ
digits: points between the code grid's, where the decoder, fitted to the grid points of
real frames, was never shown what to draw. Here it is shown: the model's readouts of the
next frame of training windows, each paired with the frame that truly followed, and in the
same batches clean tokens with their frames, so that token decoding holds. The encoder is
frozen, so tokens, data sets encoded with them and the world model stay valid; only the
decoder that `decode_digits` and `decode` run changes. The result is a copy of the world
model carrying the fitted tokenizer (`<out>/world_model`), scored with `hwm eval model
--readout mean`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from models.checkpoint import frame_stride, load_checkpoint, read_config, save_checkpoint
from models.loading import load_world_model_and_tokenizer, nested_tokenizer_dir
from models.masked import MaskedHWM
from models.tokenizers.autoencoder import ConvTokenizer, psnr_of_images
from models.tokenizers.base import frames_to_unit
from train.config import config_name, default_run_dir, load_config
from models.data.hwm_format import HWMDataset
from models.data.windows import WindowDataset
from train.tokenizer_training import open_training_splits
from train.trainer import TrainConfig, Trainer, check_same_run, run_config

PRESET_FAMILY = "readout"
WORLD_MODEL_DIR = "world_model"


@dataclass
class ReadoutDecoderConfig:
    """Schema of `train/configs/readout/*.yaml`."""

    prediction_fraction: float = 0.5  # share of training samples decoded from the model's readout (the rest: clean tokens)
    window_stride: int = 2  # read out every k-th training window (neighbours are near duplicates)
    predict_batch_size: int = 128  # windows per world-model call while reading out
    train: TrainConfig = field(default_factory=TrainConfig)


class ReadoutDataset(torch.utils.data.Dataset):
    """{"digits": float32 (h, w, d) readout, "tokens": int64 (h, w), "frames": uint8 (H, W, 3)} of the frame it predicts."""

    def __init__(self, split: HWMDataset, digits: np.ndarray, frame_index: np.ndarray):
        if len(digits) != len(frame_index):
            raise ValueError(f"{len(digits)} readouts for {len(frame_index)} frames")
        self.split, self.digits, self.frame_index = split, digits, frame_index

    def __len__(self) -> int:
        return len(self.frame_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame = int(self.frame_index[index])
        return {
            "digits": torch.from_numpy(self.digits[index].astype(np.float32)),
            "tokens": torch.from_numpy(np.array(self.split.tokens[frame], dtype=np.int64)),
            "frames": torch.from_numpy(np.array(self.split.frames[frame])),
        }


@torch.no_grad()
def mean_readouts(model, split: HWMDataset, frame_stride: int, window_stride: int = 1, batch_size: int = 128,
                  steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(digits (N, h, w, d) float16, frame index (N,)): the model's mean readout of the frame after
    every `window_stride`-th window of `split` (its pre-encoded tokens), and that frame's row in the split.
    frame_stride: data frames per latent frame, the checkpoint's (`models.checkpoint.frame_stride`);
    steps: MaskGIT steps, None = the checkpoint's default (what `hwm eval model` uses)."""
    windows = WindowDataset(split, num_past=model.num_past, num_future=1, source="tokens", frame_stride=frame_stride)
    chosen = np.arange(0, len(windows), window_stride)
    if len(chosen) == 0:
        raise ValueError(f"{split.path}: no window of {model.num_past + 1} frames to read out")
    digits, frames = [], []
    for first in tqdm(range(0, len(chosen), batch_size), desc=f"readouts {split.path.name}", unit="batch"):
        items = [windows[int(i)] for i in chosen[first:first + batch_size]]
        batch = {key: torch.stack([item[key] for item in items]) for key in ("past_tokens", "past_actions",
                                                                             "future_actions")}
        readout = model.predict(batch["past_tokens"], batch["past_actions"], batch["future_actions"], steps=steps,
                                readout="mean")
        digits.append(readout[:, 0].cpu().numpy().astype(np.float16))
        frames.extend(int(item["start"]) + model.num_past * frame_stride for item in items)  # the future frame's row
    return np.concatenate(digits), np.asarray(frames, dtype=np.int64)


def readout_objective(prediction_fraction: float):
    """objective(tokenizer, batch) -> (MSE, metrics): training decodes a readout for `prediction_fraction`
    of the samples and clean tokens for the rest; validation reports both PSNRs."""

    def objective(tokenizer: ConvTokenizer, batch: dict[str, torch.Tensor]):
        images = frames_to_unit(batch["frames"])
        readout = tokenizer.fsq.digits_to_codes(batch["digits"].float())  # (B, h, w, d)
        clean = tokenizer.fsq.indices_to_codes(batch["tokens"])
        if tokenizer.training:
            chosen = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < prediction_fraction
            decoded = tokenizer.decoder(torch.where(chosen, readout, clean).movedim(-1, 1)).float()
            return (decoded - images).square().mean(), {"psnr": psnr_of_images(decoded.detach(), images)}
        from_readout = tokenizer.decoder(readout.movedim(-1, 1)).float()
        from_tokens = tokenizer.decoder(clean.movedim(-1, 1)).float()
        loss = (from_readout - images).square().mean()
        return loss, {"psnr_readout": psnr_of_images(from_readout, images),
                      "psnr_tokens": psnr_of_images(from_tokens, images)}

    return objective


def train_readout_decoder(checkpoint: str | os.PathLike, data_dir: str | os.PathLike,
                          out_dir: str | os.PathLike | None = None, config: str | os.PathLike = "default",
                          overrides=()) -> Path:
    """Fit `checkpoint`'s decoder to its readouts on `data_dir` (tokens pre-encoded with its tokenizer);
    return `out_dir/world_model` (default runs/readout-decoder-<config>), the world model with the
    fitted tokenizer inside."""
    settings = load_config(ReadoutDecoderConfig, PRESET_FAMILY, config, overrides)
    if not 0.0 <= settings.prediction_fraction <= 1.0:
        raise ValueError(f"prediction_fraction must be in [0, 1], got {settings.prediction_fraction}")
    if settings.window_stride < 1 or settings.predict_batch_size < 1:
        raise ValueError(f"window_stride and predict_batch_size must be >= 1, got {settings.window_stride} "
                         f"and {settings.predict_batch_size}")
    model_dir, model, tokenizer = load_world_model_and_tokenizer(checkpoint)
    if not isinstance(model, MaskedHWM) or not model.config.factorized_head:
        raise ValueError(f"{checkpoint}: a readout decoder needs a Masked-HWM with a factorised head "
                         "(model.factorized_head=true), whose mean readout it decodes")
    tokenizer_dir = nested_tokenizer_dir(model_dir)
    if not isinstance(tokenizer, ConvTokenizer) or tokenizer.fsq_levels != model.config.fsq_levels:
        raise ValueError(f"{tokenizer_dir}: expected an FSQ tokenizer with levels {model.config.fsq_levels} "
                         f"(the model's), got {getattr(tokenizer, 'fsq_levels', None)}")
    out_dir = Path(out_dir or default_run_dir("readout-decoder", config_name(config)))
    # a run fits one world model's decoder: resuming it for another would mix two fits
    identity = {"world_model": str(Path(model_dir).resolve())}
    check_same_run(out_dir, run_config(tokenizer.checkpoint_config(), identity))  # before the readouts
    train_split, val_split = open_training_splits(data_dir)
    for split in (train_split, val_split):
        if split is not None and split.tokens is None:
            raise ValueError(f"{split.path}: no pre-encoded tokens; run `hwm data encode --tokenizer "
                             f"{tokenizer_dir} --data {data_dir}` first")
    datasets = {}
    model_frame_stride = frame_stride(read_config(model_dir), model_dir / "config.json")
    for name, split in (("train", train_split), ("val", val_split)):
        if split is not None:
            # validation only tracks progress: a quarter of its windows at most is plenty
            window_stride = settings.window_stride if name == "train" else max(settings.window_stride, 4)
            datasets[name] = ReadoutDataset(split, *mean_readouts(model, split, model_frame_stride, window_stride,
                                                                  settings.predict_batch_size))
    tokenizer.encoder.requires_grad_(False)  # tokens stay bit-identical
    print(f"readout decoder for {model_dir}: {len(datasets['train'])} training readouts"
          + (f", {len(datasets['val'])} validation" if "val" in datasets else "") + f"; -> {out_dir}")
    trainer = Trainer(settings.train, tokenizer, readout_objective(settings.prediction_fraction), datasets["train"],
                      out_dir, tokenizer.checkpoint_config(), val_data=datasets.get("val"), identity=identity)
    final = trainer.fit()
    state_dict, model_config = load_checkpoint(model_dir)
    return save_checkpoint(out_dir / WORLD_MODEL_DIR, state_dict, model_config, extra_files={"tokenizer": final})
