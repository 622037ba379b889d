"""The evaluation protocol of DESIGN.md section 11, one for both world-model families.

For a seeded choice of windows (one per episode, at a seeded position inside it) the model
sees `num_past` encoded context frames and rolls out H latent frames autoregressively with
the TRUE actions; the decoded frames are compared with the RAW frames at each horizon
h = 1..H (PSNR, SSIM, sharpness ratio). Next to them, on the same windows:

- copy-last-frame: the last context frame repeated (what a model must beat to be useful);
- tokenizer reconstruction: decode(encode(true frames)), the best the model can reach;
- delta-PSNR: PSNR with the true actions minus PSNR with the actions of another episode
  (the batch of windows rolled by one), Genie's controllability measure (must be > 0).
  Both rollouts use the same random seed, so the difference measures the actions only.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train import metrics
from models import tables
from models.data.hwm_format import HWMDataset
from models.data.windows import WindowDataset

METRIC_KEYS = ("psnr", "ssim", "sharpness", "copy_last_psnr", "copy_last_ssim", "recon_psnr", "recon_ssim",
               "recon_sharpness", "other_actions_psnr", "delta_psnr")


def select_windows(windows: WindowDataset, episodes: int, seed: int) -> list[int]:
    """Indices of up to `episodes` windows, one per episode, chosen with `seed`.

    Episodes are drawn without replacement and returned in episode order; the window
    inside each episode is drawn too, so the positions are fixed by the seed alone.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    by_segment: dict[tuple[int, int], list[int]] = {}
    for index in range(len(windows)):
        timeline, first = windows.locate(index)
        segment = int(timeline.segment_of(np.array([first]))[0])
        by_segment.setdefault((timeline.shard, segment), []).append(index)
    rng = np.random.default_rng(seed)
    keys = sorted(by_segment)
    chosen = sorted(rng.choice(len(keys), size=min(episodes, len(keys)), replace=False).tolist())
    return [by_segment[keys[i]][int(rng.integers(len(by_segment[keys[i]])))] for i in chosen]


def _tokenizer_weights_digest(folder: Path | None) -> str | None:
    if folder is None or not (folder / "model.safetensors").is_file():
        return None
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def pre_encoded_context(split, tokenizer, tokenizer_dir: str | os.PathLike | None = None):
    """The split's pre-encoded latents/tokens if they fit `tokenizer`, else None (encode on the fly).

    They fit when kind and shape match the tokenizer and, where both the split's copy of its
    tokenizer and `tokenizer_dir` are at hand, the weights are the same file.
    """
    if not isinstance(split, HWMDataset):
        return None
    kind = "latents" if tokenizer.kind == "continuous" else "tokens"
    array, info = (split.latents, split.latents_info) if kind == "latents" else (split.tokens, split.tokens_info)
    if array is None or int(info.get("temporal_compression", 1)) != 1:
        return None
    grid = tuple(tokenizer.latent_grid)
    expected = (tokenizer.latent_channels, *grid) if kind == "latents" else grid
    if tuple(array.shape[1:]) != tuple(expected):
        return None
    if tokenizer_dir is not None:
        ours = _tokenizer_weights_digest(Path(tokenizer_dir))
        theirs = _tokenizer_weights_digest(split.encoding_tokenizer_dir(kind))
        if ours is not None and theirs is not None and ours != theirs:
            return None
    return array


@torch.no_grad()
def evaluate_world_model(
    model,
    tokenizer,
    split,
    horizon: int,
    *,
    episodes: int = 32,
    seed: int = 0,
    steps: int | None = None,
    cfg_scale: float | None = None,
    temperature: float | None = None,
    readout: str | None = None,
    batch_size: int = 16,
    frame_stride: int = 1,
    action_pooling: str = "mean",
    tokenizer_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the protocol; returns lists per horizon (keys METRIC_KEYS) plus `horizons`, `episodes`, ...

    Also per horizon: `gap_stderr`, the standard error of the mean PSNR gap to copy-last over the
    windows, and `win_fraction`, the share of windows where the model beats copy-last; and
    `window_psnr`: per-window PSNR (window x horizon) of the model, copy-last and reconstruction.

    `model` implements the common world-model API (`num_past`, `rollout`); `tokenizer` the
    common tokenizer interface (per frame: temporal_compression 1); `split` is a split with
    raw frames (an `HWMDataset`, a 1X raw split, or a path to one). `readout` ("tokens" or
    "mean") is Masked-HWM's (see `MaskedHWM.predict`); None means the checkpoint's `model.readout`.
    """
    from tqdm.auto import tqdm

    if isinstance(split, (str, os.PathLike)):
        from models.data.open import open_split

        split = open_split(split)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if readout is not None and getattr(model, "family", None) != "masked":
        raise ValueError(f"readout is a Masked-HWM option; this model's family is {getattr(model, 'family', None)!r}")
    if readout is None and getattr(model, "family", None) == "masked":
        readout = getattr(model.config, "readout", "tokens")
    if tokenizer.temporal_compression != 1:
        raise ValueError(
            f"the evaluation protocol needs a per-frame tokenizer (temporal_compression 1), "
            f"got temporal_compression {tokenizer.temporal_compression}"
        )
    num_past = int(model.num_past)
    windows = WindowDataset(split, num_past=num_past, num_future=horizon, source="frames",
                            frame_stride=frame_stride, action_pooling=action_pooling)
    sample = windows[0]
    frame_size = tuple(sample["past_frames"].shape[1:3])
    if frame_size != tuple(tokenizer.image_size):
        raise ValueError(f"{split.path}: frames are {frame_size[0]}x{frame_size[1]}, the tokenizer takes "
                         f"{tokenizer.image_size[0]}x{tokenizer.image_size[1]}")
    if sample["past_actions"].shape[-1] != model.action_dim:
        raise ValueError(f"{split.path}: actions have {sample['past_actions'].shape[-1]} dims, "
                         f"the model takes action_dim={model.action_dim}")
    chosen = select_windows(windows, episodes, seed)
    count = len(chosen)
    pre_encoded = pre_encoded_context(split, tokenizer, tokenizer_dir)
    device = next(iter(model.parameters()), torch.empty(0)).device
    # actions of all windows up front (small); frames are read batch by batch below
    described = [windows[i] for i in chosen]
    future_actions = torch.stack([item["future_actions"] for item in described])  # (N, horizon, A)
    other_actions = future_actions.roll(1, dims=0)  # window i gets the future actions of window i-1
    window_list = [[item["segment"], item["start"]] for item in described]
    del described

    sums = {key: torch.zeros(horizon, dtype=torch.float64) for key in
            ("ssim", "grad_pred", "grad_true", "copy_last_ssim", "recon_ssim", "grad_recon", "other_actions_psnr")}
    # PSNR is kept per window (its mean is the reported PSNR): a gap to copy-last needs its spread too
    window_psnr = {key: [] for key in ("psnr", "copy_last_psnr", "recon_psnr")}  # (b, horizon) per batch
    began = time.perf_counter()
    batches = range(0, count, batch_size)
    for first in tqdm(batches, desc="eval", unit="batch", disable=not progress):
        part = slice(first, min(first + batch_size, count))
        size = part.stop - part.start
        items = [windows[i] for i in chosen[part]]
        past_frames = torch.stack([item["past_frames"] for item in items])  # (b, P, H, W, 3) uint8
        truth = torch.stack([item["future_frames"] for item in items])  # (b, horizon, H, W, 3) uint8
        past_actions = torch.stack([item["past_actions"] for item in items]).to(device)  # (b, P, A)
        # context latents: pre-encoded at the context frames' raw indices, or encoded now
        if pre_encoded is not None:
            rows = np.array([[item["start"] + frame_stride * t for t in range(num_past)] for item in items])
            context = torch.from_numpy(np.asarray(pre_encoded[rows.reshape(-1)]))
            context = context.float() if tokenizer.kind == "continuous" else context.long()
            context = context.view(size, num_past, *context.shape[1:])
        else:
            context = tokenizer.encode(past_frames)
        context = context.to(device)
        options = dict(steps=steps, cfg_scale=cfg_scale, temperature=temperature)
        if readout is not None:
            options["readout"] = readout
        # the same seed for both rollouts: delta-PSNR then measures the actions, not the noise
        true_rollout = model.rollout(context, past_actions, future_actions[part].to(device),
                                     generator=_generator(device, seed + first), **options)
        other_rollout = model.rollout(context, past_actions, other_actions[part].to(device),
                                      generator=_generator(device, seed + first), **options)
        decode = tokenizer.decode_digits if readout == "mean" else tokenizer.decode
        predicted = decode(true_rollout).cpu()  # (b, horizon, H, W, 3) uint8
        predicted_other = decode(other_rollout).cpu()
        reconstructed = tokenizer.decode(tokenizer.encode(truth)).cpu()
        last = past_frames[:, -1:].expand_as(truth)  # copy-last-frame baseline

        def per_horizon(values: torch.Tensor) -> torch.Tensor:  # (b * horizon,) -> sums over b, (horizon,)
            return values.double().view(size, horizon).sum(0)

        flat_truth = truth.reshape(-1, *truth.shape[2:])
        for key, frames in (("", predicted), ("copy_last_", last), ("recon_", reconstructed)):
            flat = frames.reshape(-1, *frames.shape[2:])
            window_psnr[key + "psnr"].append(metrics.psnr(flat, flat_truth).double().view(size, horizon))
            sums[key + "ssim"] += per_horizon(metrics.ssim(flat, flat_truth))
        sums["other_actions_psnr"] += per_horizon(metrics.psnr(predicted_other.reshape(flat_truth.shape), flat_truth))
        sums["grad_pred"] += per_horizon(metrics.gradient_magnitude(predicted.reshape(flat_truth.shape)))
        sums["grad_recon"] += per_horizon(metrics.gradient_magnitude(reconstructed.reshape(flat_truth.shape)))
        sums["grad_true"] += per_horizon(metrics.gradient_magnitude(flat_truth))

    per_window = {key: torch.cat(parts) for key, parts in window_psnr.items()}  # (count, horizon)
    means = {key: value / count for key, value in sums.items()}
    means.update({key: value.mean(0) for key, value in per_window.items()})
    grad_true = means["grad_true"].clamp_min(1e-8)
    results: dict[str, Any] = {
        "horizons": list(range(1, horizon + 1)),
        "psnr": means["psnr"],
        "ssim": means["ssim"],
        "sharpness": means["grad_pred"] / grad_true,
        "copy_last_psnr": means["copy_last_psnr"],
        "copy_last_ssim": means["copy_last_ssim"],
        "recon_psnr": means["recon_psnr"],
        "recon_ssim": means["recon_ssim"],
        "recon_sharpness": means["grad_recon"] / grad_true,
        "other_actions_psnr": means["other_actions_psnr"],
        "delta_psnr": means["psnr"] - means["other_actions_psnr"],
    }
    gap = per_window["psnr"] - per_window["copy_last_psnr"]
    results["gap_stderr"] = gap.std(0) / math.sqrt(count) if count > 1 else [None] * horizon
    results["win_fraction"] = (gap > 0).double().mean(0)
    results["window_psnr"] = {key: value.tolist() for key, value in per_window.items()}
    results = {key: value.tolist() if isinstance(value, torch.Tensor) else value for key, value in results.items()}
    if count < 2:  # rolling one window onto itself compares it with itself
        results["delta_psnr"] = [None] * horizon
        results["other_actions_psnr"] = [None] * horizon
    results.update(
        episodes=count,
        seed=seed,
        num_past=num_past,
        frame_stride=frame_stride,
        steps=steps,
        cfg_scale=cfg_scale,
        temperature=temperature,
        readout=readout,
        context_source="pre-encoded" if pre_encoded is not None else "tokenizer",
        windows=window_list,
        seconds=time.perf_counter() - began,
    )
    return results


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The per-horizon results as a Markdown table (PSNR in dB; delta-PSNR = true - other actions)."""
    rows = [
        [h, _cell(results["psnr"][i], 2), _cell(results["ssim"][i], 3), _cell(results["sharpness"][i], 2),
         _cell(results["copy_last_psnr"][i], 2), _cell(results["copy_last_ssim"][i], 3),
         _cell(results["recon_psnr"][i], 2), _cell(results["recon_ssim"][i], 3), _cell(results["delta_psnr"][i], 2)]
        for i, h in enumerate(results["horizons"])
    ]
    intro = (f"World-model evaluation: {results['episodes']} episodes, seed {results.get('seed', 0)}, "
             f"context {results.get('num_past', '?')} frames ({results.get('context_source', '?')}).")
    columns = ["h", "PSNR", "SSIM", "sharpness", "copy-last PSNR", "copy-last SSIM", "recon PSNR", "recon SSIM",
               "delta-PSNR"]
    return tables.markdown_table(columns, rows, intro=intro) + "\n"
