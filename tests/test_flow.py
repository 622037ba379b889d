"""Flow-HWM: MMDiT variants, flow matching, sampling, guidance, the world-model API, training command."""
import json

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.flow import VARIANTS, FlowConfig, FlowHWM
from models.flow.flow_matching import (
    euler_sample,
    guided_velocity,
    heun_sample,
    interpolate,
    sample_time,
    velocity_target,
)
from models.flow.mmdit import token_positions

PAPER_BASE, PAPER_FULL = 1.361e9, 0.648e9


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are bound by per-op overhead: a second thread only adds synchronisation (and on a
    shared, oversubscribed CPU it makes them several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> FlowConfig:
    values = dict(latent_channels=4, latent_height=4, latent_width=4, action_dim=3, num_past=2, num_future=1,
                  patch_size=2, width=32, depth=3, num_heads=2, mlp_ratio=2.0, unshared_blocks=1)
    return FlowConfig(**{**values, **overrides})


def random_window(config: FlowConfig, batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (config.latent_channels, config.latent_height, config.latent_width)
    return {
        "past_latents": torch.randn(batch, config.num_past, *shape, generator=generator),
        "future_latents": torch.randn(batch, config.num_future, *shape, generator=generator),
        "past_actions": torch.randn(batch, config.num_past_action_tokens, config.action_dim, generator=generator),
        "future_actions": torch.randn(batch, config.num_future_action_tokens, config.action_dim, generator=generator),
    }


def perturbed(model: FlowHWM, scale: float = 0.2, seed: int = 1) -> FlowHWM:
    """Random non-zero weights everywhere (the zero init makes every velocity 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def predict(model, window, **kwargs):
    return model.predict(window["past_latents"], window["past_actions"], window["future_actions"], **kwargs)


# --- architecture ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["pooled", "two_future_per_frame_actions"])
def test_shapes_and_gradients_every_variant(variant, layout):
    extra = {} if layout == "pooled" else dict(num_future=2, actions_per_latent=2)
    config = tiny_config(variant=variant, **extra)
    model = FlowHWM(config)
    window = random_window(config)
    loss, metrics = model(window)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # every parameter takes part (no dead weights: data-parallel training averages all of them)
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    future = predict(model, window, cfg_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert future.shape == (3, config.num_future, 4, 4, 4) and future.dtype == torch.float32
    horizon = 3
    actions = torch.randn(3, horizon * config.actions_per_latent, config.action_dim)
    rolled = model.rollout(window["past_latents"], window["past_actions"], actions)
    assert rolled.shape == (3, horizon, 4, 4, 4)


def test_per_frame_actions_accept_the_window_layout():
    """WindowDataset with action_pooling='none' yields (P, k, A); the model flattens it to k tokens per latent."""
    config = tiny_config(actions_per_latent=2)
    model = perturbed(FlowHWM(config))
    window = random_window(config)
    nested = {**window, "past_actions": window["past_actions"].view(3, 2, 2, 3),
              "future_actions": window["future_actions"].view(3, 1, 2, 3)}
    a = predict(model, window, generator=torch.Generator().manual_seed(0))
    b = predict(model, nested, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_paper_parameter_counts_on_meta_device():
    from train.commands.model_info import count_parameters

    counts = {variant: count_parameters("flow", "paper", variant)["params"] for variant in VARIANTS}
    print("paper Flow-HWM parameters:", {k: f"{v / 1e9:.3f} B" for k, v in counts.items()})
    assert abs(counts["base"] / PAPER_BASE - 1) < 0.02
    assert abs(counts["full"] / PAPER_FULL - 1) < 0.02
    # sharing shrinks the model: base > modality > full
    assert counts["base"] > counts["modality"] > counts["full"]


def test_model_info_command_writes_json(tmp_path, capsys):
    from hwm_env.cli import main

    out = tmp_path / "info.json"
    assert main(["model", "info", "--family", "flow", "--config", "tiny", "--variant", "full",
                 "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["family"] == "flow" and info["variant"] == "full" and info["config"] == "tiny"
    assert info["params"] == sum(info["params_by_module"].values()) > 0
    assert "parameters" in capsys.readouterr().out
    assert main(["model", "info", "--family", "flow", "--config", "tiny", "--variant", "nope"]) == 2


def test_rope_puts_actions_on_the_latent_time_axis():
    config = tiny_config(num_past=3, num_future=1)
    positions = token_positions(config)
    spans = [0, 12, 16, 19, 20]  # 3 past x 4 tokens, 1 future x 4, 3 past actions, 1 future action
    assert positions.shape == (20, 3)
    assert positions[spans[0]:spans[1], 0].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert positions[spans[1]:spans[2], 0].tolist() == [3] * 4
    assert positions[spans[2]:spans[3], 0].tolist() == [0, 1, 2]  # the action into latent i sits at time i
    assert positions[spans[3]:, 0].tolist() == [3]
    # 1X Cosmos layout: latents of 1 + 8 frames, actions per frame: 9 past / 8 future tokens
    cosmos = tiny_config(actions_per_latent=8, past_action_tokens=9)
    times = token_positions(cosmos)[-17:, 0]
    assert torch.allclose(times, torch.arange(17) / 8)  # frame f at latent time f / 8


# --- flow matching ---------------------------------------------------------------------------

def test_path_target_and_samplers_agree_on_one_time_axis():
    generator = torch.Generator().manual_seed(0)
    noise, data = torch.randn(4, 2, 3, generator=generator), torch.randn(4, 2, 3, generator=generator)
    s = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x = interpolate(noise, data, s)
    assert torch.allclose(x[0], noise[0]) and torch.allclose(x[3], data[3])
    # the regression target is the derivative of the path along s
    eps = 1e-3
    derivative = (interpolate(noise, data, s + eps) - interpolate(noise, data, s)) / eps
    assert torch.allclose(derivative, velocity_target(noise, data), atol=1e-3)
    # with the exact velocity both samplers land on the data, integrating s from 0 to 1
    exact = lambda x_s, s_value: velocity_target(noise, data)  # noqa: E731
    for sampler in (euler_sample, heun_sample):
        assert torch.allclose(sampler(exact, noise, 3), data, atol=1e-5)


def test_time_sampling_mixes_logit_normal_and_uniform():
    def draw(fraction, seed=0):
        return sample_time(20000, uniform_fraction=fraction, generator=torch.Generator().manual_seed(seed))

    logit_normal, mixed = draw(0.0), draw(0.1)
    assert 0 < logit_normal.min() and logit_normal.max() < 1
    assert torch.equal(draw(0.1), draw(0.1, seed=0))
    # logit-normal rarely visits the ends; the uniform share keeps them trained
    ends = lambda s: ((s < 0.02) | (s > 0.98)).float().mean().item()  # noqa: E731
    assert ends(logit_normal) < 0.001 < 0.003 < ends(mixed)
    uniform = draw(1.0)
    assert abs(uniform.mean().item() - 0.5) < 0.01 and abs((uniform < 0.25).float().mean().item() - 0.25) < 0.02


def test_residual_target_round_trip():
    config = tiny_config()
    window = random_window(config)
    for residual in (True, False):
        model = FlowHWM(tiny_config(predict_residual=residual))
        model.set_latent_stats([0.5, -1.0, 0.0, 2.0], [2.0, 1.0, 0.5, 1.5], [0.3, 0.2, 0.1, 0.4])
        past = model.normalize_latents(window["past_latents"])
        future = model.normalize_latents(window["future_latents"])
        target = model.encode_target(past, future)
        assert torch.allclose(model.decode_target(past, target), future, atol=1e-6)
        assert torch.allclose(model.denormalize_latents(future), window["future_latents"], atol=1e-5)
        if residual:  # a zero residual means "the last past latent", not "the mean latent"
            assert torch.allclose(model.decode_target(past, torch.zeros_like(target)), past[:, -1:])
        else:
            assert torch.equal(target, future)


def test_tiny_overfit_loss_decreases():
    config = tiny_config(cfg_dropout=0.0)
    model = FlowHWM(config)
    window = random_window(config, batch=8)

    def mean_loss():
        torch.manual_seed(123)  # the same times and noise each evaluation
        with torch.no_grad():
            return sum(model(window)[0].item() for _ in range(8)) / 8

    before = mean_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(80):
        loss, _ = model(window)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = mean_loss()
    assert after < 0.7 * before, (before, after)


# --- sampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_sampling_is_reproducible_under_a_seeded_generator(sampler):
    model = perturbed(FlowHWM(tiny_config(sampler=sampler)))
    window = random_window(model.config)

    def run(seed):
        return predict(model, window, steps=3, cfg_scale=1.5, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(7), run(7))
    assert not torch.allclose(run(7), run(8))
    actions = torch.randn(3, 4, 3)
    first = model.rollout(window["past_latents"], window["past_actions"], actions,
                          generator=torch.Generator().manual_seed(3))
    second = model.rollout(window["past_latents"], window["past_actions"], actions,
                           generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


def test_one_generator_per_batch_row_makes_rows_independent():
    model = perturbed(FlowHWM(tiny_config()))
    window = random_window(model.config)
    rows = predict(model, window, generator=[torch.Generator().manual_seed(seed) for seed in (4, 5, 6)])
    for row, seed in enumerate((4, 5, 6)):
        alone = {key: value[row : row + 1] for key, value in window.items()}
        assert torch.allclose(rows[row : row + 1], predict(model, alone, generator=torch.Generator().manual_seed(seed)),
                              atol=1e-5)
    with pytest.raises(ValueError, match="one per batch row"):
        predict(model, window, generator=[torch.Generator()])


def test_guidance_batched_call_equals_two_separate_calls():
    model = perturbed(FlowHWM(tiny_config()))
    window = random_window(model.config)
    scale, steps = 2.5, 3
    guided = predict(model, window, steps=steps, cfg_scale=scale, generator=torch.Generator().manual_seed(5))

    # the same sampling by hand: separate conditional and unconditional network calls
    past = model.normalize_latents(window["past_latents"])
    past_actions = model.action_normalizer(window["past_actions"])
    future_actions = model.action_normalizer(window["future_actions"])
    x = torch.randn(3, 1, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    keep, drop = torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        for i in range(steps):
            s = torch.full((3,), i / steps)
            conditional = model.network(x, s, past, past_actions, future_actions, keep)
            unconditional = model.network(x, s, past, past_actions, future_actions, drop)
            assert not torch.allclose(conditional, unconditional)  # the null condition matters
            x = x + (1 / steps) * (unconditional + scale * (conditional - unconditional))
    by_hand = model.denormalize_latents(model.decode_target(past, x))
    assert torch.allclose(guided, by_hand, atol=1e-5)
    assert torch.equal(guided_velocity(torch.ones(2), torch.zeros(2), 1.0), torch.ones(2))


def test_inputs_are_never_modified():
    model = perturbed(FlowHWM(tiny_config()))
    window = random_window(model.config)
    copies = {key: value.clone() for key, value in window.items()}
    predict(model, window, cfg_scale=3.0, generator=torch.Generator().manual_seed(0))
    model.rollout(window["past_latents"], window["past_actions"], window["future_actions"].repeat(1, 3, 1),
                  cfg_scale=3.0)
    model.train()
    model(window)
    for key, value in window.items():
        assert torch.equal(value, copies[key]), key


def test_actions_change_the_prediction_of_a_trained_model():
    """A tiny task where the next latent is the last one moved by the action: the model must follow actions."""
    config = tiny_config(action_dim=2, depth=2, width=48, num_heads=2, cfg_dropout=0.0, num_sampling_steps=2)
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randn(2, 4, 4, 4, generator=generator)

    def windows(batch):
        past = torch.randn(batch, 2, 4, 4, 4, generator=generator)
        actions = torch.randn(batch, 3, 2, generator=generator)
        future = past[:, -1:] + torch.einsum("ba,achw->bchw", actions[:, -1], patterns)[:, None]
        return {"past_latents": past, "future_latents": future,
                "past_actions": actions[:, :2], "future_actions": actions[:, 2:]}

    model = FlowHWM(config)
    model.set_latent_stats(torch.zeros(4), torch.ones(4), torch.full((4,), 1.4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(200):
        loss, _ = model(windows(32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = windows(64)
    true = predict(model, test, generator=torch.Generator().manual_seed(0))
    swapped = model.predict(test["past_latents"], test["past_actions"], test["future_actions"].roll(1, dims=0),
                            generator=torch.Generator().manual_seed(0))
    error_true = (true - test["future_latents"]).square().mean()
    error_swapped = (swapped - test["future_latents"]).square().mean()
    copy_last = (test["past_latents"][:, -1:] - test["future_latents"]).square().mean()
    assert error_true < 0.5 * error_swapped and error_true < 0.5 * copy_last, (error_true, error_swapped, copy_last)


# --- bad input and checkpoints ---------------------------------------------------------------

def test_bad_inputs_raise_clear_errors(tmp_path):
    model = FlowHWM(tiny_config()).eval()
    w = random_window(model.config)
    cases = [
        (dict(past_actions=torch.randn(3, 2, 5)), "action_dim=3"),
        (dict(future_actions=torch.randn(3, 2, 3)), "future_actions"),
        (dict(past_latents=torch.randn(3, 3, 4, 4, 4)), "past_latents"),
        (dict(past_latents=torch.randn(3, 2, 4, 8, 8)), "past_latents"),
        (dict(past_actions=torch.randn(2, 2, 3)), "batch sizes differ"),
        (dict(past_latents=w["past_latents"].clone().index_fill_(0, torch.tensor([1]), float("nan"))), "NaN"),
        (dict(future_actions=torch.full((3, 1, 3), float("inf"))), "NaN or inf"),
        (dict(past_latents=torch.zeros(3, 2, 4, 4, 4, dtype=torch.int64)), "floating-point"),
    ]
    for change, message in cases:
        window = {**w, **change}
        with pytest.raises(ValueError, match=message):
            predict(model, window)
    with pytest.raises(ValueError, match="temperature"):
        predict(model, w, temperature=1.0)
    with pytest.raises(ValueError, match="steps"):
        predict(model, w, steps=0)
    with pytest.raises(ValueError, match="cfg_dropout=0"):
        predict(FlowHWM(tiny_config(cfg_dropout=0.0)), w, cfg_scale=2.0)
    with pytest.raises(ValueError, match="variant"):
        tiny_config(variant="shared")
    with pytest.raises(ValueError, match="training batch lacks"):
        model({"past_latents": w["past_latents"]})
    # a checkpoint of another family
    save_checkpoint(tmp_path / "masked", {}, {"family": "masked", "model": {}})
    with pytest.raises(ValueError, match="expected a 'flow' checkpoint"):
        FlowHWM.from_checkpoint(tmp_path / "masked")
    with pytest.raises(ValueError, match="unknown keys"):
        FlowConfig.from_dict({**tiny_config().to_dict(), "colour": 1})


def test_checkpoint_round_trip(tmp_path):
    from models.loading import load_world_model

    model = perturbed(FlowHWM(tiny_config(variant="modality")))
    model.set_action_stats([1.0, 2.0, 0.0], [2.0, 0.5, 1.0], binary_dims=[2])
    model.set_latent_stats(torch.full((4,), 0.1), torch.full((4,), 2.0), torch.full((4,), 0.5))
    model.action_names = ["a", "b", "grip"]
    model.metadata = {"data": {"frame_stride": 1}}
    save_checkpoint(tmp_path / "flow", model.state_dict(), model.checkpoint_config())
    loaded = load_world_model(tmp_path / "flow")
    assert isinstance(loaded, FlowHWM) and not loaded.training
    assert loaded.config == model.config and loaded.action_names == ["a", "b", "grip"]
    assert loaded.metadata == {"data": {"frame_stride": 1}}
    config = json.loads((tmp_path / "flow" / "config.json").read_text())
    assert (config["family"], config["num_past"], config["num_future"], config["action_dim"]) == ("flow", 2, 1, 3)
    window = random_window(model.config)
    assert torch.equal(predict(model, window, generator=torch.Generator().manual_seed(0)),
                       predict(loaded, window, generator=torch.Generator().manual_seed(0)))


# --- `hwm train flow` ----------------------------------------------------------------------

def write_latent_dataset(root, with_latents=True):
    """A tiny hwm-v1 data set of smooth moving frames, encoded by a real (untrained) tiny tokenizer."""
    from models.tokenizers import AutoencoderConfig, ConvTokenizer
    from models.data.hwm_format import HWMWriter
    from train.encode import encode_split

    generator = np.random.default_rng(0)
    names = [f"joint_{i}" for i in range(3)]
    for split, episodes in (("train", 3), ("val", 1)):
        with HWMWriter(root / split, 64, 64, action_dim=3, fps=10, action_names=names, source="test") as writer:
            for _ in range(episodes):
                actions = generator.normal(size=(12, 3)).astype(np.float32)
                shift = np.cumsum(actions[:, 0]).round().astype(int)
                base = generator.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
                frames = np.stack([np.roll(base, s, axis=1) for s in shift])
                writer.add_episode(frames, actions, None)
    if with_latents:
        tokenizer = ConvTokenizer(AutoencoderConfig(pixel_shuffle=2, channels=[16, 16, 32], res_blocks=1,
                                                    bottleneck_blocks=0, norm_groups=4)).eval()
        tokenizer_dir = tokenizer.save(root / "tokenizer")
        for split in ("train", "val"):
            encode_split(root / split, tokenizer, tokenizer_dir, batch_size=16)


@pytest.mark.parametrize("variant,pooling,stride", [("full", "mean", 1), ("base", "none", 2)])
def test_train_flow_command_end_to_end(tmp_path, capsys, variant, pooling, stride):
    from hwm_env.cli import main
    from models.loading import load_world_model
    from models.tokenizers import load_tokenizer

    write_latent_dataset(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "flow", "--data", str(tmp_path / "data"), "--config", "tiny", "--out", str(out),
                 "train.steps=4", "train.batch_size=4", "train.val_every=2", f"model.variant={variant}",
                 f"data.action_pooling={pooling}", f"data.frame_stride={stride}"]) == 0
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["family"] == "flow" and config["model"]["variant"] == variant
    assert config["data"]["frame_stride"] == stride
    k = stride if pooling == "none" else 1  # per-frame actions: k tokens per latent
    assert config["model"]["actions_per_latent"] == k
    assert config["action_names"] == ["joint_0", "joint_1", "joint_2"]
    assert (config["model"]["latent_channels"], config["model"]["latent_height"]) == (8, 8)  # from the data
    model = load_world_model(final)
    tokenizer = load_tokenizer(final / "tokenizer")
    assert tokenizer.kind == "continuous" and tokenizer.latent_channels == model.config.latent_channels
    # action statistics of the train split only, exactly: per-dim mean and population std of every frame
    train_actions, val_actions = (np.fromfile(tmp_path / "data" / split / "actions.bin", np.float32)
                                  .reshape(-1, 3).astype(np.float64) for split in ("train", "val"))
    every_action = np.concatenate([train_actions, val_actions])
    for name, expected, with_val in (("mean", train_actions.mean(0), every_action.mean(0)),
                                     ("std", train_actions.std(0), every_action.std(0))):
        stored = getattr(model.action_normalizer, name).double().numpy()
        np.testing.assert_allclose(stored, expected, rtol=1e-6, atol=1e-7)
        assert np.abs(with_val - expected).max() > 1e-3  # the val split would show
    assert not torch.equal(model.latent_std, torch.ones(8))
    past = torch.randn(1, 2, 8, 8, 8)
    assert model.predict(past, torch.zeros(1, 2 * k, 3), torch.zeros(1, k, 3)).shape == (1, 1, 8, 8, 8)
    assert "final checkpoint" in capsys.readouterr().out


def test_train_flow_writes_runs_flow_config_and_resumes_only_the_same_config(tmp_path, monkeypatch, capsys):
    """Default --out is runs/flow-<config>; another config there fails at once; the same command resumes."""
    from hwm_env.cli import main

    write_latent_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    command = ["train", "flow", "--data", "data", "--config", "tiny", "train.batch_size=4", "train.val_every=0"]
    assert main([*command, "train.steps=2", "train.save_every=2"]) == 0
    assert (tmp_path / "runs" / "flow-tiny" / "final" / "config.json").is_file()
    capsys.readouterr()
    assert main([*command, "train.steps=3", "model.depth=1"]) == 2
    assert ("runs/flow-tiny holds a run of a different config (model.depth: 2 -> 1); pass --out for a new run, "
            "or the same config to resume") in capsys.readouterr().err
    assert main([*command, "train.steps=3"]) == 0
    assert "resumed from runs/flow-tiny/checkpoints/step_0000002" in capsys.readouterr().out


def test_train_flow_fine_tunes_from_a_checkpoint_with_a_longer_context(tmp_path, capsys):
    """train.init_from: RoPE positions are computed, not learned, so a 2-past-frame model's
    weights start a 3-past-frame run; a checkpoint of another architecture is refused."""
    from hwm_env.cli import main
    from models.checkpoint import load_checkpoint

    write_latent_dataset(tmp_path / "data")
    data = str(tmp_path / "data")
    common = ["--config", "tiny", "train.batch_size=4", "train.val_every=0"]
    assert main(["train", "flow", "--data", data, "--out", str(tmp_path / "first"), *common, "train.steps=3"]) == 0
    first, _ = load_checkpoint(tmp_path / "first" / "final", family="flow")
    assert main(["train", "flow", "--data", data, "--out", str(tmp_path / "second"), *common, "train.steps=1",
                 "train.lr=0", "train.warmup_steps=1", "train.ema_decay=0", "data.num_past=3",
                 f"train.init_from={tmp_path / 'first' / 'final'}"]) == 0
    second, config = load_checkpoint(tmp_path / "second" / "final", family="flow")
    assert config["num_past"] == 3
    weights = [name for name in first if name.startswith("network.")]
    assert weights and all(torch.equal(first[name], second[name]) for name in weights)
    assert main(["train", "flow", "--data", data, "--out", str(tmp_path / "third"), *common, "train.steps=1",
                 "model.width=96", f"train.init_from={tmp_path / 'first' / 'final'}"]) == 2
    assert "init_from" in capsys.readouterr().err


def test_train_flow_command_needs_latents(tmp_path, capsys):
    from hwm_env.cli import main

    write_latent_dataset(tmp_path / "data", with_latents=False)
    assert main(["train", "flow", "--data", str(tmp_path / "data"), "--config", "tiny",
                 "--out", str(tmp_path / "run")]) == 2
    assert "hwm data encode" in capsys.readouterr().err
    assert main(["train", "flow", "--data", str(tmp_path / "data"), "--config", "tiny",
                 "model.num_past=3"]) == 2
    assert "data.num_past" in capsys.readouterr().err
