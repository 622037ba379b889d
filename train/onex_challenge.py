"""The two tracks of the 1X World Model Challenge 2025 on v2.0 data (reference/data-formats.md A.6).

**Compression** (`evaluate_compression`, `hwm eval onex-compression`): the model gets one
17-frame chunk of Cosmos DV8x8x8 tokens (3 grids of 32x32 ids in [0, 64000)) with its robot
states and gives, for every token of the NEXT chunk's 3 grids, its 500 most likely ids and
their log-probabilities. Scored by top-500 cross-entropy (nats per token; lower is better):

| reference | top-500 CE |
|---|---|
| uniform over the 64,000 codes | ln 64000 = 11.07 |
| winner 2025 (team Revontuli, ST-transformer) | 6.64 (6.6386) |

A submission is a flat `submission.zip` of one `<ID>.npz` per test sample, each holding
`indices` int32 (3, 32, 32, 500) in [0, 64000) and `values` float32 (3, 32, 32, 500), plus
`README.txt`, a JSON object with the keys method, team, authors, e-mail, institution, country
(the layout the challenge's submission validator checks).

**The top-500 rule implemented here** (`top_k_cross_entropy`). The organisers' exact formula
was not found (data-formats.md A.6: unknown whether `values` are logits or probabilities and
how a ground-truth token outside the 500 is scored), so this is a documented choice:
`values` are natural-log probabilities of the listed ids under the model's full distribution
over the 64,000 codes, in descending order. A ground-truth token listed at j scores
`-values[j]`; a token not listed scores `-log(max(1 - S, 1e-6) / (64000 - 500))`, where S is
the listed probability mass `sum(exp(values))` (at most 1): the mass left outside the list
is spread evenly over the unlisted codes. Why: it is the cross-entropy of a proper
distribution over all 64,000 codes, so it is minimised by reporting the true probabilities
(the reference point the organisers quote, uniform = ln 64000 = 11.07, comes out exactly:
every token then scores ln 64000 whether listed or not, while a softmax over the 500 values
alone would make any unlisted token infinitely bad); a model that puts all its mass on the
true token scores 0. The floor 1e-6 on the unlisted mass caps the penalty at
-log(1e-6 / 63500) = 24.9 nats: S is a sum of 500 float32 probabilities, which cannot
resolve a remainder much below 1e-6. With full vocabulary logits the score equals the
ordinary cross-entropy whenever the true token is listed. The files written store exactly
the arrays scored, so the local score is the score of the submission under this rule.

How a Masked-HWM produces the distributions: the last `num_past` context grids (and the
mean states of the frames each covers, as in training) condition one forward pass with the
next min(num_future, 3) grids fully masked; the per-token distributions of those grids are
scored. Grids beyond the first block are conditioned on the model's own MaskGIT sample of
the block before (the test set gives no targets). Future actions: the track gives only the
context chunk's states, so by default the last known state is held (`future_actions="held"`);
`"true"` uses the target chunk's states (an oracle, for val splits only).

**Sampling** (`evaluate_sampling`, `hwm eval onex-sampling`): 17 context frames plus the robot
states of frames 0..76 (past and future) in, frame 77 out (0-based index 76: 60 frames, 2 s
at 30 Hz, after the last context frame), scored by PSNR against the raw frame; the winner
(team Revontuli, Wan-2.2 5B + LoRA) reached 23.0 dB. Either family: the context is encoded with
the model's tokenizer, latents are rolled out on the data's clock (temporal tokenizers: the
1X 17-frame chunks, whose latents cover [0], [1..8], [9..16] of each chunk; per-frame
tokenizers: the checkpoint's frame stride), and the latent holding frame 76 is decoded inside
its causal chunk. The frames are compared at the tokenizer's resolution (1X raw MP4s are
512x512, Cosmos works at 256x256; the raw frame is area-averaged down), since the challenge's
evaluation resolution was not found. Copy-last (frame 16) and the tokenizer's reconstruction
of frame 76 are reported beside it.
"""
from __future__ import annotations

import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from models.data import onex

TOP_K = 500
VOCAB_SIZE = onex.VOCAB_SIZE  # 64,000 Cosmos DV8x8x8 codes
TARGET_GRIDS = onex.LATENTS_PER_CHUNK  # the next chunk's 3 latent grids
UNLISTED_MASS_FLOOR = 1e-6
UNIFORM_CROSS_ENTROPY = math.log(VOCAB_SIZE)  # 11.07 nats
WINNER_CROSS_ENTROPY = 6.6386  # Revontuli, 1st place 2025
README_KEYS = ("method", "team", "authors", "e-mail", "institution", "country")
SUBMISSION_ZIP = "submission.zip"
TEST_SET_SIZE = 450  # compression test samples

CONTEXT_FRAMES = onex.CHUNK_FRAMES  # 17
TARGET_FRAME = 76  # the 77th frame, 0-based
WINNER_PSNR = 23.0  # dB, Revontuli, 1st place 2025
SAMPLING_TEST_SET_SIZE = 250
FUTURE_ACTIONS = ("held", "true")


# --- top-500 distributions and their cross-entropy -------------------------------------------

def top_k_log_probs(logits: torch.Tensor, levels: Sequence[int] | None, k: int = TOP_K,
                    values_per_pass: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most likely token ids and their log-probabilities, (..., k) int64 and float32, descending.

    logits: (..., V) over the vocabulary, or (..., sum(levels)) of a factorised head (one softmax
    per FSQ digit, id = sum digit_i * prod(levels[:i])); the factorised top k is exact without
    listing all prod(levels) ids: digits are added one at a time, keeping the k best partial
    ids, since a partial id outside the k best can only lead to ids outside the k best.
    """
    shape = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    candidates = flat.shape[-1] if levels is None else k * max(levels)  # values held per position at once
    positions_per_pass = max(1, values_per_pass // candidates)
    indices, values = [], []
    for begin in range(0, flat.shape[0], positions_per_pass):
        part = flat[begin : begin + positions_per_pass].float()
        if levels is None:
            top = part.log_softmax(-1).topk(min(k, part.shape[-1]), dim=-1)
            values.append(top.values)
            indices.append(top.indices)
        else:
            ids, scores = _factorized_top_k(part, list(levels), k)
            indices.append(ids)
            values.append(scores)
    indices, values = torch.cat(indices), torch.cat(values)
    return indices.view(*shape, -1), values.view(*shape, -1)


def _factorized_top_k(logits: torch.Tensor, levels: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, sum(levels)) digit logits -> ids, log-probs (n, min(k, prod(levels))), descending."""
    scores = ids = None
    basis = 1
    for part in logits.split(levels, dim=-1):  # (n, L) per digit
        log_probs = part.log_softmax(-1)
        digit_ids = torch.arange(part.shape[-1], device=part.device) * basis
        if scores is None:
            scores, ids = log_probs, digit_ids.expand_as(log_probs)
        else:
            scores = (scores[:, :, None] + log_probs[:, None, :]).flatten(1)  # (n, m * L)
            ids = (ids[:, :, None] + digit_ids[None, None, :]).flatten(1)
        if scores.shape[1] > k:
            scores, keep = scores.topk(k, dim=-1)
            ids = ids.gather(1, keep)
        basis *= part.shape[-1]
    scores, order = scores.sort(dim=-1, descending=True)
    return ids.gather(1, order), scores


def top_k_cross_entropy(indices, values, targets, vocab_size: int = VOCAB_SIZE) -> torch.Tensor:
    """Per-token cross-entropy (nats) of `targets` (...) under top-k lists (..., k); module docstring.

    Listed: -values[j]. Unlisted: -log(max(1 - S, UNLISTED_MASS_FLOOR) / (vocab_size - k)),
    S = sum(exp(values)) clipped to 1.
    """
    indices, values, targets = (torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
                                for x in (indices, values, targets))
    values = values.double()
    k = indices.shape[-1]
    hit = indices.long() == targets.long().unsqueeze(-1)  # (..., k)
    listed = hit.any(-1)
    listed_log_prob = torch.where(hit, values, torch.zeros_like(values)).sum(-1)
    listed_mass = values.exp().sum(-1).clamp(max=1.0)
    unlisted_log_prob = torch.log((1.0 - listed_mass).clamp(min=UNLISTED_MASS_FLOOR) / (vocab_size - k))
    return -torch.where(listed, listed_log_prob, unlisted_log_prob)


# --- compression: samples ------------------------------------------------------------------

@dataclass
class CompressionSample:
    """One chunk of context (and, on scored splits, the next chunk as the target)."""

    sample_id: str
    shard: onex.OneXShard
    context_chunk: int
    target_chunk: int | None


def compression_samples(split: onex.OneXTokenizedSplit, count: int | None = TEST_SET_SIZE,
                        seed: int = 0) -> list[CompressionSample]:
    """The samples of a 1X v2.0 token split.

    A test-style split (every shard a single 17-frame chunk, like `test_v2.0`) gives one
    unscored sample per shard, ID = the shard number i of `video_{i}.bin`. Any other split gives
    pairs of adjacent kept chunks inside one segment (context k, target k + 1), of which
    `count` are drawn with `seed` (None: all), IDs 0, 1, ... in shard and chunk order.
    """
    if all(math.ceil(shard.num_frames / onex.CHUNK_FRAMES) == 1 for shard in split.shards):
        return [CompressionSample(str(shard.index), shard, 0, None) for shard in split.shards
                if len(shard.kept_chunks())]
    pairs = []
    for shard in split.shards:
        kept = set(shard.kept_chunks().tolist())
        for chunk in sorted(kept):
            if chunk + 1 in kept and shard.segment_idx[onex.CHUNK_FRAMES * chunk + onex.CHUNK_FRAMES - 1] == \
                    shard.segment_idx[onex.CHUNK_FRAMES * (chunk + 1)]:
                pairs.append((shard, chunk))
    if not pairs:
        raise ValueError(f"{split.path}: no two adjacent full chunks inside one segment; the compression track "
                         "needs a context chunk and the chunk after it (or a test split of single chunks)")
    if count is not None and count < len(pairs):
        chosen = np.sort(np.random.default_rng(seed).choice(len(pairs), size=count, replace=False))
        pairs = [pairs[i] for i in chosen]
    return [CompressionSample(str(n), shard, chunk, chunk + 1) for n, (shard, chunk) in enumerate(pairs)]


def chunk_latent_actions(states: np.ndarray, chunk: int) -> np.ndarray:
    """(3, 25) float32: per latent of chunk k, the mean state of the frames it covers (the action into frame f
    is states[f], DESIGN.md section 3), as the training windows pool them."""
    start = onex.CHUNK_FRAMES * chunk
    return np.stack([np.asarray(states[start + a : start + b], dtype=np.float32).mean(0)
                     for a, b in onex.LATENT_FRAME_SPANS])


def _sample_arrays(split, sample: CompressionSample, future_actions: str):
    """(context tokens (3, h, w), context actions (3, A), future actions (3, A), target tokens or None)."""
    shard, chunk = sample.shard, sample.context_chunk
    times = np.arange(onex.LATENTS_PER_CHUNK)
    context = split.read_tokens(shard, np.full(3, chunk), times)
    context_actions = chunk_latent_actions(shard.states, chunk)
    target = None if sample.target_chunk is None else split.read_tokens(shard, np.full(3, sample.target_chunk), times)
    if future_actions == "true":
        if sample.target_chunk is None:
            raise ValueError(f"{split.path}: future_actions 'true' needs the target chunk's states; a test sample "
                             "has only its context")
        future = chunk_latent_actions(shard.states, sample.target_chunk)
    else:  # the track gives the context's states only: hold the last known one
        last = np.asarray(shard.states[onex.CHUNK_FRAMES * chunk + onex.CHUNK_FRAMES - 1], dtype=np.float32)
        future = np.repeat(last[None], TARGET_GRIDS, axis=0)
    return context, context_actions, future, target


# --- compression: model -> top-500 --------------------------------------------------------

def check_compression_model(model) -> None:
    """A Masked-HWM over the 1X tokens (64,000 codes on 32x32 grids) with at most 3 context grids."""
    if getattr(model, "family", None) != "masked":
        raise ValueError(f"the compression track scores token distributions, which a Masked-HWM gives; this is a "
                         f"{getattr(model, 'family', None)!r} model (Flow-HWM: use the sampling track)")
    config = model.config
    if config.vocab_size != VOCAB_SIZE or tuple(config.token_grid) != onex.TOKEN_GRID:
        raise ValueError(f"the compression track scores Cosmos DV8x8x8 tokens ({VOCAB_SIZE} codes on 32x32 grids); "
                         f"this model has {config.vocab_size} codes on {tuple(config.token_grid)}")
    if model.num_past > onex.LATENTS_PER_CHUNK:
        raise ValueError(f"the track gives one chunk ({onex.LATENTS_PER_CHUNK} grids) of context; this model needs "
                         f"num_past={model.num_past}")


@torch.no_grad()
def predict_top_k(model, context: torch.Tensor, context_actions: torch.Tensor, future_actions: torch.Tensor,
                  k: int = TOP_K, *, targets: torch.Tensor | None = None, steps: int | None = None,
                  temperature: float | None = None, generator: torch.Generator | None = None):
    """Top-k ids and log-probs (B, G, h, w, k) of the G grids after `context` (B, 3, h, w).

    context_actions (B, 3, A), future_actions (B, G, A) in dataset units. Each block of up to
    num_future grids is one forward pass with the block fully masked, conditioned on the last
    num_past grids; later blocks see the model's MaskGIT sample of the blocks before. With
    `targets` (B, G, h, w) also returns the full-vocabulary log-probability of each target token.
    """
    from models.masked.maskgit import token_log_probs

    device = model.device
    sequence, actions = context.to(device), context_actions.to(device)
    future_actions = future_actions.to(device)
    grids = future_actions.shape[1]
    indices, values, target_log_probs = [], [], []
    done = 0
    while done < grids:
        block = min(model.num_future, grids - done)
        past, past_actions = sequence[:, -model.num_past:], actions[:, -model.num_past:]
        block_actions = future_actions[:, done : done + block]
        hidden = torch.zeros((sequence.shape[0], block, *sequence.shape[2:]), dtype=torch.long, device=device)
        logits = model(past, past_actions, hidden, block_actions, torch.ones_like(hidden, dtype=torch.bool))
        block_indices, block_values = top_k_log_probs(logits, model.levels, k)
        indices.append(block_indices.cpu())
        values.append(block_values.cpu())
        if targets is not None:
            block_targets = targets[:, done : done + block].to(device)
            target_log_probs.append(token_log_probs(logits.float(), block_targets, model.levels).cpu())
        done += block
        if done < grids:
            sample = model.predict(past, past_actions, block_actions, steps=steps, temperature=temperature,
                                   generator=generator)
            sequence = torch.cat([sequence, sample], 1)
            actions = torch.cat([actions, block_actions], 1)
    result = (torch.cat(indices, 1), torch.cat(values, 1))
    return (*result, torch.cat(target_log_probs, 1)) if targets is not None else result


# --- compression: submission files ------------------------------------------------------

def write_sample_file(folder: Path, sample_id: str, indices, values) -> Path:
    """`<ID>.npz` with `indices` int32 and `values` float32, (3, 32, 32, 500) each."""
    indices = np.asarray(indices).astype(np.int32)
    values = np.asarray(values).astype(np.float32)
    expected = (TARGET_GRIDS, *onex.TOKEN_GRID, TOP_K)
    if indices.shape != expected or values.shape != expected:
        raise ValueError(f"sample {sample_id}: indices {indices.shape} / values {values.shape}, expected {expected}")
    if indices.min() < 0 or indices.max() >= VOCAB_SIZE:
        raise ValueError(f"sample {sample_id}: indices outside [0, {VOCAB_SIZE})")
    path = Path(folder) / f"{sample_id}.npz"
    np.savez(path, indices=indices, values=values)
    return path


def write_submission(folder: str | os.PathLike, readme: dict[str, str], sample_ids: Sequence[str]) -> Path:
    """README.txt (JSON, the six keys) beside the `<ID>.npz` files, all zipped flat into submission.zip."""
    folder = Path(folder)
    missing = [key for key in README_KEYS if key not in readme]
    if missing:
        raise ValueError(f"README.txt needs the keys {list(README_KEYS)}; missing {missing}")
    (folder / "README.txt").write_text(json.dumps({key: readme[key] for key in README_KEYS}, indent=2))
    names = [f"{sample_id}.npz" for sample_id in sample_ids] + ["README.txt"]
    absent = [name for name in names if not (folder / name).is_file()]
    if absent:
        raise FileNotFoundError(f"{folder}: missing {absent[:5]}")
    partial = folder / f".{SUBMISSION_ZIP}.partial"
    # level 1: the float32 values barely compress, and a full test set is 450 x 12 MB
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in names:
            archive.write(folder / name, arcname=name)  # flat: no folders inside
    final = folder / SUBMISSION_ZIP
    os.replace(partial, final)
    return final


# --- compression: the protocol ------------------------------------------------------------

@torch.no_grad()
def evaluate_compression(model, split, *, samples: int | None = TEST_SET_SIZE, seed: int = 0, batch_size: int = 8,
                         future_actions: str = "held", steps: int | None = None, temperature: float | None = None,
                         submission: str | os.PathLike | None = None, readme: dict[str, str] | None = None,
                         progress: bool = True) -> dict[str, Any]:
    """The compression track on a 1X v2.0 token split (module docstring); returns the results.

    Scored splits (pairs of chunks) give `top500_cross_entropy` (mean nats per token, and
    `per_grid`) and `full_cross_entropy` (the same distributions over all 64,000 codes);
    test splits only write files. `submission`: a folder for the `<ID>.npz` files, README.txt
    (`readme`: the six keys) and submission.zip.
    """
    from tqdm.auto import tqdm

    if isinstance(split, (str, os.PathLike)):
        from models.data.open import open_split

        split = open_split(split)
    if not isinstance(split, onex.OneXTokenizedSplit):
        raise ValueError(f"{getattr(split, 'path', split)}: the compression track reads a 1X v2.0 token split "
                         "(video_{i}.bin), e.g. val_v2.0 to score or test_v2.0 to submit")
    if future_actions not in FUTURE_ACTIONS:
        raise ValueError(f"future_actions {future_actions!r}, expected one of {FUTURE_ACTIONS}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_compression_model(model)
    chosen = compression_samples(split, samples, seed)
    scored = chosen[0].target_chunk is not None
    folder = None
    if submission is not None:
        folder = Path(submission)
        folder.mkdir(parents=True, exist_ok=True)
    device = model.device
    top_sums = torch.zeros(TARGET_GRIDS, dtype=torch.float64)
    full_sums = torch.zeros(TARGET_GRIDS, dtype=torch.float64)
    listed = 0
    began = time.perf_counter()
    for first in tqdm(range(0, len(chosen), batch_size), desc="compression", unit="batch", disable=not progress):
        part = chosen[first : first + batch_size]
        arrays = [_sample_arrays(split, sample, future_actions) for sample in part]
        context, context_actions, future = (torch.from_numpy(np.stack([a[i] for a in arrays])) for i in range(3))
        targets = torch.from_numpy(np.stack([a[3] for a in arrays])).long() if scored else None
        generator = torch.Generator(device=device).manual_seed(seed + first)
        outputs = predict_top_k(model, context.long(), context_actions, future, targets=targets, steps=steps,
                                temperature=temperature, generator=generator)
        indices, values = outputs[0], outputs[1]
        if folder is not None:
            for row, sample in enumerate(part):
                write_sample_file(folder, sample.sample_id, indices[row], values[row])
        if scored:
            # score what the files hold: float32 values, int32 ids
            ce = top_k_cross_entropy(indices.int(), values.float(), targets)  # (b, 3, h, w)
            top_sums += ce.sum(dim=(0, 2, 3))
            full_sums += -outputs[2].double().sum(dim=(0, 2, 3))
            listed += int((indices == targets.unsqueeze(-1)).any(-1).sum())
    zip_path = None
    if folder is not None:
        zip_path = write_submission(folder, readme or default_readme(), [s.sample_id for s in chosen])
    results: dict[str, Any] = {
        "track": "compression",
        "split": str(split.path),
        "samples": len(chosen),
        "scored": scored,
        "future_actions": future_actions,
        "steps": steps,
        "temperature": temperature,
        "seed": seed,
        "top_k": TOP_K,
        "unlisted_mass_floor": UNLISTED_MASS_FLOOR,
        "uniform_cross_entropy": UNIFORM_CROSS_ENTROPY,
        "winner_cross_entropy": WINNER_CROSS_ENTROPY,
        "sample_ids": [s.sample_id for s in chosen],
        "sample_chunks": [[s.shard.index, s.context_chunk] for s in chosen],
        "submission": None if zip_path is None else str(zip_path),
        "seconds": time.perf_counter() - began,
    }
    if scored:
        tokens_per_grid = len(chosen) * math.prod(onex.TOKEN_GRID)
        results.update(
            top500_cross_entropy=float(top_sums.sum() / (TARGET_GRIDS * tokens_per_grid)),
            per_grid=(top_sums / tokens_per_grid).tolist(),
            full_cross_entropy=float(full_sums.sum() / (TARGET_GRIDS * tokens_per_grid)),
            full_per_grid=(full_sums / tokens_per_grid).tolist(),
            listed_fraction=listed / (TARGET_GRIDS * tokens_per_grid),
        )
    return results


def default_readme(method: str = "Masked-HWM (humanoid-world-models)") -> dict[str, str]:
    """README.txt fields with the method filled in and the rest empty (the validator checks presence)."""
    return {key: (method if key == "method" else "") for key in README_KEYS}


# --- sampling -----------------------------------------------------------------------------

@dataclass
class LatentSlot:
    """One latent of the sampling schedule: the frames [first, last] it covers (relative to the sample)."""

    first: int
    last: int


def sampling_schedule(temporal_compression: int, num_past: int, frame_stride: int = 1):
    """(context slots, future slots) on the data's clock, ending with the slot that holds frame 76.

    Temporal tokenizers: 17-frame chunks, latents covering [0], [1..T], ..., the context is
    chunk 0 (all of its latents; the model uses the last num_past). Per-frame tokenizers: one
    latent per `frame_stride` frames, ending at frames 16 and 76.
    """
    period = temporal_compression
    if period > 1:
        if (CONTEXT_FRAMES - 1) % period:
            raise ValueError(f"a tokenizer with temporal compression {period} cannot cover the track's "
                             f"{CONTEXT_FRAMES}-frame chunks (1 + {period}k frames)")
        per_chunk = [(0, 0)] + [(1 + period * i, period * (i + 1)) for i in range((CONTEXT_FRAMES - 1) // period)]
        slots = []
        for chunk in range(TARGET_FRAME // CONTEXT_FRAMES + 1):
            for a, b in per_chunk:
                slots.append(LatentSlot(CONTEXT_FRAMES * chunk + a, CONTEXT_FRAMES * chunk + b))
                if slots[-1].last >= TARGET_FRAME:
                    break
        if slots[-1].last != TARGET_FRAME:
            raise ValueError(f"no latent ends at frame {TARGET_FRAME} with temporal compression {period}")
        context = slots[: len(per_chunk)]
        if num_past > len(context):
            raise ValueError(f"the track gives {CONTEXT_FRAMES} frames = {len(context)} latents of context; this "
                             f"model needs num_past={num_past}")
        return context, slots[len(per_chunk):]
    stride = frame_stride
    gap = TARGET_FRAME - (CONTEXT_FRAMES - 1)
    if gap % stride:
        raise ValueError(f"frame_stride {stride} does not divide the {gap} frames between the last context "
                         f"frame and frame {TARGET_FRAME}")
    ends = [CONTEXT_FRAMES - 1 - stride * i for i in reversed(range(num_past))]
    if ends[0] - stride + 1 < 0:
        raise ValueError(f"num_past={num_past} latents at frame_stride {stride} need more than the track's "
                         f"{CONTEXT_FRAMES} context frames")
    ends += [CONTEXT_FRAMES - 1 + stride * (i + 1) for i in range(gap // stride)]
    slots = [LatentSlot(end - stride + 1, end) for end in ends]
    return slots[:num_past], slots[num_past:]


def slot_actions(frame_actions: np.ndarray, slots: list[LatentSlot], pooling: str, per_latent: int) -> np.ndarray:
    """(n, A) mean per-frame action over each slot's frames, or (n, k, A) with the frames kept
    (a single-frame slot repeats its one action, as the 1X chunk windows do)."""
    rows = []
    for slot in slots:
        actions = frame_actions[slot.first : slot.last + 1]  # (frames, A)
        if pooling == "mean":
            rows.append(actions.mean(0))
        else:
            rows.append(np.concatenate([np.repeat(actions[:1], per_latent - len(actions), axis=0), actions]))
    return np.stack(rows).astype(np.float32)


@torch.no_grad()
def evaluate_sampling(model, tokenizer, split, *, samples: int = SAMPLING_TEST_SET_SIZE, seed: int = 0,
                      batch_size: int = 4, steps: int | None = None, cfg_scale: float | None = None,
                      temperature: float | None = None, frame_stride: int = 1, action_pooling: str = "mean",
                      progress: bool = True) -> dict[str, Any]:
    """The sampling track on a split with raw frames (1X raw MP4, or hwm-v1); module docstring.

    Up to `samples` windows of 77 frames inside one segment, one per episode, drawn with `seed`.
    Returns `psnr` / `ssim` of frame 76 (means, and `sample_psnr` per window), `copy_last_psnr`
    (frame 16), `recon_psnr` (the tokenizer's reconstruction of frame 76) and the references.
    """
    from tqdm.auto import tqdm

    from models.data.windows import WindowDataset
    from train import metrics
    from train.evaluation import chunk_starts, decode_chunks, resize_frames, select_windows

    if isinstance(split, (str, os.PathLike)):
        from models.data.open import open_split

        split = open_split(split, image_size=tokenizer.image_size)
    if isinstance(split, onex.OneXRawSplit) and split.image_size != tuple(tokenizer.image_size):
        split = onex.OneXRawSplit(split.path, image_size=tokenizer.image_size)
    if isinstance(split, onex.OneXTokenizedSplit):
        raise ValueError(f"{split.path}: holds tokens; the sampling track starts from raw frames (a 1X raw split, "
                         "e.g. val_v2.0_raw, or an hwm-v1 split)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    family = getattr(model, "family", None)
    period = tokenizer.temporal_compression
    context_slots, future_slots = sampling_schedule(period, model.num_past, frame_stride)
    slots = context_slots + future_slots
    per_latent = period if period > 1 else frame_stride
    windows = WindowDataset(split, num_past=1, num_future=TARGET_FRAME, source="frames", frame_stride=1)
    if split.action_dim != model.action_dim:
        raise ValueError(f"{split.path}: actions have {split.action_dim} dims, the model takes "
                         f"action_dim={model.action_dim}")
    chosen = select_windows(windows, samples, seed)
    # the target's causal chunk, from its opening latent: what the reconstruction encodes
    raw_index = np.array([slot.last for slot in slots])
    opening = int(np.flatnonzero(chunk_starts(raw_index, period))[-1])
    recon_frames = np.arange(slots[opening].first, TARGET_FRAME + 1)
    context_frames = (np.arange(CONTEXT_FRAMES) if period > 1
                      else np.array([slot.last for slot in context_slots]))
    past_action_tokens = getattr(model.config, "past_action_tokens", None)
    options = dict(steps=steps, cfg_scale=cfg_scale, temperature=temperature)
    if family == "masked":
        options["readout"] = "tokens"
    device = next(iter(model.parameters())).device
    sample_scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "copy_last_psnr": [], "recon_psnr": []}
    began = time.perf_counter()
    for first in tqdm(range(0, len(chosen), batch_size), desc="sampling", unit="batch", disable=not progress):
        part = chosen[first : first + batch_size]
        contexts, truths, recon_inputs, past_actions, future_actions = [], [], [], [], []
        for index in part:
            timeline, start = windows.locate(index)
            wanted = np.unique(np.concatenate([context_frames, [CONTEXT_FRAMES - 1], recon_frames]))
            read = resize_frames(np.asarray(timeline.read(start + wanted)), tokenizer.image_size)
            frame_of = {int(f): read[i] for i, f in enumerate(wanted)}
            contexts.append(np.stack([frame_of[int(f)] for f in context_frames]))
            recon_inputs.append(np.stack([frame_of[int(f)] for f in recon_frames]))
            truths.append(np.stack([frame_of[CONTEXT_FRAMES - 1], frame_of[TARGET_FRAME]]))  # copy-last, target
            items = start + np.arange(TARGET_FRAME + 1)
            frame_actions = np.asarray(timeline.action_table[timeline.action_rows(items)[:, 0]], dtype=np.float32)
            past = slot_actions(frame_actions, context_slots[-model.num_past:], action_pooling, per_latent)
            if action_pooling != "mean" and past_action_tokens:
                # per-frame action tokens of the last frames the context covers (e.g. 1X Cosmos: 9 = 1 + 8)
                last = context_slots[-1].last
                past = frame_actions[last - past_action_tokens + 1 : last + 1]
            past_actions.append(past)
            future_actions.append(slot_actions(frame_actions, future_slots, action_pooling, per_latent))
        latents = tokenizer.encode(np.stack(contexts))  # (b, 3 (a chunk) | P (per-frame), ...)
        generator = torch.Generator(device=device).manual_seed(seed + first)
        predicted = model.rollout(latents[:, -model.num_past:].to(device),
                                  torch.from_numpy(np.stack(past_actions)).to(device),
                                  torch.from_numpy(np.stack(future_actions)).to(device),
                                  generator=generator, **options)
        sequence = torch.cat([latents.cpu(), predicted.cpu()], 1)  # (b, context + future latents, ...)
        decoded = decode_chunks(tokenizer, sequence, chunk_starts(raw_index, period), sequence.shape[1] - 1)
        prediction = decoded[-1][:, -1]  # (b, H, W, 3): frame 76
        recon = tokenizer.decode(tokenizer.encode(np.stack(recon_inputs)))[:, -1].cpu()
        truth = torch.from_numpy(np.stack(truths))  # (b, 2, H, W, 3)
        target, last = truth[:, 1], truth[:, 0]
        sample_scores["psnr"].append(metrics.psnr(prediction, target).double())
        sample_scores["ssim"].append(metrics.ssim(prediction, target).double())
        sample_scores["copy_last_psnr"].append(metrics.psnr(last, target).double())
        sample_scores["recon_psnr"].append(metrics.psnr(recon, target).double())
    per_sample = {key: torch.cat(parts) for key, parts in sample_scores.items()}
    locations = [windows.locate(index) for index in chosen]
    return {
        "track": "sampling",
        "split": str(split.path),
        "samples": len(chosen),
        "context_frames": CONTEXT_FRAMES,
        "target_frame": TARGET_FRAME,
        "image_size": list(tokenizer.image_size),
        "temporal_compression": period,
        "latents_rolled_out": len(future_slots),
        "psnr": float(per_sample["psnr"].mean()),
        "ssim": float(per_sample["ssim"].mean()),
        "copy_last_psnr": float(per_sample["copy_last_psnr"].mean()),
        "recon_psnr": float(per_sample["recon_psnr"].mean()),
        "sample_psnr": per_sample["psnr"].tolist(),
        "sample_copy_last_psnr": per_sample["copy_last_psnr"].tolist(),
        "sample_recon_psnr": per_sample["recon_psnr"].tolist(),
        "winner_psnr": WINNER_PSNR,
        "windows": [[int(timeline.shard), int(start)] for timeline, start in locations],
        "steps": steps,
        "cfg_scale": cfg_scale,
        "temperature": temperature,
        "seed": seed,
        "seconds": time.perf_counter() - began,
    }
