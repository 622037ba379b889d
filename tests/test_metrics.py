"""Frame metrics on known inputs: identical frames, a known noise level, blur vs sharpness."""
import math

import numpy as np
import pytest
import torch

from train import metrics


def random_frames(batch=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, 3), generator=generator, dtype=torch.uint8)


def smooth_frames(batch=4, size=32):
    """Gradients and stripes (not noise), so SSIM and blur behave as on images."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    frames = []
    for b in range(batch):
        r = (x * 255 / (size - 1))
        g = 127 + 120 * torch.sin((x + y + 3 * b) / 3.0)
        bl = ((x // 4 + y // 4 + b) % 2) * 255
        frames.append(torch.stack([r, g, bl], dim=-1))
    return torch.stack(frames).round().clamp(0, 255).to(torch.uint8)


def test_psnr_of_identical_frames_is_capped():
    frames = random_frames()
    values = metrics.psnr(frames, frames.clone())
    assert values.shape == (4,)
    assert torch.all(values == metrics.PSNR_CAP_DB) and math.isfinite(values.mean().item())


def test_psnr_matches_the_formula_for_known_noise():
    frames = smooth_frames().clamp(20, 235)  # keep noise from clipping at 0/255
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(frames.shape, generator=generator) * 5.0
    noisy = (frames.float() + noise).round().clamp(0, 255).to(torch.uint8)
    mse = (noisy.float() - frames.float()).pow(2).mean(dim=(1, 2, 3))
    expected = 10 * torch.log10(255.0**2 / mse)
    torch.testing.assert_close(metrics.psnr(noisy, frames), expected, rtol=1e-5, atol=1e-4)
    # and it sits where Gaussian noise of sigma 5 puts it (rounding adds 1/12 to the variance)
    assert metrics.psnr(noisy, frames).mean().item() == pytest.approx(10 * math.log10(255**2 / (25 + 1 / 12)), abs=0.1)


def test_psnr_is_per_frame():
    frames = smooth_frames(batch=2)
    pred = frames.clone()
    pred[1] = 255 - pred[1]
    values = metrics.psnr(pred, frames)
    assert values[0] == metrics.PSNR_CAP_DB and values[1] < 10


def test_ssim_identical_is_one_and_noise_lowers_it():
    frames = smooth_frames()
    torch.testing.assert_close(metrics.ssim(frames, frames), torch.ones(4), rtol=0, atol=1e-5)
    noisy = (frames.float() + 30 * torch.randn(frames.shape)).clamp(0, 255).to(torch.uint8)
    values = metrics.ssim(noisy, frames)
    assert values.shape == (4,) and torch.all(values < 0.9)


def test_sharpness_ratio_detects_blur():
    frames = smooth_frames()
    assert metrics.sharpness_ratio(frames, frames).item() == pytest.approx(1.0)
    blurred = torch.nn.functional.avg_pool2d(frames.permute(0, 3, 1, 2).float(), 5, stride=1, padding=2,
                                             count_include_pad=False)
    blurred = blurred.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    assert metrics.sharpness_ratio(blurred, frames).item() < 0.6
    flat = torch.full_like(frames, 128)
    assert metrics.sharpness_ratio(flat, frames).item() == 0.0
    # a known gradient: a horizontal ramp of 2 per pixel has magnitude 2 everywhere
    ramp = (torch.arange(16) * 2).to(torch.uint8).view(1, 1, 16, 1).expand(1, 16, 16, 3)
    assert metrics.gradient_magnitude(ramp).item() == pytest.approx(2.0)


def test_accepts_numpy_and_rejects_bad_input():
    frames = smooth_frames()
    assert metrics.psnr(frames.numpy(), frames.numpy()).shape == (4,)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(frames.float(), frames)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        metrics.ssim(frames[..., :2], frames[..., :2])
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(frames[:2], frames)
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(frames[:, :8, :8], frames[:, :8, :8])
    with pytest.raises(ValueError, match="numpy"):
        metrics.psnr([[1]], frames)


def test_optional_metrics_fail_clearly_without_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache: nothing to load
    frames = smooth_frames()
    with pytest.raises((ValueError, FileNotFoundError), match="LPIPS"):
        metrics.lpips(frames, frames)
    with pytest.raises((ValueError, FileNotFoundError), match="FID"):
        metrics.frechet_inception_distance(frames, frames)
    with pytest.raises(ValueError, match="net"):
        metrics.lpips(frames, frames, net="resnet")
    assert not any(tmp_path.rglob("*")), "a metric call must never download"


def test_psnr_runs_on_numpy_uint8_from_disk_layout():
    # frames as memmapped data sets hand them out: numpy uint8 (B, H, W, 3), non-contiguous slices
    frames = np.ascontiguousarray(smooth_frames(batch=6).numpy())[::2]
    assert metrics.psnr(frames, frames).tolist() == [metrics.PSNR_CAP_DB] * 3
