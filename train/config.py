"""Configs: dataclasses as the schema, YAML files as named presets, `key=value` overrides.

OmegaConf merges the three and rejects unknown keys and wrong types with the key's name.
Named presets live in `train/configs/<family>/<name>.yaml` (e.g. `flow/tiny`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")
CONFIG_ROOT = Path(__file__).resolve().parent / "configs"


def preset_names(family: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_ROOT / family).glob("*.yaml"))


def config_name(name_or_path: str | os.PathLike) -> str:
    """A config's name in run folders: the preset's name, or a .yaml file's stem."""
    return Path(str(name_or_path)).stem


def default_run_dir(command: str, config: str) -> Path:
    """`runs/<command>-<config>`, the default --out of `hwm train <command>` (runs/flow-default,
    runs/masked-tiny, runs/tokenizer-continuous); `config` names the run's config (`config_name`)."""
    return Path("runs") / f"{command}-{config}"


def add_run_arguments(parser, command: str, family: str, out_help: str | None = None) -> None:
    """`--config`, `--out` and the `key=value` overrides every `hwm train <command>` takes."""
    parser.add_argument("--config", default="default",
                        help=f"preset ({', '.join(preset_names(family))}) or a .yaml path")
    parser.add_argument("--out", default=None, help=out_help or (
        f"run folder (default runs/{command}-<config>, e.g. runs/{command}-default; a .yaml config's stem); "
        "a rerun with the same config resumes from it"))
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.steps=2000")


def config_path(family: str, name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path
    preset = CONFIG_ROOT / family / f"{name_or_path}.yaml"
    if not preset.is_file():
        raise ValueError(f"unknown {family} config '{name_or_path}'; presets: {preset_names(family)} or a .yaml path")
    return preset


def load_config(schema: type[T], family: str, name_or_path: str | os.PathLike = "default",
                overrides: Sequence[str] = ()) -> T:
    """Build a `schema` dataclass from a preset/YAML file plus `key=value` overrides."""
    path = config_path(family, name_or_path)
    try:
        merged = OmegaConf.merge(
            OmegaConf.structured(schema), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides))
        )
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ValueError(f"config {path} with overrides {list(overrides)}: {error}") from error


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(schema: type[T], values: dict[str, Any]) -> T:
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as error:
        raise ValueError(f"config does not match {schema.__name__}: {error}") from error
