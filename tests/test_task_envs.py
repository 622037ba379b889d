"""Tasks in the world-model envs: task starts, the probe's reward, is_success, truncation, and bad input."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hwm_env  # noqa: F401  (registers the ids, headless MuJoCo)
from env_fixtures import build_checkpoints, build_probe_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-envs")
    return {**build_checkpoints(root), "probe": build_probe_checkpoint(root / "probe")}


def test_the_reward_is_the_task_reward_of_the_probes_reading_of_the_predicted_frame(tiny):
    from hwm_env.tasks import Readout
    from models.probe import load_probe

    env = gym.make("HWM-Flow-v0", checkpoint=str(tiny["flow"]), task="look-at", probe=str(tiny["probe"]),
                   device="cpu")
    probe = load_probe(tiny["probe"])
    observation, info = env.reset(seed=3)
    episode = env.unwrapped.imagination.task_episodes[0]
    task = env.unwrapped.task
    assert task.name == "look-at" and episode.task == "look-at"
    np.testing.assert_array_equal(observation, episode.start_frame)  # the episode starts at the task's start
    assert isinstance(info["is_success"], bool) and np.isfinite(info["task_error"])
    for _ in range(3):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        readout = Readout.from_targets(probe.predict(observation[None])[0], probe.target_names, "look-at")
        assert reward == pytest.approx(float(task.reward(readout, episode)), rel=1e-5, abs=1e-6)
        assert info["task_error"] == pytest.approx(float(task.error(readout, episode)), rel=1e-5, abs=1e-6)
        assert info["is_success"] == bool(task.is_success(readout, episode))
        assert not terminated and not truncated
    env.close()


def test_task_episodes_truncate_at_the_tasks_length_and_repeat_under_a_seed(tiny):
    env = gym.make("HWM-Masked-v0", checkpoint=str(tiny["masked"]), task="aim", probe=str(tiny["probe"]),
                   obs_mode="latent", device="cpu")
    length = env.unwrapped.task.max_episode_steps
    first, _ = env.reset(seed=5)
    rewards, truncated, steps = [], False, 0
    while not truncated:
        _, reward, _, truncated, _ = env.step(np.zeros(25, np.float32))
        rewards.append(reward)
        steps += 1
    assert steps == length
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    assert env.step(np.zeros(25, np.float32))[1] == rewards[0]
    env.close()


def test_vector_env_poses_the_task_in_every_sub_env(tiny):
    envs = gym.make_vec("HWM-Flow-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        checkpoint=str(tiny["flow"]), task="reach", probe=str(tiny["probe"]), obs_mode="latent",
                        device="cpu")
    _, infos = envs.reset(seed=0)
    assert infos["is_success"].shape == (3,) and infos["task_error"].shape == (3,)
    starts = [episode.start_frame for episode in envs.unwrapped.imagination.task_episodes]
    assert not np.array_equal(starts[0], starts[1])  # each sub-env draws its own start
    _, rewards, _, _, infos = envs.step(np.zeros((3, 25), np.float32))
    assert rewards.shape == (3,) and np.isfinite(rewards).all() and np.isfinite(infos["task_error"]).all()
    envs.close()


def test_task_bad_input(tiny, tmp_path):
    from models.checkpoint import save_checkpoint
    from models.probe import ProbeConfig, StateProbe

    kwargs = dict(checkpoint=str(tiny["flow"]), device="cpu")
    with pytest.raises(ValueError, match="unknown task 'fly'; known: aim, look-at, reach, push"):
        gym.make("HWM-Flow-v0", task="fly", probe=str(tiny["probe"]), **kwargs)
    state_only = StateProbe(ProbeConfig(channels=[8, 8, 8, 8], feature_dim=16, norm_groups=4,
                                        target_names=[f"S{i}" for i in range(25)]))
    save_checkpoint(tmp_path / "state-only", state_only.state_dict(), state_only.checkpoint_config())
    with pytest.raises(ValueError, match="look-at.*RED_BOX_X"):
        gym.make("HWM-Flow-v0", task="look-at", probe=str(tmp_path / "state-only"), **kwargs)
    with pytest.raises(ValueError, match="give either task .* or reward_fn"):
        gym.make("HWM-Flow-v0", task="aim", probe=str(tiny["probe"]), reward_fn=lambda *a: 0.0, **kwargs)
    with pytest.raises(ValueError, match="context_source must be 'sim'"):
        gym.make("HWM-Flow-v0", task="aim", probe=str(tiny["probe"]), context_source=str(tmp_path), **kwargs)
    env = gym.make("HWM-Flow-v0", task="aim", probe=str(tiny["probe"]), **kwargs)
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="starts from the task's start distribution"):
        env.reset(options={"frames": frames, "actions": np.zeros((2, 25), np.float32)})
    env.close()
