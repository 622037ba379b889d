"""`hwm train masked` and `hwm eval tokens` (the 1X compression-track metric).

Training reads pre-encoded token grids (`tokens.bin` beside an hwm-v1 split, or a 1X v2.0
tokenized split), takes the vocabulary, grid and FSQ levels from the data, the action
statistics from the train split only, and runs the shared Trainer. The final checkpoint
carries the split's tokenizer as `tokenizer/`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.atomic import atomic_write_text
from models.masked.st_transformer import MaskedConfig
from train.pixel_loss import PixelLossConfig
from train.trainer import TrainConfig

FAMILY = "masked"
LARGE_VOCABULARY = 4096  # from here on a full softmax head costs more than the transformer of `default`


@dataclass
class MaskedDataConfig:
    """How training windows are cut (num_past/num_future live in `model`)."""

    frame_stride: int = 1  # raw frames between latent frames (hwm-v1); actions pooled on the same clock
    cross_chunks: bool = False  # 1X v2.0: let windows span adjacent 17-frame chunks of one segment


@dataclass
class MaskedTrainingConfig:
    """One YAML preset: `model` (MaskedConfig), `train` (TrainConfig), `data`, `pixel` (PixelLossConfig)."""

    model: MaskedConfig = field(default_factory=MaskedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: MaskedDataConfig = field(default_factory=MaskedDataConfig)
    pixel: PixelLossConfig = field(default_factory=PixelLossConfig)


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from train.config import add_run_arguments

    parser = groups["train"].add_parser(
        "masked", help="train a Masked-HWM (ST-MaskGIT) on pre-encoded tokens",
        description="Train a Masked-HWM on token grids pre-encoded beside DIR/train and DIR/val "
                    "(hwm data encode with an FSQ tokenizer), or on a 1X v2.0 tokenized data set.",
    )
    parser.add_argument("--data", required=True, help="data set root holding train/ and val/ splits")
    add_run_arguments(parser, "masked", "masked")
    parser.set_defaults(func=train_masked)

    parser = groups["eval"].add_parser(
        "tokens", help="per-token cross-entropy and accuracy of the future latent (1X compression-track style)",
        description="Teacher-forced: every future token masked, the true past tokens and actions given; "
                    "reports the mean cross-entropy (nats per token) and argmax accuracy on the val split.",
    )
    parser.add_argument("--checkpoint", required=True, help="Masked-HWM checkpoint folder or shipped name")
    parser.add_argument("--data", required=True, help="data set root (its val/ split is used) or one split folder")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per model call (default 32)")
    parser.add_argument("--max-windows", type=int, default=None, help="evaluate a seeded random subset of windows")
    parser.add_argument("--seed", type=int, default=0, help="chooses the windows scored (default 0)")
    parser.set_defaults(func=eval_tokens)


# --- data ---------------------------------------------------------------------------------

def token_source(split) -> dict[str, Any]:
    """Vocabulary, grid, FSQ levels and tokenizer folder of a split's pre-encoded tokens."""
    from models.data.hwm_format import HWMDataset

    if isinstance(split, HWMDataset):
        if split.tokens is None:
            raise ValueError(
                f"{split.path}: no pre-encoded tokens (tokens.bin + tokens.json); run "
                "`hwm data encode --tokenizer tokenizer-fsq --data DIR` first"
            )
        description = dict(split.tokens_info.get("tokenizer") or {})
        tokenizer_dir = split.encoding_tokenizer_dir("tokens")
        grid = [int(x) for x in split.tokens_info["shape"][1:]]
    else:
        from models.data import onex

        if isinstance(split, onex.OneXRawSplit):  # tokens that `hwm data encode` wrote beside 1X's MP4s
            from models.data.windows import pre_encoded

            try:
                _, info, tokenizer_dir = pre_encoded(split, "tokens")
            except ValueError as error:
                raise ValueError(
                    f"{split.path}: this is the 1X v2.0 raw MP4 variant, and Masked-HWM trains on tokens; pass the "
                    "tokenized root (train_v2.0/ + val_v2.0/ of 1x-technologies/worldmodel) or encode this data "
                    "first: hwm data encode --tokenizer <Cosmos-0.1-Tokenizer-DV8x8x8 folder> --data <raw root>"
                ) from error
            description = dict(info.get("tokenizer") or {})
            grid = [int(x) for x in info["shape"][1:]]
        else:  # 1X v2.0 tokenized (Cosmos DV8x8x8); its tokenizer weights are the user's
            description = dict(getattr(split, "tokenizer", None) or {})
            tokenizer_dir = None
            grid = list(onex.TOKEN_GRID)
    if "vocab_size" not in description:
        raise ValueError(f"{split.path}: the tokens' description has no vocab_size ({description})")
    levels = _find_key(description, "fsq_levels")
    if levels is None and tokenizer_dir is not None and (tokenizer_dir / "config.json").is_file():
        levels = _find_key(json.loads((tokenizer_dir / "config.json").read_text()), "fsq_levels")
    if levels is not None and math.prod(levels) != int(description["vocab_size"]):
        levels = None  # not an FSQ vocabulary after all
    return {"vocab_size": int(description["vocab_size"]), "token_grid": grid,
            "fsq_levels": [int(x) for x in levels] if levels else None,
            "tokenizer_dir": tokenizer_dir, "tokenizer": description}


def _find_key(tree: Any, key: str):
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _open_eval_split(path: str):
    from models.data.open import find_splits, open_split, split_format

    if split_format(path) is not None:
        return open_split(path)
    _, val_dir = find_splits(path)
    return open_split(val_dir)


# --- hwm train masked -------------------------------------------------------------------

def train_masked(args: argparse.Namespace) -> int:
    import torch

    from models.masked import MaskedHWM, masked_objective
    from train.config import config_name, default_run_dir, load_config
    from models.data.open import open_splits
    from models.data.windows import WindowDataset, action_statistics
    from train.trainer import Trainer

    config = load_config(MaskedTrainingConfig, FAMILY, args.config, args.overrides)
    train_split, val_split = open_splits(args.data)
    source = token_source(train_split)
    val_source = token_source(val_split)
    if (val_source["vocab_size"], val_source["token_grid"]) != (source["vocab_size"], source["token_grid"]):
        raise ValueError(
            f"{args.data}: train tokens ({source['vocab_size']} codes, grid {source['token_grid']}) and val tokens "
            f"({val_source['vocab_size']} codes, grid {val_source['token_grid']}) come from different tokenizers"
        )
    windows = dict(num_past=config.model.num_past, num_future=config.model.num_future, source="tokens",
                   frame_stride=config.data.frame_stride, action_pooling="mean",
                   cross_chunks=config.data.cross_chunks)
    train_data = WindowDataset(train_split, **windows)
    val_data = WindowDataset(val_split, **windows)
    factorized = [name for name in ("factorized_head", "factorized_embedding") if getattr(config.model, name)]
    if factorized and source["fsq_levels"] is None:
        raise ValueError(
            f"{' and '.join(f'model.{name}=true' for name in factorized)} need(s) an FSQ tokenizer (the tokens' "
            f"description has no fsq_levels); pass {' '.join(f'model.{name}=false' for name in factorized)}"
        )
    # the data decides what the tokens and actions are
    model_config = dataclasses.replace(
        config.model, vocab_size=source["vocab_size"], token_grid=source["token_grid"],
        fsq_levels=source["fsq_levels"], action_dim=train_data.action_dim,
    )

    if source["vocab_size"] >= LARGE_VOCABULARY and not model_config.factorized_head and source["fsq_levels"]:
        print(f"note: a {source['vocab_size']}-way softmax head dominates the cost of a small model on CPU; "
              f"model.factorized_head=true predicts the {len(source['fsq_levels'])} FSQ digits instead "
              f"({sum(source['fsq_levels'])} outputs)", file=sys.stderr)

    torch.manual_seed(config.train.seed)
    model = MaskedHWM(model_config)
    mean, std, binary_dims = action_statistics(train_split)
    model.action_normalizer.set_stats(mean, std, binary_dims)
    params = sum(p.numel() for p in model.parameters())
    print(f"Masked-HWM ({model_config.variant}): {params / 1e6:.2f} M params, vocab {model_config.vocab_size}, "
          f"grid {model_config.token_grid}, {len(train_data)} train / {len(val_data)} val windows")

    out_dir = Path(args.out or default_run_dir("masked", config_name(args.config)))
    checkpoint_config = model.checkpoint_config(
        action_names=train_data.action_names,
        data=dataclasses.asdict(config.data),
        train=dataclasses.asdict(config.train),
        binary_action_dims=binary_dims,
        tokens=source["tokenizer"],
    )
    extra_files = {}
    if source["tokenizer_dir"] is not None:
        extra_files["tokenizer"] = source["tokenizer_dir"]
    else:
        checkpoint_config["tokenizer"] = None  # 1X Cosmos tokens: the user's DV weights decode them
    objective = masked_objective
    if config.pixel.weight != 0:
        objective, train_data, val_data, extra_files["tokenizer"] = _with_pixel_loss(  # the decoder it was taught for
            config, model_config, source, train_data, val_data)
        checkpoint_config["pixel"] = dataclasses.asdict(config.pixel)
    trainer = Trainer(config.train, model, objective, train_data, out_dir, checkpoint_config,
                      val_data=val_data, extra_files=extra_files)
    final = trainer.fit()
    print(f"final checkpoint: {final}")
    return 0


def _with_pixel_loss(config, model_config, source, train_data, val_data):
    """(objective, train windows, val windows, tokenizer folder) of a pixel-loss run (train/pixel_loss.py)."""
    from train.pixel_loss import WindowsWithFrames, load_pixel_tokenizer, pixel_objective

    if not model_config.factorized_head:
        raise ValueError("pixel.weight > 0 decodes the mean readout of a factorised head; set model.factorized_head=true")
    tokenizer = load_pixel_tokenizer(config.pixel.tokenizer, source["tokenizer_dir"], model_config.fsq_levels)
    folder = config.pixel.tokenizer or source["tokenizer_dir"]
    print(f"pixel loss: {config.pixel.weight} x MSE of the decoded one-step mean readout (decoder of {folder}, frozen)")
    return (pixel_objective(tokenizer, config.pixel.weight), WindowsWithFrames(train_data),
            WindowsWithFrames(val_data), folder)


# --- hwm eval tokens ----------------------------------------------------------------------

def evaluate_tokens(model, windows, batch_size: int = 32, max_windows: int | None = None, seed: int = 0,
                    progress: bool = True) -> dict[str, Any]:
    """Mean per-token cross-entropy (nats) and argmax accuracy of the future latent, teacher-forced
    with every future token masked, over `windows` (a WindowDataset with source "tokens")."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from models.masked.maskgit import masked_cross_entropy

    dataset = windows
    if max_windows is not None and max_windows < len(windows):
        chosen = np.sort(np.random.default_rng(seed).choice(len(windows), size=max_windows, replace=False))
        dataset = Subset(windows, chosen.tolist())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    total_loss, total_correct, total_tokens = 0.0, 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in tqdm(loader, desc="eval tokens", unit="batch", disable=not progress):
            future = batch["future_tokens"]
            mask = torch.ones(future.shape, dtype=torch.bool)
            logits = model(batch["past_tokens"], batch["past_actions"], future, batch["future_actions"], mask)
            loss, accuracy = masked_cross_entropy(logits, future.to(logits.device), mask.to(logits.device), model.levels)
            count = future.numel()
            total_loss += float(loss) * count
            total_correct += float(accuracy) * count
            total_tokens += count
    cross_entropy = total_loss / max(total_tokens, 1)
    return {
        "cross_entropy": cross_entropy,
        "accuracy": total_correct / max(total_tokens, 1),
        "perplexity": math.exp(cross_entropy),
        "uniform_cross_entropy": math.log(model.config.vocab_size),
        "tokens": total_tokens,
        "windows": len(dataset),
    }


def eval_tokens(args: argparse.Namespace) -> int:
    from models.loading import load_world_model
    from models.checkpoint import frame_stride, read_config, resolve_checkpoint
    from models.data.windows import WindowDataset

    path = resolve_checkpoint(args.checkpoint)
    checkpoint = read_config(path)
    if checkpoint.get("family") != FAMILY:
        raise ValueError(f"{path}: is a '{checkpoint.get('family')}' checkpoint; hwm eval tokens needs a Masked-HWM")
    model = load_world_model(path)
    split = _open_eval_split(args.data)
    source = token_source(split)
    if (source["vocab_size"], source["token_grid"]) != (model.config.vocab_size, list(model.config.token_grid)):
        raise ValueError(
            f"{split.path}: tokens have {source['vocab_size']} codes on a {source['token_grid']} grid; "
            f"the checkpoint expects {model.config.vocab_size} codes on {model.config.token_grid}"
        )
    data = checkpoint.get("data", {})
    windows = WindowDataset(split, num_past=model.num_past, num_future=model.num_future, source="tokens",
                            frame_stride=frame_stride(checkpoint, path), action_pooling="mean",
                            cross_chunks=bool(data.get("cross_chunks", False)))
    results = evaluate_tokens(model, windows, args.batch_size, args.max_windows, args.seed)
    results.update(checkpoint=str(path), split=str(split.path))
    print(f"future-token cross-entropy {results['cross_entropy']:.4f} nats "
          f"(uniform {results['uniform_cross_entropy']:.3f}), accuracy {results['accuracy']:.4f} "
          f"over {results['tokens']} tokens / {results['windows']} windows")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    return 0
