"""`hwm data info PATH`: what is in a data set split or root, whatever its layout;
`hwm data convert`: a 1X v2.0 raw split or root to hwm-v1 (`train/data/convert.py`)."""
from __future__ import annotations

import json
from pathlib import Path


def register(groups) -> None:
    info = groups["data"].add_parser(
        "info",
        help="summarise a data set (hwm-v1 or 1X v2.0; a split folder or a root with train/ + val/)",
        description="Print frames, episodes, resolution, fps, per-dimension action statistics and "
        "pre-encoded latents/tokens of each split.",
    )
    info.add_argument("path", type=Path, help="a split folder, or a root holding train/ and val/ splits")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    info.set_defaults(func=run_info)

    convert = groups["data"].add_parser(
        "convert",
        help="convert the 1X v2.0 raw MP4 data set (a split or a root) to hwm-v1 at a chosen resolution",
        description="Decode a 1X v2.0 raw split's video_{i}.mp4 shards, resize the frames (OpenCV INTER_AREA) and "
        "write an hwm-v1 split with the states, the 1X actions (the action of frame t is the state of frame t+1), "
        "one episode per segment, fps, action names and binary dims. A root's train_v2.0_raw/ + val_v2.0_raw/ "
        "become OUT/train and OUT/val. The output appears only when complete.",
    )
    convert.add_argument("--data", type=Path, required=True,
                         help="a 1X v2.0 raw split folder, or a root holding train_v2.0_raw/ and val_v2.0_raw/")
    convert.add_argument("--out", type=Path, required=True,
                         help="output hwm-v1 split folder (for a split) or data set folder (for a root)")
    convert.add_argument("--resolution", type=int, default=64, help="square frame size in pixels (default 64)")
    convert.add_argument("--batch-frames", type=int, default=256,
                         help="frames decoded and written per batch (default 256)")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    convert.set_defaults(func=run_convert)


def split_folders(path: Path) -> list[Path]:
    """The split itself, or every split folder directly under a data set root."""
    from models.data.open import split_format
    from models.paths import require_folder

    path = require_folder(path, "data")
    if split_format(path) is not None or (path / "metadata.json").is_file():
        return [path]
    children = [child for child in sorted(path.iterdir()) if child.is_dir() and split_format(child) is not None]
    if not children:
        raise ValueError(
            f"{path}: neither a data split (hwm-v1, 1X v2.0 tokens or raw) nor a folder of splits"
        )
    return children


def describe_split(path: Path) -> dict:
    """A JSON-ready summary of one split."""
    from models.data import onex
    from models.data.hwm_format import HWMDataset
    from models.data.open import open_split
    from models.data.windows import action_summary

    split = open_split(path)
    summary = {"path": str(path), "format": getattr(split, "format", None) or split.metadata["format"]}
    summary["frames"] = len(split)
    summary["fps"] = split.fps
    summary["hours"] = round(len(split) / split.fps / 3600, 4)
    if isinstance(split, HWMDataset):
        summary["episodes"] = len(split.episode_ranges())
        summary["resolution"] = [int(split.metadata["height"]), int(split.metadata["width"])]
        summary["source"] = split.metadata["source"]
        summary["state_dim"] = split.metadata["state_dim"]
        summary["encodings"] = {
            kind: {**info, "tokenizer_copy": str(split.encoding_tokenizer_dir(kind) or "")}
            for kind, info in (("latents", split.latents_info), ("tokens", split.tokens_info))
            if info is not None
        }
    else:
        summary["episodes"] = split.num_episodes
        summary["shards"] = len(split.shards)
        summary["segment_indices"] = split.has_segment_indices  # False: a test split, one segment per shard
        summary["resolution"] = [int(split.height), int(split.width)]
        summary["state_dim"] = onex.STATE_DIM
        summary["encodings"] = {}
        if isinstance(split, onex.OneXTokenizedSplit):
            kept = split.num_kept_chunks
            partial = sum(1 for s in split.shards if s.num_frames % onex.CHUNK_FRAMES)
            summary["encodings"]["tokens"] = {
                "shape_per_chunk": [onex.LATENTS_PER_CHUNK, *onex.TOKEN_GRID],
                "dtype": "int32",
                "chunks": split.num_chunks,
                "kept_chunks": kept,
                "dropped_partial_chunks": partial,
                "dropped_segment_crossing_chunks": split.num_chunks - kept - partial,
                "tokenizer": onex.TOKENIZER_DESCRIPTION,
            }
        else:
            summary["video_resolution"] = list(split.source_size)
    stats = action_summary(split)
    binary = set(split.binary_action_dims)
    summary["actions"] = [
        {
            "index": i, "name": name, "binary": i in binary,
            "mean": float(stats["mean"][i]), "std": float(stats["std"][i]),
            "min": float(stats["min"][i]), "max": float(stats["max"][i]),
        }
        for i, name in enumerate(split.action_names)
    ]
    return summary


def format_summary(summary: dict) -> str:
    height, width = summary["resolution"]
    lines = [
        f"{summary['path']}  ({summary['format']})",
        f"  frames      {summary['frames']:,} in {summary['episodes']:,} episodes/segments"
        + (f", {summary['shards']} shards" if "shards" in summary else "")
        + (" (no segment indices: one segment per shard)" if summary.get("segment_indices") is False else ""),
        f"  resolution  {height}x{width} RGB"
        + (f" (video {summary['video_resolution'][0]}x{summary['video_resolution'][1]})"
           if "video_resolution" in summary else "")
        + (" (decoded from the tokens)" if summary["format"] == "1x-v2.0-tokens" else ""),
        f"  fps         {summary['fps']:g}  ({summary['hours'] * 60:.1f} min)",
    ]
    if summary.get("source"):
        lines.append(f"  source      {summary['source']}")
    if summary.get("state_dim"):
        lines.append(f"  states      {summary['state_dim']}-d")
    for kind, info in summary["encodings"].items():
        if "chunks" in info:
            lines.append(
                f"  {kind:<11} {info['tokenizer']['name']} {'x'.join(map(str, info['shape_per_chunk']))} {info['dtype']} "
                f"per 17-frame chunk, vocab {info['tokenizer']['vocab_size']}; {info['kept_chunks']:,} of "
                f"{info['chunks']:,} chunks usable ({info['dropped_partial_chunks']} partial, "
                f"{info['dropped_segment_crossing_chunks']} crossing a segment)"
            )
        else:
            lines.append(
                f"  {kind:<11} {tuple(info['shape'])} {info['dtype']}, temporal compression "
                f"{info['temporal_compression']}" + (f", tokenizer {info['tokenizer_copy']}" if info["tokenizer_copy"] else "")
            )
    name_width = max(len(a["name"]) for a in summary["actions"])
    lines.append(f"  actions     {len(summary['actions'])}-d")
    lines.append(f"    {'dim':>3}  {'name':<{name_width}}  {'mean':>10} {'std':>10} {'min':>10} {'max':>10}")
    for a in summary["actions"]:
        lines.append(
            f"    {a['index']:>3}  {a['name']:<{name_width}}  {a['mean']:>10.4g} {a['std']:>10.4g} "
            f"{a['min']:>10.4g} {a['max']:>10.4g}" + ("  binary" if a["binary"] else "")
        )
    return "\n".join(lines)


def run_convert(args) -> int:
    from train.data.convert import convert

    result = convert(args.data, args.out, args.resolution, args.batch_frames, args.overwrite)
    frames = sum(split["frames"] for split in result["splits"])
    for split in result["splits"]:
        print(f"wrote {split['frames']:,} frames in {split['episodes']:,} episodes to {split['path']} (hwm-v1)")
    print(f"{args.resolution}x{args.resolution} in {result['seconds']:.1f} s ({frames / result['seconds']:.0f} frames/s)")
    return 0


def run_info(args) -> int:
    summaries = [describe_split(folder) for folder in split_folders(args.path)]
    if args.json:
        print(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2))
    else:
        print("\n\n".join(format_summary(summary) for summary in summaries))
    return 0
