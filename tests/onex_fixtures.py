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
