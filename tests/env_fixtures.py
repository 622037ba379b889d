"""Tiny real world-model checkpoints for the env tests (random weights, seconds to build).

Each is a proper checkpoint folder written with `models.checkpoint.save_checkpoint`: a
64x64 built-in tokenizer with a tiny width, nested as `tokenizer/`, plus a tiny Flow-HWM
or Masked-HWM with 25-d actions (the simulator's), so the envs load them exactly as they
load the shipped defaults. The Masked model samples at temperature 1 so that seeding is
actually exercised.
"""
from __future__ import annotations

from pathlib import Path

import torch

NUM_PAST = 2
ACTION_DIM = 25
FSQ_LEVELS = [4, 4]  # 16 codes


def build_tokenizer(directory: Path, quantizer: str) -> Path:
    from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer

    torch.manual_seed(0)
    config = AutoencoderConfig(
        image_size=[64, 64], quantizer=quantizer, latent_channels=4, fsq_levels=FSQ_LEVELS,
        channels=[8, 8, 8], res_blocks=0, bottleneck_blocks=0, norm_groups=4,
    )
    return ConvTokenizer(config).save(directory)


def build_flow_checkpoint(directory: Path, frame_stride: int = 1) -> Path:
    """frame_stride k: each latent frame stands for k data frames (config.json's data.frame_stride)."""
    from models.checkpoint import save_checkpoint
    from models.flow import FlowConfig, FlowHWM

    tokenizer_dir = build_tokenizer(directory.parent / f"{directory.name}-tokenizer", "continuous")
    torch.manual_seed(1)
    config = FlowConfig(
        latent_channels=4, latent_height=8, latent_width=8, num_past=NUM_PAST, num_future=1, action_dim=ACTION_DIM,
        patch_size=2, width=32, depth=1, num_heads=2, unshared_blocks=1, num_sampling_steps=2,
    )
    model = FlowHWM(config)
    with torch.no_grad():  # adaLN-Zero starts as the identity; give the blocks weights so actions matter
        for name, parameter in model.named_parameters():
            if parameter.dim() > 1 and not parameter.any():
                parameter.normal_(0, 0.02)
    config = model.checkpoint_config(fps=15, data={"num_past": NUM_PAST, "num_future": 1, "frame_stride": frame_stride})
    return save_checkpoint(directory, model.state_dict(), config, extra_files={"tokenizer": tokenizer_dir})


def build_masked_checkpoint(directory: Path, readout: str = "tokens") -> Path:
    """readout "mean": a factorised head whose checkpoint shows each token's expected FSQ digits."""
    from models.checkpoint import save_checkpoint
    from models.masked import MaskedConfig, MaskedHWM

    tokenizer_dir = build_tokenizer(directory.parent / f"{directory.name}-tokenizer", "fsq")
    torch.manual_seed(2)
    config = MaskedConfig(
        vocab_size=16, token_grid=[8, 8], fsq_levels=FSQ_LEVELS, num_past=NUM_PAST, num_future=1,
        action_dim=ACTION_DIM, width=32, depth=1, num_heads=2, unshared_blocks=1, num_sampling_steps=2,
        temperature=1.0, unmask_mode="random", factorized_head=readout == "mean", readout=readout,
    )
    model = MaskedHWM(config)
    return save_checkpoint(directory, model.state_dict(), model.checkpoint_config(fps=15),
                           extra_files={"tokenizer": tokenizer_dir})


def build_checkpoints(root: Path) -> dict[str, Path]:
    """{"flow": path, "masked": path} under `root`."""
    return {
        "flow": build_flow_checkpoint(root / "flow-tiny"),
        "masked": build_masked_checkpoint(root / "masked-tiny"),
    }


def build_probe_checkpoint(directory: Path) -> Path:
    """A tiny state probe (random weights) with the simulator's targets: the 25-d state and 12 object coordinates."""
    from hwm_env.sim.env import OBJECT_POSITION_NAMES
    from hwm_env.sim.layout import STATE_NAMES
    from models.checkpoint import save_checkpoint
    from models.probe import ProbeConfig, StateProbe

    torch.manual_seed(3)
    probe = StateProbe(ProbeConfig(image_size=[64, 64], channels=[8, 8, 8, 8], feature_dim=16, norm_groups=4,
                                   target_names=[*STATE_NAMES, *OBJECT_POSITION_NAMES]))
    return save_checkpoint(directory, probe.state_dict(), probe.checkpoint_config())
