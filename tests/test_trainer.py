"""The shared trainer on a tiny regression problem: learning, resume, atomic saves, EMA, DDP."""
import json
import os
import re
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
    # fp32: these tests compare runs for equality (DDP vs one process, resume); bf16 is tests/test_precision.py's
    values = dict(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, ema_decay=0.9, log_every=1, val_every=4,
                  val_batches=2, save_every=4, num_workers=0, device="cpu", seed=0, precision="fp32")
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


def test_a_run_resumes_only_with_its_own_config(tmp_path, capsys):
    """Another model config in the same folder fails at once, naming what differs; the schedule may change."""
    out = tmp_path / "run"
    Trainer(tiny_config(steps=4, val_every=0), make_model(), mse_objective, RegressionData(), out,
            {**CHECKPOINT_CONFIG, "train": {"steps": 4}}).fit()
    wider = {"family": "test-regression", "model": {"width": 32, "depth": 3}}
    message = (f"{out} holds a run of a different config (model.depth: '(absent)' -> 3; model.width: 16 -> 32); "
               "pass --out for a new run, or the same config to resume")
    with pytest.raises(ValueError, match=re.escape(message)):
        Trainer(tiny_config(steps=8), make_model(), mse_objective, RegressionData(), out, wider)
    with pytest.raises(ValueError, match="different config"):  # what else the run depends on counts too
        Trainer(tiny_config(steps=8), make_model(), mse_objective, RegressionData(), out, CHECKPOINT_CONFIG,
                identity={"world_model": "elsewhere"})
    # the same config (a longer schedule) resumes
    resumed = Trainer(tiny_config(steps=8, val_every=0), make_model(), mse_objective, RegressionData(), out,
                      {**CHECKPOINT_CONFIG, "train": {"steps": 8}})
    resumed.fit()
    assert resumed.step == 8 and "resumed from" in capsys.readouterr().out


def test_runs_saved_before_run_configs_compare_their_checkpoint_config(tmp_path):
    out = tmp_path / "run"
    config = {"family": "masked", "model": {"width": 16}}
    Trainer(tiny_config(steps=4, val_every=0), make_model(), mse_objective, RegressionData(), out, config).fit()
    step_dir = checkpoint_dirs(out)[-1]
    state = json.loads((step_dir / "trainer_state.json").read_text())
    del state["run_config"]
    (step_dir / "trainer_state.json").write_text(json.dumps(state))
    (step_dir / "config.json").write_text(json.dumps({**config, "model": {"width": 16, "action_adaln": False}}))
    # a retired option at its neutral value is the same config
    Trainer(tiny_config(steps=8), make_model(), mse_objective, RegressionData(), out, config)
    with pytest.raises(ValueError, match=r"different config \(model.width: 16 -> 8\)"):
        Trainer(tiny_config(steps=8), make_model(), mse_objective, RegressionData(), out,
                {"family": "masked", "model": {"width": 8}})


def test_init_from_keeps_the_new_data_statistics(tmp_path):
    """Buffers (normalisation statistics) come from the new run's data, not the checkpoint."""
    source = make_model()
    source.register_buffer("data_mean", torch.full((8,), 3.0))
    final = tmp_path / "source"
    from models.checkpoint import save_checkpoint
    save_checkpoint(final, {k: v.clone() for k, v in source.state_dict().items()}, CHECKPOINT_CONFIG)
    model = make_model(seed=1)
    model.register_buffer("data_mean", torch.zeros(8))
    Trainer(tiny_config(init_from=str(final)), model, mse_objective, RegressionData(), tmp_path / "run",
            CHECKPOINT_CONFIG)
    assert torch.equal(model.data_mean, torch.zeros(8))
    torch.testing.assert_close(model[0].weight, source[0].weight)


def _write(path, text):
    path.write_text(text)
    return path


class StopTraining(Exception):
    pass


def stopping_objective(stop_at_call):
    calls = {"n": 0}

    def objective(model, batch):
        if model.training:
            calls["n"] += 1
            if calls["n"] == stop_at_call:
                raise StopTraining
        return noisy_objective(model, batch)

    return objective


def test_resume_matches_uninterrupted_run(tmp_path):
    config = tiny_config(steps=12, save_every=4)
    data, val = RegressionData(), RegressionData(32, seed=1)
    straight = Trainer(config, make_model(), noisy_objective, data, tmp_path / "a", CHECKPOINT_CONFIG, val).fit()

    # killed during step 7: the newest checkpoint is step 4, two checkpoints kept at most
    with pytest.raises(StopTraining):
        Trainer(config, make_model(), stopping_objective(7), data, tmp_path / "b", CHECKPOINT_CONFIG, val).fit()
    assert [p.name for p in checkpoint_dirs(tmp_path / "b")] == ["step_0000004"]
    # a fresh process (fresh model with other init) continues from step 4
    resumed_trainer = Trainer(config, make_model(seed=99), noisy_objective, data, tmp_path / "b", CHECKPOINT_CONFIG, val)
    resumed = resumed_trainer.fit()
    assert resumed_trainer.step == 12

    assert train_losses(tmp_path / "b") == pytest.approx(train_losses(tmp_path / "a"), abs=1e-7)
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == [r["step"] for r in read_metrics(tmp_path / "a")]
    a_state, _ = load_checkpoint(straight)
    b_state, _ = load_checkpoint(resumed)
    for name in a_state:
        torch.testing.assert_close(b_state[name], a_state[name], rtol=0, atol=1e-6)
    assert [p.name for p in checkpoint_dirs(tmp_path / "b")] == ["step_0000008", "step_0000012"]


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(steps=8, save_every=4)
    data = RegressionData()
    real_save_file = trainer_module.save_file

    def failing_save_file(tensors, path):
        if "step_0000008" in path or ".step_0000008" in path:
            raise OSError("disk full (simulated)")
        real_save_file(tensors, path)

    monkeypatch.setattr(trainer_module, "save_file", failing_save_file)
    with pytest.raises(OSError, match="simulated"):
        Trainer(config, make_model(), mse_objective, data, tmp_path, CHECKPOINT_CONFIG).fit()
    # the atomic write happens in a temp folder beside the final one
    assert not any(p.name.startswith(".step") for p in (tmp_path / "checkpoints").iterdir())
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000004"]
    assert (tmp_path / "latest").read_text().strip() == "checkpoints/step_0000004"
    state = json.loads((tmp_path / "checkpoints/step_0000004/trainer_state.json").read_text())
    assert state["step"] == 4
    load_file(str(tmp_path / "checkpoints/step_0000004/model.safetensors"))

    monkeypatch.setattr(trainer_module, "save_file", real_save_file)
    trainer = Trainer(config, make_model(), mse_objective, data, tmp_path, CHECKPOINT_CONFIG)
    trainer.fit()
    assert trainer.step == 8


def test_ema_is_the_decayed_average_of_the_weights(tmp_path):
    config = tiny_config(steps=6, ema_decay=0.5, val_every=0, save_every=100)
    snapshots = []  # weights seen at each step = weights after the previous step

    def recording_objective(model, batch):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return mse_objective(model, batch)

    model = make_model()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = Trainer(config, model, recording_objective, RegressionData(), tmp_path, CHECKPOINT_CONFIG)
    final = trainer.fit()
    after_steps = snapshots[1:] + [model.state_dict()]
    expected = dict(initial)
    for step, weights in enumerate(after_steps, start=1):
        decay = min(0.5, (1 + step) / (10 + step))
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    exported, _ = load_checkpoint(final)
    for name, value in expected.items():
        torch.testing.assert_close(exported[name], value, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(exported[name], model.state_dict()[name])  # not the raw weights


def test_ema_off_exports_raw_weights(tmp_path):
    model = make_model()
    final = Trainer(tiny_config(steps=3, ema_decay=0.0, val_every=0), model, mse_objective, RegressionData(),
                    tmp_path, CHECKPOINT_CONFIG).fit()
    exported, _ = load_checkpoint(final)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(exported[name], value)
    assert not (tmp_path / "checkpoints/step_0000003/ema.safetensors").exists()


def test_checkpoints_contain_no_pickles(tmp_path):
    Trainer(tiny_config(steps=4, save_every=2), make_model(), mse_objective, RegressionData(), tmp_path,
            CHECKPOINT_CONFIG, val_data=RegressionData(16, seed=1)).fit()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".safetensors", ".json", ".jsonl", ""}
    for path in files:  # every file is safetensors (8-byte header size, then a JSON header) or text
        data = path.read_bytes()
        assert not data.startswith(b"PK"), f"{path} is a zip (torch.save) file"
        if path.suffix == ".safetensors":
            assert data[8:9] == b"{", f"{path} is not a safetensors file"
            load_file(str(path))
        elif path.suffix == ".json":
            json.loads(data)
        else:
            data.decode("utf-8")
    step_dir = tmp_path / "checkpoints/step_0000004"
    assert {p.name for p in step_dir.iterdir()} == {
        "model.safetensors", "ema.safetensors", "optimizer.safetensors", "rng.safetensors",
        "trainer_state.json", "config.json"}
    optimizer = load_file(str(step_dir / "optimizer.safetensors"))
    assert any(name.endswith("exp_avg_sq") for name in optimizer)


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="family"):
        Trainer(tiny_config(), make_model(), mse_objective, RegressionData(), tmp_path, {"model": {}})
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        Trainer(tiny_config(), make_model(), mse_objective, RegressionData(), tmp_path, CHECKPOINT_CONFIG,
                extra_files={"tokenizer": tmp_path / "missing"})
    with pytest.raises(ValueError, match="fewer than one global batch"):
        Trainer(tiny_config(batch_size=128), make_model(), mse_objective, RegressionData(), tmp_path,
                CHECKPOINT_CONFIG).fit()


# --- data parallel on gloo --------------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world_size, port, out_dir, config):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # ranks start from different weights on purpose: rank 0's are broadcast
    Trainer(config, make_model(seed=rank), mse_objective, RegressionData(), out_dir, CHECKPOINT_CONFIG,
            val_data=RegressionData(32, seed=1)).fit()


def test_ddp_two_gloo_processes_match_one_process_with_double_batch(tmp_path):
    config = tiny_config(steps=8, batch_size=8, save_every=4, val_every=4)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), config), nprocs=2, join=True)
    single = Trainer(tiny_config(steps=8, batch_size=16, save_every=4, val_every=4), make_model(), mse_objective,
                     RegressionData(), tmp_path / "single", CHECKPOINT_CONFIG, val_data=RegressionData(32, seed=1)).fit()

    assert train_losses(tmp_path / "ddp") == pytest.approx(train_losses(tmp_path / "single"), rel=1e-4)
    ddp_state, _ = load_checkpoint(tmp_path / "ddp" / "final")
    single_state, _ = load_checkpoint(single)
    for name in single_state:
        torch.testing.assert_close(ddp_state[name], single_state[name], rtol=1e-4, atol=1e-5)
    ddp_records = read_metrics(tmp_path / "ddp")
    assert ddp_records[0]["samples_per_s"] > 0 and len([r for r in ddp_records if "loss" in r]) == 8
    state = json.loads((tmp_path / "ddp/checkpoints/step_0000008/trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
