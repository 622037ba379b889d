"""`hwm model export`: a smaller copy of a checkpoint for shipping (large tensors in float16)."""
from __future__ import annotations

import argparse


def _export_command(args) -> int:
    import torch
    from omegaconf import OmegaConf

    from models.checkpoint import export_checkpoint

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    settings = {}
    for item in args.set:
        key, separator, _ = item.partition("=")
        if not separator or not key:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. model.readout=mean")
        value = OmegaConf.to_container(OmegaConf.from_dotlist([item]))  # typed as YAML types it: 1, 0.5, mean
        for part in key.split("."):
            value = value[part]
        settings[key] = value
    out = export_checkpoint(args.checkpoint, args.out, dtype=dtype, settings=settings)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB, large tensors as {args.dtype})")
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["model"].add_parser(
        "export", help="copy a checkpoint with its large tensors in float16 (for shipping)",
        description="Copy a checkpoint folder, nested tokenizer included, storing weight matrices as "
                    "float16 (norms, biases and statistics stay float32). Loading casts back.")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or shipped name")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="floating-point type of the copied weights (default float16: half the size)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="replace a config.json entry, e.g. a decoding default chosen by measurement "
                             "(--set model.readout=mean, --set model.num_sampling_steps=1); repeatable")
    parser.set_defaults(func=_export_command)
