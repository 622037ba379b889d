"""Readers for the 1X world-model dataset v2.0, in its own layout (no conversion).

Two variants share one shard scheme (train in subfolders, val/test flat):

    train_v2.0/metadata.json                     {"num_shards", "hz", "num_images", ...}
    train_v2.0/metadata/metadata_{i}.json        {"shard_num_frames": F, "shard_ind": i}
    train_v2.0/videos/video_{i}.bin              int32 (ceil(F/17), 3, 32, 32)  Cosmos DV8x8x8 tokens
    train_v2.0/robot_states/states_{i}.bin       float32 (F, 25)
    train_v2.0/segment_indices/segment_idx_{i}.bin   int32 (F,)
    val_v2.0/{metadata.json, metadata_0.json, video_0.bin, states_0.bin, segment_idx_0.bin}

The raw variant stores `video_{i}.mp4` (512x512 RGB at 30 Hz) instead of the tokens.
A test split has no segment_idx_{i}.bin at all (and may lack metadata.json): each of its
shards is then one segment. Segment ids are global, so a segment can run on into the next
shard (it is one episode, counted once).
Each token row is one independently encoded 17-frame chunk whose 3 latents cover raw
frames {17k}, {17k+1..17k+8}, {17k+9..17k+16}. A shard's last, partial chunk is dropped,
and so is every chunk whose first and last frame lie in different segments.
The 25-d vector is a measured state, so the action of frame t is the state of frame t+1
and the action into frame f is `states[f]` (see DESIGN.md section 3); `frame_actions`
writes that rule out per frame (for conversion to hwm-v1).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from models.data.hwm_format import (
    check_finite_rows,
    check_segment_idx,
    episode_ranges_of,
    memmap_checked,
    read_json,
)
from models.paths import require_folder

ONEX_ACTION_NAMES = (
    "HIP_YAW", "HIP_ROLL", "HIP_PITCH", "KNEE_PITCH", "ANKLE_ROLL", "ANKLE_PITCH",
    "LEFT_SHOULDER_PITCH", "LEFT_SHOULDER_ROLL", "LEFT_SHOULDER_YAW", "LEFT_ELBOW_PITCH",
    "LEFT_ELBOW_YAW", "LEFT_WRIST_PITCH", "LEFT_WRIST_ROLL",
    "RIGHT_SHOULDER_PITCH", "RIGHT_SHOULDER_ROLL", "RIGHT_SHOULDER_YAW", "RIGHT_ELBOW_PITCH",
    "RIGHT_ELBOW_YAW", "RIGHT_WRIST_PITCH", "RIGHT_WRIST_ROLL",
    "NECK_PITCH", "LEFT_HAND_CLOSURE", "RIGHT_HAND_CLOSURE", "LINEAR_VELOCITY", "ANGULAR_VELOCITY",
)  # dataset card order
ONEX_BINARY_DIMS = (21, 22)  # hand closure: 0 open, 1 closed; never z-scored
STATE_DIM = len(ONEX_ACTION_NAMES)
CHUNK_FRAMES = 17  # raw frames per Cosmos DV8x8x8 chunk
LATENTS_PER_CHUNK = 3
TEMPORAL_COMPRESSION = 8
TOKEN_GRID = (32, 32)
VOCAB_SIZE = 64000
DECODED_SIZE = (256, 256)  # the tokenizer's input/output resolution
# raw frames [start, stop) of latent t inside a chunk (first latent = the first frame alone)
LATENT_FRAME_SPANS = ((0, 1), (1, 9), (9, 17))
TOKENIZER_DESCRIPTION = {
    "name": "Cosmos-Tokenizer-DV8x8x8",
    "kind": "discrete",
    "vocab_size": VOCAB_SIZE,
    "temporal_compression": TEMPORAL_COMPRESSION,
    "spatial_compression": 8,
    "image_size": list(DECODED_SIZE),
    "fsq_levels": [8, 8, 8, 5, 5, 5],
}

# subfolder of each file kind in the train layout (val/test are flat)
SUBFOLDERS = {"metadata": "metadata", "video": "videos", "states": "robot_states", "segment_idx": "segment_indices"}
FORMAT_TOKENS = "1x-v2.0-tokens"
FORMAT_RAW = "1x-v2.0-raw"


def detect_layout(path: str | os.PathLike) -> str | None:
    """FORMAT_TOKENS or FORMAT_RAW if `path` is a 1X v2.0 split folder, else None."""
    path = Path(path)
    for folder in (path / SUBFOLDERS["video"], path):
        if not folder.is_dir():
            continue
        if any(folder.glob("video_*.bin")):
            return FORMAT_TOKENS
        if any(folder.glob("video_*.mp4")):
            return FORMAT_RAW
    return None


def shard_file(split_dir: Path, kind: str, index: int, suffix: str) -> Path:
    """Path of a shard file: in its subfolder (train layout) if that exists, else flat."""
    stem = {"metadata": "metadata", "video": "video", "states": "states", "segment_idx": "segment_idx"}[kind]
    name = f"{stem}_{index}{suffix}"
    nested = split_dir / SUBFOLDERS[kind]
    return nested / name if nested.is_dir() else split_dir / name


@dataclass
class OneXShard:
    """One shard: F frames with states (F, 25), segment ids (F,), and tokens or an MP4."""

    index: int
    num_frames: int
    states: np.ndarray
    segment_idx: np.ndarray
    video_path: Path
    tokens: np.ndarray | None = None  # (ceil(F/17), 3, 32, 32) int32, tokenized layout only

    def kept_chunks(self) -> np.ndarray:
        """Ids of the full 17-frame chunks that lie inside one segment (partial last chunk dropped)."""
        full = np.arange(self.num_frames // CHUNK_FRAMES)
        first = np.asarray(self.segment_idx[full * CHUNK_FRAMES])
        last = np.asarray(self.segment_idx[full * CHUNK_FRAMES + CHUNK_FRAMES - 1])
        return full[first == last]

    def episode_ranges(self) -> list[tuple[int, int]]:
        return episode_ranges_of(self.segment_idx)


class OneXSplit:
    """Common part of the tokenized and raw readers: shard discovery, states, segment ids."""

    format = ""
    video_suffix = ""

    def __init__(self, path: str | os.PathLike):
        self.path = require_folder(path, "1X v2.0 split")
        # test-style folders may lack the split-level metadata.json; the shard files are required
        metadata_path = self.path / "metadata.json"
        self.metadata = read_json(metadata_path) if metadata_path.is_file() else {}
        indices = self._shard_indices()
        # a test split ships no segment indices at all; a split missing only some of them is damaged
        self.has_segment_indices = any(shard_file(self.path, "segment_idx", i, ".bin").is_file() for i in indices)
        self.shards = [self._open_shard(i) for i in indices]
        total = sum(shard.num_frames for shard in self.shards)
        expected = self.metadata.get("num_images")
        if expected is not None and int(expected) != total:
            raise ValueError(
                f"{self.path / 'metadata.json'}: num_images {expected}, but the shards' metadata_{{i}}.json "
                f"add up to {total} frames"
            )
        self.num_frames = total

    def _shard_indices(self) -> list[int]:
        num_shards = self.metadata.get("num_shards")
        if num_shards is not None:
            if not isinstance(num_shards, int) or num_shards <= 0:
                raise ValueError(f"{self.path / 'metadata.json'}: num_shards {num_shards!r}, expected a positive int")
            return list(range(num_shards))
        # test-style folders have no num_shards: take the shards whose metadata is present
        folder = self.path / SUBFOLDERS["metadata"]
        folder = folder if folder.is_dir() else self.path
        indices = sorted(
            int(m.group(1)) for p in folder.glob("metadata_*.json") if (m := re.fullmatch(r"metadata_(\d+)\.json", p.name))
        )
        if not indices:
            raise FileNotFoundError(f"{folder}: no metadata_{{i}}.json shard files")
        return indices

    def _open_shard(self, index: int) -> OneXShard:
        shard_meta_path = shard_file(self.path, "metadata", index, ".json")
        shard_meta = read_json(shard_meta_path)
        num_frames = shard_meta.get("shard_num_frames")
        if not isinstance(num_frames, int) or num_frames <= 0:
            raise ValueError(f"{shard_meta_path}: shard_num_frames {num_frames!r}, expected a positive int")
        states_path = shard_file(self.path, "states", index, ".bin")
        states = memmap_checked(states_path, "<f4", (num_frames, STATE_DIM), f"states float32 ({num_frames}, 25)")
        check_finite_rows(states, states_path, "states")
        if self.has_segment_indices:
            segment_path = shard_file(self.path, "segment_idx", index, ".bin")
            segment_idx = memmap_checked(segment_path, "<i4", (num_frames,), f"segment_idx int32 ({num_frames},)")
            check_segment_idx(segment_idx, segment_path)
        else:  # test split: the shard is one segment
            segment_idx = np.full(num_frames, index, dtype=np.int32)
        video_path = shard_file(self.path, "video", index, self.video_suffix)
        if not video_path.is_file():
            raise FileNotFoundError(f"{video_path}: missing (video of shard {index})")
        return OneXShard(index, num_frames, states, segment_idx, video_path)

    # --- the interface shared with HWMDataset ---
    fps = property(lambda self: float(self.metadata.get("hz", 30)))
    action_dim = STATE_DIM
    action_names = property(lambda self: list(ONEX_ACTION_NAMES))
    binary_action_dims = property(lambda self: list(ONEX_BINARY_DIMS))

    def __len__(self) -> int:
        return self.num_frames

    def __reduce__(self):  # re-open from the path: pickling a memmap would copy the whole array
        return (type(self), (self.path,))

    def continues_into_next(self, position: int) -> bool:
        """Whether the last segment of shard `self.shards[position]` runs on into the next shard."""
        if position + 1 >= len(self.shards):
            return False
        return int(self.shards[position].segment_idx[-1]) == int(self.shards[position + 1].segment_idx[0])

    @property
    def num_episodes(self) -> int:
        """Distinct segments; one that runs on into the next shard counts once."""
        runs = sum(len(shard.episode_ranges()) for shard in self.shards)
        return runs - sum(self.continues_into_next(p) for p in range(len(self.shards)))

    def action_tables(self) -> list[np.ndarray]:
        """Per-shard (F, 25) tables; the action into frame f is row f (the state at f)."""
        return [shard.states for shard in self.shards]

    def frame_actions(self, position: int) -> np.ndarray:
        """Actions (F, 25) float32 of shard `self.shards[position]`, one per frame (the hwm-v1 convention).

        The action of frame t is the action into frame t+1, i.e. row t+1 of `action_tables()`.
        A segment's last frame has no next frame: it holds its pose (its own state), unless
        the segment runs on into the next shard, whose first row is then its action.
        """
        tables = self.action_tables()
        table, segment_idx = tables[position], np.asarray(self.shards[position].segment_idx)
        actions = np.array(table, dtype=np.float32)  # (F, 25); a segment's last frame keeps its state
        same_segment = segment_idx[:-1] == segment_idx[1:]  # (F-1,) frame t+1 follows frame t
        actions[:-1][same_segment] = np.asarray(table[1:])[same_segment]
        if self.continues_into_next(position):
            actions[-1] = tables[position + 1][0]
        return actions

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, {len(self.shards)} shards, {self.num_frames} frames)"


class OneXTokenizedSplit(OneXSplit):
    """1X v2.0 Cosmos DV8x8x8 tokens: 3 latent grids of 32x32 ids per 17-frame chunk."""

    format = FORMAT_TOKENS
    video_suffix = ".bin"
    height, width = DECODED_SIZE
    tokenizer = TOKENIZER_DESCRIPTION

    def _open_shard(self, index: int) -> OneXShard:
        shard = super()._open_shard(index)
        num_chunks = math.ceil(shard.num_frames / CHUNK_FRAMES)
        shard.tokens = memmap_checked(
            shard.video_path, "<i4", (num_chunks, LATENTS_PER_CHUNK, *TOKEN_GRID),
            f"tokens int32 ({num_chunks}, 3, 32, 32) for {shard.num_frames} frames",
        )
        return shard

    def read_tokens(self, shard: OneXShard, chunks: np.ndarray, latent_times: np.ndarray) -> np.ndarray:
        """Token grids (n, 32, 32) int32 of (chunk, latent time) pairs; ids are range-checked here."""
        grids = np.asarray(shard.tokens[chunks, latent_times])
        if grids.size and (grids.min() < 0 or grids.max() >= VOCAB_SIZE):
            raise ValueError(
                f"{shard.video_path}: token ids outside [0, {VOCAB_SIZE}) in chunks {sorted(set(chunks.tolist()))}"
            )
        return grids

    @property
    def num_chunks(self) -> int:
        return sum(math.ceil(shard.num_frames / CHUNK_FRAMES) for shard in self.shards)

    @property
    def num_kept_chunks(self) -> int:
        return sum(len(shard.kept_chunks()) for shard in self.shards)


class OneXRawSplit(OneXSplit):
    """1X v2.0 raw MP4s (decoded with OpenCV, BGR -> RGB), optionally resized on read."""

    format = FORMAT_RAW
    video_suffix = ".mp4"

    def __init__(self, path: str | os.PathLike, image_size: tuple[int, int] | None = None):
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self._captures: dict[int, Any] = {}
        self._captures_pid = os.getpid()
        super().__init__(path)
        self.source_size = self._video_size(self.shards[0])
        self.height, self.width = self.image_size or self.source_size

    def _open_shard(self, index: int) -> OneXShard:
        import cv2

        shard = super()._open_shard(index)
        capture = cv2.VideoCapture(str(shard.video_path))
        try:
            if not capture.isOpened():
                raise ValueError(f"{shard.video_path}: OpenCV cannot open this video (corrupt or unsupported)")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        if count < shard.num_frames:
            raise ValueError(
                f"{shard.video_path}: {count} video frames, but metadata_{index}.json says {shard.num_frames}"
            )
        return shard

    def _video_size(self, shard: OneXShard) -> tuple[int, int]:
        import cv2

        capture = cv2.VideoCapture(str(shard.video_path))
        try:
            return int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        finally:
            capture.release()

    def _capture(self, shard: OneXShard):
        import cv2

        if self._captures_pid != os.getpid():  # a forked DataLoader worker opens its own decoders
            self._captures, self._captures_pid = {}, os.getpid()
        capture = self._captures.get(shard.index)
        if capture is None:
            capture = self._captures[shard.index] = cv2.VideoCapture(str(shard.video_path))
        return capture

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        """A decoded BGR frame as RGB (H, W, 3) uint8, resized to image_size (OpenCV INTER_AREA) if set."""
        import cv2

        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.image_size is not None and rgb.shape[:2] != self.image_size:
            rgb = cv2.resize(rgb, (self.image_size[1], self.image_size[0]), interpolation=cv2.INTER_AREA)
        return rgb

    def iter_frames(self, shard: OneXShard, batch_frames: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame index, RGB frames (n, H, W, 3) uint8) of the whole shard, front to back.

        One pass of its own decoder (no seeks). The MP4 must hold exactly the shard's
        `shard_num_frames` frames (one per row of its states): fewer or more fails naming
        the video and both counts.
        """
        import cv2

        if batch_frames < 1:
            raise ValueError(f"batch_frames {batch_frames} must be >= 1")
        capture = cv2.VideoCapture(str(shard.video_path))
        try:
            if not capture.isOpened():
                raise ValueError(f"{shard.video_path}: OpenCV cannot open this video (corrupt or unsupported)")
            for start in range(0, shard.num_frames, batch_frames):
                count = min(batch_frames, shard.num_frames - start)
                frames = np.empty((count, self.height, self.width, 3), dtype=np.uint8)  # (n, H, W, 3)
                for i in range(count):
                    ok, bgr = capture.read()
                    if not ok:
                        raise ValueError(self._count_mismatch(shard, start + i))
                    frames[i] = self._to_rgb(bgr)
                yield start, frames
            extra = 0
            while capture.grab():
                extra += 1
            if extra:
                raise ValueError(self._count_mismatch(shard, shard.num_frames + extra))
        finally:
            capture.release()

    def _count_mismatch(self, shard: OneXShard, video_frames: int) -> str:
        states = shard_file(self.path, "states", shard.index, ".bin")
        return (
            f"{shard.video_path}: {video_frames} video frames, but {states} has {shard.num_frames} "
            f"(shard_num_frames of metadata_{shard.index}.json); the video and its states must have one "
            "frame per row"
        )

    def read_frames(self, shard: OneXShard, frame_indices: np.ndarray) -> np.ndarray:
        """RGB frames (n, H, W, 3) uint8 at increasing raw indices (one seek, then sequential decode)."""
        import cv2

        frame_indices = [int(i) for i in frame_indices]
        if sorted(frame_indices) != frame_indices:
            raise ValueError("read_frames: frame indices must be increasing")
        capture = self._capture(shard)
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame_indices[0])
        position, frames = frame_indices[0], []
        for wanted in frame_indices:
            while position < wanted:
                if not capture.grab():
                    raise ValueError(f"{shard.video_path}: cannot decode frame {position} (truncated video?)")
                position += 1
            ok, bgr = capture.read()
            if not ok:
                raise ValueError(f"{shard.video_path}: cannot decode frame {wanted} (truncated video?)")
            position += 1
            frames.append(self._to_rgb(bgr))
        return np.stack(frames)

    def __reduce__(self):  # re-open from the path: no memmap copies, no VideoCapture objects
        return (type(self), (self.path, self.image_size))
