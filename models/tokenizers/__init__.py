"""Tokenizers: frames <-> latents (continuous) or tokens (discrete), one interface.

`load_tokenizer(name_or_path)` takes a built-in checkpoint folder, a shipped name
(`tokenizer-continuous`, `tokenizer-fsq`) or a Cosmos folder with `encoder.jit` /
`decoder.jit`, and returns a `Tokenizer` in eval mode:

    tokenizer = load_tokenizer("tokenizer-continuous")
    latents = tokenizer.encode(frames)   # uint8 (B, T, 64, 64, 3) -> float32 (B, T, 8, 8, 8)
    frames = tokenizer.decode(latents)   # -> uint8 (B, T, 64, 64, 3)
"""
from __future__ import annotations

import os

import torch

from models.checkpoint import read_config, resolve_checkpoint
from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer
from models.tokenizers.base import Tokenizer, check_frames, check_latents, check_tokens
from models.tokenizers.cosmos import CosmosTokenizer, decode_onex_tokens, is_cosmos_folder
from models.tokenizers.fsq import FSQ


def load_tokenizer(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
                   image_size: tuple[int, int] | None = None) -> Tokenizer:
    """A tokenizer in eval mode on `device`; `image_size` applies to Cosmos folders only (default 256x256)."""
    path = resolve_checkpoint(name_or_path)
    if is_cosmos_folder(path):
        return CosmosTokenizer.from_folder(path, device=device, image_size=image_size)
    config = read_config(path, family="tokenizer")
    if config.get("type", "builtin") != "builtin":
        raise ValueError(f"{path}/config.json: tokenizer type '{config.get('type')}' is not 'builtin', "
                         "and the folder has no Cosmos encoder.jit/decoder.jit")
    tokenizer = ConvTokenizer.from_checkpoint(path)
    if image_size is not None and tuple(image_size) != tokenizer.image_size:
        raise ValueError(f"{path}: tokenizer was trained at {tokenizer.image_size}, asked for {tuple(image_size)}")
    return tokenizer.to(device).eval()


__all__ = [
    "AutoencoderConfig", "ConvTokenizer", "CosmosTokenizer", "FSQ", "Tokenizer", "check_frames",
    "check_latents", "check_tokens", "decode_onex_tokens", "load_tokenizer",
]
