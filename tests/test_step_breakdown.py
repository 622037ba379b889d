"""benchmarks/step_breakdown.py on tiny checkpoints (the parts of a step add up, the timers change nothing),
and the single env's step after its cuts (one thread throughout, inference_mode) against the plain model calls."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import hwm_env  # noqa: F401  (headless MuJoCo)
from env_fixtures import build_checkpoints
from hwm_env.threads import call_threads
from hwm_env.world_model_env import TORCH_SEED_LIMIT, HWMEnv
from scripts import load_script

step_breakdown = load_script("benchmarks/step_breakdown.py")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("breakdown-checkpoints"))


def rollout(env: HWMEnv, steps: int = 4, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    outputs = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        observation, reward, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        outputs += [observation, reward, info["latent"]]
    return outputs


@pytest.mark.parametrize("family", ["flow", "masked"])
def test_parts_are_positive_and_add_up_to_the_step(checkpoints, family):
    envs = step_breakdown.make_envs(str(checkpoints[family]), {"eager fp32": ("fp32", False)})
    result = step_breakdown.breakdown(envs, rounds=2, repeats=5, profile_steps=2)["eager fp32"]
    median, mean = result["median_ms"], result["mean_ms"]
    assert result["steps"] == 10
    for part in (*step_breakdown.PARTS, "total"):
        assert median[part] > 0 and mean[part] > 0, (part, median, mean)
    assert sum(mean[part] for part in step_breakdown.PARTS) == pytest.approx(mean["total"], rel=1e-6)
    assert sum(median[part] for part in step_breakdown.PARTS) == pytest.approx(median["total"], rel=0.5)
    for ops in (result["ops_per_step"]["top"], result["ops_per_step"]["all"]):
        assert ops["network"] > 0 and ops["decoder"] > 0
        assert sum(ops[part] for part in step_breakdown.PARTS) == pytest.approx(ops["total"])
    assert result["ops_per_step"]["top"]["total"] < result["ops_per_step"]["all"]["total"]


def test_timers_leave_the_env_as_it_was(checkpoints):
    env = HWMEnv(checkpoint=str(checkpoints["flow"]), device="cpu")
    expected = rollout(env)
    runner = env.unwrapped.runner
    network_forward = runner.model.network.forward
    clock = step_breakdown.StepClock(env)
    timed = rollout(env)
    clock.remove()
    assert "predict_next" not in vars(runner) and "decode" not in vars(runner)
    assert "forward" not in vars(runner.model.network) and runner.model.network.forward == network_forward
    for got, want in zip(timed + rollout(env), expected + expected):
        np.testing.assert_array_equal(got, want)


# --- the cuts keep every output --------------------------------------------------------------

@pytest.mark.parametrize("family", ["flow", "masked"])
def test_a_step_equals_the_plain_model_calls_and_runs_on_one_thread(checkpoints, family):
    """The env's step (one thread throughout, inference_mode) gives exactly what the model and the
    tokenizer give under no_grad, called as before the cut (model calls on one thread)."""
    threads_in_step = []
    env = HWMEnv(checkpoint=str(checkpoints[family]), device="cpu",
                 reward_fn=lambda *args: threads_in_step.append(torch.get_num_threads()) or 0.0)
    runner, imagination = env.unwrapped.runner, env.unwrapped.imagination
    env.reset(seed=0)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        step_and_compare(env, runner, imagination)
    finally:
        torch.set_num_threads(previous_threads)
    assert threads_in_step == [1, 1, 1]
    env.close()


def step_and_compare(env, runner, imagination) -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        seed = int(copy.deepcopy(env.np_random).integers(TORCH_SEED_LIMIT))  # the seed the step will draw
        past_latents, past_actions = imagination.past_latents.clone(), imagination.past_actions.clone()
        with torch.no_grad(), call_threads(1):
            future = runner.model.predict(past_latents, past_actions, torch.from_numpy(action)[None, None],
                                          generator=torch.Generator().manual_seed(seed), **runner.sampler_kwargs)
            latent = runner.clamp_latents(future[:, 0])
            frame = runner.tokenizer.decode(latent[:, None])[0, 0].numpy()
        observation, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["latent"], latent[0].numpy())
        np.testing.assert_array_equal(observation, frame)
        assert torch.get_num_threads() == 2  # restored after the step


def test_a_single_env_compiles_the_model_but_not_the_decoder(checkpoints, monkeypatch):
    """At batch 1 the compiled decoder measured 0.94x a step in fp32 and 1.0x in bf16; batches keep it."""
    from hwm_env.vector_env import HWMVectorEnv
    from models.compiled import CompiledMethod

    monkeypatch.setattr(torch, "compile", lambda function, **kwargs: function)
    single = HWMEnv(checkpoint=str(checkpoints["flow"]), device="cpu", compile=True).runner
    assert isinstance(single.model.network.forward, CompiledMethod)
    assert not isinstance(single.tokenizer.decoder.forward, CompiledMethod)
    batched = HWMVectorEnv(num_envs=2, checkpoint=str(checkpoints["flow"]), device="cpu", compile=True)
    assert isinstance(batched.runner.tokenizer.decoder.forward, CompiledMethod)
    batched.close()
