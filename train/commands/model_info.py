"""`hwm model info`: size of a world-model preset, built on the meta device (no weights allocated).

Works for any family in `models.loading.WORLD_MODEL_FAMILIES` whose model class has a
`config_class` dataclass and presets in `train/configs/<family>/`, so the 1.36 B-parameter
paper config is counted in a second on a laptop.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any, Sequence

from models.atomic import atomic_write_text

# window fields a preset may keep in its `data:` section; the model follows them
WINDOW_FIELDS = ("num_past", "num_future")


def model_config(family: str, config: str, variant: str | None = None, overrides: Sequence[str] = ()):
    """The family's model-config dataclass from a preset's `model:` section (+ data window, variant, overrides)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from models.loading import model_class
    from train.config import config_path

    cls = model_class(family)
    schema = getattr(cls, "config_class", None)
    if schema is None or not dataclasses.is_dataclass(schema):
        raise ValueError(f"{cls.__name__} has no `config_class` dataclass; cannot build it from a preset")
    path = config_path(family, config)
    preset = OmegaConf.load(path)
    model_section = preset.get("model") or {}
    data_section = preset.get("data") or {}
    fields = {f.name for f in dataclasses.fields(schema)}
    window = {key: data_section[key] for key in WINDOW_FIELDS
              if key in data_section and key in fields and key not in model_section}
    extra = [f"variant={variant}"] if variant is not None else []
    if variant is not None and "variant" not in fields:
        raise ValueError(f"{schema.__name__} has no 'variant' field")
    overrides = [o[len("model."):] if o.startswith("model.") else o for o in overrides]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), model_section, window,
                                 OmegaConf.from_dotlist([*extra, *overrides]))
        return OmegaConf.to_object(merged), path
    except OmegaConfBaseException as error:
        raise ValueError(f"config {path} (model section) with {[*extra, *overrides]}: {error}") from error


def count_parameters(family: str, config: str, variant: str | None = None,
                     overrides: Sequence[str] = ()) -> dict[str, Any]:
    """{"params", "family", "config", "variant", "params_by_module", "model"} of a preset, via the meta device."""
    import torch

    from models.loading import model_class

    settings, path = model_config(family, config, variant, overrides)
    with torch.device("meta"):
        model = model_class(family)(settings)
    by_module: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        parts = name.split(".")
        # group as deep as "network.blocks" so the table stays short
        key = ".".join(parts[:2]) if parts[0] in ("network", "transformer") and len(parts) > 2 else parts[0]
        by_module[key] = by_module.get(key, 0) + parameter.numel()
    values = dataclasses.asdict(settings)
    return {
        "params": sum(by_module.values()),
        "family": family,
        "config": str(config),
        "config_path": str(path),
        "variant": values.get("variant"),
        "params_by_module": by_module,
        "model": values,
    }


def _info_command(args) -> int:
    info = count_parameters(args.family, args.config, args.variant, args.overrides)
    print(f"{info['family']} / {info['config']} / {info['variant']}: {info['params']:,} parameters "
          f"({info['params'] / 1e6:.1f} M)")
    if args.json:
        atomic_write_text(args.json, json.dumps(info, indent=2))
    return 0


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["model"].add_parser(
        "info", help="parameter count of a world-model preset (built on the meta device)",
        description="Build a Flow-HWM or Masked-HWM preset without allocating weights and count its parameters.")
    parser.add_argument("--family", required=True, choices=["flow", "masked"], help="world-model family")
    parser.add_argument("--config", default="default", help="preset name (tiny, default, paper) or a .yaml path")
    parser.add_argument("--variant", default=None, help="override the preset's variant (base, modality, full, split)")
    parser.add_argument("--json", default=None, help="write the counts as JSON here")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="model overrides, e.g. depth=12")
    parser.set_defaults(func=_info_command)
