"""Checkpoint folders: atomic writes, clear errors, float16 export that loads back."""
import json
import re

import pytest
import torch

from models.checkpoint import (
    RETIRED_IN, RETIRED_MODEL_KEYS, atomic_directory_write, export_checkpoint, load_checkpoint, load_state_strict,
    read_config, save_checkpoint,
)


def _save(path, module, family="tokenizer"):
    return save_checkpoint(path, module.state_dict(), {"family": family, "model": {}})


def test_round_trip_and_family_check(tmp_path):
    module = torch.nn.Linear(4, 3)
    _save(tmp_path / "ck", module)
    state, config = load_checkpoint(tmp_path / "ck", family="tokenizer")
    assert config["family"] == "tokenizer" and torch.equal(state["weight"], module.weight.detach())
    with pytest.raises(ValueError, match="expected a 'flow' checkpoint"):
        load_checkpoint(tmp_path / "ck", family="flow")


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    module = torch.nn.Linear(4, 3)
    _save(tmp_path / "ck", module)
    with pytest.raises(RuntimeError):
        with atomic_directory_write(tmp_path / "ck") as tmp:
            (tmp / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("killed mid-save")
    state, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(state["weight"], module.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_missing_and_corrupt_files_name_the_problem(tmp_path):
    _save(tmp_path / "ck", torch.nn.Linear(4, 3))
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a shipped default"):
        load_checkpoint(tmp_path / "nowhere")


def test_mismatched_weights_are_reported(tmp_path):
    _save(tmp_path / "ck", torch.nn.Linear(4, 3))
    state, _ = load_checkpoint(tmp_path / "ck")
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state_strict(torch.nn.Linear(5, 3), state, tmp_path / "ck")


def test_float16_export_is_smaller_and_loads_back_close(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.LayerNorm(64))
    _save(tmp_path / "ck", module, family="flow")
    _save(tmp_path / "ck" / "tokenizer", torch.nn.Linear(64, 32))
    export_checkpoint(tmp_path / "ck", tmp_path / "small")
    state, config = load_checkpoint(tmp_path / "small", family="flow")
    assert state["0.weight"].dtype == torch.float16  # 4096 elements: cast
    assert state["0.bias"].dtype == torch.float32  # small: kept
    copy = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.LayerNorm(64))
    load_state_strict(copy, state, tmp_path / "small")
    assert copy[0].weight.dtype == torch.float32
    assert torch.allclose(copy[0].weight, module[0].weight, atol=1e-3)
    tokenizer_state, _ = load_checkpoint(tmp_path / "small" / "tokenizer")
    assert tokenizer_state["weight"].dtype == torch.float16
    assert json.loads((tmp_path / "small" / "config.json").read_text())["family"] == "flow"
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*.safetensors"))
    assert size(tmp_path / "small") < 0.6 * size(tmp_path / "ck")


def test_export_sets_decoding_defaults_and_refuses_what_the_model_refuses(tmp_path, capsys):
    from env_fixtures import build_masked_checkpoint
    from hwm_env.cli import main
    from models.loading import load_world_model

    source = build_masked_checkpoint(tmp_path / "masked")  # a full softmax head
    assert main(["model", "export", "--checkpoint", str(source), "--out", str(tmp_path / "one-step"),
                 "--set", "model.num_sampling_steps=1", "--set", "model.temperature=0.5"]) == 0
    model = load_world_model(tmp_path / "one-step")
    assert model.config.num_sampling_steps == 1 and model.config.temperature == 0.5
    assert main(["model", "export", "--checkpoint", str(source), "--out", str(tmp_path / "mean"),
                 "--set", "model.readout=mean"]) == 2  # the mean readout needs a factorised head
    assert "MaskedConfig.readout" in capsys.readouterr().err
    assert main(["model", "export", "--checkpoint", str(source), "--out", str(tmp_path / "typo"),
                 "--set", "model.readuot=mean"]) == 2
    assert "unknown Masked-HWM config keys ['readuot']" in capsys.readouterr().err
    assert main(["model", "export", "--checkpoint", str(source), "--out", str(tmp_path / "other"),
                 "--set", "modle.readout=mean"]) == 2
    assert "only existing entries" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("mean", "typo", "other"))
    # a checkpoint written before a field existed can be given it (the model's schema decides)
    config_path = tmp_path / "one-step" / "config.json"
    config = json.loads(config_path.read_text())
    del config["model"]["readout"]
    config_path.write_text(json.dumps(config))
    assert main(["model", "export", "--checkpoint", str(tmp_path / "one-step"), "--out", str(tmp_path / "older"),
                 "--set", "model.readout=tokens"]) == 0
    assert load_world_model(tmp_path / "older").config.readout == "tokens"


# Options retired in this release: a config.json that holds the neutral value still loads.
REMOVED_VALUES = {"prediction": "data", "action_adaln": True, "full_mask_fraction": 0.5}


def _tiny_world_model(family):
    from models.flow import FlowConfig, FlowHWM
    from models.masked import MaskedHWM
    from models.masked.st_transformer import MaskedConfig

    if family == "flow":
        return FlowHWM(FlowConfig(latent_channels=4, latent_height=4, latent_width=4, action_dim=3, width=32,
                                  depth=2, num_heads=2, unshared_blocks=1))
    return MaskedHWM(MaskedConfig(vocab_size=16, token_grid=[4, 4], action_dim=3, width=32, depth=2, num_heads=2,
                                  unshared_blocks=1))


@pytest.mark.parametrize("family,key", [(family, key) for family, keys in RETIRED_MODEL_KEYS.items() for key in keys])
def test_retired_model_keys_load_at_their_neutral_value_and_fail_clearly_otherwise(tmp_path, family, key):
    from models.loading import load_world_model

    model = _tiny_world_model(family)
    assert key not in model.config.__dataclass_fields__  # the option itself is gone
    folder = save_checkpoint(tmp_path / "ck", model.state_dict(), model.checkpoint_config())
    config = json.loads((folder / "config.json").read_text())
    neutral = RETIRED_MODEL_KEYS[family][key]
    config["model"][key] = neutral
    (folder / "config.json").write_text(json.dumps(config))
    assert key not in read_config(folder)["model"]
    assert load_world_model(folder).config == model.config
    config["model"][key] = REMOVED_VALUES[key]
    (folder / "config.json").write_text(json.dumps(config))
    message = (f"config.json: model.{key}={REMOVED_VALUES[key]!r} was removed in {RETIRED_IN}; "
               f"only {neutral!r} is supported")
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_world_model(folder)
    assert str(folder) in str(error.value)


def test_shipped_configs_hold_no_retired_key():
    from models.checkpoint import assets_dir

    for path in assets_dir().glob("*/config.json"):
        config = json.loads(path.read_text())
        assert not RETIRED_MODEL_KEYS.get(config["family"], {}).keys() & config.get("model", {}).keys(), path
