"""Run a tokenizer over whole data sets: pre-encoding, and reconstruction quality.

Pre-encoding writes `latents.bin` (continuous) or `tokens.bin` (discrete) beside each split,
with a JSON description and a copy of the tokenizer, so world models train without running
the encoder per step. Nothing is loaded whole; frames go to the encoder in batches.

- A per-frame tokenizer (the built-in autoencoder) encodes every frame of an hwm-v1 split,
  at the split's resolution.
- A temporal (causal video) tokenizer, Cosmos CV8x8x8 / DV8x8x8 (or 4x8x8), encodes
  independent 17-frame chunks, 1X's tokenized release's chunking: 1 + 8k frames give 1 + k
  latents, so a chunk gives 3 latents covering its frames [0, 1), [1, 9), [9, 17) (5 at 4x).
  A chunk never crosses a segment and a partial chunk is dropped:
    1X v2.0 raw split   chunk k of a shard is frames [17k, 17k + 17), the release's grid (so its
                        rows line up with video_{i}.bin); chunks crossing a segment and the
                        shard's partial last chunk are skipped, as 1X's readers skip them;
    hwm-v1 split        chunks start one frame into each episode (that frame's action leads
                        into the chunk's first frame) and step by 17; a partial tail is skipped.
  Frames are resized (OpenCV, INTER_AREA when shrinking) to the tokenizer's resolution
  (Cosmos: `image_size`, default 256x256). The JSON maps every latent to the frames it covers
  (`models.data.hwm_format.latent_frame_ranges`).

An interrupted encode continues where it stopped when run again (same tokenizer, same data);
a split already encoded by the same tokenizer from the same data is left as it is.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from models.checkpoint import read_config, resolve_checkpoint
from models.data import onex
from models.data.hwm_format import (
    ENCODINGS,
    METADATA_FILE,
    EncodingWriter,
    HWMDataset,
    chunk_latent_frames,
    episode_ranges_of,
    plan_digest,
    read_json,
)
from models.data.open import split_format
from models.paths import require_folder
from models.tokenizers import Tokenizer, load_tokenizer
from models.tokenizers import cosmos

CHUNK_FRAMES = onex.CHUNK_FRAMES  # 17 frames per independently encoded chunk, as 1X's release


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; use --device cpu or auto")
    return device


def split_dirs(data_dir: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The split folders (hwm-v1 or 1X v2.0) under `data_dir`, or `data_dir` itself when it is a split."""
    data_dir = require_folder(data_dir, "data")
    if split is not None:
        data_dir = data_dir / split
        if split_format(data_dir) is None and not (data_dir / METADATA_FILE).is_file():
            raise FileNotFoundError(f"{data_dir}: not a data split (hwm-v1 metadata.json, or 1X v2.0 shards)")
    if split_format(data_dir) is not None or (data_dir / METADATA_FILE).is_file():
        return [data_dir]
    found = sorted(child for child in data_dir.iterdir() if child.is_dir() and split_format(child) is not None)
    if not found:
        raise FileNotFoundError(f"{data_dir}: no splits found (hwm-v1 folders with {METADATA_FILE}, or 1X v2.0 "
                                "folders with video_{i}.mp4 shards)")
    return found


def check_resolution(split: HWMDataset, tokenizer: Tokenizer) -> None:
    size = (int(split.metadata["height"]), int(split.metadata["width"]))
    if size != tuple(tokenizer.image_size):
        raise ValueError(
            f"{split.path}: frames are {size[0]}x{size[1]} but the tokenizer expects "
            f"{tokenizer.image_size[0]}x{tokenizer.image_size[1]}"
        )


def _frame_batches(split: HWMDataset, batch_size: int, desc: str, limit: int | None = None, start: int = 0
                   ) -> Iterator[tuple[int, np.ndarray]]:
    from tqdm.auto import tqdm

    total = len(split) if limit is None else min(limit, len(split))
    with tqdm(total=total, initial=start, desc=desc, unit="frame", dynamic_ncols=True) as progress:
        for first in range(start, total, batch_size):
            frames = np.array(split.frames[first : min(first + batch_size, total)])  # (n, H, W, 3) uint8, writable
            yield first, frames
            progress.update(len(frames))


# --- what an encoding run is: its plan -----------------------------------------------------

def _file_stamps(paths: list[Path]) -> list[list]:
    """(name, size, mtime) of the data files: a rewritten split is a different plan."""
    return [[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in paths if path.is_file()]


def _tokenizer_copy_rules(tokenizer: Tokenizer) -> tuple[tuple[str, ...], dict[str, str]]:
    """(file patterns left out of the copy beside the latents, text files added to it)."""
    if isinstance(tokenizer, cosmos.CosmosTokenizer):
        return cosmos.UNUSED_FILES, {cosmos.SETTINGS_FILE: tokenizer.settings_json()}
    return (), {}


def _tokenizer_digest(tokenizer_dir: Path, ignore: tuple[str, ...]) -> str:
    """sha256 of the tokenizer files that are copied (the weights that made the latents)."""
    digest = hashlib.sha256()
    for path in sorted(tokenizer_dir.rglob("*")):
        if path.is_file() and path.name not in ignore:
            digest.update(str(path.relative_to(tokenizer_dir)).encode())
            with open(path, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def _plan_tokenizer(tokenizer: Tokenizer) -> dict:
    """The tokenizer's settings in a plan; where its folder lies does not matter (its digest does)."""
    return {key: value for key, value in tokenizer.describe().items() if key != "source"}


def _tokenizer_config(tokenizer: Tokenizer, tokenizer_dir: Path) -> dict:
    if isinstance(tokenizer, cosmos.CosmosTokenizer):
        return tokenizer.describe()
    return {**tokenizer.describe(), "checkpoint": read_config(tokenizer_dir)}


def _already_encoded(split_dir: Path, kind: str, digest: str) -> Path | None:
    json_path = split_dir / ENCODINGS[kind][1]
    if json_path.is_file() and read_json(json_path).get("plan_digest") == digest:
        print(f"{split_dir}: {kind} already encoded by this tokenizer from this data (delete {json_path.name} to "
              "encode again)")
        return split_dir / ENCODINGS[kind][0]
    return None


# --- chunks of temporal tokenizers ---------------------------------------------------------

def onex_chunk_starts(segment_idx: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """First frames of a 1X shard's chunks on the release's grid [k * 17, k * 17 + 17), inside one segment."""
    segment_idx = np.asarray(segment_idx)
    starts = np.arange(len(segment_idx) // chunk_frames) * chunk_frames  # full chunks only
    return starts[segment_idx[starts] == segment_idx[starts + chunk_frames - 1]]  # ids never decrease


def episode_chunk_starts(segment_idx: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """First frames of an hwm-v1 split's chunks: one frame into each episode, then every chunk_frames."""
    starts = [np.arange(first + 1, stop - chunk_frames + 1, chunk_frames)
              for first, stop in episode_ranges_of(segment_idx)]
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)


def chunk_runs(shard: int, starts: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> list[list[int]]:
    """[[shard, first_frame, count], ...]: increasing chunk starts as runs of adjacent chunks."""
    if len(starts) == 0:
        return []
    breaks = np.flatnonzero(np.diff(starts) != chunk_frames) + 1
    return [[int(shard), int(run[0]), len(run)] for run in np.split(np.asarray(starts), breaks)]


def _resized(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) -> (n, H, W, 3); OpenCV INTER_AREA to shrink (as the 1X reader), bilinear to enlarge."""
    import cv2

    if frames.shape[1:3] == tuple(size):
        return frames
    shrink = frames.shape[1] >= size[0] and frames.shape[2] >= size[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (size[1], size[0]), interpolation=interpolation) for frame in frames])


def _onex_chunks(split: onex.OneXRawSplit, todo: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Frames (17, H, W, 3) of each (shard position, first frame) chunk, decoding each shard front to back once."""
    for position, shard in enumerate(split.shards):
        starts = [start for p, start in todo if p == position]
        if not starts:
            continue
        next_chunk, held, held_from = 0, np.zeros((0, split.height, split.width, 3), np.uint8), 0
        for _, frames in split.iter_frames(shard, batch_frames=256):  # decodes to the end: checks the count
            held = np.concatenate([held, frames])  # frames [held_from, held_from + len(held))
            while next_chunk < len(starts) and starts[next_chunk] + CHUNK_FRAMES <= held_from + len(held):
                offset = starts[next_chunk] - held_from
                yield held[offset : offset + CHUNK_FRAMES]
                next_chunk += 1
            needed_from = starts[next_chunk] if next_chunk < len(starts) else held_from + len(held)
            drop = min(max(needed_from - held_from, 0), len(held))  # frames no later chunk needs
            held, held_from = held[drop:], held_from + drop


def _hwm_chunks(split: HWMDataset, starts: list[int], size: tuple[int, int]) -> Iterator[np.ndarray]:
    for start in starts:
        yield _resized(np.asarray(split.frames[start : start + CHUNK_FRAMES]), size)


def _check_chunking(tokenizer: Tokenizer, tokenizer_dir: Path) -> list[list[int]]:
    try:
        return chunk_latent_frames(tokenizer.temporal_compression, CHUNK_FRAMES)
    except ValueError as error:
        raise ValueError(f"{tokenizer_dir}: {error} (the data is cut into {CHUNK_FRAMES}-frame chunks, as 1X's "
                         "tokenized release; use a Cosmos tokenizer with temporal compression 4 or 8)") from None


def _chunk_source(split_dir: Path, size: tuple[int, int]):
    """(reader, chunk runs for the JSON, chunks as (shard position, first frame), data files, frame size)."""
    if split_format(split_dir) == onex.FORMAT_RAW:
        split = onex.OneXRawSplit(split_dir, image_size=size)
        runs, chunks = [], []
        for position, shard in enumerate(split.shards):
            starts = onex_chunk_starts(shard.segment_idx)
            runs += chunk_runs(shard.index, starts)
            chunks += [(position, int(start)) for start in starts]
        data_files = [path for shard in split.shards
                      for path in (shard.video_path, onex.shard_file(split.path, "segment_idx", shard.index, ".bin"))]
        return split, runs, chunks, data_files, list(split.source_size)
    split = HWMDataset(split_dir)
    starts = episode_chunk_starts(split.segment_idx)
    data_files = [split.path / "frames.bin", split.path / "segment_idx.bin"]
    return split, chunk_runs(0, starts), [(0, int(start)) for start in starts], data_files, [split.height, split.width]


def encode_chunked_split(split_dir: str | os.PathLike, tokenizer: Tokenizer, tokenizer_dir: str | os.PathLike,
                         batch_size: int = 256) -> Path:
    """Encode the 17-frame chunks of one 1X raw or hwm-v1 split with a temporal tokenizer (module docstring)."""
    from tqdm.auto import tqdm

    tokenizer_dir = resolve_checkpoint(tokenizer_dir)
    latent_frames = _check_chunking(tokenizer, tokenizer_dir)
    per_chunk = len(latent_frames)
    size = tuple(tokenizer.image_size)
    split, runs, chunks, data_files, source_size = _chunk_source(require_folder(split_dir, "split"), size)
    raw = isinstance(split, onex.OneXRawSplit)
    if not chunks:
        rule = ("1X chunks are frames [17k, 17k + 17) of a shard" if raw
                else "a chunk needs the frame before it and 17 more in one episode")
        raise ValueError(f"{split.path}: no {CHUNK_FRAMES}-frame chunk lies inside one segment ({rule})")
    kind = "latents" if tokenizer.kind == "continuous" else "tokens"
    ignore, notes = _tokenizer_copy_rules(tokenizer)
    plan = {"kind": kind, "tokenizer": _plan_tokenizer(tokenizer), "data": _file_stamps(data_files),
            "tokenizer_digest": _tokenizer_digest(tokenizer_dir, ignore), "chunk_runs": runs}
    done = _already_encoded(split.path, kind, plan_digest(plan))
    if done is not None:
        return done

    writer = EncodingWriter(split.path, kind, plan)
    if writer.items_done % per_chunk:
        writer.discard()  # not a whole number of chunks: not written by this code; start again
    start = writer.items_done // per_chunk
    if start:
        print(f"{split.path}: resuming at chunk {start} of {len(chunks)}")
    todo = chunks[start:]
    frames_of = _onex_chunks(split, todo) if raw else _hwm_chunks(split, [first for _, first in todo], size)
    chunks_per_call = max(1, batch_size // CHUNK_FRAMES)
    with tqdm(total=len(chunks), initial=start, desc=f"encode {split.path.name}", unit="chunk",
              dynamic_ncols=True) as progress:
        batch: list[np.ndarray] = []
        for index, frames in enumerate(frames_of, start=1):
            batch.append(frames)
            if len(batch) == chunks_per_call or index == len(todo):
                encoded = tokenizer.encode(torch.from_numpy(np.stack(batch)))  # (b, L, C, h, w) | (b, L, h, w)
                if encoded.shape[1] != per_chunk:
                    raise ValueError(f"{tokenizer_dir}: encoded {CHUNK_FRAMES} frames into {encoded.shape[1]} "
                                     f"latents, expected {per_chunk}")
                writer.append(encoded.flatten(0, 1).cpu())  # (b * L, ...)
                progress.update(len(batch))
                batch = []
    description = {
        "temporal_compression": tokenizer.temporal_compression,
        "chunk_frames": CHUNK_FRAMES,
        "latents_per_chunk": per_chunk,
        "latent_frames": latent_frames,
        "chunk_runs": runs,
        "frames": {"format": split.format, "image_size": list(size), "source_size": source_size},
        "tokenizer": _tokenizer_config(tokenizer, tokenizer_dir),
    }
    return writer.finish(description, tokenizer_dir, ignore, notes, expected_items=len(chunks) * per_chunk)


def encode_split(split_dir: str | os.PathLike, tokenizer: Tokenizer, tokenizer_dir: str | os.PathLike,
                 batch_size: int = 256) -> Path:
    """Encode one split (frames with a per-frame tokenizer, chunks with a temporal one); returns the array file."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    split_dir = require_folder(split_dir, "split")
    layout = split_format(split_dir)
    tokenizer_dir = resolve_checkpoint(tokenizer_dir)
    if layout == onex.FORMAT_TOKENS:
        raise ValueError(
            f"{split_dir}: a 1X v2.0 tokenized split (Cosmos DV8x8x8 tokens, no frames) cannot be encoded; "
            "`hwm train masked` trains on its tokens as they are, and latents come from the raw variant "
            "(worldmodel_raw_data: video_{i}.mp4 shards), e.g. hwm data encode --data <raw root>"
        )
    if tokenizer.temporal_compression > 1:
        return encode_chunked_split(split_dir, tokenizer, tokenizer_dir, batch_size)
    if layout == onex.FORMAT_RAW:
        raise ValueError(
            f"{split_dir}: a 1X raw split is encoded in {CHUNK_FRAMES}-frame chunks by a video tokenizer (Cosmos "
            f"CV8x8x8 or DV8x8x8); {tokenizer_dir} encodes single frames (temporal compression 1): convert the "
            "split to hwm-v1 first (hwm data convert) and encode that"
        )
    split = HWMDataset(split_dir)
    check_resolution(split, tokenizer)
    kind = "latents" if tokenizer.kind == "continuous" else "tokens"
    plan = {"kind": kind, "tokenizer": _plan_tokenizer(tokenizer), "data": _file_stamps([split.path / "frames.bin"]),
            "tokenizer_digest": _tokenizer_digest(tokenizer_dir, ())}
    done = _already_encoded(split.path, kind, plan_digest(plan))
    if done is not None:
        return done
    writer = EncodingWriter(split.path, kind, plan)
    for _, frames in _frame_batches(split, batch_size, desc=f"encode {split.path.name}", start=writer.items_done):
        writer.append(tokenizer.encode(torch.from_numpy(frames)[None])[0].cpu())  # (n, C, h, w) | (n, h, w)
    return writer.finish({"temporal_compression": 1, "tokenizer": _tokenizer_config(tokenizer, tokenizer_dir)},
                         tokenizer_dir, expected_items=len(split))


def encode_dataset(data_dir: str | os.PathLike, tokenizer_name_or_path: str | os.PathLike,
                   batch_size: int = 256, device: str = "auto", split: str | None = None,
                   image_size: int | None = None) -> list[Path]:
    """Encode every split under `data_dir` (or the one named `split`) with one tokenizer.

    `image_size` (square side) is the resolution a Cosmos tokenizer encodes at (default 256).
    """
    splits = split_dirs(data_dir, split)
    tokenizer_dir = resolve_checkpoint(tokenizer_name_or_path)
    size = None if image_size is None else (int(image_size), int(image_size))
    tokenizer = load_tokenizer(tokenizer_dir, device=resolve_device(device), image_size=size)
    return [encode_split(path, tokenizer, tokenizer_dir, batch_size) for path in splits]


@torch.no_grad()
def evaluate_tokenizer(tokenizer: Tokenizer, split_dir: str | os.PathLike, batch_size: int = 256,
                       max_frames: int | None = None) -> dict:
    """Reconstruction quality on raw frames: {"psnr": dB, "ssim": float, "frames": int} (per-frame means)."""
    from train.metrics import psnr, ssim

    if tokenizer.temporal_compression != 1:
        raise ValueError("evaluate_tokenizer runs per frame; this tokenizer compresses time "
                         f"by {tokenizer.temporal_compression}")
    split = HWMDataset(split_dir)
    check_resolution(split, tokenizer)
    psnr_sum, ssim_sum, count = 0.0, 0.0, 0
    for _, frames in _frame_batches(split, batch_size, desc=f"eval {split.path.name}", limit=max_frames):
        target = torch.from_numpy(frames).to(tokenizer.device)
        reconstruction = tokenizer.decode(tokenizer.encode(target[None]))[0]  # (n, H, W, 3) uint8
        psnr_sum += float(psnr(reconstruction, target).double().sum())
        ssim_sum += float(ssim(reconstruction, target).double().sum())
        count += len(frames)
    return {"psnr": psnr_sum / count, "ssim": ssim_sum / count, "frames": count}
