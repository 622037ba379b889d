"""`hwm eval model`: the evaluation protocol (train/evaluation.py) from the command line.

Writes `{"horizons", "psnr", "ssim", "sharpness", "copy_last_psnr", "recon_psnr",
"delta_psnr", "episodes", ...}` as JSON (a stable contract scripts rely on) and prints
the Markdown table. `--probe` (a state probe: shipped name or folder) adds the long-horizon
scores per horizon: `probe_error`, `copy_last_probe_error`, `mean_probe_error`,
`recon_probe_error`, `true_probe_error` (z-units), `probe_error_by_group` ({joints, objects:
{model, copy_last, mean, recon, true}}), `window_probe_error` ({model, copy_last}: per window and
horizon, for paired comparisons), `probe_fd`, `copy_last_probe_fd`, and `probe`, `probe_targets`:

    hwm eval model --checkpoint flow-default --data data/sim-eval --horizon 64 --probe probe-default \
        --json flow.json
 Checkpoints on temporal (Cosmos) latents are scored in latent time on
the raw frames each predicted latent covers; a Masked-HWM trained on the 1X tokens carries no
tokenizer, so `--tokenizer` names the user's Cosmos DV8x8x8 folder:

    hwm eval model --checkpoint runs/masked-paper/final --data worldmodel --horizon 1 \
        --tokenizer Cosmos-Tokenizer-DV8x8x8 --frames worldmodel_raw_data/val_v2.0_raw --json eval.json
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
    parser.add_argument("--horizon", type=int, required=True,
                        help="latent frames to roll out (H); at most what the held-out episodes allow")
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
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder to encode and decode with (a Cosmos folder with encoder.jit and "
                             "decoder.jit, or a built-in tokenizer checkpoint); default: the checkpoint's own; "
                             "required when it carries none (a Masked-HWM trained on 1X Cosmos DV tokens)")
    parser.add_argument("--frames", default=None,
                        help="temporal tokenizers: the split with the raw frames to compare with when --data holds "
                             "only tokens (1X val_v2.0: its val_v2.0_raw MP4 split); default: the data split itself, "
                             "or a <split>_raw folder beside it")
    parser.add_argument("--probe", default=None,
                        help="state probe (shipped name such as probe-default, or folder): also score what the "
                             "frames show, per horizon, vs copy-last, the data mean and the true frames, and the "
                             "Fréchet distance of its features (per-frame tokenizers)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="inference precision of the rollouts and decoding (default auto: bf16 where the device "
                             "has it natively and the batch is >= 32 on a CPU, else fp32; models/precision.py)")
    parser.add_argument("--compile", choices=("off", "on", "auto"), default="off",
                        help="torch.compile the model and decoder (default off: one evaluation is too short to "
                             "repay a compilation on a CPU; models/compiled.py)")
    parser.set_defaults(func=run)


def evaluation_split(data: str | os.PathLike) -> Path:
    """`data` itself when it is a split folder, else the val split of a data set root."""
    from models.data.open import find_splits, split_format

    data = Path(data)
    if split_format(data) is not None:
        return data
    return find_splits(data)[1]


def run(args: argparse.Namespace) -> int:
    from models.atomic import atomic_write_text
    from models.checkpoint import frame_stride
    from train.encode import resolve_device
    from train.evaluation import evaluate_world_model, load_for_evaluation, markdown_table

    device = resolve_device(args.device)
    checkpoint, config, model, tokenizer, tokenizer_dir = load_for_evaluation(args.checkpoint, args.tokenizer, device)
    split_dir = evaluation_split(args.data)
    probe = None
    if args.probe is not None:
        from models.probe import load_probe

        probe = load_probe(args.probe, device=str(device))
    data = config.get("data") or {}
    results = evaluate_world_model(
        model, tokenizer, split_dir, args.horizon, episodes=args.episodes, seed=args.seed, steps=args.steps,
        cfg_scale=args.cfg_scale, temperature=args.temperature, readout=args.readout, batch_size=args.batch_size,
        probe=probe, frame_stride=frame_stride(config, checkpoint), action_pooling=str(data.get("action_pooling", "mean")),
        tokenizer_dir=tokenizer_dir, frames=args.frames, cross_chunks=bool(data.get("cross_chunks", False)),
        precision=args.precision, compile={"off": False, "on": True, "auto": "auto"}[args.compile],
    )
    results = {"checkpoint": str(args.checkpoint), "data": str(split_dir), "tokenizer": str(tokenizer_dir),
               "device": str(device), **({"probe": str(args.probe)} if probe is not None else {}), **results}
    out = atomic_write_text(args.json, json.dumps(results, indent=2))
    print(markdown_table(results))
    print(f"wrote {out}")
    return 0
