"""Open a data set split whatever its layout: `hwm-v1`, 1X v2.0 tokenized, or 1X v2.0 raw."""
from __future__ import annotations

import os
from pathlib import Path

from models.data import onex
from models.data.hwm_format import FORMAT, METADATA_FILE, HWMDataset, read_json
from models.paths import require_folder

# (train, val) folder names of a data set root, in the order they are tried
SPLIT_PAIRS = (("train", "val"), ("train_v2.0", "val_v2.0"), ("train_v2.0_raw", "val_v2.0_raw"))


def split_format(path: str | os.PathLike) -> str | None:
    """'hwm-v1', '1x-v2.0-tokens', '1x-v2.0-raw', or None if `path` is not a split folder."""
    path = Path(path)
    if not path.is_dir():
        return None
    metadata_path = path / METADATA_FILE
    if metadata_path.is_file():
        try:
            if read_json(metadata_path).get("format") == FORMAT:
                return FORMAT
        except ValueError:
            pass
    return onex.detect_layout(path)


def open_split(path: str | os.PathLike, image_size: tuple[int, int] | None = None):
    """A reader of one split: HWMDataset, OneXTokenizedSplit or OneXRawSplit.

    image_size (H, W) resizes 1X raw frames on read (the MP4s are 512x512).
    """
    path = require_folder(path, "data split")
    kind = split_format(path)
    if kind == FORMAT:
        return HWMDataset(path)
    if kind == onex.FORMAT_TOKENS:
        return onex.OneXTokenizedSplit(path)
    if kind == onex.FORMAT_RAW:
        return onex.OneXRawSplit(path, image_size=image_size)
    if (path / METADATA_FILE).is_file():
        return HWMDataset(path)  # reports what is wrong with its metadata
    found = [p.name for p in sorted(path.iterdir())][:10]
    raise ValueError(
        f"{path}: not a data split (expected hwm-v1 metadata.json + frames.bin, or 1X v2.0 "
        f"video_{{i}}.bin / video_{{i}}.mp4 shards); it contains {found}"
    )


def find_splits(root: str | os.PathLike) -> tuple[Path, Path]:
    """(train, val) folders of a data set root."""
    root = require_folder(root, "data set")
    for train_name, val_name in SPLIT_PAIRS:
        if (root / train_name).is_dir() and (root / val_name).is_dir():
            return root / train_name, root / val_name
    if split_format(root) is not None:
        raise ValueError(f"{root}: is a single split; a data set root holds train/ and val/ split folders")
    expected = " or ".join(f"{t}/ + {v}/" for t, v in SPLIT_PAIRS)
    raise FileNotFoundError(f"{root}: no split folders found; expected {expected}")


def open_splits(root: str | os.PathLike, image_size: tuple[int, int] | None = None):
    """(train, val) readers of a data set root holding train/ + val/ (or the 1X v2.0 names)."""
    train_dir, val_dir = find_splits(root)
    return open_split(train_dir, image_size), open_split(val_dir, image_size)
