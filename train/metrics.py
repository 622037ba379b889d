"""Frame metrics of the evaluation protocol (DESIGN.md section 11), per frame, on uint8 RGB.

PSNR and SSIM come from torchmetrics with `data_range=255` set explicitly. PSNR of two
identical frames is infinite; it is capped at `PSNR_CAP_DB` (100 dB) so that means over
frames stay finite: a uint8 frame of H*W*3 values cannot score between 10*log10(255^2 * H*W*3)
(89 dB at 64x64, one value off by one) and perfect, so the cap only ever marks exact copies.

`sharpness_ratio` guards against PSNR's preference for blur (a blurry mean frame beats
copy-last-frame on PSNR): it divides the mean image-gradient magnitude of the predictions
by that of the ground truth (1.0 = as sharp as the truth, a mean predictor drifts to 0).

LPIPS and FID need backbone weights that torchvision / torch-fidelity download on first
use; here they run only when the weights are already in the torch hub cache and fail
with a message saying what to fetch otherwise (never a download from a metric call).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

PSNR_CAP_DB = 100.0
MAX_PIXEL = 255.0

# torch hub checkpoint files the optional metrics load (torchvision / torch-fidelity names)
LPIPS_BACKBONE_WEIGHTS = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
FID_INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def as_frames(frames, name: str) -> torch.Tensor:
    """Validate uint8 (B, H, W, 3) frames (torch or numpy); return a torch tensor."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 RGB frames in [0, 255], got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, H, W, 3), got {tuple(frames.shape)}")
    return frames


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) float32 copies of two same-shaped uint8 (B, H, W, 3) batches, on pred's device."""
    pred, target = as_frames(pred, "pred"), as_frames(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    target = target.to(pred.device)
    return pred.permute(0, 3, 1, 2).float(), target.permute(0, 3, 1, 2).float()


def psnr(pred, target) -> torch.Tensor:
    """Per-frame PSNR in dB, (B,) float32, capped at PSNR_CAP_DB for identical frames."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    pred, target = _pair(pred, target)
    values = peak_signal_noise_ratio(pred, target, data_range=MAX_PIXEL, reduction="none", dim=(1, 2, 3))
    return values.clamp(max=PSNR_CAP_DB)


def ssim(pred, target) -> torch.Tensor:
    """Per-frame SSIM, (B,) float32 (torchmetrics defaults: Gaussian 11x11, sigma 1.5)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, target = _pair(pred, target)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11x11 pixels (its Gaussian window), got {tuple(pred.shape[-2:])}")
    return structural_similarity_index_measure(pred, target, data_range=MAX_PIXEL, reduction="none")


def gradient_magnitude(frames) -> torch.Tensor:
    """Mean image-gradient magnitude per frame, (B,) float64: forward differences per channel, in pixel units."""
    images = as_frames(frames, "frames").permute(0, 3, 1, 2).double()  # (B, 3, H, W); float64: order-independent sums
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]  # (B, 3, H-1, W-1)
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    return torch.sqrt(dx.square() + dy.square()).mean(dim=(1, 2, 3))


def sharpness_ratio(pred, target) -> torch.Tensor:
    """Mean gradient magnitude of pred over that of target across the batch (scalar; 1.0 = as sharp).

    A ratio of means, not a mean of per-frame ratios: a nearly flat true frame would make
    its own ratio explode.
    """
    pred, target = as_frames(pred, "pred"), as_frames(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return gradient_magnitude(pred).mean() / gradient_magnitude(target).mean().clamp_min(1e-8)


# --- optional metrics: only with locally cached weights -----------------------------------

def _hub_weights(filename: str, metric: str, package_hint: str) -> Path:
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{metric} needs pretrained weights that are not cached at {path}; on a machine with internet, "
            f"{package_hint} once to fill the torch hub cache (or copy the file there), then rerun"
        )
    return path


def lpips(pred, target, net: str = "alex") -> torch.Tensor:
    """Per-frame LPIPS distance (B,), lower is better. Needs torchvision and cached backbone weights."""
    if net not in LPIPS_BACKBONE_WEIGHTS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONE_WEIGHTS)}, got '{net}'")
    if importlib.util.find_spec("torchvision") is None:
        raise ValueError("LPIPS needs torchvision: pip install torchvision")
    _hub_weights(LPIPS_BACKBONE_WEIGHTS[net], "LPIPS", f"run `torchvision.models.{net}...(weights='DEFAULT')`")
    from torchmetrics.functional.image import learned_perceptual_image_patch_similarity

    pred, target = _pair(pred, target)  # LPIPS takes [-1, 1]
    return learned_perceptual_image_patch_similarity(pred / 127.5 - 1, target / 127.5 - 1, net_type=net,
                                                     reduction="none")


def frechet_inception_distance(pred, target) -> float:
    """FID between two sets of frames (use thousands for a meaningful value). Needs torch-fidelity
    and its cached InceptionV3 weights."""
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ValueError("FID needs torch-fidelity: pip install torch-fidelity")
    _hub_weights(FID_INCEPTION_WEIGHTS, "FID", "construct torchmetrics' FrechetInceptionDistance")
    from torchmetrics.image.fid import FrechetInceptionDistance

    pred, target = _pair(pred, target)
    metric = FrechetInceptionDistance(feature=2048).to(pred.device)
    metric.update(target.to(torch.uint8), real=True)
    metric.update(pred.to(torch.uint8), real=False)
    return float(metric.compute())
