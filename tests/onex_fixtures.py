"""Small synthetic splits in the exact 1X v2.0 layouts, written by the tests themselves.

Values encode where they came from so tests can check alignment:
states[f, 0] = f (shard-local frame index), states[f, 1] = shard index, dims 21/22 are 0/1;
token ids of chunk c, latent t are all 3 * c + t + 1000 * shard;
MP4 frame f has red = 8 * (f % 30) and green = 8 * (f // 30) (decoded within +-3).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

STATE_DIM = 25


def onex_states(num_frames: int, shard: int, rng: np.random.Generator) -> np.ndarray:
    states = rng.normal(size=(num_frames, STATE_DIM)).astype(np.float32)
    states[:, 0] = np.arange(num_frames)
    states[:, 1] = shard
    states[:, 21] = rng.integers(0, 2, num_frames)
    states[:, 22] = rng.integers(0, 2, num_frames)
    return states


def segments_with_boundaries(num_frames: int, boundaries: list[int], first_id: int) -> np.ndarray:
    """int32 (F,) ids that step up by one at each boundary frame."""
    segment_idx = np.full(num_frames, first_id, dtype=np.int32)
    for boundary in boundaries:
        segment_idx[boundary:] += 1
    return segment_idx


def frame_code_image(frame: int, size: int) -> np.ndarray:
    """RGB (size, size, 3) uint8 frame whose colour encodes its index."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0] = 8 * (frame % 30)
    image[..., 1] = 8 * (frame // 30)
    image[..., 2] = 128
    return image


def decode_frame_code(image: np.ndarray) -> int:
    return int(round(float(image[..., 0].mean()) / 8)) + 30 * int(round(float(image[..., 1].mean()) / 8))


def write_onex_split(
    split_dir: Path,
    frame_counts: list[int],
    boundaries: list[list[int]],
    nested: bool,
    variant: str = "tokens",
    video_size: int = 32,
    seed: int = 0,
    continue_segments: bool = False,
    segment_files: bool = True,
) -> dict:
    """Write shards 0..n-1 in the 1X v2.0 layout (nested = train subfolders, else flat val).

    continue_segments: each shard starts with the last segment id of the shard before (the
    segment runs on into the next shard), instead of a new one.
    segment_files: False leaves out every segment_idx_{i}.bin, as in a test split.
    Returns {"states": [...], "segment_idx": [...], "tokens": [...]} as written.
    """
    import cv2

    rng = np.random.default_rng(seed)
    split_dir = Path(split_dir)
    folders = {
        kind: split_dir / (sub if nested else "")
        for kind, sub in (("metadata", "metadata"), ("video", "videos"), ("states", "robot_states"),
                          ("segment_idx", "segment_indices"))
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    written = {"states": [], "segment_idx": [], "tokens": []}
    next_segment = 0
    for shard, (num_frames, shard_boundaries) in enumerate(zip(frame_counts, boundaries)):
        (folders["metadata"] / f"metadata_{shard}.json").write_text(
            json.dumps({"shard_num_frames": num_frames, "shard_ind": shard})
        )
        states = onex_states(num_frames, shard, rng)
        states.tofile(folders["states"] / f"states_{shard}.bin")
        segment_idx = segments_with_boundaries(num_frames, shard_boundaries, next_segment)
        next_segment = int(segment_idx[-1]) + (0 if continue_segments else 1)
        if segment_files:
            segment_idx.tofile(folders["segment_idx"] / f"segment_idx_{shard}.bin")
        written["states"].append(states)
        written["segment_idx"].append(segment_idx)
        if variant == "tokens":
            num_chunks = math.ceil(num_frames / 17)
            ids = 3 * np.arange(num_chunks)[:, None] + np.arange(3)[None, :] + 1000 * shard  # (chunks, 3)
            tokens = np.broadcast_to(ids[:, :, None, None], (num_chunks, 3, 32, 32)).astype(np.int32)
            tokens.tofile(folders["video"] / f"video_{shard}.bin")
            written["tokens"].append(tokens)
        else:
            path = folders["video"] / f"video_{shard}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (video_size, video_size))
            for frame in range(num_frames):
                writer.write(cv2.cvtColor(frame_code_image(frame, video_size), cv2.COLOR_RGB2BGR))
            writer.release()
    (split_dir / "metadata.json").write_text(
        json.dumps({"num_shards": len(frame_counts), "query": None, "hz": 30, "num_images": sum(frame_counts)})
    )
    return written


def write_raw_root(root: Path) -> dict:
    """A small 1X raw download: train_v2.0_raw/ (nested; shard 0 = segments [0, 40) + [40, 70),
    shard 1 = one segment of 45 frames) and val_v2.0_raw/ (flat, 23 frames). Returns train's arrays."""
    written = write_onex_split(root / "train_v2.0_raw", [70, 45], [[40], []], nested=True, variant="raw")
    write_onex_split(root / "val_v2.0_raw", [23], [[]], nested=False, variant="raw", seed=1)
    return written


# --- colour-coded token + raw pairs and tiny 1X checkpoints (pixel evaluation, challenge tracks) ---
# Latent t of chunk c in shard s carries the code n = 3c + t + 5s. Its DV token spells n in the
# first three FSQ digits (base 8; the three 5-level digits sit at their middle, 2) and every raw
# frame it covers shows the colour of those digits, round(d * 255 / 7): the scripted Cosmos DV
# stand-in of tests/test_tokenizers.py (pooling encoder, digits -> RGB decoder) maps one to the
# other exactly, so a decoded latent matches its raw frames only when the times line up.
CODED_MIDDLE_DIGITS = 2 * (512 + 2560 + 12800)


def latent_code(shard: int, chunk: int, time: int) -> int:
    return 3 * chunk + time + 5 * shard


def code_digits(code: int) -> tuple[int, int, int]:
    return code % 8, (code // 8) % 8, (code // 64) % 8


def code_token(code: int) -> int:
    red, green, blue = code_digits(code)
    return red + 8 * green + 64 * blue + CODED_MIDDLE_DIGITS


def code_of_token(token: int) -> int:
    return token % 8 + 8 * ((token // 8) % 8) + 64 * ((token // 64) % 8)


def code_colour(code: int) -> np.ndarray:
    return np.round(np.array(code_digits(code)) * 255 / 7).astype(np.uint8)


def frame_latent_time(frame: int) -> int:
    """Which latent of its 17-frame chunk covers a raw frame: 0 (the first frame), 1 or 2."""
    local = frame % 17
    return 0 if local == 0 else 1 if local <= 8 else 2


def write_coded_onex_pair(root: Path, frame_counts: list[int], boundaries: list[list[int]], video_size: int = 32,
                          seed: int = 0) -> dict:
    """Flat 1X splits root/val_v2.0 (DV tokens) and root/val_v2.0_raw (MP4s) with matching codes.

    Same states and segments in both; returns write_onex_split's dict plus "tokens_dir", "raw_dir".
    """
    import cv2

    tokens_dir, raw_dir = Path(root) / "val_v2.0", Path(root) / "val_v2.0_raw"
    written = write_onex_split(tokens_dir, frame_counts, boundaries, nested=False, seed=seed)
    write_onex_split(raw_dir, frame_counts, boundaries, nested=False, variant="raw", video_size=video_size, seed=seed)
    written["tokens"] = []
    for shard, num_frames in enumerate(frame_counts):
        num_chunks = math.ceil(num_frames / 17)
        codes = np.array([[code_token(latent_code(shard, c, t)) for t in range(3)] for c in range(num_chunks)])
        tokens = np.broadcast_to(codes[:, :, None, None], (num_chunks, 3, 32, 32)).astype(np.int32)
        tokens.tofile(tokens_dir / f"video_{shard}.bin")
        written["tokens"].append(tokens)
        writer = cv2.VideoWriter(str(raw_dir / f"video_{shard}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                 (video_size, video_size))
        for frame in range(num_frames):
            colour = code_colour(latent_code(shard, frame // 17, frame_latent_time(frame)))
            image = np.broadcast_to(colour, (video_size, video_size, 3)).copy()
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        writer.release()
    written.update(tokens_dir=tokens_dir, raw_dir=raw_dir)
    return written


def build_onex_masked_checkpoint(directory: Path, num_past: int = 2, num_future: int = 1,
                                 cross_chunks: bool = False) -> Path:
    """A tiny untrained Masked-HWM over the 1X tokens (64,000 codes, 32x32, factorised head) saved the way
    `hwm train masked` saves one trained on 1X: `tokenizer: null`, the tokens' description in `tokens`."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.data import onex
    from models.masked import MaskedConfig, MaskedHWM

    torch.manual_seed(3)
    config = MaskedConfig(
        vocab_size=onex.VOCAB_SIZE, token_grid=list(onex.TOKEN_GRID), fsq_levels=[8, 8, 8, 5, 5, 5],
        factorized_head=True, factorized_embedding=True, num_past=num_past, num_future=num_future,
        action_dim=STATE_DIM, width=32, depth=1, num_heads=2, unshared_blocks=1, num_sampling_steps=1,
    )
    model = MaskedHWM(config)
    checkpoint_config = model.checkpoint_config(
        action_names=list(onex.ONEX_ACTION_NAMES), data={"frame_stride": 1, "cross_chunks": cross_chunks},
        tokens=dict(onex.TOKENIZER_DESCRIPTION))
    checkpoint_config["tokenizer"] = None
    return save_checkpoint(directory, model.state_dict(), checkpoint_config)


def build_onex_flow_checkpoint(directory: Path, tokenizer_dir: Path, action_pooling: str = "frames") -> Path:
    """A tiny untrained Flow-HWM on Cosmos CV8x8x8 latents (16 channels, 32x32, 2 past + 1 future latents of a
    17-frame chunk) carrying `tokenizer_dir` as tokenizer/; action_pooling "frames" is the paper's window
    (9 past + 8 future per-frame action tokens), "mean" one token per latent."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.data import onex
    from models.flow import FlowConfig, FlowHWM

    torch.manual_seed(4)
    per_frame = action_pooling == "frames"
    config = FlowConfig(latent_channels=16, latent_height=32, latent_width=32, num_past=2, num_future=1,
                        action_dim=STATE_DIM, patch_size=4, width=32, depth=1, num_heads=2, unshared_blocks=1,
                        num_sampling_steps=1, actions_per_latent=8 if per_frame else 1,
                        past_action_tokens=9 if per_frame else None)
    model = FlowHWM(config)
    model.action_names = list(onex.ONEX_ACTION_NAMES)
    model.metadata = {
        "data": {"num_past": 2, "num_future": 1, "frame_stride": 1, "action_pooling": action_pooling},
        "latent_layout": {"temporal_compression": 8, "chunk_frames": 17, "latent_frames": [[0, 1], [1, 9], [9, 17]]},
    }
    return save_checkpoint(directory, model.state_dict(), model.checkpoint_config(),
                           extra_files={"tokenizer": tokenizer_dir})
