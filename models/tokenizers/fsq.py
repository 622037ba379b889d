"""Finite scalar quantization (FSQ, Mentzer et al. 2023).

Each of d channels is squashed into L_i equal bins and rounded, so the codebook is the
grid of prod(L_i) points: no codebook to learn, nothing to collapse. Levels [8, 5, 5, 5]
give 1,000 codes; Cosmos' discrete tokenizers use [8, 8, 8, 5, 5, 5] = 64,000. An index
is the mixed-radix number of the per-channel digits, first channel least significant
(the Cosmos convention), so indices and codes convert exactly both ways.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class FSQ(nn.Module):
    """Quantize the last dim of z (..., d) to the grid of `levels`; codes lie in [-1, 1]."""

    def __init__(self, levels: Sequence[int]):
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or any(level < 2 for level in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {list(levels)}")
        self.levels_list = levels
        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels_list)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels_list)

    def digits(self, z: torch.Tensor) -> torch.Tensor:
        """Unbounded z (..., d) -> digits in {0..L-1} as floats, straight-through for gradients."""
        # L equal-width bins over (-0.5, L - 0.5); the clamp catches sigmoid saturating to exactly 1.
        bounded = torch.sigmoid(z.float()) * self.levels - 0.5
        rounded = bounded.round().clamp(min=torch.zeros_like(self.levels), max=self.levels - 1)
        return bounded + (rounded - bounded).detach()

    def digits_to_codes(self, digits: torch.Tensor) -> torch.Tensor:
        return digits * (2.0 / (self.levels - 1)) - 1.0

    def codes_to_digits(self, codes: torch.Tensor) -> torch.Tensor:
        return ((codes.float() + 1.0) * ((self.levels - 1) / 2.0)).round()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., d) -> quantized codes (..., d) in [-1, 1]; gradients pass straight through."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ with levels {self.levels_list} quantizes {self.dim} channels, got {z.shape[-1]}")
        return self.digits_to_codes(self.digits(z))

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., d) on the grid -> indices (...) int64 in [0, codebook_size)."""
        return (self.codes_to_digits(codes).long() * self.basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (...) int -> codes (..., d) float32 in [-1, 1]."""
        digits = (indices.long().unsqueeze(-1) // self.basis) % self.levels.long()
        return self.digits_to_codes(digits.float())

    def extra_repr(self) -> str:
        return f"levels={self.levels_list}, codebook_size={self.codebook_size}"
