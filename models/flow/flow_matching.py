"""Rectified flow with ONE time s in [0, 1] for interpolation, conditioning and sampling.

s = 0 is noise x0 ~ N(0, I), s = 1 is data x1:  x_s = (1 - s) x0 + s x1, and the network
regresses the constant velocity x1 - x0. The original code fed the network a different
time scale in training than in sampling (hwm-paper.md section 3); here the same s goes
into the interpolation, the timestep embedding and the samplers.
"""
from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]  # (x_s, s) -> velocity


def _noise_device(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device or "cpu")


def sample_time(batch_size: int, *, logit_mean: float = 0.0, logit_std: float = 1.0,
                uniform_fraction: float = 0.1, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """Training times s (B,): logit-normal (SD3), with a `uniform_fraction` of plain U(0, 1).

    Logit-normal concentrates on mid times where the velocity is hardest; the uniform share
    keeps s near 0 and 1 trained, which one- and two-step samplers rely on.
    """
    where = _noise_device(generator, device)
    s = torch.sigmoid(logit_mean + logit_std * torch.randn(batch_size, generator=generator, device=where))
    if uniform_fraction > 0:
        uniform = torch.rand(batch_size, generator=generator, device=where)
        pick_uniform = torch.rand(batch_size, generator=generator, device=where) < uniform_fraction
        s = torch.where(pick_uniform, uniform, s)
    return s.to(device) if device is not None else s


def _per_sample(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def interpolate(noise: torch.Tensor, data: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """x_s = (1 - s) * noise + s * data, with s (B,) broadcast over the other dims."""
    s = _per_sample(s, data)
    return (1 - s) * noise + s * data


def velocity_target(noise: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """d x_s / d s along the straight path."""
    return data - noise


def time_grid(steps: int) -> list[float]:
    """Uniform sampling times 0 = s_0 < ... < s_steps = 1."""
    if steps < 1:
        raise ValueError(f"num_sampling_steps must be >= 1, got {steps}")
    return [i / steps for i in range(steps + 1)]


def euler_sample(velocity: VelocityFn, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """First-order: `steps` network evaluations."""
    x, grid = noise, time_grid(steps)
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = x + (s_next - s) * velocity(x, s)
    return x


def heun_sample(velocity: VelocityFn, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Second-order (Euler predictor, trapezoid corrector): 2 * `steps` network evaluations."""
    x, grid = noise, time_grid(steps)
    for s, s_next in zip(grid[:-1], grid[1:]):
        step = s_next - s
        v = velocity(x, s)
        x_predicted = x + step * v
        x = x + step * 0.5 * (v + velocity(x_predicted, s_next))
    return x


SAMPLERS = {"euler": euler_sample, "heun": heun_sample}


def sample(velocity: VelocityFn, noise: torch.Tensor, steps: int, sampler: str = "euler") -> torch.Tensor:
    """Integrate dx/ds = v(x, s) from s = 0 (noise) to s = 1 (data)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler '{sampler}' is not one of {sorted(SAMPLERS)}")
    return SAMPLERS[sampler](velocity, noise, steps)


def guided_velocity(conditional: torch.Tensor, unconditional: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """Classifier-free guidance: v_u + w (v_c - v_u); w = 1 is the conditional velocity."""
    return unconditional + cfg_scale * (conditional - unconditional)
