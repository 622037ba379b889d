"""Checkpoint folders: `model.safetensors` + `config.json`, written atomically.

A checkpoint is a folder so that a world model can carry its tokenizer (a nested
`tokenizer/` checkpoint) and its action statistics next to its weights. Nothing is
pickled: tensors go to safetensors, everything else to JSON.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.atomic import atomic_directory_write  # noqa: F401  (re-exported: the checkpoint API)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SHIPPED_CHECKPOINTS = ("tokenizer-continuous", "tokenizer-fsq", "flow-default", "masked-default", "probe-default")

# Options removed because they measured no gain, per family: `model.<key>` -> the value that
# behaves as this release does. A config.json that holds that value still loads (the key is
# dropped); any other value asks for a behaviour this release no longer has.
RETIRED_IN = "0.2.0"
RETIRED_MODEL_KEYS: dict[str, dict[str, Any]] = {
    "flow": {"prediction": "velocity"},
    "masked": {"action_adaln": False, "full_mask_fraction": 0.0},
}


def assets_dir() -> Path:
    """`assets/` of a source checkout, or the same files installed as `hwm_env/assets`."""
    root = Path(__file__).resolve().parent.parent
    for candidate in (root / "assets", root / "hwm_env" / "assets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no assets folder next to {root}; the installation is incomplete")


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """Folder of a checkpoint given the name of a shipped default or a path.

    A bare shipped name (`"flow-default"`) always means the shipped checkpoint, even where a
    local folder has that name; write `./flow-default` (or pass a `Path`) for the folder.
    """
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_CHECKPOINTS:
        shipped = assets_dir() / name_or_path
        if shipped.is_dir():
            return shipped
        raise FileNotFoundError(
            f"shipped checkpoint '{name_or_path}' is missing from {shipped.parent}; "
            "train it with the command in its TRAINING.md"
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path}: is a file; a checkpoint is a folder (config.json, model.safetensors)")
    raise FileNotFoundError(
        f"checkpoint '{name_or_path}' is neither an existing folder nor a shipped default "
        f"{list(SHIPPED_CHECKPOINTS)}"
    )


def save_checkpoint(
    directory: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write weights + config (+ extra files or folders copied in) atomically; return the folder."""
    if "family" not in config:
        raise ValueError("checkpoint config needs a 'family' key (e.g. 'flow', 'masked', 'tokenizer')")
    config = {"format_version": FORMAT_VERSION, **config}
    directory = Path(directory)
    with atomic_directory_write(directory) as tmp:
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        for name, source in (extra_files or {}).items():
            source = Path(source)
            if source.is_dir():
                shutil.copytree(source, tmp / name)
            else:
                shutil.copy2(source, tmp / name)
    return directory


def read_config(directory: str | os.PathLike, family: str | None = None) -> dict[str, Any]:
    directory = resolve_checkpoint(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; a checkpoint folder needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from error
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{config_path}: format_version {config.get('format_version')!r}, expected {FORMAT_VERSION}")
    if family is not None and config.get("family") != family:
        raise ValueError(
            f"{directory}: is a '{config.get('family')}' checkpoint, expected a '{family}' checkpoint"
        )
    return drop_retired_keys(config, config_path)


def drop_retired_keys(config: dict[str, Any], source: str | os.PathLike = CONFIG_FILE) -> dict[str, Any]:
    """`config` without the `model.*` keys of RETIRED_MODEL_KEYS that hold their neutral value;
    a retired key with another value is an error naming `source`, the key and the release."""
    retired = RETIRED_MODEL_KEYS.get(config.get("family"), {})
    model = config.get("model")
    if not isinstance(model, dict) or not retired.keys() & model.keys():
        return config
    for key in sorted(retired.keys() & model.keys()):
        if model[key] != retired[key]:
            raise ValueError(f"{source}: model.{key}={model[key]!r} was removed in {RETIRED_IN}; "
                             f"only {retired[key]!r} is supported")
    return {**config, "model": {key: value for key, value in model.items() if key not in retired}}


def frame_stride(config: dict[str, Any], source: str | os.PathLike = "config.json") -> int:
    """Data frames per latent frame of a world-model checkpoint (its `data.frame_stride`, 1 if absent)."""
    value = (config.get("data") or {}).get("frame_stride") or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{source}: data.frame_stride must be an integer >= 1, got {value!r}")
    return value


def load_checkpoint(
    directory: str | os.PathLike, family: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict, config); errors name the folder and the problem."""
    directory = resolve_checkpoint(directory)
    config = read_config(directory, family)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: missing; a checkpoint folder needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{weights_path}: corrupt or unreadable safetensors file ({error})") from error
    return state_dict, config


def state_mismatches(own: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor]):
    """(missing, unexpected, shape mismatches) of `state_dict` against a module's tensors `own`, for error messages."""
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own.keys() & state_dict.keys()
        if own[k].shape != state_dict[k].shape
    ]
    return missing, unexpected, mismatched


def load_state_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict with an error that names the checkpoint and the mismatched keys/shapes."""
    missing, unexpected, mismatched = state_mismatches(module.state_dict(), state_dict)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{source}: weights do not match config.json "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {mismatched[:5]})"
        )
    module.load_state_dict(state_dict)


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike,
                      dtype: torch.dtype = torch.float16, min_numel: int = 1024,
                      settings: dict[str, Any] | None = None) -> Path:
    """Copy a checkpoint (and its nested checkpoints, e.g. `tokenizer/`) with large float
    tensors stored as `dtype`, to ship small files; loading casts back to the model's dtype.

    Only tensors with at least `min_numel` elements (weight matrices, embeddings) are cast;
    norms, biases and statistics buffers stay float32, where rounding would cost accuracy.
    `settings` ({"model.readout": "mean"}) replace existing config.json entries, e.g. decoding
    defaults chosen by measurement after training; a world model must still build with them.
    """
    source = resolve_checkpoint(source)
    destination = Path(destination)
    with atomic_directory_write(destination) as tmp:
        _export_folder(source, tmp, dtype, min_numel)
        if settings:
            _apply_settings(tmp, settings)
    return destination


def _apply_settings(folder: Path, settings: dict[str, Any]) -> None:
    from models.loading import WORLD_MODEL_FAMILIES, load_world_model

    config = json.loads((folder / CONFIG_FILE).read_text())
    world_model = config.get("family") in WORLD_MODEL_FAMILIES
    for key, value in settings.items():
        *parents, name = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        # a world model's own config may gain a field newer than the checkpoint; loading checks its name
        new_model_field = world_model and parents == ["model"] and isinstance(node, dict)
        if not isinstance(node, dict) or (name not in node and not new_model_field):
            raise ValueError(f"{key}: not an entry of {CONFIG_FILE}; only existing entries (and a world model's "
                             "model.* fields) can be set")
        node[name] = value
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))  # inside the atomic copy
    if world_model:
        load_world_model(folder)  # an unknown field or a value the model refuses fails here, before the swap


def _export_folder(source: Path, target: Path, dtype: torch.dtype, min_numel: int) -> None:
    state_dict, _ = load_checkpoint(source)
    small = {
        name: t.to(dtype) if t.is_floating_point() and t.numel() >= min_numel else t
        for name, t in state_dict.items()
    }
    save_file({k: v.contiguous() for k, v in small.items()}, str(target / WEIGHTS_FILE))
    for entry in source.iterdir():
        if entry.name == WEIGHTS_FILE:
            continue
        if entry.is_dir() and (entry / CONFIG_FILE).is_file() and (entry / WEIGHTS_FILE).is_file():
            (target / entry.name).mkdir()
            _export_folder(entry, target / entry.name, dtype, min_numel)
        elif entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        else:
            shutil.copy2(entry, target / entry.name)
