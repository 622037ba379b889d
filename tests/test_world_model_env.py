"""HWMEnv (`HWM-Flow-v0` / `HWM-Masked-v0`) with tiny real checkpoints: checkers, determinism, modes, errors."""
from __future__ import annotations

import gc
import shutil
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.error import ResetNeeded

import hwm_env  # noqa: F401  (registers the ids)
from env_fixtures import ACTION_DIM, NUM_PAST, build_checkpoints
from hwm_env.threads import call_threads
from hwm_env.world_model_env import HWMEnv

ENV_IDS = {"flow": "HWM-Flow-v0", "masked": "HWM-Masked-v0"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("env-checkpoints"))


def actions_for(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, ACTION_DIM)).astype(np.float32)


def test_make_without_checkpoint_uses_shipped_default_or_fails_clearly():
    from models.checkpoint import assets_dir

    for family, env_id in ENV_IDS.items():
        shipped = None
        try:
            shipped = assets_dir() / f"{family}-default"
        except FileNotFoundError:
            pass
        if shipped is not None and shipped.is_dir():
            env = gym.make(env_id)
            observation, _ = env.reset(seed=0)
            assert env.observation_space.contains(observation)
            env.close()
        else:
            with pytest.raises(FileNotFoundError, match=f"{family}-default"):
                gym.make(env_id)


@pytest.mark.parametrize("family,obs_mode", [("flow", "rgb"), ("masked", "rgb"), ("flow", "dict"), ("masked", "latent")])
def test_env_checkers_pass(checkpoints, family, obs_mode):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(ENV_IDS[family], checkpoint=str(checkpoints[family]), obs_mode=obs_mode, render_mode="rgb_array")
    gc.collect()  # warnings of objects other tests left behind (ResourceWarning at collection) are not the env's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(warning.message) for warning in caught] == []  # not even a recommendation
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("family", ["flow", "masked"])
def test_seeded_episodes_repeat_and_seeds_differ(checkpoints, family):
    def episode(seed: int) -> list[np.ndarray]:
        env = HWMEnv(checkpoint=checkpoints[family], obs_mode="dict")
        observation, _ = env.reset(seed=seed)
        frames = [observation["rgb"], observation["latent"]]
        for action in actions_for(0, 4):
            observation, reward, terminated, truncated, info = env.step(action)
            assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
            frames += [observation["rgb"], observation["latent"]]
        env.close()
        return frames

    first, again, other = episode(3), episode(3), episode(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_sampling_noise_comes_from_np_random(checkpoints):
    """Same context, same action, different env seeds -> different samples (Masked at temperature 1)."""
    env = HWMEnv(checkpoint=checkpoints["masked"], obs_mode="latent")
    first, _ = env.reset(seed=0)
    context = {"frames": np.zeros((NUM_PAST, 64, 64, 3), np.uint8), "actions": np.zeros((NUM_PAST, ACTION_DIM))}
    samples = []
    for seed in (10, 11):
        env.reset(seed=seed, options=context)
        samples.append(env.step(np.zeros(ACTION_DIM, np.float32))[0])
    assert not np.array_equal(samples[0], samples[1])
    env.close()


def test_spaces_and_observation_modes(checkpoints):
    rgb = HWMEnv(checkpoint=checkpoints["flow"])
    assert rgb.action_space == gym.spaces.Box(-1, 1, (ACTION_DIM,), np.float32)
    assert rgb.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    observation, info = rgb.reset(seed=0)
    assert observation.dtype == np.uint8 and info["latent"].shape == (4, 8, 8) and info["step"] == 0
    observation, _, _, _, info = rgb.step(np.zeros(ACTION_DIM, np.float32))
    assert info["step"] == 1 and rgb.observation_space.contains(observation)
    rgb.close()

    latent = HWMEnv(checkpoint=checkpoints["flow"], obs_mode="latent", render_mode="rgb_array")
    assert latent.observation_space.shape == (4, 8, 8) and latent.observation_space.dtype == np.float32
    assert latent.observation_space.low.min() == -1 and latent.observation_space.high.max() == 1
    latent.reset(seed=0)
    observation, _, _, _, info = latent.step(np.ones(ACTION_DIM, np.float32))
    assert "latent" not in info and latent.observation_space.contains(observation)
    frame = latent.render()  # decoded on demand: equals decoding the observed latent (on one thread, as the env)
    with call_threads(1):
        expected = latent.runner.tokenizer.decode(torch.from_numpy(observation)[None, None])[0, 0].numpy()
    np.testing.assert_array_equal(frame, expected)
    latent.close()

    tokens = HWMEnv(checkpoint=checkpoints["masked"], obs_mode="latent")
    assert tokens.observation_space == gym.spaces.Box(0, 15, (8, 8), np.int64)
    observation, _ = tokens.reset(seed=0)
    assert observation.dtype == np.int64 and tokens.observation_space.contains(observation)
    tokens.close()


def test_step_predicts_from_the_sliding_context(checkpoints):
    """One step = one model call on (last P latents, actions into them, the action); the window slides."""
    env = HWMEnv(checkpoint=checkpoints["flow"], obs_mode="latent")
    context = {
        "frames": np.random.default_rng(0).integers(0, 256, (NUM_PAST, 64, 64, 3), dtype=np.uint8),
        "actions": actions_for(1, NUM_PAST),
    }
    observation, _ = env.reset(seed=0, options=context)
    encoded = env.runner.tokenizer.encode(context["frames"][None])[0]
    np.testing.assert_allclose(observation, encoded[-1].numpy(), atol=1e-6)
    calls = []
    predict = env.runner.model.predict
    env.runner.model.predict = lambda *args, **kwargs: calls.append((args, kwargs)) or predict(*args, **kwargs)
    action = actions_for(2, 1)[0]
    env.step(action)
    (past_latents, past_actions, future_actions), kwargs = calls[0]
    torch.testing.assert_close(past_latents[0], encoded)
    torch.testing.assert_close(past_actions[0], torch.from_numpy(context["actions"]))
    torch.testing.assert_close(future_actions[0, 0], torch.from_numpy(action))
    second = actions_for(3, 1)[0]
    env.step(second)
    (past_latents, past_actions, future_actions), _ = calls[1]
    torch.testing.assert_close(past_actions[0], torch.from_numpy(np.stack([context["actions"][-1], action])))
    torch.testing.assert_close(past_latents[0, 0], encoded[-1])
    assert len(calls) == 2
    env.close()


def test_context_from_options_and_goal_reward(checkpoints):
    env = HWMEnv(checkpoint=checkpoints["flow"])
    frames = np.random.default_rng(0).integers(0, 256, (NUM_PAST, 64, 64, 3), dtype=np.uint8)
    goal = np.full((64, 64, 3), 128, np.uint8)
    observation, _ = env.reset(seed=0, options={"frames": frames, "actions": actions_for(0, NUM_PAST), "goal": goal})
    np.testing.assert_array_equal(observation, frames[-1])
    _, reward, _, _, info = env.step(np.zeros(ACTION_DIM, np.float32))
    goal_latent = env.runner.tokenizer.encode(goal[None, None])[0, 0].numpy()
    assert type(reward) is float and reward < 0
    assert reward == pytest.approx(-float(np.mean((info["latent"] - goal_latent) ** 2)), rel=1e-5)
    env.reset(seed=0)  # a reset without a goal clears it
    assert env.step(np.zeros(ACTION_DIM, np.float32))[1] == 0.0
    env.close()


def test_a_mean_readout_checkpoint_shows_its_expected_digits_and_slides_on_the_nearest_tokens(tmp_path):
    from env_fixtures import build_masked_checkpoint
    from models.masked.maskgit import digits_to_tokens

    checkpoint = build_masked_checkpoint(tmp_path / "masked-mean", readout="mean")
    context = {"frames": np.random.default_rng(0).integers(0, 256, (NUM_PAST, 64, 64, 3), dtype=np.uint8),
               "actions": actions_for(1, NUM_PAST)}
    action = actions_for(2, 1)[0]
    rgb = HWMEnv(checkpoint=checkpoint, steps=1)  # one MaskGIT step: every token's expectation, no sampling
    rgb.reset(seed=0, options=context)
    frame, *_, info = rgb.step(action)
    runner = rgb.runner
    past = runner.tokenizer.encode(context["frames"][None])
    digits = runner.model.predict(past, torch.from_numpy(context["actions"])[None], torch.from_numpy(action)[None, None],
                                  steps=1, readout="mean")
    # the env decodes a single frame on one thread, this call on two: float rounding may move a pixel by 1 level
    expected = runner.tokenizer.decode_digits(digits)[0, 0].numpy().astype(int)
    assert np.abs(frame.astype(int) - expected).max() <= 1 and (frame != expected).mean() < 1e-3
    np.testing.assert_array_equal(info["latent"], digits_to_tokens(digits, runner.model.levels)[0, 0].numpy())
    latent = HWMEnv(checkpoint=checkpoint, obs_mode="latent", steps=1, render_mode="rgb_array")  # decoded on demand
    latent.reset(seed=0, options=context)
    tokens, *_ = latent.step(action)
    np.testing.assert_array_equal(tokens, info["latent"])
    np.testing.assert_array_equal(latent.render(), frame)
    rgb.close()
    latent.close()


def test_goal_reward_for_tokens_uses_fsq_codes(checkpoints):
    env = HWMEnv(checkpoint=checkpoints["masked"], obs_mode="latent")
    goal = np.full((64, 64, 3), 40, np.uint8)
    env.reset(seed=0, options={"goal": goal})
    tokens, reward, *_ = env.step(np.zeros(ACTION_DIM, np.float32))
    fsq = env.runner.tokenizer.fsq
    goal_codes = fsq.indices_to_codes(env.runner.tokenizer.encode(goal[None, None])[0, 0])
    expected = -float((fsq.indices_to_codes(torch.from_numpy(tokens)) - goal_codes).pow(2).mean())
    assert reward == pytest.approx(expected, rel=1e-5)
    env.close()


def test_reward_fn_sees_latent_frame_and_action(checkpoints):
    seen = []

    def reward_fn(latent, frame, action):
        seen.append((latent.shape, frame.shape, frame.dtype, action.copy()))
        return np.float32(frame.mean() / 255.0)

    env = HWMEnv(checkpoint=checkpoints["flow"], obs_mode="latent", reward_fn=reward_fn)
    env.reset(seed=0)
    action = np.full(ACTION_DIM, 2.0, np.float32)  # out of range: clipped to the action space
    _, reward, *_ = env.step(action)
    assert type(reward) is float
    assert seen[0][:3] == ((4, 8, 8), (64, 64, 3), np.uint8)
    np.testing.assert_array_equal(seen[0][3], np.ones(ACTION_DIM, np.float32))
    env.close()


def test_context_from_a_data_set(checkpoints, tmp_path):
    """A seeded random window; the actions into its frames follow the data contract (actions[t]: t -> t+1)."""
    from models.data.hwm_format import HWMWriter

    rng = np.random.default_rng(0)
    for split, episodes in (("train", 2), ("val", 1)):
        with HWMWriter(tmp_path / "data" / split, 64, 64, action_dim=ACTION_DIM, fps=15,
                       action_names=[f"a{i}" for i in range(ACTION_DIM)], source="test") as writer:
            for episode in range(episodes):
                frame_ids = 6 * episode + np.arange(6, dtype=np.float32)  # each action encodes its frame index
                actions = np.repeat(frame_ids[:, None] / 100, ACTION_DIM, axis=1)
                writer.add_episode(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), actions)
    dataset_frames = np.fromfile(tmp_path / "data" / "train" / "frames.bin", np.uint8).reshape(-1, 64, 64, 3)
    env = HWMEnv(checkpoint=checkpoints["masked"], context_source=tmp_path / "data")  # a data root: its train split
    first, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    index = next(i for i, frame in enumerate(dataset_frames) if np.array_equal(first, frame))
    context_actions = env.imagination.past_actions[0, :, 0].numpy()
    np.testing.assert_allclose(context_actions, np.array([index - 2, index - 1]) / 100, atol=1e-6)
    env.step(np.zeros(ACTION_DIM, np.float32))
    env.close()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HWMEnv(checkpoint=checkpoints["masked"], context_source=tmp_path / "missing")


def test_max_episode_steps_truncates(checkpoints):
    env = gym.make("HWM-Masked-v0", checkpoint=str(checkpoints["masked"]), obs_mode="latent", max_episode_steps=2)
    env.reset(seed=0)
    assert env.step(np.zeros(ACTION_DIM, np.float32))[3] is False
    assert env.step(np.zeros(ACTION_DIM, np.float32))[3] is True
    env.close()


def test_standard_wrappers(checkpoints, tmp_path):
    from gymnasium.wrappers import (FrameStackObservation, RecordEpisodeStatistics, RecordVideo,
                                    ResizeObservation)

    make = lambda: gym.make("HWM-Flow-v0", checkpoint=str(checkpoints["flow"]), render_mode="rgb_array",
                            max_episode_steps=3)
    env = FrameStackObservation(ResizeObservation(RecordEpisodeStatistics(make()), (32, 32)), stack_size=4)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (4, 32, 32, 3) and observation.dtype == np.uint8
    truncated, info = False, {}
    while not truncated:
        observation, _, _, truncated, info = env.step(env.action_space.sample())
    assert info["episode"]["l"] == 3 and observation.shape == (4, 32, 32, 3)
    env.close()

    pytest.importorskip("moviepy", reason="RecordVideo writes MP4s through moviepy (pip install moviepy)")
    video = RecordVideo(make(), str(tmp_path / "videos"), episode_trigger=lambda episode: True, disable_logger=True)
    video.reset(seed=0)
    for _ in range(3):
        video.step(np.zeros(ACTION_DIM, np.float32))
    video.close()
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_bad_inputs_raise_clearly_and_env_stays_usable(checkpoints, tmp_path):
    env = HWMEnv(checkpoint=checkpoints["flow"])
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(np.zeros(ACTION_DIM, np.float32))
    observation, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"shape \({ACTION_DIM},\)"):
        env.step(np.zeros(ACTION_DIM + 1, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(ACTION_DIM, np.nan, np.float32))
    with pytest.raises(ValueError, match=r"goal.*\(64, 64, 3\)"):
        env.reset(options={"goal": np.zeros((32, 32, 3), np.uint8)})
    with pytest.raises(ValueError, match="frames"):
        env.reset(options={"frames": np.zeros((NUM_PAST + 1, 64, 64, 3), np.uint8),
                           "actions": np.zeros((NUM_PAST + 1, ACTION_DIM))})
    with pytest.raises(ValueError, match="go together"):
        env.reset(options={"frames": np.zeros((NUM_PAST, 64, 64, 3), np.uint8)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"gaol": None})
    # The failed calls changed nothing: the episode continues from where it was.
    assert env.imagination.elapsed_steps[0] == 0
    np.testing.assert_array_equal(env.render() if env.render_mode else env.imagination.frame(0), observation)
    observation, reward, *_ = env.step(np.zeros(ACTION_DIM, np.float32))
    assert env.observation_space.contains(observation) and reward == 0.0
    env.close()

    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoints["flow"], no_tokenizer)
    shutil.rmtree(no_tokenizer / "tokenizer")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        HWMEnv(checkpoint=no_tokenizer)
    wrong_tokenizer = tmp_path / "wrong-tokenizer"
    shutil.copytree(checkpoints["flow"], wrong_tokenizer)
    shutil.rmtree(wrong_tokenizer / "tokenizer")
    shutil.copytree(checkpoints["masked"] / "tokenizer", wrong_tokenizer / "tokenizer")
    with pytest.raises(ValueError, match="needs a continuous tokenizer"):
        HWMEnv(checkpoint=wrong_tokenizer)
    with pytest.raises(ValueError, match="temperature"):
        HWMEnv(checkpoint=checkpoints["flow"], temperature=1.0)
    with pytest.raises(ValueError, match="cfg_scale"):
        HWMEnv(checkpoint=checkpoints["masked"], cfg_scale=2.0)
    with pytest.raises(ValueError, match="obs_mode"):
        HWMEnv(checkpoint=checkpoints["flow"], obs_mode="pixels")
    with pytest.raises(FileNotFoundError, match="neither an existing folder"):
        HWMEnv(checkpoint=tmp_path / "nothing-here")


def test_frame_stride_checkpoint_steps_several_frames(checkpoints, tmp_path):
    """data.frame_stride k: contexts keep every k-th sim frame with the mean of the k actions into it."""
    import json

    from hwm_env.context import drive_sim
    from hwm_env.sim.env import HWMSimEnv

    strided = tmp_path / "strided"
    shutil.copytree(checkpoints["flow"], strided)
    config = json.loads((strided / "config.json").read_text())
    config["data"] = {"frame_stride": 2}
    (strided / "config.json").write_text(json.dumps(config))
    env = HWMEnv(checkpoint=strided)
    assert env.metadata["render_fps"] == 7.5 and env.runner.frame_stride == 2
    env.close()

    actions = actions_for(7, 2 * NUM_PAST)
    sim = HWMSimEnv(resolution=64)
    sim.reset(seed=3)
    pending = iter(actions)
    context = drive_sim(sim, lambda: next(pending), NUM_PAST, frame_stride=2)
    sim.reset(seed=3)
    frames = [sim.step(action)[0] for action in actions]
    sim.close()
    np.testing.assert_array_equal(context.frames, np.stack(frames[1::2]))
    np.testing.assert_allclose(context.actions, actions.reshape(NUM_PAST, 2, ACTION_DIM).mean(1), atol=1e-6)
