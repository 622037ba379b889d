"""Load any checkpoint folder (or shipped default name) into the right model class.

Dispatches on `config.json`'s `family`, so envs, planners and the CLI take either
world-model family through one call.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from models.checkpoint import read_config, resolve_checkpoint

# family -> "module:Class"; each class has `from_checkpoint(path)`.
WORLD_MODEL_FAMILIES = {
    "flow": "models.flow:FlowHWM",
    "masked": "models.masked:MaskedHWM",
}


def model_class(family: str):
    if family not in WORLD_MODEL_FAMILIES:
        raise ValueError(f"unknown model family '{family}'; known: {sorted(WORLD_MODEL_FAMILIES)}")
    module_name, class_name = WORLD_MODEL_FAMILIES[family].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_world_model(name_or_path: str | os.PathLike, device: str = "cpu"):
    """A Flow-HWM or Masked-HWM, in eval mode, from a checkpoint folder or shipped name."""
    path = resolve_checkpoint(name_or_path)
    family = read_config(path).get("family")
    if family not in WORLD_MODEL_FAMILIES:
        raise ValueError(f"{path}: is a '{family}' checkpoint, not a world model ({sorted(WORLD_MODEL_FAMILIES)})")
    return model_class(family).from_checkpoint(path).to(device).eval()


def nested_tokenizer_dir(path: str | os.PathLike) -> Path:
    """The tokenizer a world-model checkpoint carries (`config.json`'s `tokenizer`, default `tokenizer/`).

    Envs, planners, evaluation and policies encode and decode through it, so its absence is
    an error that names the folder.
    """
    path = Path(path)
    tokenizer_dir = path / str(read_config(path).get("tokenizer") or "tokenizer")
    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(
            f"{tokenizer_dir}: missing; a world-model checkpoint must carry its tokenizer as a nested checkpoint "
            "folder (no tokenizer/ folder to encode and decode frames with)"
        )
    return tokenizer_dir


def load_world_model_and_tokenizer(name_or_path: str | os.PathLike, device="cpu"):
    """(checkpoint path, world model, its nested tokenizer), both on `device`, from a folder or shipped name."""
    from models.tokenizers import load_tokenizer

    path = resolve_checkpoint(name_or_path)
    tokenizer_dir = nested_tokenizer_dir(path)
    model = load_world_model(path, device=str(device))
    return path, model, load_tokenizer(tokenizer_dir, device=device)
