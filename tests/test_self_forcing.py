"""Self-forcing (train/self_forcing.py): contexts that end in the model's own rollout."""
from __future__ import annotations

import json

import pytest
import torch

from models.flow import FlowHWM
from tests.test_flow import perturbed, tiny_config, write_latent_dataset
from train.self_forcing import check_self_forcing, self_forced_batch


def long_window(config, extra: int, batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (config.latent_channels, config.latent_height, config.latent_width)
    frames = config.num_past + extra
    return {
        "past_latents": torch.randn(batch, frames, *shape, generator=generator),
        "future_latents": torch.randn(batch, 1, *shape, generator=generator),
        "past_actions": torch.randn(batch, frames, config.action_dim, generator=generator),
        "future_actions": torch.randn(batch, 1, config.action_dim, generator=generator),
    }


@pytest.fixture
def model():
    return perturbed(FlowHWM(tiny_config(num_past=2)))


def test_the_last_context_frames_are_the_models_own_rollout(model):
    extra, num_past = 3, 2
    batch = long_window(model.config, extra)
    model.train()
    torch.manual_seed(7)
    out = self_forced_batch(model, batch, num_past, fraction=1.0, generator=torch.Generator().manual_seed(3))
    assert model.training  # restored after sampling in eval mode
    assert out["past_latents"].shape[1] == num_past and out["past_actions"].shape[1] == num_past
    assert torch.equal(out["past_actions"], batch["past_actions"][:, extra:])  # the real actions, always
    assert torch.equal(out["future_latents"], batch["future_latents"])

    # The same draws by hand: rows, then r, then the rollout's noise from the global RNG.
    generator = torch.Generator().manual_seed(3)
    torch.rand(4, generator=generator)
    frames = int(torch.randint(1, extra + 1, (1,), generator=generator))
    start = extra - frames
    torch.manual_seed(7)
    model.eval()
    predicted = model.rollout(batch["past_latents"][:, start : start + num_past],
                              batch["past_actions"][:, start : start + num_past],
                              batch["past_actions"][:, start + num_past : start + num_past + frames])
    expected = torch.cat([batch["past_latents"][:, start : start + num_past], predicted], dim=1)[:, -num_past:]
    assert torch.allclose(out["past_latents"], expected)
    assert not torch.allclose(out["past_latents"][:, -1], batch["past_latents"][:, -1])  # really replaced
    assert not out["past_latents"].requires_grad  # no gradient through the rollout


def test_rows_not_drawn_and_validation_keep_their_real_frames(model):
    batch = long_window(model.config, extra=2, batch=64)
    model.train()
    out = self_forced_batch(model, batch, 2, fraction=0.5, generator=torch.Generator().manual_seed(0))
    real = batch["past_latents"][:, 2:]
    kept = (out["past_latents"] == real).flatten(1).all(dim=1)
    assert 10 < int(kept.sum()) < 54  # about half the rows rolled out, the others untouched
    model.eval()
    out = self_forced_batch(model, batch, 2, fraction=1.0)
    assert torch.equal(out["past_latents"], real)  # validation: teacher-forced, comparable across runs
    assert torch.equal(batch["past_latents"][:, 2:], real)  # the input batch is never modified


def test_bad_settings_raise_clear_errors(model):
    with pytest.raises(ValueError, match="self_forcing_frames"):
        check_self_forcing(-1, 0.5)
    with pytest.raises(ValueError, match="self_forcing_fraction"):
        check_self_forcing(2, 1.5)
    with pytest.raises(ValueError, match="fraction > 0"):
        check_self_forcing(2, 0.0)
    batch = long_window(model.config, extra=0)
    with pytest.raises(ValueError, match=">= 3 frames"):
        self_forced_batch(model, batch, 3, fraction=1.0)


def test_train_flow_with_self_forcing_end_to_end(tmp_path, capsys):
    from hwm_env.cli import main

    write_latent_dataset(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "flow", "--data", str(tmp_path / "data"), "--config", "tiny", "--out", str(out),
                 "train.steps=3", "train.batch_size=4", "train.val_every=3", "data.self_forcing_frames=2",
                 "data.self_forcing_fraction=1"]) == 0
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["data"]["self_forcing_frames"] == 2 and config["num_past"] == config["data"]["num_past"]
    assert "self-forcing" in capsys.readouterr().out
    assert main(["train", "flow", "--data", str(tmp_path / "data"), "--config", "tiny", "--out",
                 str(tmp_path / "bad"), "train.steps=1", "data.self_forcing_frames=2",
                 "data.self_forcing_fraction=0"]) == 2
    assert "self_forcing_fraction" in capsys.readouterr().err
