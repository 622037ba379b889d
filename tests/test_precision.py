"""Precision (models/precision.py) and compiled inference (models/compiled.py) on tiny real models.

bf16 keeps 8 bits of mantissa: one rounding is a relative error of at most 2^-9 (0.2%), and a
few layers of them add up to about 1% of a tensor's scale. The tolerances below are stated
against the fp32 output's standard deviation (what a latent's size is), with room for the
tiny models' few layers: 5% of it for any single value, 1% on average. Frames are uint8, so
the decoder's bf16 error shows as a few grey levels at most, under one on average.
"""
from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch

import hwm_env  # noqa: F401  (registers the ids)
import models.compiled as compiled_module
import models.precision as precision_module
from env_fixtures import ACTION_DIM, NUM_PAST, build_checkpoints
from hwm_env.vector_env import HWMVectorEnv
from hwm_env.world_model_env import HWMEnv, WorldModelRunner
from models.compiled import AutoCompiledMethod, CompiledMethod, compile_methods, compile_world_model, uncompile
from models.precision import CPU_BF16_MIN_BATCH, autocast, resolve_precision


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("precision-checkpoints"))


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend the CPU has native bf16 (the rules, not the hardware, are under test)."""
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: True)


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: False)


def window(runner: WorldModelRunner, batch: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, runner.num_past, *runner.latent_shape)
    if runner.kind == "continuous":
        past = torch.rand(shape, generator=generator) * 2 - 1
    else:
        past = torch.randint(0, runner.latent_bounds[1] + 1, shape, generator=generator)
    past_actions = torch.rand(batch, runner.num_past, ACTION_DIM, generator=generator) * 2 - 1
    actions = torch.rand(batch, ACTION_DIM, generator=generator) * 2 - 1
    return past, past_actions, actions


def predict(runner: WorldModelRunner, precision: str, batch: int = 4):
    runner.precision = precision
    past, past_actions, actions = window(runner, batch)
    return runner.predict_next(past, past_actions, actions, seeds=list(range(batch)))


# --- the rules -------------------------------------------------------------------------

def test_auto_is_fp32_for_small_cpu_batches_and_bf16_for_large(bf16_cpu):
    assert resolve_precision("auto", "cpu", batch_size=1) == "fp32"
    assert resolve_precision("auto", "cpu", batch_size=CPU_BF16_MIN_BATCH - 1) == "fp32"
    assert resolve_precision("auto", "cpu", batch_size=CPU_BF16_MIN_BATCH) == "bf16"
    assert resolve_precision("auto", "cpu", batch_size=None) == "bf16"  # training
    assert resolve_precision("fp32", "cpu", batch_size=64) == "fp32"
    assert resolve_precision("bf16", "cpu", batch_size=1) == "bf16"  # asked for: no second guessing


def test_auto_is_fp32_without_native_bf16(no_bf16_cpu):
    assert resolve_precision("auto", "cpu", batch_size=64) == "fp32"
    assert resolve_precision("auto", "cpu") == "fp32"


def test_bf16_where_unsupported_is_a_clear_error(no_bf16_cpu):
    with pytest.raises(ValueError, match=r"precision='bf16'.*no native bf16.*'fp32' or 'auto'"):
        resolve_precision("bf16", "cpu")
    with pytest.raises(ValueError, match=r"train.precision='bf16'"):
        resolve_precision("bf16", "cpu", name="train.precision")


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\], got 'fp16'"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolved precision"):
        with autocast("auto", "cpu"):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA answer")
def test_cuda_without_cuda_is_fp32_on_auto():
    assert not precision_module.bf16_supported("cuda")
    assert resolve_precision("auto", "cuda", batch_size=64) == "fp32"


def test_callers_choice_reaches_the_models_own_autocast():
    assert precision_module.chosen_precision() is None
    with autocast("bf16", "cpu"):
        assert precision_module.chosen_precision() == "bf16" and torch.is_autocast_enabled("cpu")
        with autocast("fp32", "cpu"):  # fp32 inside bf16: autocast off, models add nothing
            assert not torch.is_autocast_enabled("cpu")
            assert isinstance(precision_module.model_autocast(torch.device("cuda")), contextlib.nullcontext)
    assert precision_module.chosen_precision() is None


# --- bf16 against fp32 -------------------------------------------------------------------

def test_flow_predict_in_bf16_matches_fp32(checkpoints):
    runner = WorldModelRunner(checkpoints["flow"], "cpu", precision="fp32")
    reference, _ = predict(runner, "fp32")
    low, _ = predict(runner, "bf16")
    assert low.dtype == torch.float32  # callers always get fp32 latents back
    scale = float(reference.std())
    difference = (low - reference).abs()
    assert float(difference.max()) <= 0.05 * scale and float(difference.mean()) <= 0.01 * scale
    assert not torch.equal(low, reference)  # bf16 actually ran


def test_masked_logits_in_bf16_match_fp32_and_tokens_mostly_agree(checkpoints):
    runner = WorldModelRunner(checkpoints["masked"], "cpu", precision="fp32")
    model = runner.model
    past, past_actions, actions = window(runner, 4)
    tokens = torch.zeros((4, 1, *runner.latent_shape), dtype=torch.long)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        reference = model(past, past_actions, tokens, actions[:, None], mask)
        with autocast("bf16", "cpu"):
            low = model(past, past_actions, tokens, actions[:, None], mask).float()
    scale = float(reference.std())
    difference = (low - reference).abs()
    assert float(difference.max()) <= 0.05 * scale and float(difference.mean()) <= 0.01 * scale
    # sampled tokens: a few near-tied draws may flip, the rest agree
    reference_tokens, _ = predict(runner, "fp32")
    low_tokens, _ = predict(runner, "bf16")
    assert float((reference_tokens == low_tokens).float().mean()) >= 0.9


@pytest.mark.parametrize("family", ["flow", "masked"])
def test_tokenizer_decode_in_bf16_matches_fp32(checkpoints, family):
    runner = WorldModelRunner(checkpoints[family], "cpu", precision="fp32")
    latents, view = predict(runner, "fp32")
    reference = runner.decode(view).astype(int)
    runner.precision = "bf16"
    low = runner.decode(view).astype(int)
    difference = np.abs(low - reference)
    assert difference.max() <= 8 and difference.mean() <= 1.0


# --- compiled inference --------------------------------------------------------------------

def test_compile_error_warns_and_runs_eager_with_identical_results(checkpoints, monkeypatch):
    runner = WorldModelRunner(checkpoints["flow"], "cpu", precision="fp32")
    eager, _ = predict(runner, "fp32")

    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    methods = compile_world_model(runner.model, runner.tokenizer, True)
    assert methods and all(isinstance(method, CompiledMethod) for method in methods)
    with pytest.warns(RuntimeWarning, match=r"torch.compile of MMDiT.forward failed \(RuntimeError: no C\+\+ "
                                            r"compiler here\); running it eager"):
        fallen, _ = predict(runner, "fp32")
    torch.testing.assert_close(fallen, eager, rtol=0, atol=0)
    report = runner.model.network.forward.failed is not None, compiled_module.compile_report(methods)
    assert report[0] and report[1]["fell_back"] and not report[1]["compiled"]


def test_error_on_the_first_compiled_call_falls_back_too(checkpoints, monkeypatch):
    runner = WorldModelRunner(checkpoints["masked"], "cpu", precision="fp32")
    eager, _ = predict(runner, "fp32")

    def compile_that_breaks_on_call(function, **kwargs):
        def call(*args, **kwargs):
            raise torch._dynamo.exc.Unsupported("graph break") if hasattr(torch, "_dynamo") else RuntimeError()
        return call

    monkeypatch.setattr(torch, "compile", compile_that_breaks_on_call)
    compile_world_model(runner.model, None, True)
    with pytest.warns(RuntimeWarning, match="running it eager"):
        fallen, _ = predict(runner, "fp32")
    torch.testing.assert_close(fallen, eager, rtol=0, atol=0)


def test_auto_compile_waits_for_its_eager_budget_then_compiles(checkpoints, monkeypatch):
    calls = []

    def recording_compile(function, **kwargs):
        calls.append(kwargs)
        return function  # "compiled" = the eager function: results stay identical

    monkeypatch.setattr(torch, "compile", recording_compile)
    runner = WorldModelRunner(checkpoints["flow"], "cpu", precision="fp32")
    (method,) = compile_methods(runner.model.network, ("forward",), "auto", after_s=3600)
    assert isinstance(method, AutoCompiledMethod)
    predict(runner, "fp32")
    assert calls == [] and method.eager_seconds > 0  # a short-lived model never compiles
    method.after_s = 0.0
    predict(runner, "fp32")
    assert len(calls) == 1 and calls[0]["options"]["freezing"] and method.compile_seconds is not None
    assert compile_methods(runner.model.network, ("forward",), True) == [method]  # idempotent
    state_keys = set(runner.model.state_dict())
    uncompile(runner.model.network)
    assert not isinstance(runner.model.network.forward, CompiledMethod)
    assert set(runner.model.state_dict()) == state_keys  # compiling never renames weights


def test_compile_setting_is_checked():
    with pytest.raises(ValueError, match=r"compile must be False, True or 'auto', got 'yes'"):
        compiled_module.check_compile("yes")


# --- the settings reach the envs, planners and trainer ---------------------------------------

def test_env_kwargs_pass_through(checkpoints, bf16_cpu, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda function, **kwargs: function)
    env = gym.make("HWM-Flow-v0", checkpoint=str(checkpoints["flow"]), obs_mode="latent", precision="fp32",
                   compile=True)
    runner = env.unwrapped.runner
    assert runner.precision == "fp32" and runner.compiled_methods
    env.reset(seed=0)
    env.step(np.zeros(ACTION_DIM, np.float32))
    assert runner.compile_report["compiled"] and runner.compile_report["compile_seconds"] is not None
    env.close()
    assert HWMEnv(checkpoint=checkpoints["flow"]).runner.precision == "fp32"  # auto, batch 1
    envs = HWMVectorEnv(num_envs=CPU_BF16_MIN_BATCH, checkpoint=checkpoints["masked"], obs_mode="latent")
    assert envs.runner.precision == "bf16" and envs.runner.compiled_methods == []  # auto, a large batch
    envs.reset(seed=0)
    observations = envs.step(np.zeros((CPU_BF16_MIN_BATCH, ACTION_DIM), np.float32))[0]
    assert envs.observation_space.contains(observations)
    envs.close()
    with pytest.raises(ValueError, match="precision must be one of"):
        HWMEnv(checkpoint=checkpoints["flow"], precision="half")
    with pytest.raises(ValueError, match="compile must be False, True or 'auto'"):
        HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], compile="fast")


def test_env_refuses_bf16_where_unsupported(checkpoints, no_bf16_cpu):
    with pytest.raises(ValueError, match="precision='bf16' but cpu has no native bf16"):
        HWMEnv(checkpoint=checkpoints["flow"], precision="bf16")


def test_planner_dynamics_take_precision_and_compile(checkpoints, bf16_cpu):
    from planners.dynamics import load_world_model_dynamics

    dynamics, _ = load_world_model_dynamics(checkpoints["flow"], precision="fp32", seed=0)
    low_dynamics, _ = load_world_model_dynamics(checkpoints["flow"], precision="bf16", seed=0)
    state = {"past_latents": torch.zeros(NUM_PAST, 4, 8, 8), "past_actions": torch.zeros(NUM_PAST, ACTION_DIM)}
    actions = torch.zeros(3, 2, ACTION_DIM)
    reference, low = dynamics.rollout(state, actions), low_dynamics.rollout(state, actions)
    assert low.dtype == torch.float32 and low.shape == reference.shape == (3, 2, 4, 8, 8)
    assert float((low - reference).abs().max()) <= 0.05 * float(reference.std()) + 1e-3
    with pytest.raises(ValueError, match="WorldModelDynamics: precision must be one of"):
        load_world_model_dynamics(checkpoints["flow"], precision="int8")


def test_trainer_in_bf16_runs_and_its_loss_is_finite(tmp_path, bf16_cpu):
    from test_trainer import CHECKPOINT_CONFIG, RegressionData, make_model, mse_objective, tiny_config, train_losses
    from train.trainer import Trainer

    seen = []

    def objective(model, batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        return mse_objective(model, batch)

    trainer = Trainer(tiny_config(steps=60, lr=3e-2, val_every=30, precision="bf16"), make_model(), objective,
                      RegressionData(), tmp_path, CHECKPOINT_CONFIG, val_data=RegressionData(32, seed=1))
    assert trainer.precision == "bf16"
    trainer.fit()
    losses = train_losses(tmp_path)
    assert all(np.isfinite(losses)) and np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    assert seen and all(seen)  # training and validation ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32


def test_trainer_refuses_bf16_where_unsupported(tmp_path, no_bf16_cpu):
    from test_trainer import CHECKPOINT_CONFIG, RegressionData, make_model, mse_objective, tiny_config
    from train.trainer import Trainer

    with pytest.raises(ValueError, match="train.precision='bf16'"):
        Trainer(tiny_config(precision="bf16"), make_model(), mse_objective, RegressionData(), tmp_path,
                CHECKPOINT_CONFIG)
    assert Trainer(tiny_config(precision="auto"), make_model(), mse_objective, RegressionData(), tmp_path / "auto",
                   CHECKPOINT_CONFIG).precision == "fp32"
