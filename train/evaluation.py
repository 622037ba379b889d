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

With a **state probe** (`models.probe`, a CNN that reads the robot's state and the objects'
positions off a frame) the same windows are also scored on what the frames show: per horizon
the probe's error on the predicted frames against the state recorded at that frame, in
z-units (|prediction - truth| / the probe's target_std, averaged over targets and per group:
joints, objects), beside copy-last (the probe on the last context frame), the data mean (the
probe's target_mean, no frame at all), the tokenizer's reconstruction of the true frames (the
best a model can show through its decoder) and the true frames (the probe on the real frame: its
ceiling); and the Fréchet distance between the probe features of the predicted frames at h
and those of the real frames at h (is the frame still in distribution; over the windows, so
a noisy estimate for few windows: copy-last's FD shows that floor). PSNR stops telling a
collapsed frame from a good one after a second; these keep measuring up to 64 frames.

**Temporal tokenizers** (Cosmos CV/DV 8x: a chunk of 1 + 8k frames becomes 1 + k latents, the
first for the chunk's first frame alone) run the same protocol in latent time, for both
families through one path (`evaluate_latent_windows`). The windows are the split's
pre-encoded latents or tokens (a 1X v2.0 token split, or latents written beside a split);
horizon h is the h-th predicted latent, and its scores are the means over the raw frames it
covers. A predicted latent is decoded inside its causal chunk: the chunk's earlier latents
(true ones from the data, or the context) go in front of it, so the decoder sees what the
encoder saw. Chunks are read off the data's clock: a window's latents whose last covered raw
frames lie `temporal_compression` apart continue one chunk, any other gap opens a new chunk
(1X: chunk k covers frames 17k..17k+16, its latents end at 17k, 17k+8, 17k+16). The ground
truth is the raw frames at those times, from the split itself (raw MP4 or hwm-v1 frames) or,
for a split of tokens only, from its raw twin (`val_v2.0` -> `val_v2.0_raw`), resized to the
tokenizer's resolution (1X: 512 -> 256 px, area averaging). Copy-last repeats the last raw
frame the context covers; reconstruction decodes the true latents of the same chunks.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train import metrics
from models import tables
from models.data import onex
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


# --- scores ---------------------------------------------------------------------------------

def score_frames(predicted, predicted_other, reconstructed, last, truth, groups: torch.Tensor,
                 num_groups: int) -> dict[str, torch.Tensor]:
    """Frame metrics of n frames (uint8 (n, H, W, 3) each), averaged within `groups` (n,) ->
    {key: (num_groups,) float64}: PSNR/SSIM of prediction, copy-last and reconstruction,
    PSNR with the other episode's actions, and image-gradient magnitudes (sharpness)."""
    counts = torch.bincount(groups, minlength=num_groups).double()

    def mean(values: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, groups, values.double().cpu())
        return total / counts

    scores = {}
    for prefix, frames in (("", predicted), ("copy_last_", last), ("recon_", reconstructed)):
        scores[prefix + "psnr"] = mean(metrics.psnr(frames, truth))
        scores[prefix + "ssim"] = mean(metrics.ssim(frames, truth))
    scores["other_actions_psnr"] = mean(metrics.psnr(predicted_other, truth))
    scores["grad_pred"] = mean(metrics.gradient_magnitude(predicted))
    scores["grad_recon"] = mean(metrics.gradient_magnitude(reconstructed))
    scores["grad_true"] = mean(metrics.gradient_magnitude(truth))
    return scores


class HorizonScores:
    """Per-window scores (window x horizon) summed into the protocol's results."""

    MEAN_KEYS = ("ssim", "copy_last_ssim", "recon_ssim", "other_actions_psnr", "grad_pred", "grad_recon", "grad_true")
    # PSNR is kept per window (its mean is the reported PSNR): a gap to copy-last needs its spread too
    WINDOW_KEYS = ("psnr", "copy_last_psnr", "recon_psnr")

    def __init__(self, horizon: int):
        self.horizon = horizon
        self.sums = {key: torch.zeros(horizon, dtype=torch.float64) for key in self.MEAN_KEYS}
        self.window_psnr: dict[str, list[torch.Tensor]] = {key: [] for key in self.WINDOW_KEYS}
        self.count = 0

    def add(self, scores: dict[str, torch.Tensor]) -> None:
        """scores: key -> (b, horizon) float64 for b windows."""
        for key in self.MEAN_KEYS:
            self.sums[key] += scores[key].sum(0)
        for key in self.WINDOW_KEYS:
            self.window_psnr[key].append(scores[key])
        self.count += int(scores["psnr"].shape[0])

    def results(self) -> dict[str, Any]:
        count, horizon = self.count, self.horizon
        per_window = {key: torch.cat(parts) for key, parts in self.window_psnr.items()}  # (count, horizon)
        means = {key: value / count for key, value in self.sums.items()}
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
        return results


def _check_arguments(model, horizon: int, batch_size: int, readout: str | None) -> str | None:
    """Validate the shared arguments; returns the Masked-HWM readout to use (None for Flow)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if readout is not None and getattr(model, "family", None) != "masked":
        raise ValueError(f"readout is a Masked-HWM option; this model's family is {getattr(model, 'family', None)!r}")
    if readout is None and getattr(model, "family", None) == "masked":
        readout = getattr(model.config, "readout", "tokens")
    return readout


def _rollouts(model, context, past_actions, future_actions, other_actions, options: dict, seed: int,
              precision: str = "fp32"):
    """(true-action rollout, other-action rollout), both drawn with the same seed: delta-PSNR then
    measures the actions, not the noise. `precision`: a resolved one ("fp32" or "bf16")."""
    from models.precision import autocast

    device = context.device
    with autocast(precision, device):
        true_rollout = model.rollout(context, past_actions, future_actions.to(device),
                                     generator=_generator(device, seed), **options)
        other_rollout = model.rollout(context, past_actions, other_actions.to(device),
                                      generator=_generator(device, seed), **options)
    return _as_float32(true_rollout), _as_float32(other_rollout)


def _as_float32(rollout: torch.Tensor) -> torch.Tensor:
    return rollout.float() if rollout.is_floating_point() else rollout


def _speed_settings(model, tokenizer, batch_size: int, precision: str, compile) -> str:
    """The resolved precision for batches of `batch_size`, after compiling as asked (models.compiled)."""
    from models.compiled import compile_world_model
    from models.precision import resolve_precision

    resolved = resolve_precision(precision, _model_device(model), batch_size=batch_size)
    compile_world_model(model, tokenizer if hasattr(tokenizer, "decoder") else None, compile)
    return resolved


def _sampling_options(steps, cfg_scale, temperature, readout) -> dict:
    options = dict(steps=steps, cfg_scale=cfg_scale, temperature=temperature)
    if readout is not None:
        options["readout"] = readout
    return options


def _window_actions(windows, chosen: list[int], keys: tuple[str, ...]):
    """(future actions (N, horizon, ...), the same rolled by one window, [[item[key] ...] per window]).

    Actions of all windows are read up front (small); frames are read batch by batch. Window i
    gets the future actions of window i-1 as its "other" actions (delta-PSNR).
    """
    described = [windows[i] for i in chosen]
    future_actions = torch.stack([item["future_actions"] for item in described])
    return future_actions, future_actions.roll(1, dims=0), [[item[key] for key in keys] for item in described]


def _model_device(model) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


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
    probe=None,
    frame_stride: int = 1,
    action_pooling: str = "mean",
    tokenizer_dir: str | os.PathLike | None = None,
    frames=None,
    cross_chunks: bool = False,
    progress: bool = True,
    precision: str = "auto",
    compile: bool | str = False,
) -> dict[str, Any]:
    """Run the protocol; returns lists per horizon (keys METRIC_KEYS) plus `horizons`, `episodes`, ...

    Also per horizon: `gap_stderr`, the standard error of the mean PSNR gap to copy-last over the
    windows, and `win_fraction`, the share of windows where the model beats copy-last; and
    `window_psnr`: per-window PSNR (window x horizon) of the model, copy-last and reconstruction.

    `model` implements the common world-model API (`num_past`, `rollout`); `tokenizer` the
    common tokenizer interface; `split` is a split (an `HWMDataset`, a 1X split, or a path to
    one). A per-frame tokenizer (temporal_compression 1) encodes the split's raw frames; a
    temporal one (Cosmos 8x) takes the split's pre-encoded latents/tokens and compares with
    the raw frames of `frames` (a split or path; default: the split itself, or the `<name>_raw`
    folder beside a 1X token split), see the module docstring. `readout` ("tokens" or "mean")
    is Masked-HWM's (see `MaskedHWM.predict`); None means the checkpoint's `model.readout`.
    `cross_chunks` (1X tokens) lets windows span adjacent chunks, as the model was trained.
    `probe` (a `models.probe.StateProbe`, per-frame tokenizers) adds the long-horizon scores of
    the module docstring (`ProbeScores.results`). `precision` ("auto", "fp32", "bf16";
    `models.precision`, resolved for `batch_size`) covers the rollouts and the decoding of
    predicted and reconstructed frames; `compile` (False, True, "auto") compiles the model's
    and the decoder's hot methods (`models.compiled`).
    """
    from tqdm.auto import tqdm

    from models.precision import autocast

    if isinstance(split, (str, os.PathLike)):
        from models.data.open import open_split

        split = open_split(split)
    readout = _check_arguments(model, horizon, batch_size, readout)
    if tokenizer.temporal_compression != 1:
        windows = latent_windows(split, tokenizer, int(model.num_past), horizon, frame_stride=frame_stride,
                                 action_pooling=action_pooling, cross_chunks=cross_chunks)
        if probe is not None:
            raise ValueError("probe scores are for per-frame tokenizers; this tokenizer compresses time "
                             f"(temporal_compression {tokenizer.temporal_compression})")
        return evaluate_latent_windows(
            model, tokenizer, windows, open_raw_frames(split, tokenizer.image_size, frames), horizon,
            episodes=episodes, seed=seed, steps=steps, cfg_scale=cfg_scale, temperature=temperature,
            readout=readout, batch_size=batch_size, progress=progress, precision=precision, compile=compile)
    if frames is not None:
        raise ValueError("frames applies to temporal tokenizers only; a per-frame tokenizer encodes the split's "
                         "own frames")
    num_past = int(model.num_past)
    longest = longest_horizon(split, num_past, frame_stride=frame_stride, action_pooling=action_pooling)
    if horizon > longest:
        raise ValueError(f"{split.path}: horizon {horizon} is longer than its episodes allow (no window of "
                         f"{num_past} past + {horizon} future frames at frame stride {frame_stride} fits in one): "
                         f"the longest possible horizon is {max(longest, 0)}")
    windows = WindowDataset(split, num_past=num_past, num_future=horizon, source="frames",
                            frame_stride=frame_stride, action_pooling=action_pooling)
    sample = windows[0]
    frame_size = tuple(sample["past_frames"].shape[1:3])
    if frame_size != tuple(tokenizer.image_size):
        raise ValueError(f"{split.path}: frames are {frame_size[0]}x{frame_size[1]}, the tokenizer takes "
                         f"{tokenizer.image_size[0]}x{tokenizer.image_size[1]}")
    _check_action_dim(model, sample, split)
    targets = ProbeTargets(split, probe, frame_size) if probe is not None else None
    chosen = select_windows(windows, episodes, seed)
    count = len(chosen)
    pre_encoded = pre_encoded_context(split, tokenizer, tokenizer_dir)
    device = _model_device(model)
    future_actions, other_actions, window_list = _window_actions(windows, chosen, ("segment", "start"))

    scores = HorizonScores(horizon)
    probe_scores = ProbeScores(probe, targets.groups, horizon) if probe is not None else None
    options = _sampling_options(steps, cfg_scale, temperature, readout)
    precision = _speed_settings(model, tokenizer, batch_size, precision, compile)
    began = time.perf_counter()
    for first in tqdm(range(0, count, batch_size), desc="eval", unit="batch", disable=not progress):
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
        true_rollout, other_rollout = _rollouts(model, context.to(device), past_actions, future_actions[part],
                                                other_actions[part], options, seed + first, precision)
        decode = tokenizer.decode_digits if readout == "mean" else tokenizer.decode
        true_latents = tokenizer.encode(truth)
        with autocast(precision, device):  # the tokenizer decodes in the model's precision
            predicted = decode(true_rollout).cpu()  # (b, horizon, H, W, 3) uint8
            predicted_other = decode(other_rollout).cpu()
            reconstructed = tokenizer.decode(true_latents).cpu()
        last = past_frames[:, -1:].expand_as(truth)  # copy-last-frame baseline
        flat = [frames.reshape(-1, *truth.shape[2:])
                for frames in (predicted, predicted_other, reconstructed, last, truth)]
        window_scores = score_frames(*flat, torch.arange(size * horizon), size * horizon)
        scores.add({key: value.view(size, horizon) for key, value in window_scores.items()})
        if probe_scores is not None:
            # the state recorded at each future frame: raw frame start + stride * (P + h - 1)
            rows = np.array([[item["start"] + frame_stride * (num_past + h) for h in range(horizon)]
                             for item in items])  # (b, horizon)
            probe_scores.add(predicted, past_frames[:, -1], truth, targets.read(rows), reconstructed)

    results = scores.results()
    if probe_scores is not None:
        results.update(probe_scores.results())
    results.update(episodes=count, seed=seed, num_past=num_past, frame_stride=frame_stride,
                   steps=steps, cfg_scale=cfg_scale, temperature=temperature, readout=readout, precision=precision,
                   context_source="pre-encoded" if pre_encoded is not None else "tokenizer",
                   windows=window_list, seconds=time.perf_counter() - began)
    return results


def _check_action_dim(model, sample: dict, split) -> None:
    if sample["past_actions"].shape[-1] != model.action_dim:
        raise ValueError(f"{split.path}: actions have {sample['past_actions'].shape[-1]} dims, "
                         f"the model takes action_dim={model.action_dim}")


def longest_horizon(split, num_past: int, *, source: str = "frames", frame_stride: int = 1,
                    action_pooling: str = "mean", cross_chunks: bool = False) -> int:
    """The longest horizon a window of `num_past` context items fits into anywhere in `split`
    (the longest run of items a window can start in, less the context; < 1: none fits)."""
    from models.data.windows import split_timelines

    longest = 0
    for timeline in split_timelines(split, source, frame_stride, cross_chunks):
        starts = np.flatnonzero(timeline.can_start)
        if action_pooling == "frames" and timeline.chunk_position is not None:
            starts = starts[timeline.chunk_position[starts] == 0]  # as WindowDataset: windows open a chunk
        if len(starts) == 0:
            continue
        run_id = np.asarray(timeline.run_id)
        last = np.searchsorted(run_id, run_id[starts], side="right") - 1  # the last item of each start's run
        longest = max(longest, int(((last - starts) // timeline.step + 1).max()))
    return longest - int(num_past)


# --- the state probe: long-horizon scores ---------------------------------------------------

# "recon": the probe on the tokenizer's reconstruction of the true frames, the best a model can show
# through its decoder (a model's frames are always decoded; copy-last and true frames are raw)
PROBE_BASELINES = ("model", "copy_last", "mean", "recon", "true")
# results key of each baseline's probe error (z-units); the groups' errors nest under these names
PROBE_ERROR_KEYS = {"model": "probe_error", "copy_last": "copy_last_probe_error", "mean": "mean_probe_error",
                    "recon": "recon_probe_error", "true": "true_probe_error"}


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n, F) and (m, F):
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2).

    tr((S_a S_b)^1/2) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_a^1/2 S_b S_a^1/2 (similar to S_a S_b), float64, so no scipy; a set of
    one sample has zero covariance. Rounding can leave -1e-12 for identical sets: clamped at 0.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (n, F) and (m, F), got {a.shape} and {b.shape}")

    def covariance(x: np.ndarray) -> np.ndarray:
        return np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]) if len(x) > 1 else np.zeros((x.shape[1],) * 2)

    def nonnegative(values: np.ndarray) -> np.ndarray:
        # eigenvalues below rounding noise are zeros of a singular covariance (fewer samples than
        # features); left in, their square roots (~1e-7) would swamp a distance of 1e-12
        return np.where(values > values.max(initial=0) * len(values) * np.finfo(np.float64).eps, values, 0)

    cov_a, cov_b = covariance(a), covariance(b)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(nonnegative(values))) @ vectors.T  # S_a^1/2
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(nonnegative(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    shift = a.mean(0) - b.mean(0)
    return max(float(shift @ shift + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root), 0.0)


class ProbeTargets:
    """The probe's targets as `split` records them: states.bin, then object_positions.bin where the
    probe predicts positions; checks that the probe reads this data set's frames and names."""

    def __init__(self, split, probe, frame_size: tuple[int, int]):
        where = getattr(split, "path", split)
        if tuple(int(x) for x in probe.image_size) != tuple(frame_size):
            raise ValueError(f"{where}: frames are {frame_size[0]}x{frame_size[1]}, the probe takes "
                             f"{probe.image_size[0]}x{probe.image_size[1]} (its image_size); train a probe on "
                             "frames of this data set (hwm train probe)")
        states = getattr(split, "states", None)
        if states is None:
            raise ValueError(f"{where}: no states.bin; the probe scores frames against the recorded state, so the "
                             "split must have one (an hwm-v1 split with states)")
        names = [str(name) for name in probe.target_names]
        num_states = int(states.shape[1])
        # the state's names: metadata state_names, else the action names (state and action share an order)
        recorded = (getattr(split, "metadata", None) or {}).get("state_names")
        if recorded is None and len(getattr(split, "action_names", [])) == num_states:
            recorded = split.action_names
        if len(names) < num_states or (recorded is not None and names[:num_states] != list(recorded)):
            raise ValueError(f"{where}: the state_names {recorded if recorded is not None else num_states} do not "
                             f"open the probe's target_names {names}; the probe was trained on another state layout")
        self.arrays = [states]
        self.groups = {"joints": np.arange(num_states)}
        if len(names) > num_states:
            positions = getattr(split, "object_positions", None)
            position_names = getattr(split, "object_position_names", None)
            if positions is None or names[num_states:] != list(position_names or []):
                raise ValueError(f"{where}: the probe also predicts {names[num_states:]}, the split's "
                                 f"object_position_names are {position_names} (object_positions.bin); score it on a "
                                 "data set that records the same objects")
            self.arrays.append(positions)
            self.groups["objects"] = np.arange(num_states, len(names))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """rows (...) raw frame indices -> float64 (..., D) targets."""
        flat = np.asarray(rows, dtype=np.int64).reshape(-1)
        values = np.concatenate([np.asarray(array[flat], dtype=np.float64) for array in self.arrays], axis=1)
        return values.reshape(*np.shape(rows), -1)


class ProbeScores:
    """The probe's per-horizon scores over the windows (module docstring)."""

    def __init__(self, probe, groups: dict[str, np.ndarray], horizon: int):
        self.probe, self.groups, self.horizon = probe, groups, horizon
        self.mean = np.asarray(probe.target_mean, dtype=np.float64)
        self.std = np.asarray(probe.target_std, dtype=np.float64)
        # (baseline, group) -> (horizon,) sum over windows of the mean z-error over the group's targets
        self.sums = {(name, group): np.zeros(horizon) for name in PROBE_BASELINES for group in ("all", *groups)}
        self.features: dict[str, list[np.ndarray]] = {"model": [], "copy_last": [], "true": []}
        self.windows: dict[str, list[np.ndarray]] = {"model": [], "copy_last": []}  # (b, horizon) per batch
        self.count = 0

    def _predict(self, frames: torch.Tensor) -> np.ndarray:
        return np.asarray(self.probe.predict(frames.numpy()), dtype=np.float64)

    def _features(self, frames: torch.Tensor) -> np.ndarray:
        return self.probe.features(frames.numpy()).detach().double().cpu().numpy()

    def add(self, predicted: torch.Tensor, last: torch.Tensor, truth: torch.Tensor, targets: np.ndarray,
            reconstructed: torch.Tensor) -> None:
        """predicted, truth, reconstructed (the tokenizer's round trip of truth): uint8 (b, horizon,
        H, W, 3); last: uint8 (b, H, W, 3), the last context frames; targets: (b, horizon, D) the
        recorded targets at the future frames."""
        size, horizon = truth.shape[:2]
        frames = {"model": predicted.reshape(-1, *truth.shape[2:]), "true": truth.reshape(-1, *truth.shape[2:])}
        estimates = {name: self._predict(value).reshape(size, horizon, -1) for name, value in frames.items()}
        estimates["recon"] = self._predict(reconstructed.reshape(-1, *truth.shape[2:])).reshape(size, horizon, -1)
        estimates["copy_last"] = np.repeat(self._predict(last)[:, None], horizon, axis=1)
        estimates["mean"] = np.broadcast_to(self.mean, targets.shape)
        for name, estimate in estimates.items():
            errors = np.abs(estimate - targets) / self.std  # (b, horizon, D) z-units
            self.sums[name, "all"] += errors.mean(2).sum(0)
            if name in self.windows:
                self.windows[name].append(errors.mean(2))
            for group, columns in self.groups.items():
                self.sums[name, group] += errors[..., columns].mean(2).sum(0)
        for name, value in frames.items():
            self.features[name].append(self._features(value).reshape(size, horizon, -1))
        self.features["copy_last"].append(self._features(last))  # (b, F): the same frame at every horizon
        self.count += size

    def results(self) -> dict[str, Any]:
        errors = {key: (value / self.count).tolist() for key, value in self.sums.items()}
        features = {name: np.concatenate(parts) for name, parts in self.features.items()}
        results: dict[str, Any] = {PROBE_ERROR_KEYS[name]: errors[name, "all"] for name in PROBE_BASELINES}
        results["probe_error_by_group"] = {group: {name: errors[name, group] for name in PROBE_BASELINES}
                                           for group in self.groups}
        results["probe_fd"] = [frechet_distance(features["model"][:, h], features["true"][:, h])
                               for h in range(self.horizon)]
        results["copy_last_probe_fd"] = [frechet_distance(features["copy_last"], features["true"][:, h])
                                         for h in range(self.horizon)]
        results["probe_targets"] = [str(name) for name in self.probe.target_names]
        # per window and horizon (model and copy-last): paired comparisons between runs on the same windows
        results["window_probe_error"] = {name: np.concatenate(parts).tolist() for name, parts in self.windows.items()}
        return results


# --- temporal tokenizers: latents on causal chunks ------------------------------------------

def chunk_starts(raw_index: np.ndarray, temporal_compression: int) -> np.ndarray:
    """(n,) bool: True where a latent opens a causal chunk (the first latent, or a gap in the
    last-covered raw frames other than `temporal_compression` to the latent before). Every
    latent of a per-frame tokenizer (temporal_compression 1) is a chunk of its own."""
    raw_index = np.asarray(raw_index, dtype=np.int64)
    starts = np.ones(len(raw_index), dtype=bool)
    if temporal_compression > 1:
        starts[1:] = np.diff(raw_index) != temporal_compression
    return starts


def covered_frames(raw_index: int, opens_chunk: bool, temporal_compression: int) -> np.ndarray:
    """Raw frames a latent covers: its own frame if it opens a chunk, else the T frames up to raw_index."""
    if opens_chunk:
        return np.array([raw_index], dtype=np.int64)
    return np.arange(raw_index - temporal_compression + 1, raw_index + 1, dtype=np.int64)


def decode_chunks(tokenizer, sequence: torch.Tensor, starts: np.ndarray, first_predicted: int) -> list[torch.Tensor]:
    """Frames of the latents `sequence[:, first_predicted:]`, each decoded inside its causal chunk.

    sequence: (b, n, ...) latents or tokens, true ones before `first_predicted`; starts: (n,)
    chunk openings (`chunk_starts`). Each chunk holding a predicted latent is decoded from its
    opening latent on: (b, 1 + T * (len - 1), H, W, 3). Returns one uint8 tensor per
    predicted latent: (b, 1, H, W, 3) for an opening latent, (b, T, H, W, 3) otherwise.
    """
    period = tokenizer.temporal_compression
    bounds = np.flatnonzero(starts).tolist() + [sequence.shape[1]]
    decoded = []
    for begin, end in zip(bounds[:-1], bounds[1:]):
        if end <= first_predicted:
            continue
        frames = tokenizer.decode(sequence[:, begin:end]).cpu()  # (b, 1 + T (end - begin - 1), H, W, 3)
        for position in range(max(begin, first_predicted), end):
            local = position - begin
            decoded.append(frames[:, :1] if local == 0 else frames[:, 1 + period * (local - 1) : 1 + period * local])
    return decoded


@dataclass
class ChunkLayout:
    """Where one window's latents sit on the causal chunks of a temporal tokenizer.

    prefix: the true latents (m, ...) that open the chunk of the window's first latent (m may be 0);
    raw_index: (m + P + H,) int64, the last raw frame each latent of prefix + window covers;
    starts: (m + P + H,) bool, chunk openings; shard: the shard the raw frames live in.
    """

    prefix: np.ndarray
    raw_index: np.ndarray
    starts: np.ndarray
    shard: int

    @property
    def signature(self) -> tuple:
        """Windows with the same signature decode as one batch."""
        return len(self.prefix), tuple(self.starts.tolist())


def chunk_layout(windows: WindowDataset, index: int, temporal_compression: int) -> ChunkLayout:
    """The ChunkLayout of window `index`; walks back to the opening latent of its first chunk."""
    timeline, first = windows.locate(index)
    if timeline.step != 1:
        raise ValueError(f"windows over temporally compressed latents step one latent at a time, "
                         f"got step {timeline.step}")

    def raw(item: int) -> int:
        return int(timeline.raw_index(np.array([item]))[0])

    positions = getattr(timeline, "chunk_position", None)  # each latent's place in its chunk, where known
    begin = first
    if positions is not None:
        begin = first - int(positions[first])
    else:
        while begin > 0 and raw(begin) - raw(begin - 1) == temporal_compression:
            begin -= 1
    items = np.arange(begin, first + windows.num_past + windows.num_future)
    raw_index = np.asarray(timeline.raw_index(items), dtype=np.int64)
    starts = chunk_starts(raw_index, temporal_compression) if positions is None else np.asarray(positions)[items] == 0
    prefix = np.asarray(timeline.read(np.arange(begin, first))) if begin < first else np.zeros((0,))
    return ChunkLayout(prefix, raw_index, starts, int(timeline.shard))


def latent_windows(split, tokenizer, num_past: int, horizon: int, *, frame_stride: int = 1,
                   action_pooling: str = "mean", cross_chunks: bool = False) -> WindowDataset:
    """Windows of the split's pre-encoded latents (continuous tokenizer) or tokens (discrete)."""
    source = "latents" if tokenizer.kind == "continuous" else "tokens"
    try:
        windows = WindowDataset(split, num_past=num_past, num_future=horizon, source=source,
                                frame_stride=frame_stride, action_pooling=action_pooling, cross_chunks=cross_chunks)
    except ValueError as error:
        raise ValueError(
            f"the tokenizer compresses time (temporal_compression {tokenizer.temporal_compression}), so the "
            f"context comes from the split's pre-encoded {source}: {error}"
        ) from error
    grid = tuple(windows[0][f"past_{source}"].shape[-2:])
    if grid != tuple(tokenizer.latent_grid):
        raise ValueError(f"{split.path}: the {source} have a {grid[0]}x{grid[1]} grid, the tokenizer's is "
                         f"{tokenizer.latent_grid[0]}x{tokenizer.latent_grid[1]} (image {tokenizer.image_size})")
    return windows


@torch.no_grad()
def evaluate_latent_windows(
    model,
    tokenizer,
    windows,
    frames: "RawFrames",
    horizon: int,
    *,
    episodes: int = 32,
    seed: int = 0,
    steps: int | None = None,
    cfg_scale: float | None = None,
    temperature: float | None = None,
    readout: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    precision: str = "auto",
    compile: bool | str = False,
) -> dict[str, Any]:
    """The protocol on windows of pre-encoded latents/tokens of a temporal tokenizer (module docstring).

    `windows`: a WindowDataset (source "latents" or "tokens", `horizon` future latents);
    `frames`: the raw frames of the same shards (`open_raw_frames`). Same results as
    `evaluate_world_model`, plus `frames_per_horizon` (raw frames scored at each horizon, summed
    over windows).
    """
    from tqdm.auto import tqdm

    readout = _check_arguments(model, horizon, batch_size, readout)
    if readout == "mean":
        raise ValueError("readout 'mean' decodes expected FSQ digits, which only the built-in FSQ tokenizer can; "
                         "a temporal (Cosmos) tokenizer decodes token ids: use readout 'tokens'")
    if windows.num_future != horizon:
        raise ValueError(f"the windows hold {windows.num_future} future latents, horizon is {horizon}")
    period = tokenizer.temporal_compression
    num_past = int(model.num_past)
    past_key, future_key = f"past_{windows.source}", f"future_{windows.source}"
    _check_action_dim(model, windows[0], windows.split)
    chosen = select_windows(windows, episodes, seed)
    count = len(chosen)
    device = _model_device(model)
    future_actions, other_actions, window_list = _window_actions(windows, chosen, ("shard", "segment", "start"))
    precision = _speed_settings(model, None, batch_size, precision, compile)

    scores = HorizonScores(horizon)
    frames_per_horizon = np.zeros(horizon, dtype=np.int64)
    options = _sampling_options(steps, cfg_scale, temperature, readout)
    began = time.perf_counter()
    for first in tqdm(range(0, count, batch_size), desc="eval", unit="batch", disable=not progress):
        part = slice(first, min(first + batch_size, count))
        size = part.stop - part.start
        items = [windows[i] for i in chosen[part]]
        past = torch.stack([item[past_key] for item in items])  # (b, P, ...) true context latents
        future = torch.stack([item[future_key] for item in items])  # (b, H, ...) true future latents
        past_actions = torch.stack([item["past_actions"] for item in items]).to(device)
        layouts = [chunk_layout(windows, i, period) for i in chosen[part]]
        true_rollout, other_rollout = _rollouts(model, past.to(device), past_actions, future_actions[part],
                                                other_actions[part], options, seed + first, precision)
        decoded = {name: _decode_windows(tokenizer, layouts, past, latents.cpu(), num_past)
                   for name, latents in (("predicted", true_rollout), ("other", other_rollout), ("recon", future))}
        frame_lists = {name: [] for name in ("predicted", "other", "recon", "last", "truth")}
        groups = []
        for row, layout in enumerate(layouts):
            opening = len(layout.prefix) + num_past  # position of the first predicted latent
            covered = [covered_frames(layout.raw_index[opening + h], layout.starts[opening + h], period)
                       for h in range(horizon)]
            last_context = int(layout.raw_index[opening - 1])
            read = frames.read(layout.shard, np.concatenate([[last_context], *covered]))  # (1 + n, H, W, 3)
            frame_lists["truth"].append(read[1:])
            frame_lists["last"].append(read[:1].expand_as(read[1:]))
            for name in ("predicted", "other", "recon"):
                frame_lists[name].append(torch.cat([decoded[name][h][row] for h in range(horizon)]))
            for h, span in enumerate(covered):
                groups.append(torch.full((len(span),), row * horizon + h, dtype=torch.long))
                frames_per_horizon[h] += len(span)
        flat = {name: torch.cat(parts) for name, parts in frame_lists.items()}
        window_scores = score_frames(flat["predicted"], flat["other"], flat["recon"], flat["last"], flat["truth"],
                                     torch.cat(groups), size * horizon)
        scores.add({key: value.view(size, horizon) for key, value in window_scores.items()})

    results = scores.results()
    results.update(episodes=count, seed=seed, num_past=num_past, temporal_compression=period,
                   frames_per_horizon=frames_per_horizon.tolist(),
                   steps=steps, cfg_scale=cfg_scale, temperature=temperature, readout=readout, precision=precision,
                   context_source="pre-encoded", frames_source=str(frames.split.path),
                   windows=window_list, seconds=time.perf_counter() - began)
    return results


def _decode_windows(tokenizer, layouts: list[ChunkLayout], past: torch.Tensor, future: torch.Tensor,
                    num_past: int) -> list[list[torch.Tensor]]:
    """Per horizon h, per window row: the decoded frames of future latent h (T or 1 frames)."""
    horizon = future.shape[1]
    out: list[list[torch.Tensor | None]] = [[None] * len(layouts) for _ in range(horizon)]
    groups: dict[tuple, list[int]] = {}
    for row, layout in enumerate(layouts):
        groups.setdefault(layout.signature, []).append(row)
    for rows in groups.values():
        layout = layouts[rows[0]]
        sequence = torch.cat([past[rows], future[rows]], dim=1)  # (g, P + H, ...)
        if len(layout.prefix):
            prefix = torch.from_numpy(np.stack([layouts[row].prefix for row in rows])).to(sequence.dtype)
            sequence = torch.cat([prefix, sequence], dim=1)  # (g, m + P + H, ...)
        for h, frames in enumerate(decode_chunks(tokenizer, sequence, layout.starts, len(layout.prefix) + num_past)):
            for index, row in enumerate(rows):
                out[h][row] = frames[index]
    return out


# --- raw frames -----------------------------------------------------------------------------

class RawFrames:
    """The raw RGB frames of a split by (shard, raw frame index), at `image_size` (H, W)."""

    def __init__(self, split, image_size: tuple[int, int]):
        self.split = split
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self._shards = {shard.index: shard for shard in getattr(split, "shards", [])}

    def read(self, shard: int, indices) -> torch.Tensor:
        """uint8 (n, H, W, 3) frames at shard-local raw indices (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        if isinstance(self.split, onex.OneXRawSplit):
            frames = self.split.read_frames(self._shards[shard], unique)
        else:
            frames = np.asarray(self.split.frames[unique])
        return torch.from_numpy(resize_frames(frames, self.image_size)[inverse])


def resize_frames(frames: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) -> (n, H, W, 3), area-averaged (unchanged when the size already fits)."""
    if tuple(frames.shape[1:3]) == tuple(image_size):
        return np.ascontiguousarray(frames)
    import cv2

    return np.stack([cv2.resize(frame, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA)
                     for frame in frames])


def _shard_frames(split) -> dict[int, int]:
    if isinstance(split, onex.OneXSplit):
        return {shard.index: shard.num_frames for shard in split.shards}
    return {0: len(split)}


def open_raw_frames(split, image_size: tuple[int, int], frames=None) -> RawFrames:
    """The raw frames to score `split` against: `frames` (a split or path), else the split itself,
    else (a 1X token split) the `<name>_raw` folder beside it; shards must hold the same frames."""
    from models.data.open import open_split

    if frames is None:
        frames = split
        if isinstance(split, onex.OneXTokenizedSplit):
            frames = split.path.parent / f"{split.path.name}_raw"
            if not frames.is_dir():
                raise FileNotFoundError(
                    f"{split.path}: holds tokens only, and the pixel evaluation compares decoded frames with raw ones; "
                    f"pass the matching 1X raw split (e.g. val_v2.0_raw of worldmodel_raw_data) as frames / --frames "
                    f"(looked for {frames})"
                )
    if isinstance(frames, (str, os.PathLike)):
        frames = open_split(frames, image_size=image_size)
    elif isinstance(frames, onex.OneXRawSplit) and frames.image_size != tuple(image_size):
        frames = onex.OneXRawSplit(frames.path, image_size=image_size)
    if isinstance(frames, onex.OneXTokenizedSplit):
        raise ValueError(f"{frames.path}: holds tokens, not frames; the raw frames come from a 1X raw split (MP4) "
                         "or an hwm-v1 split")
    ours, theirs = _shard_frames(split), _shard_frames(frames)
    if frames is not split and any(theirs.get(shard) != count for shard, count in ours.items()):
        raise ValueError(f"{frames.path}: shard frame counts {theirs} differ from {split.path}'s {ours}; the raw "
                         "frames must be the same part of the data set (same shards, same frames)")
    return RawFrames(frames, image_size)


# --- loading for evaluation -----------------------------------------------------------------

def model_latent_grid(model) -> tuple[int, int]:
    """(h, w) of one latent frame of a Flow-HWM or Masked-HWM."""
    config = model.config
    if getattr(model, "family", None) == "masked":
        return tuple(int(x) for x in config.token_grid)
    return int(config.latent_height), int(config.latent_width)


def data_temporal_compression(config: dict) -> int | None:
    """The temporal compression of the latents a checkpoint was trained on, where its config.json records it
    (Masked-HWM: the tokens' description; Flow-HWM: `latent_layout`)."""
    for key in ("tokens", "latents", "latent_layout"):
        described = config.get(key)
        if isinstance(described, dict) and described.get("temporal_compression") is not None:
            return int(described["temporal_compression"])
    return None


def check_tokenizer_fits(model, tokenizer, config: dict, source: str) -> None:
    """The tokenizer speaks the model's latents: kind, grid, vocabulary/channels, temporal compression."""
    family = getattr(model, "family", None)
    kind = "discrete" if family == "masked" else "continuous"
    if tokenizer.kind != kind:
        raise ValueError(f"{source}: a {family} model needs a {kind} tokenizer, got a {tokenizer.kind} one")
    grid = model_latent_grid(model)
    if tuple(tokenizer.latent_grid) != grid:
        raise ValueError(f"{source}: the tokenizer's latent grid is {tuple(tokenizer.latent_grid)} (image "
                         f"{tuple(tokenizer.image_size)}, spatial compression {tokenizer.spatial_compression}), "
                         f"the model's is {grid}")
    if family == "masked" and tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"{source}: the tokenizer has {tokenizer.vocab_size} codes, "
                         f"the model {model.config.vocab_size}")
    if family == "flow" and tokenizer.latent_channels != model.config.latent_channels:
        raise ValueError(f"{source}: the tokenizer has {tokenizer.latent_channels} latent channels, "
                         f"the model {model.config.latent_channels}")
    trained = data_temporal_compression(config)
    if trained is not None and trained != tokenizer.temporal_compression:
        raise ValueError(f"{source}: the model was trained on latents of temporal compression {trained} (its data's "
                         f"chunking), the tokenizer compresses time by {tokenizer.temporal_compression}; use the "
                         "tokenizer that encoded the training data")


def load_for_evaluation(checkpoint: str | os.PathLike, tokenizer: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu"):
    """(checkpoint path, config, world model, tokenizer, tokenizer folder) on `device`.

    `tokenizer` (a Cosmos folder with encoder.jit/decoder.jit, or a built-in tokenizer checkpoint)
    overrides the tokenizer nested in the checkpoint, and is required when there is none (a
    Masked-HWM trained on the 1X Cosmos DV tokens records `tokenizer: null`). A Cosmos folder is
    loaded at the resolution that gives the model's latent grid (1X: 32x32 tokens -> 256 px).
    """
    from models.checkpoint import read_config, resolve_checkpoint
    from models.loading import load_world_model, nested_tokenizer_dir
    from models.tokenizers import load_tokenizer
    from models.tokenizers.cosmos import is_cosmos_folder

    path = resolve_checkpoint(checkpoint)
    config = read_config(path)
    model = load_world_model(path, device=str(device))
    if tokenizer is None:
        if "tokenizer" in config and config["tokenizer"] is None:
            raise FileNotFoundError(
                f"{path / 'config.json'}: tokenizer null; this checkpoint was trained on pre-encoded tokens whose "
                "tokenizer weights are the user's (1X: Cosmos DV8x8x8); pass --tokenizer <Cosmos-Tokenizer-DV8x8x8 "
                "folder with encoder.jit and decoder.jit>"
            )
        folder = nested_tokenizer_dir(path)
    else:
        folder = Path(tokenizer)
    image_size = None
    if is_cosmos_folder(folder):
        grid = model_latent_grid(model)
        probe = load_tokenizer(folder, device=device)
        image_size = (grid[0] * probe.spatial_compression, grid[1] * probe.spatial_compression)
        loaded = probe if tuple(probe.image_size) == image_size else load_tokenizer(folder, device, image_size)
    else:
        loaded = load_tokenizer(folder, device=device)
    check_tokenizer_fits(model, loaded, config, str(folder))
    return path, config, model, loaded, folder


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
    unit = "latent frames" if results.get("temporal_compression", 1) > 1 else "frames"
    intro = (f"World-model evaluation: {results['episodes']} episodes, seed {results.get('seed', 0)}, "
             f"context {results.get('num_past', '?')} {unit} ({results.get('context_source', '?')}).")
    if results.get("frames_per_horizon"):
        intro += (f" Horizon h = the h-th predicted latent, scored over the raw frames it covers "
                  f"({results['frames_per_horizon']} frames per horizon in all).")
    columns = ["h", "PSNR", "SSIM", "sharpness", "copy-last PSNR", "copy-last SSIM", "recon PSNR", "recon SSIM",
               "delta-PSNR"]
    if "probe_error" in results:
        for i, row in enumerate(rows):
            row += [_cell(results[PROBE_ERROR_KEYS[name]][i], 3) for name in PROBE_BASELINES]
            row.append(_cell(results["probe_fd"][i], 2))
        columns += ["probe err", "copy-last err", "mean err", "recon err", "true-frame err", "probe FD"]
        intro += (" Probe error: mean |probe - recorded state| in z-units (target_std) on the predicted frames, "
                  "copy-last, the data mean, the tokenizer's reconstruction of the true frames (the best a "
                  "decoded frame shows) and the true frames (the ceiling); FD: Fréchet distance of the probe "
                  "features of predicted vs real frames.")
    return tables.markdown_table(columns, rows, intro=intro) + "\n"
