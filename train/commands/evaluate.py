"""`hwm eval model`: the evaluation protocol (train/evaluation.py) from the command line.

Writes `{"horizons", "psnr", "ssim", "sharpness", "copy_last_psnr", "recon_psnr",
"delta_psnr", "episodes", ...}` as JSON (a stable contract scripts rely on) and prints
the Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser(
        "model", help="PSNR/SSIM/sharpness per horizon vs copy-last and tokenizer baselines, and delta-PSNR",
        description="Roll a world model out with the true actions from seeded windows of a validation split "
                    "and compare the decoded frames with the raw frames at every horizon.",
    )
    parser.add_argument("--checkpoint", required=True,
                        help="world-model checkpoint folder or shipped name (flow-default, masked-default)")
    parser.add_argument("--data", required=True,
                        help="data set root (its val/ split is used) or one split folder")
    parser.add_argument("--horizon", type=int, required=True, help="latent frames to roll out (H)")
    parser.add_argument("--json", required=True, help="where to write the results JSON")
    parser.add_argument("--episodes", type=int, default=32, help="windows, one per episode (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="chooses episodes, windows and sampling noise")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--cfg-scale", type=float, default=None, help="Flow-HWM guidance scale (default: checkpoint's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="Masked-HWM sampling temperature (default: checkpoint's)")
    parser.add_argument("--readout", choices=("tokens", "mean"), default=None,
                        help="Masked-HWM: decode the predicted tokens or each token's expected FSQ code "
                             "(mean: higher PSNR, blurrier); default: the checkpoint's model.readout")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per model call (default 16)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.set_defaults(func=run)


def evaluation_split(data: str | os.PathLike) -> Path:
    """`data` itself when it is a split folder, else the val split of a data set root."""
    from models.data.open import find_splits, split_format

    data = Path(data)
    if split_format(data) is not None:
        return data
    return find_splits(data)[1]


def run(args: argparse.Namespace) -> int:
    import torch

    from models.atomic import atomic_write_text
    from models.checkpoint import frame_stride, read_config
    from models.loading import load_world_model_and_tokenizer, nested_tokenizer_dir
    from train.evaluation import evaluate_world_model, markdown_table

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    checkpoint, model, tokenizer = load_world_model_and_tokenizer(args.checkpoint, device=device)
    config = read_config(checkpoint)
    tokenizer_dir = nested_tokenizer_dir(checkpoint)
    split_dir = evaluation_split(args.data)
    results = evaluate_world_model(
        model, tokenizer, split_dir, args.horizon, episodes=args.episodes, seed=args.seed, steps=args.steps,
        cfg_scale=args.cfg_scale, temperature=args.temperature, readout=args.readout, batch_size=args.batch_size,
        frame_stride=frame_stride(config, checkpoint),
        action_pooling=str((config.get("data") or {}).get("action_pooling", "mean")),
        tokenizer_dir=tokenizer_dir,
    )
    results = {"checkpoint": str(args.checkpoint), "data": str(split_dir), "device": str(device), **results}
    out = atomic_write_text(args.json, json.dumps(results, indent=2))
    print(markdown_table(results))
    print(f"wrote {out}")
    return 0
