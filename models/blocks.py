"""Transformer pieces shared by Flow-HWM and Masked-HWM.

Each family file says only what differs; attention, RoPE, adaLN and MLPs live here once.
Shapes: B batch, N tokens, H heads, D head dim, C model width.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, with (B, C) modulation broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# --- rotary position embeddings -------------------------------------------------------

def split_head_dim(head_dim: int, num_axes: int) -> list[int]:
    """Split a head dim into even per-axis sizes (earlier axes get the remainder)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
    pairs = head_dim // 2
    base, extra = divmod(pairs, num_axes)
    return [2 * (base + (1 if axis < extra else 0)) for axis in range(num_axes)]


def rope_angles(positions: torch.Tensor, axis_dims: Sequence[int], theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles for axial RoPE.

    positions: (N, num_axes) integer or float positions, one column per axis (e.g. t, y, x).
    axis_dims: head-dim share of each axis (even, summing to the head dim).
    Returns (N, head_dim // 2) angles; tokens of different modalities that share an axis
    (video and actions on time) get comparable rotations as long as they share positions.
    """
    if positions.shape[-1] != len(axis_dims):
        raise ValueError(f"positions have {positions.shape[-1]} axes, axis_dims has {len(axis_dims)}")
    angles = []
    for axis, dim in enumerate(axis_dims):
        if dim == 0:
            continue
        freqs = theta ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)
        angles.append(positions[:, axis : axis + 1].float() * freqs)  # (N, dim/2)
    return torch.cat(angles, dim=-1)


def rope_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Angles (N, D/2) -> unit complex rotations exp(i * angle), precomputable once per shape."""
    angles = angles.float()
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotation(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x (..., N, D), read as complex numbers, by rotation (N, D/2).

    One complex multiplication: about 5x faster forward + backward on CPU than the stack of
    real products, and returns a new tensor (the original's in-place RoPE was not norm-preserving).
    """
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x (..., N, D) by angles (N, D/2). Returns a new tensor (norm-preserving)."""
    return apply_rotation(x, rope_rotation(angles))


def grid_positions(*sizes: int, offsets: Sequence[int] | None = None, device=None) -> torch.Tensor:
    """Integer positions of a row-major grid, (prod(sizes), len(sizes)); e.g. (T, h, w) for video."""
    offsets = offsets or [0] * len(sizes)
    axes = [torch.arange(size, device=device) + offset for size, offset in zip(sizes, offsets)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


# --- attention ------------------------------------------------------------------------

class QKVProjection(nn.Module):
    """Project tokens to per-head q, k, v with QK-norm (stabilises attention logits)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D)
        return self.q_norm(q), self.k_norm(k), v


class KVProjection(nn.Module):
    """Keys and values only (with K-norm): context streams whose queries nothing reads."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, _ = x.shape
        k, v = self.kv(x).view(batch, tokens, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return self.k_norm(k), v  # each (B, H, N, D)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    angles: torch.Tensor | None = None, mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """RoPE (optional) + scaled_dot_product_attention; (B, H, N, D) in, (B, N, H*D) out.

    mask: boolean (N, N) or broadcastable, True where attention is allowed.
    """
    if angles is not None:
        q, k = apply_rope(q, angles), apply_rope(k, angles)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    batch, heads, tokens, head_dim = out.shape
    return out.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


class SelfAttention(nn.Module):
    """Multi-head self-attention with QK-norm and optional RoPE, via SDPA."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, bias: bool = False):
        super().__init__()
        self.qkv = QKVProjection(dim, num_heads, qk_norm=qk_norm, bias=bias)
        self.proj = nn.Linear(dim, dim)

    @property
    def head_dim(self) -> int:
        return self.qkv.head_dim

    def forward(self, x: torch.Tensor, angles: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        q, k, v = self.qkv(x)
        return self.proj(attend(q, k, v, angles, mask))


class MLP(nn.Module):
    """Transformer feed-forward: Linear -> GELU(tanh) -> Linear."""

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x), approximate="tanh")))


# --- conditioning -----------------------------------------------------------------------

class TimestepEmbedder(nn.Module):
    """Flow/diffusion time s in [0, 1] -> (B, C) vector via sinusoids and an MLP."""

    def __init__(self, dim: int, frequency_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def sinusoids(self, s: torch.Tensor) -> torch.Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
        args = (1000.0 * s.float())[:, None] * freqs[None]  # scale so [0, 1] spans many periods
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoids(s).to(self.mlp[0].weight.dtype))


class AdaLNModulation(nn.Module):
    """SiLU -> Linear(cond -> n * C), zero-initialised so each block starts as identity (adaLN-Zero)."""

    def __init__(self, cond_dim: int, dim: int, num_chunks: int):
        super().__init__()
        self.num_chunks = num_chunks
        self.linear = nn.Linear(cond_dim, num_chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(F.silu(cond)).chunk(self.num_chunks, dim=-1)


class ActionNormalizer(nn.Module):
    """Stores train-split action statistics in the checkpoint; binary dims pass through as 0/1.

    Models take actions in dataset units and normalise inside, so envs, planners and data
    loaders never have to agree on a second convention.
    """

    def __init__(self, action_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(action_dim))
        self.register_buffer("std", torch.ones(action_dim))

    def set_stats(self, mean, std, binary_dims: Sequence[int] = ()) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).clone()
        std = torch.as_tensor(std, dtype=torch.float32).clone().clamp_min(1e-6)
        for dim in binary_dims:
            mean[dim], std[dim] = 0.0, 1.0
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.mean) / self.std
