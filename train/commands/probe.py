"""`hwm train probe`: train the state probe (models/probe.py) on a data set's frames.

Targets: the measured state (`states.bin`) plus, for simulator data, the objects' camera-frame
positions (`object_positions.bin`), z-scored with the train split's statistics; loss = MSE on
the z-scored targets. Validation reports each target's mean absolute error in its units
(`val_mae_<NAME>` in metrics.jsonl); at the end the whole val split is scored into
`OUT/eval.json`, beside the train-mean baseline. `OUT/final` is the probe checkpoint.
Heavy imports (torch) happen inside the functions so `hwm --help` stays instant.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

PRESET_FAMILY = "probe"


def training_schema():
    """The schema of `train/configs/probe/*.yaml` (built on demand: it imports torch)."""
    from dataclasses import field, make_dataclass

    from models.probe import ProbeConfig
    from train.trainer import TrainConfig

    # make_dataclass takes the types themselves (this module's annotations are strings)
    return make_dataclass("ProbeTrainingConfig", [("model", ProbeConfig, field(default_factory=ProbeConfig)),
                                                  ("train", TrainConfig, field(default_factory=TrainConfig))])


class ProbeFrames:
    """{"frames": uint8 (H, W, 3), "targets": float32 (D,)} per frame of an hwm-v1 split."""

    def __init__(self, split):
        from models.probe import probe_targets

        self.split = split
        self.targets = probe_targets(split)  # (N, D): small, held in memory

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        import numpy as np
        import torch

        return {"frames": torch.from_numpy(np.array(self.split.frames[index])),
                "targets": torch.from_numpy(self.targets[index])}


def probe_objective(target_names: list[str]):
    """objective(probe, batch) -> (MSE on z-scored targets, {"mae_<NAME>": error in target units} in eval)."""
    import torch.nn.functional as F

    from models.tokenizers.base import frames_to_unit

    def objective(probe, batch):
        z = probe(frames_to_unit(batch["frames"])).float()  # (B, D) z-scored
        loss = F.mse_loss(z, probe.normalize(batch["targets"]))
        metrics = {}
        if not probe.training:  # validation: per-target error in rad, m, m/s ...
            errors = (probe.denormalize(z) - batch["targets"]).abs().mean(0)
            metrics = {f"mae_{name}": float(error) for name, error in zip(target_names, errors)}
        return loss, metrics

    return objective


def evaluate_probe(probe, split, batch_size: int = 256) -> dict:
    """Per-target mean absolute error of `probe` on a whole split, and of predicting the train mean."""
    import numpy as np

    targets = probe.targets_of(split)
    predictions = probe.predict(split.frames, batch_size=batch_size)
    mae = np.abs(predictions - targets).mean(0)
    baseline = np.abs(probe.target_mean[None] - targets).mean(0)
    return {"frames": len(split), "split": str(split.path),
            "mae": dict(zip(probe.target_names, mae.tolist())),
            "train_mean_mae": dict(zip(probe.target_names, baseline.tolist()))}


def train_probe(data_dir: str | os.PathLike, config: str | os.PathLike = "default",
                out_dir: str | os.PathLike | None = None, overrides=()) -> Path:
    """Train a state probe on an hwm-v1 data set; return the final checkpoint folder."""
    from models.probe import StateProbe, probe_target_names
    from train.config import config_name, default_run_dir, load_config
    from train.tokenizer_training import open_training_splits
    from train.trainer import Trainer

    train_split, val_split = open_training_splits(data_dir)
    names = probe_target_names(train_split)
    if val_split is not None and probe_target_names(val_split) != names:
        raise ValueError(f"{val_split.path}: targets {probe_target_names(val_split)} differ from "
                         f"{train_split.path}'s {names}")
    height, width = train_split.height, train_split.width
    settings = load_config(training_schema(), PRESET_FAMILY, config,
                           [f"model.image_size=[{height},{width}]", *overrides])
    settings.model.target_names = names  # the data decides what is regressed
    probe = StateProbe(settings.model)
    train_data = ProbeFrames(train_split)
    probe.set_target_statistics(train_data.targets.mean(0), train_data.targets.std(0))
    out_dir = Path(out_dir or default_run_dir("probe", config_name(config)))
    val_text = f", {len(val_split)} validation frames" if val_split is not None else ""
    print(f"state probe: {probe.num_parameters() / 1e6:.2f} M parameters, {height}x{width} frames -> "
          f"{len(names)} targets; {len(train_split)} training frames{val_text}; -> {out_dir}")
    trainer = Trainer(settings.train, probe, probe_objective(names), train_data, out_dir,
                      probe.checkpoint_config(), val_data=ProbeFrames(val_split) if val_split is not None else None)
    return trainer.fit()


def _train_command(args) -> int:
    from models.atomic import atomic_write_text
    from models.probe import load_probe
    from train.tokenizer_training import open_training_splits

    final = train_probe(args.data, args.config, args.out, args.overrides)
    print(f"final checkpoint: {final}")
    _, val_split = open_training_splits(args.data)
    if val_split is not None:
        result = evaluate_probe(load_probe(final), val_split)
        atomic_write_text(final.parent / "eval.json", json.dumps(result, indent=2))
        print(f"val mean absolute error over {result['frames']} frames (probe / train mean):")
        for name, error in result["mae"].items():
            print(f"  {name:24s} {error:.4f} / {result['train_mean_mae'][name]:.4f}")
        print(f"-> {final.parent / 'eval.json'}")
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from train.config import add_run_arguments

    parser = groups["train"].add_parser(
        "probe", help="train the state probe: a small CNN reading the robot state (and objects) off a frame",
        description="Train a CNN to regress, from one frame, the measured 25-d state and, where the data set "
                    "has them (hwm data sim), the objects' positions in the head camera's frame. It scores "
                    "world-model frames (is the world where it should be). Writes OUT/final (the probe) and "
                    "OUT/eval.json (per-target val error). Extra key=value arguments override the preset, "
                    "e.g. train.steps=2000 model.feature_dim=256.")
    parser.add_argument("--data", required=True, help="hwm-v1 data set root (train/ + val/) or one split folder; "
                        "it needs states.bin")
    add_run_arguments(parser, "probe", "probe")
    parser.set_defaults(func=_train_command)
