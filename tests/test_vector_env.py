"""HWMVectorEnv (the registered vector_entry_point) and the SB3 HWMVecEnv, with tiny real checkpoints."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import hwm_env  # noqa: F401  (registers the ids)
from env_fixtures import ACTION_DIM, build_checkpoints
from hwm_env.vector_env import HWMVectorEnv
from hwm_env.world_model_env import HWMEnv

ENV_IDS = {"flow": "HWM-Flow-v0", "masked": "HWM-Masked-v0"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("vector-checkpoints"))


def random_actions(seed: int, steps: int, num_envs: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, num_envs, ACTION_DIM)).astype(np.float32)


def count_predict_calls(runner) -> list[int]:
    """Wrap runner.model.predict; the list collects the batch size of every call."""
    calls: list[int] = []
    predict = runner.model.predict

    def counted(past_latents, *args, **kwargs):
        calls.append(int(past_latents.shape[0]))
        return predict(past_latents, *args, **kwargs)

    runner.model.predict = counted
    return calls


def test_make_vec_uses_the_batched_env(checkpoints):
    envs = gym.make_vec("HWM-Flow-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        checkpoint=str(checkpoints["flow"]), obs_mode="latent")
    assert isinstance(envs.unwrapped, HWMVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.unwrapped.max_episode_steps == 200  # from the registered spec
    assert envs.action_space.shape == (3, ACTION_DIM) and envs.observation_space.shape == (3, 4, 8, 8)
    observations, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(observations) and infos["step"].tolist() == [0, 0, 0]
    envs.step(envs.action_space.sample())  # the first batched call learns how the model takes generators
    calls = count_predict_calls(envs.unwrapped.runner)
    observations, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    assert calls == [3]  # ONE batched model call for the three envs
    assert rewards.dtype == np.float64 and terminations.dtype == bool and truncations.dtype == bool
    assert envs.observation_space.contains(observations) and infos["step"].tolist() == [2, 2, 2]
    envs.close()


@pytest.mark.parametrize("family,obs_mode", [("flow", "latent"), ("masked", "latent"), ("flow", "rgb")])
def test_batched_step_equals_single_env_steps(checkpoints, family, obs_mode):
    num_envs, steps, seed = 3, 3, 11
    actions = random_actions(0, steps, num_envs)
    envs = HWMVectorEnv(num_envs=num_envs, checkpoint=checkpoints[family], obs_mode=obs_mode)
    batched = [envs.reset(seed=seed)[0]]
    for step in range(steps):
        batched.append(envs.step(actions[step])[0])
    assert envs.runner.per_sample_generators  # both families take one generator per batch row
    envs.close()
    for i in range(num_envs):
        env = HWMEnv(checkpoint=checkpoints[family], obs_mode=obs_mode)
        single = [env.reset(seed=seed + i)[0]]
        for step in range(steps):
            single.append(env.step(actions[step, i])[0])
        env.close()
        for step, observation in enumerate(single):
            if obs_mode == "rgb":  # decoded frames may round one level apart across batch sizes
                difference = np.abs(batched[step][i].astype(int) - observation.astype(int))
                assert difference.max() <= 1, f"env {i} step {step}"
            else:
                np.testing.assert_allclose(batched[step][i], observation, atol=1e-4, err_msg=f"env {i} step {step}")


def test_next_step_autoreset_and_truncation(checkpoints):
    envs = gym.make_vec("HWM-Masked-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        checkpoint=str(checkpoints["masked"]), obs_mode="latent", max_episode_steps=2)
    envs.reset(seed=0)
    zeros = np.zeros((2, ACTION_DIM), np.float32)
    assert not envs.step(zeros)[3].any()
    _, _, terminations, truncations, infos = envs.step(zeros)
    assert truncations.all() and not terminations.any() and infos["step"].tolist() == [2, 2]
    calls = count_predict_calls(envs.unwrapped.runner)
    _, rewards, terminations, truncations, infos = envs.step(zeros)  # both envs reset, the actions are ignored
    assert calls == [] and infos["step"].tolist() == [0, 0] and not truncations.any() and rewards.tolist() == [0, 0]
    envs.step(zeros)
    assert calls == [2]
    envs.close()


def test_same_step_autoreset_reports_final_observation(checkpoints):
    envs = HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], obs_mode="latent", max_episode_steps=1,
                        autoreset_mode="SameStep")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    observations, _, _, truncations, infos = envs.step(np.zeros((2, ACTION_DIM), np.float32))
    assert truncations.all() and infos["_final_obs"].all() and infos["step"].tolist() == [0, 0]
    assert infos["final_obs"][0].shape == (4, 8, 8) and not np.array_equal(infos["final_obs"][0], observations[0])
    envs.close()


def test_reset_mask_resets_only_some_envs(checkpoints):
    envs = HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], obs_mode="latent", autoreset_mode="Disabled")
    first, _ = envs.reset(seed=0)
    stepped, *_ = envs.step(np.zeros((2, ACTION_DIM), np.float32))
    observations, infos = envs.reset(options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(observations[1], stepped[1])
    assert infos["_step"].tolist() == [True, False] and envs.imagination.elapsed_steps.tolist() == [0, 1]
    envs.close()


def test_render_returns_one_frame_per_env(checkpoints):
    envs = HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], obs_mode="latent", render_mode="rgb_array")
    envs.reset(seed=0)
    envs.step(np.zeros((2, ACTION_DIM), np.float32))
    frames = envs.render()
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    envs.close()


def test_bad_inputs_raise_clearly_and_envs_stay_usable(checkpoints):
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec("HWM-Flow-v0", num_envs=0, vectorization_mode="vector_entry_point",
                     checkpoint=str(checkpoints["flow"]))
    with pytest.raises(ValueError, match="autoreset_mode"):
        HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], autoreset_mode="sometimes")
    envs = HWMVectorEnv(num_envs=2, checkpoint=checkpoints["flow"], obs_mode="latent")
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros((2, ACTION_DIM), np.float32))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=rf"\(2, {ACTION_DIM}\)"):
        envs.step(np.zeros((3, ACTION_DIM), np.float32))
    bad = np.zeros((2, ACTION_DIM), np.float32)
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        envs.step(bad)
    with pytest.raises(ValueError, match="seeds"):
        envs.reset(seed=[1, 2, 3])
    assert envs.imagination.elapsed_steps.tolist() == [0, 0]
    observations, *_ = envs.step(np.zeros((2, ACTION_DIM), np.float32))
    assert envs.observation_space.contains(observations)
    envs.close()


def test_sb3_vec_env_protocol(checkpoints):
    from hwm_env.sb3 import HWMVecEnv

    venv = HWMVecEnv(num_envs=2, checkpoint=checkpoints["masked"], obs_mode="latent", max_episode_steps=3)
    venv.seed(5)
    first = venv.reset()
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), first)  # seeds apply to the next reset
    zeros = np.zeros((2, ACTION_DIM), np.float32)
    venv.step(zeros)  # the first batched call learns how the model takes generators
    calls = count_predict_calls(venv.vector_env.runner)
    observations, rewards, dones, infos = venv.step(zeros)
    assert calls == [2] and not dones.any() and rewards.dtype == np.float32 and infos[0]["step"] == 2
    observations, rewards, dones, infos = venv.step(zeros)  # time limit: same-step autoreset
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert infos[0]["terminal_observation"].shape == (8, 8) and observations.shape == (2, 8, 8)
    assert infos[0]["step"] == 0  # the returned observation already starts the next episode
    assert venv.get_attr("render_mode") == [None, None] and venv.env_is_wrapped(gym.Wrapper) == [False, False]
    venv.close()


def test_sb3_ppo_learns_to_raise_the_rewarded_action(checkpoints):
    """Reward = the first action entry (a bandit: gamma 0). A short seeded PPO run must raise it."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from hwm_env.sb3 import HWMVecEnv

    class RolloutRewards(BaseCallback):
        def __init__(self):
            super().__init__()
            self.means: list[float] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.means.append(float(self.model.rollout_buffer.rewards.mean()))

    venv = HWMVecEnv(num_envs=4, checkpoint=checkpoints["flow"], obs_mode="latent", max_episode_steps=16,
                     reward_fn=lambda latent, frame, action: float(action[0]))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=4, learning_rate=1e-2, gamma=0.0, seed=0,
                device="cpu", policy_kwargs={"net_arch": [32]})
    before = model.predict(venv.reset(), deterministic=True)[0][:, 0]
    rewards = RolloutRewards()
    model.learn(total_timesteps=1024, callback=rewards)
    after = model.predict(venv.reset(), deterministic=True)[0][:, 0]
    venv.close()
    assert model.num_timesteps == 1024 and len(rewards.means) == 8
    # a random policy earns 0 on average; the trained one pushes the entry toward its bound
    assert np.mean(rewards.means[:2]) < 0.15 and np.mean(rewards.means[-2:]) > 0.3
    assert np.abs(before).max() < 0.3 and after.min() > 0.5
