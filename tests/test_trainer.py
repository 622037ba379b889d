"""The shared trainer on a tiny regression problem: learning, resume, atomic saves, EMA, DDP."""
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

import train.trainer as trainer_module
from models.checkpoint import load_checkpoint
from train.config import load_config
from train.trainer import TrainConfig, Trainer, checkpoint_dirs, learning_rate


class RegressionData(Dataset):
    """y = x @ w + 0.5 with a little noise; fixed by `seed`."""

    def __init__(self, size=64, features=8, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, features, generator=generator)
        w = torch.randn(features, 1, generator=torch.Generator().manual_seed(123))
        self.y = self.x @ w + 0.5 + 0.01 * torch.randn(size, 1, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return {"x": self.x[index], "y": self.y[index]}


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 1))


def mse_objective(model, batch):
    prediction = model(batch["x"])
    loss = (prediction - batch["y"]).pow(2).mean()
    return loss, {"abs_error": (prediction - batch["y"]).abs().mean().item()}


def noisy_objective(model, batch):
    """Uses the global RNG (like flow noise or MaskGIT masks), so resume must restore it."""
    noise = 0.1 * torch.randn_like(batch["x"])
    return (model(batch["x"] + noise) - batch["y"]).pow(2).mean(), {}


def tiny_config(**overrides):
    values = dict(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, ema_decay=0.9, log_every=1, val_every=4,
                  val_batches=2, save_every=4, num_workers=0, device="cpu", seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def read_metrics(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def train_losses(out_dir):
    return [r["loss"] for r in read_metrics(out_dir) if "loss" in r]


CHECKPOINT_CONFIG = {"family": "test-regression", "model": {"width": 16}}


def test_config_overrides_and_errors(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("steps: 50\nlr: 0.001\n")
    config = load_config(TrainConfig, "train", preset, ["batch_size=4", "betas=[0.8,0.99]", "ema_decay=0"])
    assert (config.steps, config.lr, config.batch_size, config.ema_decay) == (50, 0.001, 4, 0.0)
    assert config.betas == (0.8, 0.99)
    assert config.weight_decay == TrainConfig().weight_decay  # untouched default
    with pytest.raises(ValueError, match="no_such_key"):
        load_config(TrainConfig, "train", preset, ["no_such_key=1"])
    with pytest.raises(ValueError, match="steps"):
        load_config(TrainConfig, "train", preset, ["steps=many"])


def test_schedule_warms_up_then_decays():
    config = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 9) == pytest.approx(1.0)
    assert learning_rate(config, 10) == pytest.approx(1.0)
    assert learning_rate(config, 55) == pytest.approx(0.55)
    assert learning_rate(config, 100) == pytest.approx(0.1)


def test_no_weight_decay_on_norms_biases_embeddings():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decayed, plain = trainer_module.parameter_groups(model, 0.1)
    assert [p is model[1].weight for p in decayed["params"]] == [True]
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0.0


def test_loss_decreases_and_final_checkpoint(tmp_path):
    final = Trainer(tiny_config(steps=150, save_every=1000, lr=3e-2, val_every=50), make_model(), mse_objective, RegressionData(),
                    tmp_path, CHECKPOINT_CONFIG, val_data=RegressionData(32, seed=1),
                    extra_files={"notes.txt": _write(tmp_path / "notes.txt", "hello")}).fit()
    losses = train_losses(tmp_path)
    assert len(losses) == 150
    assert sum(losses[-10:]) / 10 < 0.05 * sum(losses[:10]) / 10
    validation = [r for r in read_metrics(tmp_path) if "val_loss" in r]
    assert validation and validation[-1]["val_loss"] < validation[0]["val_loss"]
    assert "val_ema_loss" in validation[-1] and "abs_error" in read_metrics(tmp_path)[0]
    state, config = load_checkpoint(final, family="test-regression")
    assert config["model"] == {"width": 16} and (final / "notes.txt").read_text() == "hello"
    assert set(state) == set(make_model().state_dict())
    # the last step is checkpointed even when save_every does not divide it
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000150"]
    assert (tmp_path / "latest").read_text().strip() == "checkpoints/step_0000150"


def test_init_from_starts_a_new_run_from_a_checkpoint(tmp_path):
    first = Trainer(tiny_config(steps=150, save_every=1000, lr=3e-2, val_every=0), make_model(), mse_objective,
                    RegressionData(), tmp_path / "first", CHECKPOINT_CONFIG).fit()
    trained, _ = load_checkpoint(first, family="test-regression")
    model = make_model(seed=1)  # other random weights
    Trainer(tiny_config(steps=1, init_from=str(first), lr=0.0, warmup_steps=1, ema_decay=0), model,
            mse_objective, RegressionData(), tmp_path / "second", CHECKPOINT_CONFIG).fit()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[name])  # lr 0: the step changed nothing
    losses = train_losses(tmp_path / "second")
    assert losses[0] < 0.05 * train_losses(tmp_path / "first")[0]  # starts where the first run ended
    # resuming the second run reads its own checkpoint, not init_from (which may be gone by then)
    Trainer(tiny_config(steps=2, init_from=str(tmp_path / "gone"), lr=0.0, warmup_steps=1, ema_decay=0),
            make_model(seed=2), mse_objective, RegressionData(), tmp_path / "second", CHECKPOINT_CONFIG).fit()
    assert len(train_losses(tmp_path / "second")) == 2
    # another architecture, or a checkpoint of another family: clear errors, naming the option
    wide = nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 1))
    with pytest.raises(ValueError, match="init_from.*shape mismatch"):
        Trainer(tiny_config(init_from=str(first)), wide, mse_objective, RegressionData(), tmp_path / "third",
                CHECKPOINT_CONFIG)
    with pytest.raises(ValueError, match="expected a 'flow' checkpoint"):
        Trainer(tiny_config(init_from=str(first)), make_model(), mse_objective, RegressionData(), tmp_path / "fourth",
                {"family": "flow"})


class WrappedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = make_model(seed=3)

    def forward(self, x):
        return self.net(x)


class GrownModel(WrappedModel):
    """WrappedModel plus a zero-initialised correction: computes what WrappedModel does until trained."""

    def __init__(self):
        super().__init__()
        self.extra = nn.Linear(8, 1)
        nn.init.zeros_(self.extra.weight)
        nn.init.zeros_(self.extra.bias)

    def forward(self, x):
        return self.net(x) + self.extra(x)


def test_init_allow_new_grows_a_trained_model(tmp_path, capsys):
    first = Trainer(tiny_config(steps=4, val_every=0), WrappedModel(), mse_objective, RegressionData(),
                    tmp_path / "first", CHECKPOINT_CONFIG).fit()
    trained, _ = load_checkpoint(first, family="test-regression")
    with pytest.raises(ValueError, match=r"missing \['extra.bias', 'extra.weight'\].*train.init_allow_new=true"):
        Trainer(tiny_config(init_from=str(first)), GrownModel(), mse_objective, RegressionData(),
                tmp_path / "refused", CHECKPOINT_CONFIG)
    grown = GrownModel()
    Trainer(tiny_config(init_from=str(first), init_allow_new=True), grown, mse_objective, RegressionData(),
            tmp_path / "second", CHECKPOINT_CONFIG)
    assert "2 parameter tensors are new" in capsys.readouterr().out
    for name, value in trained.items():
        torch.testing.assert_close(grown.state_dict()[name], value)
    assert grown.extra.weight.abs().sum() == 0  # kept its (zero) initialisation
    plain = Trainer(tiny_config(steps=1, val_every=0), make_model(), mse_objective, RegressionData(),
                    tmp_path / "plain", CHECKPOINT_CONFIG).fit()  # names 0.weight, ...: none fit
    with pytest.raises(ValueError, match="none of its weights fit"):
        Trainer(tiny_config(init_from=str(plain), init_allow_new=True), GrownModel(), mse_objective,
                RegressionData(), tmp_path / "nothing", CHECKPOINT_CONFIG)
