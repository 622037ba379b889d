"""`hwm train flow`: train a Flow-HWM on pre-encoded latents with the shared trainer.

The preset (`train/configs/flow/{tiny,default,paper}.yaml`) holds the architecture
(`model`), the optimisation knobs (`train`) and the window (`data`). What the data fixes
(latent shape, action dimension, per-frame action tokens) is read from the data set, and
the window sizes from `data:`; statistics of latents and actions come from the train split
only and are stored in the checkpoint.

The data is an hwm-v1 root (train/ + val/) or a 1X v2.0 raw download (train_v2.0_raw/ +
val_v2.0_raw/), with latents from `hwm data encode`. Latents of a video tokenizer (Cosmos
CV8x8x8) are chunked: 3 per 17-frame chunk, covering its frames 0 | 1-8 | 9-16. The `paper`
preset's window is one such chunk, the paper's 9 past + 8 future frames: past latents 0-1
with the 9 per-frame actions into frames 0-8, future latent 2 with the 8 into frames 9-16
(`data.action_pooling: frames`; models.data.windows). Other presets pool one action per latent.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

PRESET_FAMILY = "flow"
# model fields that come from the data set or the `data:` section, never from `model.*=` overrides
DERIVED_MODEL_FIELDS = ("latent_channels", "latent_height", "latent_width", "action_dim", "num_past",
                        "num_future", "actions_per_latent", "past_action_tokens")


@dataclass
class FlowDataConfig:
    """The training window: P past + F future latent frames (the model's num_past/num_future follow)."""

    num_past: int = 2
    num_future: int = 1
    frame_stride: int = 1  # raw frames between latent frames; actions are pooled over the stride
    # "mean": one action token per latent; "none": frame_stride tokens per latent; "frames": one token
    # per frame the window covers (chunked Cosmos latents: 9 past + 8 future, the paper's window)
    action_pooling: str = "mean"
    # Self-forcing (train/self_forcing.py): up to this many of the last context frames are the
    # model's own rollout, in this fraction of training windows (0: teacher forcing only)
    self_forcing_frames: int = 0
    self_forcing_fraction: float = 0.5


@functools.cache
def training_schema() -> type:
    """Schema of `train/configs/flow/*.yaml`: `model` (FlowConfig), `train` (TrainConfig), `data`.

    Built on first use so that `hwm --help` does not import torch.
    """
    from models.flow.mmdit import FlowConfig
    from train.trainer import TrainConfig

    return dataclasses.make_dataclass("FlowTrainingConfig", [
        ("model", FlowConfig, field(default_factory=FlowConfig)),
        ("train", TrainConfig, field(default_factory=TrainConfig)),
        ("data", FlowDataConfig, field(default_factory=FlowDataConfig)),
    ])


def flow_objective(model, batch):
    """objective(model, batch) -> (loss, metrics) for the Trainer: the model's own flow-matching loss."""
    return model(batch)


def self_forcing_objective(num_past: int, fraction: float):
    """flow_objective on windows whose context may end in the model's own rollout (train/self_forcing.py)."""
    from train.self_forcing import self_forced_batch

    def objective(model, batch):
        return model(self_forced_batch(model, batch, num_past, fraction))

    return objective


def load_flow_config(config: str | os.PathLike = "default", overrides=()):
    """The preset plus `key=value` overrides, as a `training_schema()` instance."""
    from train.config import load_config

    derived = [o.split("=")[0] for o in overrides if o.split("=")[0] in {f"model.{f}" for f in DERIVED_MODEL_FIELDS}]
    if derived:
        raise ValueError(f"{derived} are set from the data (latent shape, action_dim) and the data section "
                         "(data.num_past, data.num_future, data.frame_stride, data.action_pooling); "
                         "override those instead")
    return load_config(training_schema(), PRESET_FAMILY, config, overrides)


def model_config_for_data(settings, window: dict):
    """The preset's model config with the latent shape, action layout and window of the data filled in.

    `window` is one WindowDataset item: latents (P, C, h, w), actions (P, A) pooled, (P, k, A)
    per frame, or (N_p, A) / (N_f, A) with action_pooling "frames" (k = N_f / F tokens per
    future latent; N_p past tokens, 9 for a Cosmos chunk's first two latents).
    """
    data = settings.data
    channels, height, width = (int(x) for x in window["past_latents"].shape[1:])
    past_actions, future_actions = window["past_actions"], window["future_actions"]
    per_latent, past_tokens = 1, None
    if past_actions.dim() == 3:
        per_latent = int(past_actions.shape[1])
    elif data.action_pooling == "frames":
        per_latent = int(future_actions.shape[0]) // data.num_future
        if int(past_actions.shape[0]) != data.num_past * per_latent:
            past_tokens = int(past_actions.shape[0])
    return dataclasses.replace(
        settings.model, latent_channels=channels, latent_height=height, latent_width=width,
        action_dim=int(past_actions.shape[-1]), num_past=data.num_past, num_future=data.num_future,
        actions_per_latent=per_latent, past_action_tokens=past_tokens)


def open_latent_splits(root: Path):
    """(train, val or None) readers of a data set root: hwm-v1 train/ (+ val/), or a 1X v2.0 raw download."""
    from models.data.open import find_splits, open_split, split_format

    if (root / "train").is_dir():
        train_dir, val_dir = root / "train", root / "val"
    else:
        train_dir, val_dir = find_splits(root)
    for path in (train_dir, val_dir):
        if path.is_dir() and split_format(path) is None and not (path / "metadata.json").is_file():
            raise FileNotFoundError(f"{path}: not a data split (expected an hwm-v1 split from `hwm data sim`, or 1X "
                                    "v2.0 raw shards)")
    return open_split(train_dir), (open_split(val_dir) if val_dir.is_dir() else None)


def latents_of(split):
    """(latents (N', C, h, w), their JSON, the tokenizer copy) of a split, or what to run to get them."""
    from models.data.windows import pre_encoded

    latents, info, tokenizer_dir = pre_encoded(split, "latents")
    if tokenizer_dir is None:
        raise FileNotFoundError(f"{split.path / 'latents_tokenizer'}: missing; re-run `hwm data encode` so the "
                                "tokenizer is stored beside the latents (the checkpoint carries it)")
    return latents, info, tokenizer_dir


def latent_layout(info: dict) -> dict:
    """How latents sit in time: per frame (temporal_compression 1), or chunks with the frames each latent covers."""
    temporal = int(info.get("temporal_compression", 1))
    if temporal == 1:
        return {"temporal_compression": 1}
    return {"temporal_compression": temporal, "chunk_frames": info["chunk_frames"],
            "latent_frames": info["latent_frames"]}


def train_flow(data_dir: str | os.PathLike, config: str | os.PathLike = "default",
               out_dir: str | os.PathLike | None = None, overrides=()) -> Path:
    """Train a Flow-HWM on DATA's train split (validating on its val split if present); return the final checkpoint."""
    import numpy as np

    from models.flow import FlowHWM, latent_statistics
    from models.data.windows import WindowDataset, action_statistics
    from train.config import config_name, default_run_dir
    from train.self_forcing import check_self_forcing
    from train.trainer import Trainer

    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder does not exist")
    settings = load_flow_config(config, overrides)
    train_split, val_split = open_latent_splits(root)
    latents, info, tokenizer_dir = latents_of(train_split)
    layout = latent_layout(info)
    if val_split is not None:
        val_latents, val_info, _ = latents_of(val_split)
        if val_latents.shape[1:] != latents.shape[1:] or latent_layout(val_info) != layout:
            raise ValueError(
                f"{val_split.path / 'latents.json'}: latents {tuple(val_latents.shape[1:])} {latent_layout(val_info)} "
                f"differ from the train split's {tuple(latents.shape[1:])} {layout}; encode both with the same "
                "tokenizer")

    data = settings.data
    check_self_forcing(data.self_forcing_frames, data.self_forcing_fraction)

    def windows(split, extra_past: int = 0):
        return WindowDataset(split, num_past=data.num_past + extra_past, num_future=data.num_future,
                             source="latents", frame_stride=data.frame_stride, action_pooling=data.action_pooling)

    # Self-forcing windows start earlier so the rollout that replaces context frames starts from real ones;
    # validation keeps teacher-forced windows, comparable across runs.
    train_windows = windows(train_split, data.self_forcing_frames)
    val_windows = windows(val_split) if val_split is not None else None
    model = FlowHWM(model_config_for_data(settings, train_windows[0]))
    mean, std, binary_dims = action_statistics(train_split)  # train split only
    model.set_action_stats(mean, std, binary_dims)
    if layout["temporal_compression"] == 1:
        runs, stride = train_split.segment_idx, data.frame_stride
    else:  # residuals between consecutive latents of one chunk
        per_chunk = int(info["latents_per_chunk"])
        runs, stride = np.repeat(np.arange(len(latents) // per_chunk), per_chunk), 1
    model.set_latent_stats(*latent_statistics(latents, runs, stride))
    model.action_names = list(train_split.action_names)
    model.metadata = {"data": dataclasses.asdict(data),
                      "source": train_split.metadata.get("source", train_split.format),
                      "fps": train_split.metadata.get("fps", train_split.fps)}
    if layout["temporal_compression"] > 1:
        model.metadata["latent_layout"] = layout
    out_dir = Path(out_dir or default_run_dir("flow", config_name(config)))
    parameters = sum(p.numel() for p in model.parameters())
    val_text = f", {len(val_windows)} validation windows" if val_windows is not None else ", no validation split"
    chunks = (f" in {layout['chunk_frames']}-frame chunks (frames {layout['latent_frames']})"
              if layout["temporal_compression"] > 1 else "")
    print(f"Flow-HWM ({model.config.variant}): {parameters / 1e6:.2f} M parameters; latents "
          f"{'x'.join(map(str, latents.shape[1:]))}{chunks}, {data.num_past} past + {data.num_future} future; "
          f"{len(train_windows)} training windows{val_text}; -> {out_dir}")
    objective = flow_objective
    if data.self_forcing_frames:
        objective = self_forcing_objective(data.num_past, data.self_forcing_fraction)
        print(f"self-forcing: the last 1-{data.self_forcing_frames} context frames are the model's own rollout "
              f"in {data.self_forcing_fraction:.0%} of training windows")
    trainer = Trainer(settings.train, model, objective, train_windows, out_dir, model.checkpoint_config(),
                      val_data=val_windows, extra_files={"tokenizer": tokenizer_dir})
    return trainer.fit()


def _train_command(args) -> int:
    final = train_flow(args.data, args.config, args.out, args.overrides)
    print(f"final checkpoint: {final}")
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from train.config import add_run_arguments

    parser = groups["train"].add_parser(
        "flow", help="train a Flow-HWM (MMDiT + flow matching) on pre-encoded latents",
        description="Train a Flow-HWM on DATA/train latents (from `hwm data encode`), validating on DATA/val "
                    "(a 1X raw download: train_v2.0_raw/ and val_v2.0_raw/, encoded with Cosmos CV8x8x8). "
                    "Extra key=value arguments override the preset, e.g. train.steps=2000 model.variant=full "
                    "data.num_past=3.")
    parser.add_argument("--data", required=True, help="data set root with train/ (and val/), or a 1X v2.0 raw "
                        "download (train_v2.0_raw/ + val_v2.0_raw/), holding latents.bin from `hwm data encode`")
    add_run_arguments(parser, "flow", "flow")
    parser.set_defaults(func=_train_command)
