"""The Flow-HWM velocity network: an MMDiT over four token streams.

Streams, in sequence order: past video, future (noisy) video, past actions, future
actions. Video latents (C, h, w) are cut into p x p patches; each action vector is one
token (or `actions_per_latent` tokens per latent when actions are kept per frame). Every
stream has its own embedder and, per block, its own adaLN-Zero modulation, QKV (with
QK-norm), output projection and FFN; all tokens meet in ONE joint non-causal attention.
Video gets 3D RoPE over (t, y, x); actions get RoPE on the same time axis: the action
token that leads into latent i sits at time i, like latent i itself (per-frame action
tokens sit at fractional times between latents). The flow time s is the only adaLN
condition. The final layer reads only the future-video tokens.

Variants (`FlowConfig.variant`), after the first `unshared_blocks` full blocks:
  base      every stream keeps its own weights in every block;
  modality  the two video streams share one weight set, the two action streams another;
  full      one weight set for all four streams (a DiT block over a multimodal sequence);
  split     split attention in every block: each stream attends only to itself (video
            streams share one attention, action streams another), then the future video
            cross-attends to [past video, past actions, future actions], then a video
            FFN and an action FFN (hwm-paper.md 2.4, repaired so that it runs).
In the last block only the future-video tokens are read, so context streams keep just
what produces their keys and values there (no dead weights, fewer FLOPs).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.blocks import (
    MLP,
    AdaLNModulation,
    KVProjection,
    QKVProjection,
    TimestepEmbedder,
    apply_rope,
    attend,
    grid_positions,
    modulate,
    rope_angles,
    split_head_dim,
)
from models.flow.flow_matching import SAMPLERS

VARIANTS = ("base", "modality", "full", "split")
CFG_DROP_MODES = ("actions", "context")

PAST_VIDEO, FUTURE_VIDEO, PAST_ACTIONS, FUTURE_ACTIONS = range(4)
STREAM_NAMES = ("past_video", "future_video", "past_actions", "future_actions")


@dataclass
class FlowConfig:
    """Architecture, objective and sampling defaults of a Flow-HWM (stored in config.json)."""

    # what the model sees
    latent_channels: int = 8
    latent_height: int = 8
    latent_width: int = 8
    num_past: int = 2  # past latent frames
    num_future: int = 1  # future latent frames predicted per call
    action_dim: int = 25
    actions_per_latent: int = 1  # 1 = one (pooled) action token per latent; k = per-frame tokens
    past_action_tokens: Optional[int] = None  # None = num_past * actions_per_latent (1X Cosmos: 9)
    # architecture
    patch_size: int = 2
    width: int = 256
    depth: int = 8
    num_heads: int = 4
    mlp_ratio: float = 4.0
    variant: str = "base"
    unshared_blocks: int = 4
    qk_norm: bool = True
    rope_theta: float = 10000.0
    # objective
    predict_residual: bool = True  # flow over (future - last past latent), see FlowHWM
    time_logit_mean: float = 0.0
    time_logit_std: float = 1.0
    time_uniform_fraction: float = 0.1  # share of uniform s so few-step sampling is trained
    cfg_dropout: float = 0.1  # probability of dropping the condition in training
    cfg_drop: str = "actions"  # "actions": action tokens -> null; "context": also past video
    # sampling defaults (predict(steps=None, cfg_scale=None) use these)
    sampler: str = "euler"
    num_sampling_steps: int = 2
    cfg_scale: float = 1.0

    def __post_init__(self) -> None:
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"FlowConfig: {message}")

        need(self.variant in VARIANTS, f"variant '{self.variant}' is not one of {VARIANTS}")
        need(self.sampler in SAMPLERS, f"sampler '{self.sampler}' is not one of {sorted(SAMPLERS)}")
        need(self.cfg_drop in CFG_DROP_MODES, f"cfg_drop '{self.cfg_drop}' is not one of {CFG_DROP_MODES}")
        need(self.width % self.num_heads == 0, f"width {self.width} is not divisible by num_heads {self.num_heads}")
        need((self.width // self.num_heads) % 2 == 0, f"head dim {self.width // self.num_heads} must be even for RoPE")
        for name in ("latent_height", "latent_width"):
            need(getattr(self, name) % self.patch_size == 0,
                 f"{name} {getattr(self, name)} is not divisible by patch_size {self.patch_size}")
        for name in ("latent_channels", "num_past", "num_future", "action_dim", "actions_per_latent",
                     "patch_size", "depth", "num_sampling_steps"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(0 <= self.unshared_blocks, f"unshared_blocks must be >= 0, got {self.unshared_blocks}")
        need(0.0 <= self.cfg_dropout < 1.0, f"cfg_dropout must be in [0, 1), got {self.cfg_dropout}")
        need(0.0 <= self.time_uniform_fraction <= 1.0,
             f"time_uniform_fraction must be in [0, 1], got {self.time_uniform_fraction}")
        if self.past_action_tokens is not None:
            need(self.past_action_tokens >= 1, f"past_action_tokens must be >= 1, got {self.past_action_tokens}")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def patch_grid(self) -> tuple[int, int]:
        return self.latent_height // self.patch_size, self.latent_width // self.patch_size

    @property
    def tokens_per_latent(self) -> int:
        grid_y, grid_x = self.patch_grid
        return grid_y * grid_x

    @property
    def num_past_action_tokens(self) -> int:
        return self.past_action_tokens or self.num_past * self.actions_per_latent

    @property
    def num_future_action_tokens(self) -> int:
        return self.num_future * self.actions_per_latent

    def stream_lengths(self) -> tuple[int, int, int, int]:
        """Tokens per stream in sequence order (past video, future video, past actions, future actions)."""
        return (self.num_past * self.tokens_per_latent, self.num_future * self.tokens_per_latent,
                self.num_past_action_tokens, self.num_future_action_tokens)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FlowConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"FlowConfig: unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def stream_weight_sets(variant: str, block_index: int, unshared_blocks: int) -> tuple[int, int, int, int]:
    """Which weight set each stream uses in a joint block (sets are contiguous in sequence order)."""
    if variant == "base" or block_index < unshared_blocks:
        return (0, 1, 2, 3)
    if variant == "modality":
        return (0, 0, 1, 1)
    if variant == "full":
        return (0, 0, 0, 0)
    raise ValueError(f"variant '{variant}' has no joint-attention weight sets")


# --- rotary positions -------------------------------------------------------------------

def token_positions(config: FlowConfig) -> torch.Tensor:
    """(t, y, x) position of every token, in sequence order; (N, 3) float.

    Latent i sits at time i (past 0..P-1, future P..P+F-1). With k action tokens per latent,
    the j-th action leading into latent i sits at time i - 1 + (j + 1) / k, so the last one
    coincides with latent i; past action tokens are counted back from latent P - 1 (this
    also covers the 1X Cosmos layout of 1 + 8 frames in 2 latents: 9 tokens). Action tokens
    sit at the centre of the patch grid so their spatial offset to video is symmetric.
    """
    grid_y, grid_x = config.patch_grid
    k = config.actions_per_latent
    past_video = grid_positions(config.num_past, grid_y, grid_x).float()
    future_video = grid_positions(config.num_future, grid_y, grid_x, offsets=[config.num_past, 0, 0]).float()
    past_times = (config.num_past - 1) - torch.arange(config.num_past_action_tokens - 1, -1, -1) / k
    future_times = (config.num_past - 1) + (torch.arange(config.num_future_action_tokens) + 1) / k
    centre = torch.tensor([(grid_y - 1) / 2, (grid_x - 1) / 2])

    def on_time_axis(times: torch.Tensor) -> torch.Tensor:
        return torch.cat([times[:, None].float(), centre.expand(len(times), 2)], dim=1)

    return torch.cat([past_video, future_video, on_time_axis(past_times), on_time_axis(future_times)])


def stream_spans(config: FlowConfig) -> list[tuple[int, int]]:
    """(start, stop) of each stream in the token sequence."""
    spans, start = [], 0
    for length in config.stream_lengths():
        spans.append((start, start + length))
        start += length
    return spans


# --- embedders and small pieces ---------------------------------------------------------

class ActionEmbedder(nn.Module):
    """One action vector -> one token: Linear -> SiLU -> Linear."""

    def __init__(self, action_dim: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(action_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.mlp(actions)


class StreamWeights(nn.Module):
    """One stream's (or one shared set's) block weights: adaLN-Zero, QKV, output projection, FFN."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.modulation = AdaLNModulation(config.width, config.width, 6)
        self.qkv = QKVProjection(config.width, config.num_heads, qk_norm=config.qk_norm)
        self.proj = nn.Linear(config.width, config.width)
        self.mlp = MLP(config.width, config.mlp_ratio)


class ContextKVWeights(nn.Module):
    """A context stream in the last block: it only supplies keys and values to the future video."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.modulation = AdaLNModulation(config.width, config.width, 2)
        self.kv = KVProjection(config.width, config.num_heads, qk_norm=config.qk_norm)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free LayerNorm (the affine part comes from adaLN)."""
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def _gated(gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return gate.unsqueeze(1) * x


# --- blocks -----------------------------------------------------------------------------

class MMDiTBlock(nn.Module):
    """Joint attention over all streams; each weight set serves a contiguous run of streams.

    x: (B, N, C) tokens in sequence order; cond: (B, C) time embedding; angles: (N, D/2).
    Returns (B, N, C), or only the future-video tokens (B, N_fv, C) in the last block.
    """

    def __init__(self, config: FlowConfig, block_index: int, last: bool):
        super().__init__()
        self.last = last
        self.stream_sets = stream_weight_sets(config.variant, block_index, config.unshared_blocks)
        sets = []
        for set_index in range(max(self.stream_sets) + 1):
            streams = [s for s, owner in enumerate(self.stream_sets) if owner == set_index]
            context_only = last and FUTURE_VIDEO not in streams
            sets.append(ContextKVWeights(config) if context_only else StreamWeights(config))
        self.sets = nn.ModuleList(sets)

    def set_spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out = []
        for set_index in range(len(self.sets)):
            members = [spans[s] for s, owner in enumerate(self.stream_sets) if owner == set_index]
            out.append((members[0][0], members[-1][1]))
        return out

    def forward(self, x: torch.Tensor, cond: torch.Tensor, angles: torch.Tensor,
                spans: list[tuple[int, int]]) -> torch.Tensor:
        set_spans = self.set_spans(spans)
        fv_start, fv_stop = spans[FUTURE_VIDEO]
        queries, keys, values, modulations = [], [], [], []
        for weights, (start, stop) in zip(self.sets, set_spans):
            chunks = weights.modulation(cond)
            normed = modulate(_layer_norm(x[:, start:stop]), chunks[0], chunks[1])
            if isinstance(weights, ContextKVWeights):
                k, v = weights.kv(normed)
            else:
                q, k, v = weights.qkv(normed)
                if self.last:  # only the future video's queries are read
                    q = q[:, :, fv_start - start : fv_stop - start]
                queries.append(q)
            keys.append(k)
            values.append(v)
            modulations.append(chunks)
        k, v = torch.cat(keys, dim=2), torch.cat(values, dim=2)  # (B, H, N, D)
        q = torch.cat(queries, dim=2) if len(queries) > 1 else queries[0]
        if self.last:
            q, k = apply_rope(q, angles[fv_start:fv_stop]), apply_rope(k, angles)
            attended = attend(q, k, v)  # (B, N_fv, C)
            owner = self.stream_sets[FUTURE_VIDEO]
            weights, chunks = self.sets[owner], modulations[owner]
            return self._residual(weights, chunks, x[:, fv_start:fv_stop], attended)
        attended = attend(q, k, v, angles)  # (B, N, C)
        return torch.cat([
            self._residual(weights, chunks, x[:, start:stop], attended[:, start:stop])
            for weights, chunks, (start, stop) in zip(self.sets, modulations, set_spans)
        ], dim=1)

    @staticmethod
    def _residual(weights: StreamWeights, chunks, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        _, _, gate_attn, shift_mlp, scale_mlp, gate_mlp = chunks
        x = x + _gated(gate_attn, weights.proj(attended))
        return x + _gated(gate_mlp, weights.mlp(modulate(_layer_norm(x), shift_mlp, scale_mlp)))


class SplitModalityWeights(nn.Module):
    """Self-attention (+ FFN unless it is dead in the last block) shared by the streams of one modality."""

    def __init__(self, config: FlowConfig, with_mlp: bool = True):
        super().__init__()
        self.modulation = AdaLNModulation(config.width, config.width, 6 if with_mlp else 3)
        self.qkv = QKVProjection(config.width, config.num_heads, qk_norm=config.qk_norm)
        self.proj = nn.Linear(config.width, config.width)
        self.mlp = MLP(config.width, config.mlp_ratio) if with_mlp else None


class SplitAttentionBlock(nn.Module):
    """Split attention: per-stream self-attention, then future video cross-attends to the context.

    1. self-attention inside each stream (past video, future video, past actions, future
       actions each attend only to themselves; video streams share one set of weights,
       action streams another), as one SDPA call with a block-diagonal mask;
    2. cross-attention: queries from the future video, keys/values from [past video, past
       actions, future actions]; its own adaLN (shift, scale, gate), Q and KV projections;
    3. FFNs: one for video, one for actions.
    So actions reach the future video only through step 2.
    """

    def __init__(self, config: FlowConfig, last: bool):
        super().__init__()
        self.last = last
        width = config.width
        self.video = SplitModalityWeights(config)
        # in the last block the action FFN output is never read
        self.actions = SplitModalityWeights(config, with_mlp=not last)
        self.cross_modulation = AdaLNModulation(width, width, 3)
        self.cross_q = nn.Linear(width, width, bias=False)
        self.cross_q_norm = nn.RMSNorm(config.head_dim, eps=1e-6) if config.qk_norm else nn.Identity()
        self.cross_kv = KVProjection(width, config.num_heads, qk_norm=config.qk_norm)
        self.cross_proj = nn.Linear(width, width)
        self.num_heads = config.num_heads

    def forward(self, x: torch.Tensor, cond: torch.Tensor, angles: torch.Tensor,
                spans: list[tuple[int, int]], stream_mask: torch.Tensor) -> torch.Tensor:
        (pv_start, _), (fv_start, fv_stop), (pa_start, _), (_, fa_stop) = spans
        groups = ((self.video, pv_start, fv_stop), (self.actions, pa_start, fa_stop))
        # 1. per-stream self-attention
        queries, keys, values, modulations = [], [], [], []
        for weights, start, stop in groups:
            chunks = weights.modulation(cond)
            q, k, v = weights.qkv(modulate(_layer_norm(x[:, start:stop]), chunks[0], chunks[1]))
            queries.append(q)
            keys.append(k)
            values.append(v)
            modulations.append(chunks)
        attended = attend(torch.cat(queries, 2), torch.cat(keys, 2), torch.cat(values, 2), angles, stream_mask)
        x = torch.cat([
            x[:, start:stop] + _gated(chunks[2], weights.proj(attended[:, start:stop]))
            for (weights, start, stop), chunks in zip(groups, modulations)
        ], dim=1)
        # 2. future video cross-attends to the context
        shift, scale, gate = self.cross_modulation(cond)
        future = x[:, fv_start:fv_stop]
        context = torch.cat([x[:, pv_start:fv_start], x[:, fv_stop:]], dim=1)
        context_angles = torch.cat([angles[pv_start:fv_start], angles[fv_stop:]])
        batch, tokens, width = future.shape
        q = self.cross_q(modulate(_layer_norm(future), shift, scale))
        q = self.cross_q_norm(q.view(batch, tokens, self.num_heads, -1).transpose(1, 2))  # (B, H, N_fv, D)
        k, v = self.cross_kv(_layer_norm(context))
        q, k = apply_rope(q, angles[fv_start:fv_stop]), apply_rope(k, context_angles)
        future = future + _gated(gate, self.cross_proj(attend(q, k, v)))
        # 3. FFNs (the last block only needs the future video's)
        video_chunks, action_chunks = modulations
        future = future + _gated(video_chunks[5], self.video.mlp(
            modulate(_layer_norm(future), video_chunks[3], video_chunks[4])))
        if self.last:
            return future
        past = x[:, pv_start:fv_start]
        past = past + _gated(video_chunks[5], self.video.mlp(
            modulate(_layer_norm(past), video_chunks[3], video_chunks[4])))
        actions = x[:, pa_start:fa_stop]
        actions = actions + _gated(action_chunks[5], self.actions.mlp(
            modulate(_layer_norm(actions), action_chunks[3], action_chunks[4])))
        return torch.cat([past, future, actions], dim=1)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) -> Linear to patch values; zero-initialised so training starts at v = 0."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.modulation = AdaLNModulation(config.width, config.width, 2)
        self.linear = nn.Linear(config.width, config.patch_size ** 2 * config.latent_channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(cond)
        return self.linear(modulate(_layer_norm(x), shift, scale))


# --- the network ------------------------------------------------------------------------

class MMDiT(nn.Module):
    """Velocity network v(x_s, s | past latents, past actions, future actions).

    Inputs are normalised latents and actions (FlowHWM owns the statistics).
    """

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        width, patch_dim = config.width, config.patch_size ** 2 * config.latent_channels
        self.past_video_embed = nn.Linear(patch_dim, width)
        self.future_video_embed = nn.Linear(patch_dim, width)
        self.past_action_embed = ActionEmbedder(config.action_dim, width)
        self.future_action_embed = ActionEmbedder(config.action_dim, width)
        self.time_embed = TimestepEmbedder(width)
        # classifier-free guidance: dropped conditions become learned null tokens
        if config.cfg_dropout > 0:
            self.null_past_actions = nn.Parameter(torch.zeros(width))
            self.null_future_actions = nn.Parameter(torch.zeros(width))
            if config.cfg_drop == "context":
                self.null_past_video = nn.Parameter(torch.zeros(width))
        last = config.depth - 1
        if config.variant == "split":
            self.blocks = nn.ModuleList(SplitAttentionBlock(config, last=i == last) for i in range(config.depth))
        else:
            self.blocks = nn.ModuleList(MMDiTBlock(config, i, last=i == last) for i in range(config.depth))
        self.final_layer = FinalLayer(config)

        self.spans = stream_spans(config)
        axis_dims = split_head_dim(config.head_dim, 3)
        self.register_buffer("rope", rope_angles(token_positions(config), axis_dims, config.rope_theta),
                             persistent=False)  # (N, D/2)
        stream_ids = torch.tensor([s for s, length in enumerate(config.stream_lengths()) for _ in range(length)])
        self.register_buffer("stream_mask", stream_ids[:, None] == stream_ids[None, :], persistent=False)
        self.initialize_weights()

    @property
    def supports_guidance(self) -> bool:
        return self.config.cfg_dropout > 0

    def initialize_weights(self) -> None:
        """Xavier for every Linear, N(0, 0.02) for the time MLP and null tokens; zeros where adaLN-Zero wants them.

        Zeroed adaLN gates make every block start as the identity, and the zeroed final
        layer makes the initial velocity exactly 0, so early training is stable.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for layer in self.time_embed.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        for name, parameter in self.named_parameters():
            if name.startswith("null_"):
                nn.init.normal_(parameter, std=0.02)
        for module in self.modules():
            if isinstance(module, AdaLNModulation):
                nn.init.zeros_(module.linear.weight)
                nn.init.zeros_(module.linear.bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return rearrange(latents, "b t c (y p) (x q) -> b (t y x) (c p q)", p=p, q=p)  # (B, T*hp*wp, C*p*p)

    def unpatchify(self, tokens: torch.Tensor, num_latents: int) -> torch.Tensor:
        p, (grid_y, grid_x) = self.config.patch_size, self.config.patch_grid
        return rearrange(tokens, "b (t y x) (c p q) -> b t c (y p) (x q)",
                         t=num_latents, y=grid_y, x=grid_x, p=p, q=p)  # (B, T, C, h, w)

    def forward(self, noisy_future: torch.Tensor, s: torch.Tensor, past_latents: torch.Tensor,
                past_actions: torch.Tensor, future_actions: torch.Tensor,
                drop_condition: torch.Tensor | None = None) -> torch.Tensor:
        """noisy_future (B,F,C,h,w), s (B,), past_latents (B,P,C,h,w), actions (B,N_a,A) -> velocity (B,F,C,h,w).

        drop_condition (B,) bool replaces the dropped samples' condition tokens by the null
        tokens (new tensors; the caller's inputs are never written).
        """
        past_video = self.past_video_embed(self.patchify(past_latents))  # (B, P*hp*wp, C)
        future_video = self.future_video_embed(self.patchify(noisy_future))  # (B, F*hp*wp, C)
        past_action_tokens = self.past_action_embed(past_actions)  # (B, N_pa, C)
        future_action_tokens = self.future_action_embed(future_actions)  # (B, N_fa, C)
        if drop_condition is not None:
            if not self.supports_guidance:
                raise ValueError("this Flow-HWM was trained with cfg_dropout=0: it has no null condition "
                                 "for classifier-free guidance; use cfg_scale=1")
            drop = drop_condition.view(-1, 1, 1)
            past_action_tokens = torch.where(drop, self.null_past_actions, past_action_tokens)
            future_action_tokens = torch.where(drop, self.null_future_actions, future_action_tokens)
            if self.config.cfg_drop == "context":
                past_video = torch.where(drop, self.null_past_video, past_video)
        x = torch.cat([past_video, future_video, past_action_tokens, future_action_tokens], dim=1)  # (B, N, C)
        cond = self.time_embed(s)  # (B, C)
        for block in self.blocks:
            if isinstance(block, SplitAttentionBlock):
                x = block(x, cond, self.rope, self.spans, self.stream_mask)
            else:
                x = block(x, cond, self.rope, self.spans)
        # after the last block x holds only the future-video tokens
        return self.unpatchify(self.final_layer(x, cond), self.config.num_future)
