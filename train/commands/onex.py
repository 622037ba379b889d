"""`hwm eval onex-compression` and `hwm eval onex-sampling`: the 1X World Model Challenge 2025
tracks (train/onex_challenge.py), scored locally and, for compression, written as submission files.

    hwm eval onex-compression --checkpoint runs/masked-paper/final --data worldmodel --json compression.json
    hwm eval onex-compression --checkpoint runs/masked-paper/final --data worldmodel/test_v2.0 \\
        --submission submission --team "..." --authors "..." --email "..."
    hwm eval onex-sampling --checkpoint runs/masked-paper/final --tokenizer Cosmos-Tokenizer-DV8x8x8 \\
        --data worldmodel_raw_data --json sampling.json
"""
from __future__ import annotations

import argparse
import json


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser(
        "onex-compression",
        help="1X challenge compression track: top-500 cross-entropy of the next chunk's 3 token grids; "
             "writes submission files",
        description="One 17-frame chunk of Cosmos DV8x8x8 tokens (3x32x32) with its states in, the 500 most likely "
                    "ids and log-probabilities of every token of the next chunk's 3 grids out. On a split with "
                    "targets (val_v2.0) reports the top-500 cross-entropy in nats per token (uniform: ln 64000 = "
                    "11.07; 2025 winner: 6.64); on test_v2.0 (one chunk per sample) writes <ID>.npz files, "
                    "README.txt and submission.zip. The scoring rule is in train/onex_challenge.py.",
    )
    parser.add_argument("--checkpoint", required=True, help="Masked-HWM checkpoint trained on the 1X v2.0 tokens")
    parser.add_argument("--data", required=True,
                        help="1X token data set root (its val_v2.0 split is scored) or one token split folder "
                             "(val_v2.0 to score, test_v2.0 to write a submission)")
    parser.add_argument("--samples", type=int, default=450,
                        help="scored splits: chunk pairs drawn with --seed (default 450, the test set's size); "
                             "a test split always uses every sample")
    parser.add_argument("--seed", type=int, default=0, help="chooses the samples and the MaskGIT sampling noise")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per model call (default 8)")
    parser.add_argument("--future-actions", choices=("held", "true"), default="held",
                        help="actions into the predicted grids: held = the last context state (the track gives only "
                             "the context's states; default) or true = the target chunk's states (val only)")
    parser.add_argument("--steps", type=int, default=None,
                        help="MaskGIT steps of the sample that conditions grids after the model's first block "
                             "(default: the checkpoint's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="temperature of that sample (default: the checkpoint's)")
    parser.add_argument("--submission", default=None,
                        help="folder to write <ID>.npz (indices int32, values float32, 3x32x32x500), README.txt and "
                             "submission.zip into")
    for flag, key in (("--method", "method"), ("--team", "team"), ("--authors", "authors"), ("--email", "e-mail"),
                      ("--institution", "institution"), ("--country", "country")):
        default = "Masked-HWM (humanoid-world-models)" if key == "method" else "empty"
        parser.add_argument(flag, default=None, help=f"README.txt field '{key}' of the submission (default {default})")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.set_defaults(func=run_compression)

    parser = groups["eval"].add_parser(
        "onex-sampling",
        help="1X challenge sampling track: 17 frames + states in, PSNR of frame 77 (2 s ahead)",
        description="17 context frames plus the robot states of frames 0..76 in; the model rolls its latents out "
                    "to the one holding frame 77 (index 76, 2 s after the context at 30 Hz), decodes it and scores "
                    "PSNR against the raw frame at the tokenizer's resolution (2025 winner: 23.0 dB), beside "
                    "copy-last-frame and the tokenizer's reconstruction. Either world-model family.",
    )
    parser.add_argument("--checkpoint", required=True, help="world-model checkpoint folder or shipped name")
    parser.add_argument("--data", required=True,
                        help="data set root with raw frames (its val split is used, e.g. worldmodel_raw_data -> "
                             "val_v2.0_raw) or one split folder (1X raw MP4 or hwm-v1)")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder (a Cosmos folder with encoder.jit and decoder.jit, or a built-in "
                             "tokenizer); default: the checkpoint's own; required when it carries none")
    parser.add_argument("--samples", type=int, default=250,
                        help="windows of 77 frames, at most one per episode (default 250, the test set's size)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the windows and the sampling noise")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--cfg-scale", type=float, default=None, help="Flow-HWM guidance scale (default: checkpoint's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="Masked-HWM sampling temperature (default: checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per model call (default 4)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.set_defaults(func=run_sampling)


def _write(results: dict, path: str | None) -> None:
    from models.atomic import atomic_write_text

    if path:
        print(f"wrote {atomic_write_text(path, json.dumps(results, indent=2))}")


def run_compression(args: argparse.Namespace) -> int:
    from models.loading import load_world_model
    from models.checkpoint import resolve_checkpoint
    from train.commands.evaluate import evaluation_split
    from train.encode import resolve_device
    from train.onex_challenge import default_readme, evaluate_compression

    device = resolve_device(args.device)
    path = resolve_checkpoint(args.checkpoint)
    model = load_world_model(path, device=str(device))
    readme = default_readme() if args.method is None else default_readme(args.method)
    for flag, key in (("team", "team"), ("authors", "authors"), ("email", "e-mail"), ("institution", "institution"),
                      ("country", "country")):
        if getattr(args, flag) is not None:
            readme[key] = getattr(args, flag)
    split_dir = evaluation_split(args.data)
    results = evaluate_compression(model, split_dir, samples=args.samples, seed=args.seed, batch_size=args.batch_size,
                                   future_actions=args.future_actions, steps=args.steps, temperature=args.temperature,
                                   submission=args.submission, readme=readme)
    results = {"checkpoint": str(path), "device": str(device), **results}
    if results["scored"]:
        print(f"top-500 cross-entropy {results['top500_cross_entropy']:.4f} nats per token over {results['samples']} "
              f"samples (per grid {', '.join(f'{x:.3f}' for x in results['per_grid'])}; full-softmax "
              f"{results['full_cross_entropy']:.4f}); uniform {results['uniform_cross_entropy']:.2f}, "
              f"2025 winner {results['winner_cross_entropy']:.2f}")
    else:
        print(f"{results['samples']} test samples (no targets to score)")
    if results["submission"]:
        print(f"submission: {results['submission']}")
    _write(results, args.json)
    return 0


def run_sampling(args: argparse.Namespace) -> int:
    from models.checkpoint import frame_stride
    from train.commands.evaluate import evaluation_split
    from train.encode import resolve_device
    from train.evaluation import load_for_evaluation
    from train.onex_challenge import evaluate_sampling

    device = resolve_device(args.device)
    path, config, model, tokenizer, tokenizer_dir = load_for_evaluation(args.checkpoint, args.tokenizer, device)
    data = config.get("data") or {}
    split_dir = evaluation_split(args.data)
    results = evaluate_sampling(model, tokenizer, split_dir, samples=args.samples, seed=args.seed,
                                batch_size=args.batch_size, steps=args.steps, cfg_scale=args.cfg_scale,
                                temperature=args.temperature, frame_stride=frame_stride(config, path),
                                action_pooling=str(data.get("action_pooling", "mean")))
    results = {"checkpoint": str(path), "tokenizer": str(tokenizer_dir), "device": str(device), **results}
    print(f"frame {results['target_frame'] + 1} PSNR {results['psnr']:.2f} dB over {results['samples']} windows "
          f"(copy-last {results['copy_last_psnr']:.2f}, tokenizer reconstruction {results['recon_psnr']:.2f}; "
          f"2025 winner {results['winner_psnr']:.1f})")
    _write(results, args.json)
    return 0
