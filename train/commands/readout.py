"""`hwm train readout-decoder`: fit a Masked-HWM's decoder to its mean readouts (train/readout_decoder.py)."""
from __future__ import annotations

import argparse


def _train_command(args) -> int:
    from train.readout_decoder import train_readout_decoder

    world_model = train_readout_decoder(args.checkpoint, args.data, args.out, args.config, args.overrides)
    print(f"world model with the fitted decoder: {world_model}\n"
          f"score it with: hwm eval model --checkpoint {world_model} --data DIR --readout mean")
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from train.config import add_run_arguments

    parser = groups["train"].add_parser(
        "readout-decoder", help="fit a Masked-HWM's FSQ decoder to the model's mean readouts",
        description="Read out the next frame of the data's training windows with the model (readout mean: "
                    "expected FSQ digits) and fine-tune its tokenizer's decoder to draw the true frames from "
                    "them, mixed with clean tokens; the encoder is frozen, so tokens are unchanged. Writes "
                    "OUT/world_model: the model with the fitted tokenizer inside. Extra key=value arguments "
                    "override the preset, e.g. train.steps=400 prediction_fraction=0.7.")
    parser.add_argument("--checkpoint", required=True, help="Masked-HWM checkpoint folder or shipped name")
    parser.add_argument("--data", required=True,
                        help="hwm-v1 data set root (train/ + val/) with tokens encoded by the model's tokenizer")
    add_run_arguments(parser, "readout-decoder", "readout", out_help=(
        "run folder (default runs/readout-decoder-<config>, e.g. runs/readout-decoder-default; a .yaml config's "
        "stem); a rerun with the same config and checkpoint resumes from it"))
    parser.set_defaults(func=_train_command)
