"""`hwm train flow`: train a Flow-HWM on pre-encoded latents with the shared trainer.

The preset (`train/configs/flow/{tiny,default,paper}.yaml`) holds the architecture
(`model`), the optimisation knobs (`train`) and the window (`data`). What the data fixes
(latent shape, action dimension, per-frame action tokens) is read from the data set, and
the window sizes from `data:`; statistics of latents and actions come from the train split
only and are stored in the checkpoint.
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
    action_pooling: str = "mean"  # "mean": one action token per latent; "none": frame_stride tokens per latent
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

    `window` is one WindowDataset item: latents (P, C, h, w), actions (P, A) pooled or
    (P, k, A) per frame.
    """
    data = settings.data
    channels, height, width = (int(x) for x in window["past_latents"].shape[1:])
    past_actions = window["past_actions"]
    return dataclasses.replace(
        settings.model, latent_channels=channels, latent_height=height, latent_width=width,
        action_dim=int(past_actions.shape[-1]), num_past=data.num_past, num_future=data.num_future,
        actions_per_latent=int(past_actions.shape[1]) if past_actions.dim() == 3 else 1, past_action_tokens=None)


def _open_latent_split(path: Path, required: bool):
    from models.data.hwm_format import METADATA_FILE, HWMDataset

    if not (path / METADATA_FILE).is_file():
        if required:
            raise FileNotFoundError(f"{path}: no hwm-v1 split here (expected {path / METADATA_FILE}); "
                                    "the data set root needs train/ (and val/) from `hwm data sim`")
        return None
    split = HWMDataset(path)
    if split.latents is None:
        raise ValueError(f"{path}: no pre-encoded latents (latents.bin + latents.json); run "
                         f"`hwm data encode --tokenizer tokenizer-continuous --data {path.parent}` first")
    if split.latents_info.get("kind") != "latents":
        raise ValueError(f"{path / 'latents.json'}: kind {split.latents_info.get('kind')!r}, expected 'latents'")
    return split


def train_flow(data_dir: str | os.PathLike, config: str | os.PathLike = "default",
               out_dir: str | os.PathLike | None = None, overrides=()) -> Path:
    """Train a Flow-HWM on DATA/train (validating on DATA/val if present); return the final checkpoint."""
    from models.flow import FlowHWM, latent_statistics
    from models.data.windows import WindowDataset, action_statistics
    from train.config import config_name, default_run_dir
    from train.self_forcing import check_self_forcing
    from train.trainer import Trainer

    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder does not exist")
    settings = load_flow_config(config, overrides)
    train_split = _open_latent_split(root / "train", required=True)
    val_split = _open_latent_split(root / "val", required=False)
    latent_shape = train_split.latents.shape[1:]
    if val_split is not None and val_split.latents.shape[1:] != latent_shape:
        raise ValueError(f"{root / 'val' / 'latents.json'}: latent shape {val_split.latents.shape[1:]} differs "
                         f"from the train split's {latent_shape}; encode both with the same tokenizer")
    tokenizer_dir = train_split.encoding_tokenizer_dir("latents")
    if tokenizer_dir is None:
        raise FileNotFoundError(f"{root / 'train' / 'latents_tokenizer'}: missing; re-run `hwm data encode` so the "
                                "tokenizer is stored beside the latents (the checkpoint carries it)")

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
    model.set_latent_stats(*latent_statistics(train_split.latents, train_split.segment_idx, data.frame_stride))
    model.action_names = list(train_split.metadata["action_names"])
    model.metadata = {"data": dataclasses.asdict(data), "source": train_split.metadata.get("source"),
                      "fps": train_split.metadata.get("fps")}
    out_dir = Path(out_dir or default_run_dir("flow", config_name(config)))
    parameters = sum(p.numel() for p in model.parameters())
    val_text = f", {len(val_windows)} validation windows" if val_windows is not None else ", no validation split"
    print(f"Flow-HWM ({model.config.variant}): {parameters / 1e6:.2f} M parameters; latents "
          f"{'x'.join(map(str, latent_shape))}, {data.num_past} past + {data.num_future} future; "
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
    parser = groups["train"].add_parser(
        "flow", help="train a Flow-HWM (MMDiT + flow matching) on pre-encoded latents",
        description="Train a Flow-HWM on DATA/train latents (from `hwm data encode`), validating on DATA/val. "
                    "Extra key=value arguments override the preset, e.g. train.steps=2000 model.variant=full "
                    "data.num_past=3.")
    parser.add_argument("--data", required=True, help="data set root with train/ (and val/) holding latents.bin")
    parser.add_argument("--config", default="default", help="preset name (tiny, default, paper) or a .yaml path")
    parser.add_argument("--out", default=None,
                        help="run folder (default runs/flow-<config>, e.g. runs/flow-default; a .yaml config's stem); "
                        "a rerun with the same config resumes from it")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=_train_command)
