"""Tokenizer commands: `hwm train tokenizer`, `hwm data encode`, `hwm eval tokenizer`.

Heavy imports (torch) happen inside the command functions so `hwm --help` stays instant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.atomic import atomic_write_text

QUANTIZERS = ("continuous", "fsq")  # models.tokenizers.autoencoder.QUANTIZERS, without importing torch


def _train_command(args) -> int:
    from models.tokenizers import load_tokenizer
    from train.encode import evaluate_tokenizer, resolve_device
    from train.tokenizer_training import open_training_splits, train_tokenizer

    final = train_tokenizer(args.data, args.quantizer, args.config, args.out, args.overrides)
    print(f"final checkpoint: {final}")
    _, val_split = open_training_splits(args.data)
    if val_split is not None:
        tokenizer = load_tokenizer(final, device=resolve_device("auto"))
        result = evaluate_tokenizer(tokenizer, val_split.path)
        atomic_write_text(final.parent / "eval.json", json.dumps(result, indent=2))
        print(f"val reconstruction: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} "
              f"over {result['frames']} frames -> {final.parent / 'eval.json'}")
    return 0


def _encode_command(args) -> int:
    from train.encode import encode_dataset

    for path in encode_dataset(args.data, args.tokenizer, args.batch_size, args.device, args.split, args.image_size):
        print(f"wrote {path}")
    return 0


def _eval_command(args) -> int:
    from models.tokenizers import load_tokenizer
    from train.encode import evaluate_tokenizer, resolve_device, split_dirs

    data = Path(args.data)
    split = data / "val" if (data / "val" / "metadata.json").is_file() else split_dirs(data)[0]
    tokenizer = load_tokenizer(args.checkpoint, device=resolve_device(args.device))
    result = evaluate_tokenizer(tokenizer, split, args.batch_size, args.max_frames)
    print(f"{split}: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} over {result['frames']} frames")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from train.config import add_run_arguments

    parser = groups["train"].add_parser(
        "tokenizer", help="train the built-in frame tokenizer (continuous for Flow-HWM, FSQ for Masked-HWM)",
        description="Train the built-in per-frame conv autoencoder on an hwm-v1 data set. Extra key=value "
                    "arguments override the preset, e.g. train.steps=20000 model.latent_channels=16.")
    parser.add_argument("--data", required=True, help="hwm-v1 data set root (train/ + val/) or one split")
    parser.add_argument("--quantizer", required=True, choices=QUANTIZERS, help="bottleneck: continuous or fsq")
    add_run_arguments(parser, "tokenizer", "tokenizer", out_help=(
        "run folder (default runs/tokenizer-<quantizer>, e.g. runs/tokenizer-continuous; "
        "runs/tokenizer-<quantizer>-<config> for a preset other than default); a rerun with the same config "
        "resumes from it"))
    parser.set_defaults(func=_train_command)

    parser = groups["data"].add_parser(
        "encode", help="pre-encode a data set's frames into latents/tokens with a tokenizer",
        description="Write latents.bin (continuous) or tokens.bin (discrete) + JSON + a copy of the tokenizer "
                    "beside every split under --data (hwm-v1, or 1X v2.0 raw MP4s), so world models train without "
                    "the encoder. Video tokenizers (Cosmos CV8x8x8 / DV8x8x8) encode 17-frame chunks into 3 "
                    "latents each; an interrupted run continues where it stopped.")
    parser.add_argument("--tokenizer", required=True, help="tokenizer checkpoint folder, shipped name, or a Cosmos "
                        "folder with encoder.jit + decoder.jit")
    parser.add_argument("--data", required=True, help="data set root (hwm-v1, or a 1X raw download) or one split folder")
    parser.add_argument("--split", default=None, help="encode only this split (e.g. val)")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per encoder call (video tokenizers: "
                        "whole 17-frame chunks, at least one)")
    parser.add_argument("--image-size", type=int, default=None, help="side of the square frames a Cosmos tokenizer "
                        "encodes (default 256, as 1X's release); frames are resized to it")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.set_defaults(func=_encode_command)

    parser = groups["eval"].add_parser(
        "tokenizer", help="reconstruction PSNR/SSIM of a tokenizer on a data set's val split",
        description="Encode and decode the val split (or the given split) and compare with the raw frames.")
    parser.add_argument("--checkpoint", required=True, help="tokenizer checkpoint folder or shipped name")
    parser.add_argument("--data", required=True, help="hwm-v1 data set root (uses val/) or one split folder")
    parser.add_argument("--json", default=None, help='write {"psnr", "ssim", "frames"} here')
    parser.add_argument("--batch-size", type=int, default=256, help="frames per tokenizer call")
    parser.add_argument("--max-frames", type=int, default=None, help="evaluate only the first N frames")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.set_defaults(func=_eval_command)
