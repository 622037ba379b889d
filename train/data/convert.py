"""`hwm data convert`: the 1X v2.0 raw MP4 data set to `hwm-v1` at a chosen resolution.

Per-frame tokenizers, the state probe and the simulator-style tools read `hwm-v1` splits;
this writes one from a 1X raw split (or the train/val pair of a raw download root):

| hwm-v1 file       | from the 1X shards                                                    |
|-------------------|-----------------------------------------------------------------------|
| `frames.bin`      | `video_{i}.mp4` decoded front to back, resized with OpenCV INTER_AREA |
| `states.bin`      | `states_{i}.bin` as they are                                          |
| `actions.bin`     | `OneXSplit.frame_actions`: the action of frame t is the state of t+1  |
| `segment_idx.bin` | one episode per 1X segment (one running on into the next shard stays one) |

fps, the 25 state/action names and the binary hand-closure dims come from the 1X reader.
Each split is written through `HWMWriter` (temp folder, renamed when complete), a root's
train/ + val/ together through one atomic folder: a crash or a bad shard leaves nothing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from models.data import onex
from models.data.hwm_format import FORMAT, HWMWriter, episode_ranges_of
from models.data.open import SPLIT_PAIRS, split_format
from models.paths import require_folder

HWM_SPLIT_NAMES = ("train", "val")  # what a root's (train, val) pair becomes: the names `hwm train` reads
RAW_DOWNLOAD = "1x-technologies/worldmodel_raw_data (train_v2.0_raw/ + val_v2.0_raw/)"


def raw_splits_of(source: str | os.PathLike) -> dict[str, Path] | None:
    """{hwm-v1 name: raw split folder} of a 1X raw root, or None when `source` is a single raw split."""
    source = require_folder(source, "1X v2.0 raw data")
    kind = split_format(source)
    if kind == onex.FORMAT_RAW:
        return None
    if kind is not None:
        raise ValueError(_not_raw(source, kind))
    for pair in SPLIT_PAIRS:
        folders = [source / name for name in pair]
        if all(split_format(folder) == onex.FORMAT_RAW for folder in folders):
            return dict(zip(HWM_SPLIT_NAMES, folders))
    for pair in SPLIT_PAIRS:
        kinds = {split_format(source / name) for name in pair}
        if len(kinds) == 1 and None not in kinds:
            raise ValueError(_not_raw(source, kinds.pop()))
    raise FileNotFoundError(
        f"{source}: neither a 1X v2.0 raw split (video_{{i}}.mp4 shards) nor a root holding one of "
        + " or ".join(f"{train}/ + {val}/" for train, val in SPLIT_PAIRS)
    )


def _not_raw(path: Path, kind: str) -> str:
    if kind == onex.FORMAT_TOKENS:
        return (
            f"{path}: holds 1X v2.0 Cosmos tokens, which convert only through the Cosmos decoder; "
            f"convert the raw MP4 variant instead ({RAW_DOWNLOAD})"
        )
    if kind == FORMAT:
        return f"{path}: is already {FORMAT}; nothing to convert"
    return f"{path}: is {kind}, not a 1X v2.0 raw split"


def write_hwm_split(split: onex.OneXRawSplit, out_dir: Path, batch_frames: int = 256, progress=None) -> dict:
    """Write the hwm-v1 split `out_dir` from an opened raw split (frames at its image_size)."""
    writer = HWMWriter(
        out_dir,
        height=split.height,
        width=split.width,
        action_dim=onex.STATE_DIM,
        fps=split.fps,
        action_names=split.action_names,
        state_dim=onex.STATE_DIM,
        source=onex.FORMAT_RAW,
        binary_action_dims=split.binary_action_dims,
        extra_metadata={
            "state_names": split.action_names,
            "converted_from": {
                "command": "hwm data convert",
                "path": str(split.path.resolve()),
                "shards": [shard.index for shard in split.shards],
                "video_resolution": list(split.source_size),
                "resize": "cv2.INTER_AREA",
                "actions": "action of frame t = state of frame t+1; a segment's last frame holds its state",
                "segment_indices": split.has_segment_indices,
            },
        },
    )
    previous_segment = None
    with writer:
        for position, shard in enumerate(split.shards):
            actions = split.frame_actions(position)  # (F, 25)
            segment_idx = np.asarray(shard.segment_idx)
            for start, frames in split.iter_frames(shard, batch_frames):  # (n, H, W, 3)
                for a, b in episode_ranges_of(segment_idx[start : start + len(frames)]):
                    segment = int(segment_idx[start + a])
                    writer.add_episode(
                        frames[a:b], actions[start + a : start + b], shard.states[start + a : start + b],
                        continues=segment == previous_segment,
                    )
                    previous_segment = segment
                if progress is not None:
                    progress.update(len(frames))
    return {"path": str(out_dir), "frames": writer.num_frames, "episodes": writer.num_episodes}


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    resolution: int = 64,
    batch_frames: int = 256,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Convert a 1X raw split to the hwm-v1 split `out`, or a raw root's train/val pair to `out/train`
    and `out/val`. Returns {"splits": [{path, frames, episodes}], "seconds": wall time}."""
    from tqdm.auto import tqdm

    from models.atomic import atomic_directory_write

    if resolution < 1:
        raise ValueError(f"--resolution {resolution}: must be a positive number of pixels")
    if batch_frames < 1:
        raise ValueError(f"--batch-frames {batch_frames}: must be >= 1")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"{out}: already exists and is not empty; pass --overwrite to replace it")
    named = raw_splits_of(source)
    size = (resolution, resolution)
    splits = {name: onex.OneXRawSplit(folder, image_size=size) for name, folder in (named or {"": source}).items()}
    started = time.perf_counter()
    summaries = []
    with tqdm(total=sum(len(split) for split in splits.values()), unit="frame", desc="hwm data convert",
              dynamic_ncols=True, disable=not progress) as bar:
        if named is None:
            summaries.append(write_hwm_split(splits[""], out, batch_frames, bar))
        else:
            with atomic_directory_write(out) as tmp:
                os.chmod(tmp, 0o755)  # the temp folder is private; a data set is meant to be shared
                for name, split in splits.items():
                    bar.set_description(f"hwm data convert {name}")
                    summary = write_hwm_split(split, tmp / name, batch_frames, bar)
                    summaries.append({**summary, "path": str(out / name)})
    return {"splits": summaries, "seconds": time.perf_counter() - started}
