"""The spatio-temporal transformer behind Masked-HWM: token grids + actions -> future-token logits.

Each block does three things, like Genie's ST-transformer:
1. spatial attention inside each latent frame (2D RoPE over the token grid);
2. temporal attention per grid cell across latent frames, jointly over video and action
   tokens (1D RoPE on the latent time axis, one shared attention like the original);
3. feed-forward networks per stream (past video, future video, past actions, future actions),
   shared by config (`variant`: base | modality | full, after `unshared_blocks` blocks).

How the actions reach the video (the original's failure was that they could not): the
temporal sequence of a grid cell is the pairs [action_0, video_0, action_1, video_1, ...]
under a *block-causal* mask: a token of latent frame t sees the action and video tokens of
frames <= t, action tokens see only actions. We chose this over adaLN or cross-attention:
- it is the original's layout with the mask fixed, so the parameter budget (321.4 M / 195.3 M
  for the paper config) and the sharing variants carry over without new modules;
- the future frame reads its own action (the one leading into it) directly, at every block,
  and the earlier actions through the same attention that reads the earlier frames;
- action tokens never attend to video, so they stay one token per frame (B, T, C) instead of
  one per grid cell, and their keys are broadcast over the grid for free;
- past frames never see the future, so their keys/values are computed once and reused by
  every MaskGIT decoding step (`encode_context` + `future_logits`); training runs the same
  two passes, so there is one code path. Predicting fewer future frames than trained is
  also in-distribution: frame t never saw frames after it.
Because past-stream outputs of the last block feed nothing, its context-stream MLPs are
omitted (as SD3 does); per-stream action embedders (as in Flow-HWM) sit at the input.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from models.blocks import MLP, SelfAttention, apply_rotation, grid_positions, rope_angles, rope_rotation, split_head_dim
from models.masked.maskgit import READOUTS, token_digits

VARIANTS = ("base", "modality", "full")
UNMASK_MODES = ("confidence", "random")
VIDEO_STREAMS = ("past_video", "future_video")
ACTION_STREAMS = ("past_actions", "future_actions")
STREAMS = VIDEO_STREAMS + ACTION_STREAMS

# variant -> which weight set (module key) each stream uses in a shared block
SHARING = {
    "base": {stream: stream for stream in STREAMS},
    "modality": {"past_video": "video", "future_video": "video", "past_actions": "actions", "future_actions": "actions"},
    "full": {stream: "shared" for stream in STREAMS},
}


@dataclass
class MaskedConfig:
    """Architecture, masking objective and decoding defaults of a Masked-HWM."""

    # tokens (set from the tokenizer when training: `hwm train masked` reads tokens.json)
    vocab_size: int = 1000
    token_grid: list[int] = field(default_factory=lambda: [8, 8])  # (h, w) tokens per latent frame
    fsq_levels: Optional[list[int]] = None  # FSQ digits of a token id (first least significant)
    factorized_head: bool = False  # one softmax per FSQ digit instead of one over the vocabulary
    factorized_embedding: bool = False  # a token's embedding = the sum of its FSQ digits' embeddings
    # window and actions
    num_past: int = 2
    num_future: int = 1
    action_dim: int = 25
    # transformer
    width: int = 256
    depth: int = 8
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    qk_norm: bool = True
    variant: str = "base"  # base | modality | full
    unshared_blocks: int = 4  # the first blocks keep per-stream weights in every variant
    rope_theta: float = 10000.0
    # training objective
    max_corrupt_rate: float = 0.2  # random-token corruption rate ~ U(0, max) per sample, all frames
    static_history_fraction: float = 0.0  # share of training samples whose past frames all show the last one
    # decoding defaults (None in predict() means these)
    num_sampling_steps: int = 4
    temperature: float = 0.0  # 0 = argmax
    unmask_mode: str = "random"  # which tokens to commit each step: "random" or "confidence"
    # The frames `hwm eval model` and the envs show: "tokens" (the predicted tokens, decoded) or "mean"
    # (each token's expected FSQ digits, decoded; factorised head). predict() returns tokens unless asked.
    readout: str = "tokens"

    def validate(self) -> None:
        """Raise ValueError naming the field; called when a model is built (not on load, so
        `hwm train masked` can fill vocabulary, grid and FSQ levels from the data first)."""
        def fail(field_name, expected, got):
            raise ValueError(f"MaskedConfig.{field_name}: expected {expected}, got {got!r}")

        if self.variant not in VARIANTS:
            fail("variant", f"one of {list(VARIANTS)}", self.variant)
        if self.unmask_mode not in UNMASK_MODES:
            fail("unmask_mode", f"one of {list(UNMASK_MODES)}", self.unmask_mode)
        if self.readout not in READOUTS:
            fail("readout", f"one of {list(READOUTS)}", self.readout)
        if self.readout == "mean" and not self.factorized_head:
            fail("readout", "'tokens' unless factorized_head (the mean readout needs one softmax per FSQ digit)",
                 self.readout)
        if len(self.token_grid) != 2 or min(self.token_grid) < 1:
            fail("token_grid", "[h, w] with positive sizes", self.token_grid)
        for name in ("vocab_size", "num_past", "num_future", "action_dim", "width", "depth", "num_heads",
                     "num_sampling_steps"):
            if getattr(self, name) < 1:
                fail(name, "a positive integer", getattr(self, name))
        if self.width % self.num_heads or (self.width // self.num_heads) % 4:
            fail("width", f"a multiple of num_heads ({self.num_heads}) with a head dim divisible by 4 (2D RoPE)",
                 self.width)
        if not 0.0 <= self.max_corrupt_rate < 1.0:
            fail("max_corrupt_rate", "a rate in [0, 1)", self.max_corrupt_rate)
        if not 0.0 <= self.static_history_fraction <= 1.0:
            fail("static_history_fraction", "a fraction in [0, 1]", self.static_history_fraction)
        if self.temperature < 0:
            fail("temperature", ">= 0", self.temperature)
        if self.fsq_levels is not None and math.prod(self.fsq_levels) != self.vocab_size:
            fail("fsq_levels", f"levels whose product is vocab_size {self.vocab_size}", self.fsq_levels)
        if self.factorized_head and self.fsq_levels is None:
            fail("factorized_head", "false unless fsq_levels is set", self.factorized_head)
        if self.factorized_embedding and self.fsq_levels is None:
            fail("factorized_embedding", "false unless fsq_levels is set", self.factorized_embedding)

    @property
    def tokens_per_frame(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    @property
    def head_size(self) -> int:
        """Output features per token: the vocabulary, or the sum of the FSQ levels."""
        return sum(self.fsq_levels) if self.factorized_head else self.vocab_size

    def block_sharing(self, index: int) -> str:
        return "base" if index < self.unshared_blocks else self.variant


class DigitEmbedding(nn.Module):
    """Token id -> the sum of one learned vector per FSQ digit value.

    A 64,000-code vocabulary at width 128 is 8.2 M embedding weights, most of them rows of codes
    seen a handful of times; neighbouring FSQ codes share digits, so summing digit embeddings
    (sum(levels) rows: 39 for Cosmos's levels) shares what is learned between them, as the
    factorised head does on the output side.
    """

    def __init__(self, levels: list[int], width: int):
        super().__init__()
        self.levels = list(levels)
        self.register_buffer("offsets", torch.tensor([0, *itertools.accumulate(self.levels)][:-1]), persistent=False)
        self.weight = nn.Parameter(torch.empty(sum(self.levels), width))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = token_digits(tokens, self.levels) + self.offsets  # (..., digits)
        return self.weight[rows].sum(-2)


class ActionEmbedder(nn.Module):
    """Normalised action (A,) -> one token (C,): Linear -> GELU -> MLP -> LayerNorm (as the original)."""

    def __init__(self, action_dim: int, width: int, mlp_ratio: float):
        super().__init__()
        self.proj = nn.Linear(action_dim, width)
        self.mlp = MLP(width, mlp_ratio)
        self.norm = nn.LayerNorm(width)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(nn.functional.gelu(self.proj(actions))))


class STBlock(nn.Module):
    """Spatial attention -> block-causal temporal attention over [action, video] -> per-stream MLPs.

    A pass covers T consecutive latent frames of one kind (past or future); `memory` holds the
    rotated temporal keys/values of the frames before them (the context), so a future pass sees
    the context without recomputing it.
    """

    def __init__(self, config: MaskedConfig, sharing: str, last: bool):
        super().__init__()
        width, groups = config.width, SHARING[sharing]
        self.groups = groups
        self.last = last
        self.spatial_attention = SelfAttention(width, config.num_heads, qk_norm=config.qk_norm)
        self.temporal_attention = SelfAttention(width, config.num_heads, qk_norm=config.qk_norm)
        self.spatial_norms = nn.ModuleDict({groups[s]: nn.LayerNorm(width) for s in VIDEO_STREAMS})
        self.temporal_norms = nn.ModuleDict({groups[s]: nn.LayerNorm(width) for s in STREAMS})
        # The last block's context outputs feed nothing: only the future video keeps its MLP.
        mlp_streams = ("future_video",) if last else STREAMS
        self.mlp_norms = nn.ModuleDict({groups[s]: nn.LayerNorm(width) for s in mlp_streams})
        self.mlps = nn.ModuleDict({groups[s]: MLP(width, config.mlp_ratio, config.dropout) for s in mlp_streams})

    def forward(
        self,
        video: torch.Tensor,  # (B, T, S, C)
        actions: torch.Tensor,  # (B, T, C)
        kind: str,  # "past" | "future"
        spatial_rotation: torch.Tensor,  # (S, D/2) complex RoPE rotations over the grid
        time_rotation: torch.Tensor,  # (M + T, D/2) complex: the memory's frames, then this pass's
        memory: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        """Returns (video, actions, keys/values of this pass). Outputs are None when nothing
        can read them (the context pass of the last block only contributes keys/values)."""
        video_stream, action_stream = f"{kind}_video", f"{kind}_actions"
        batch, frames, cells, width = video.shape
        outputs_needed = not (self.last and kind == "past")

        # 1. spatial attention within each latent frame
        x = self.spatial_norms[self.groups[video_stream]](video).reshape(batch * frames, cells, width)
        q, k, v = self.spatial_attention.qkv(x)  # each (B*T, H, S, D)
        out = nn.functional.scaled_dot_product_attention(apply_rotation(q, spatial_rotation), apply_rotation(k, spatial_rotation), v)
        out = self.spatial_attention.proj(out.transpose(1, 2).reshape(batch * frames, cells, width))
        video = video + out.view(batch, frames, cells, width)

        # 2. temporal attention per grid cell over [action_t, video_t] pairs, block-causal
        attention = self.temporal_attention
        video_in = self.temporal_norms[self.groups[video_stream]](video)
        video_in = video_in.permute(0, 2, 1, 3).reshape(batch * cells, frames, width)  # (B*S, T, C)
        action_in = self.temporal_norms[self.groups[action_stream]](actions)  # (B, T, C)
        q_video, k_video, v_video = attention.qkv(video_in)  # each (B*S, H, T, D)
        q_action, k_action, v_action = attention.qkv(action_in)  # each (B, H, T, D)
        own_rotation = time_rotation[-frames:]
        k_video, k_action = apply_rotation(k_video, own_rotation), apply_rotation(k_action, own_rotation)
        if memory is not None:
            memory_k_video, memory_v_video, memory_k_action, memory_v_action = memory
            k_video, v_video = torch.cat([memory_k_video, k_video], 2), torch.cat([memory_v_video, v_video], 2)
            k_action, v_action = torch.cat([memory_k_action, k_action], 2), torch.cat([memory_v_action, v_action], 2)
        new_memory = (k_video, v_video, k_action, v_action)  # all frames so far, keys rotated
        if not outputs_needed:
            return None, None, new_memory

        total = k_video.shape[2]  # M + T frames
        first = total - frames  # time index of this pass's first frame
        query_time = torch.arange(first, total, device=video.device)
        key_time = torch.arange(total, device=video.device)
        causal = key_time[None, :] <= query_time[:, None]  # (T, M+T): frame t sees frames <= t
        # video queries read [actions..., video...] of frames <= t; action keys broadcast over cells
        heads, head_dim = k_action.shape[1], k_action.shape[3]
        keys = torch.cat([_over_cells(k_action, cells), k_video], 2)  # (B*S, H, 2(M+T), D)
        values = torch.cat([_over_cells(v_action, cells), v_video], 2)
        q_video = apply_rotation(q_video, own_rotation)
        out = nn.functional.scaled_dot_product_attention(q_video, keys, values, attn_mask=causal.repeat(1, 2))
        out = attention.proj(out.transpose(1, 2).reshape(batch * cells, frames, heads * head_dim))
        video = video + out.view(batch, cells, frames, width).permute(0, 2, 1, 3)
        video = video + self._mlp(video_stream, video)  # 3. per-stream feed-forward
        if self.last:  # nothing reads the actions after the last block
            return video, None, new_memory

        # action queries read actions of frames <= t only, so actions stay one token per frame
        q_action = apply_rotation(q_action, own_rotation)
        out = nn.functional.scaled_dot_product_attention(q_action, k_action, v_action, attn_mask=causal)
        actions = actions + attention.proj(out.transpose(1, 2).reshape(batch, frames, heads * head_dim))
        actions = actions + self._mlp(action_stream, actions)
        return video, actions, new_memory

    def _mlp(self, stream: str, x: torch.Tensor) -> torch.Tensor:
        group = self.groups[stream]
        return self.mlps[group](self.mlp_norms[group](x))


def _over_cells(action_kv: torch.Tensor, cells: int) -> torch.Tensor:
    """(B, H, T, D) per-frame action keys/values -> (B*S, H, T, D), the same for every grid cell."""
    batch = action_kv.shape[0]
    return action_kv.unsqueeze(1).expand(batch, cells, *action_kv.shape[1:]).reshape(batch * cells, *action_kv.shape[1:])


class STTransformer(nn.Module):
    """Token grids + normalised actions -> logits over the future tokens.

    `encode_context` runs the past frames once; `future_logits` runs the future frames
    against that context (called once in training, once per MaskGIT step in decoding).
    """

    def __init__(self, config: MaskedConfig):
        super().__init__()
        self.config = config
        width = config.width
        self.token_embedding = (
            DigitEmbedding(config.fsq_levels, width) if config.factorized_embedding
            else nn.Embedding(config.vocab_size, width)
        )
        self.mask_embedding = nn.Parameter(torch.zeros(width))
        self.past_action_embedder = ActionEmbedder(config.action_dim, width, config.mlp_ratio)
        self.future_action_embedder = ActionEmbedder(config.action_dim, width, config.mlp_ratio)
        self.blocks = nn.ModuleList(
            STBlock(config, config.block_sharing(i), last=i == config.depth - 1) for i in range(config.depth)
        )
        self.final_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, config.head_size)

        head_dim = width // config.num_heads
        grid_h, grid_w = config.token_grid
        # RoPE tables (not weights): 2D over the grid, 1D over latent time
        self.register_buffer(
            "spatial_angles", rope_angles(grid_positions(grid_h, grid_w), split_head_dim(head_dim, 2), config.rope_theta),
            persistent=False,
        )
        num_frames = config.num_past + config.num_future
        self.register_buffer(
            "time_angles", rope_angles(grid_positions(num_frames), [head_dim], config.rope_theta), persistent=False
        )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """GPT-2 style: N(0, 0.02) for linears and embeddings (the mask token included), with the
        residual branches' output layers scaled by 1/sqrt(2 * depth) so the deep stack starts
        near identity. Nothing in the action path is zeroed: actions influence the logits at init."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.normal_(self.mask_embedding, std=0.02)
        residual_std = 0.02 / math.sqrt(2 * self.config.depth)
        for block in self.blocks:
            for layer in [block.spatial_attention.proj, block.temporal_attention.proj] + [m.fc2 for m in block.mlps.values()]:
                nn.init.normal_(layer.weight, std=residual_std)

    def encode_context(self, past_tokens: torch.Tensor, past_actions: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """past_tokens (B, P, h, w) int64, past_actions (B, P, A) normalised -> per-block keys/values."""
        batch, frames = past_tokens.shape[:2]
        video = self.token_embedding(past_tokens.reshape(batch, frames, -1))  # (B, P, S, C)
        actions = self.past_action_embedder(past_actions)  # (B, P, C)
        spatial_rotation, time_rotation = rope_rotation(self.spatial_angles), rope_rotation(self.time_angles[:frames])
        memory = []
        for block in self.blocks:
            video, actions, block_memory = block(video, actions, "past", spatial_rotation, time_rotation)
            memory.append(block_memory)
        return memory

    def future_logits(
        self,
        context: list[tuple[torch.Tensor, ...]],
        future_tokens: torch.Tensor,  # (B, F, h, w) int64; values at masked positions are ignored
        future_mask: torch.Tensor,  # (B, F, h, w) bool, True = masked
        future_actions: torch.Tensor,  # (B, F, A) normalised
    ) -> torch.Tensor:
        """Logits (B, F, h, w, head_size) of the future tokens given the context."""
        batch, frames, grid_h, grid_w = future_tokens.shape
        embedded = self.token_embedding(future_tokens.reshape(batch, frames, -1))  # (B, F, S, C)
        mask = future_mask.reshape(batch, frames, -1, 1)
        video = torch.where(mask, self.mask_embedding.to(embedded.dtype), embedded)
        actions = self.future_action_embedder(future_actions)  # (B, F, C)
        num_past = context[0][0].shape[2]
        spatial_rotation = rope_rotation(self.spatial_angles)
        time_rotation = rope_rotation(self.time_angles[: num_past + frames])
        for block, block_memory in zip(self.blocks, context):
            video, actions, _ = block(video, actions, "future", spatial_rotation, time_rotation, block_memory)
        logits = self.head(self.final_norm(video))  # (B, F, S, head_size)
        return logits.view(batch, frames, grid_h, grid_w, -1)

    def forward(self, past_tokens, past_actions, future_tokens, future_mask, future_actions) -> torch.Tensor:
        context = self.encode_context(past_tokens, past_actions)
        return self.future_logits(context, future_tokens, future_mask, future_actions)
