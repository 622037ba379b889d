"""Shared transformer pieces: RoPE correctness, attention shapes, adaLN-Zero init."""
import torch

from models.blocks import (
    AdaLNModulation, ActionNormalizer, KVProjection, SelfAttention, apply_rope, grid_positions,
    rope_angles, split_head_dim,
)


def test_rope_rotates_pairs_by_their_angles_and_preserves_norms():
    angles = rope_angles(grid_positions(3, 4), split_head_dim(16, 2))  # (12, 8)
    x = torch.randn(2, 3, 12, 16)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    expected = torch.stack((x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()), -1)
    rotated = apply_rope(x, angles)
    assert torch.allclose(rotated, expected.flatten(-2), atol=1e-5)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-4)
    assert not torch.equal(rotated, x)  # a new tensor; the input is untouched
    assert torch.equal(x[..., 0::2], x1)


def test_rope_scores_depend_only_on_relative_position():
    dims = split_head_dim(8, 1)
    q, k = torch.randn(8), torch.randn(8)
    def score(i, j):
        angles_q = rope_angles(torch.tensor([[i]]), dims)
        angles_k = rope_angles(torch.tensor([[j]]), dims)
        return (apply_rope(q[None], angles_q) * apply_rope(k[None], angles_k)).sum()
    assert torch.allclose(score(3, 1), score(7, 5), atol=1e-5)


def test_attention_projections_and_adaln_zero_start():
    attention = SelfAttention(32, 4)
    assert attention(torch.randn(2, 5, 32)).shape == (2, 5, 32)
    k, v = KVProjection(32, 4)(torch.randn(2, 5, 32))
    assert k.shape == v.shape == (2, 4, 5, 8)
    shift, scale = AdaLNModulation(16, 32, 2)(torch.randn(3, 16))
    assert torch.count_nonzero(shift) == 0 and torch.count_nonzero(scale) == 0


def test_action_normalizer_leaves_binary_dims_as_is():
    normalizer = ActionNormalizer(3)
    normalizer.set_stats([1.0, 2.0, 0.5], [2.0, 4.0, 0.5], binary_dims=[2])
    out = normalizer(torch.tensor([[3.0, 2.0, 1.0]]))
    assert torch.allclose(out, torch.tensor([[1.0, 0.0, 1.0]]))
