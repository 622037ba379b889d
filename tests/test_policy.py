"""Policy learning in imagination (train/policy/): the worlds PPO trains in, the scoring, the script end to end."""
from __future__ import annotations

import dataclasses
import gc
import json
import warnings

import numpy as np
import pytest

import hwm_env  # noqa: F401  (registers the ids)
from env_fixtures import ACTION_DIM, NUM_PAST, build_checkpoints
from scripts import load_script
from hwm_env.sim import layout
from hwm_env.sim.goals import SUCCESS_THRESHOLD
from planners.benchmark import Protocol, make_episodes
from train.policy import (
    Commander,
    DataGoals,
    GoalObservation,
    LatentFeatures,
    PolicyExperiment,
    SimGoalReaching,
    TaskSettings,
    evaluate_in_sim,
    hold_actor,
    latent_distance,
    make_imagination_env,
)

TASK = TaskSettings(horizon=3, goal_min_steps=1, goal_max_steps=3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("policy-checkpoints"))


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    """A tiny HWM-Sim-v0 data set (exploration policy), as `hwm data sim` writes it."""
    from hwm_env.sim.commands import generate_dataset

    root = tmp_path_factory.mktemp("policy-data") / "sim"
    generate_dataset(root, episodes=3, steps=14, seed=0, progress=False)
    return root


def imagination(checkpoints, sim_data, family: str, policy: str, task: TaskSettings = TASK, num_envs: int = 2):
    experiment = PolicyExperiment(data=str(sim_data), model=family, checkpoint=str(checkpoints[family]),
                                  num_envs=num_envs, task=task)
    return make_imagination_env(experiment, policy, seed=3)


@pytest.mark.parametrize("family", ["flow", "masked"])
def test_imagined_reward_is_minus_the_latent_distance_the_policy_sees(checkpoints, sim_data, family):
    env = imagination(checkpoints, sim_data, family, "mlp")
    features = LatentFeatures(env.runner.tokenizer)
    dim = features.dim
    observations = env.reset()
    assert observations.shape == (2, 2 * dim + 2 * ACTION_DIM) and observations.dtype == np.float32
    assert env.observation_space.contains(observations[0])
    # the goal part is the encoded data-set goal frame; the commands start at the context's last action,
    # with the base told to stand still
    np.testing.assert_allclose(observations[:, dim:2 * dim], features.encode(env.goal_frames), atol=1e-6)
    commands = observations[:, 2 * dim:]
    np.testing.assert_array_equal(commands[:, :ACTION_DIM], commands[:, ACTION_DIM:])
    assert np.all(commands[:, layout.BASE_SLICE] == 0.0)

    policy_actions = np.random.default_rng(0).uniform(-1, 1, (2, env.action_space.shape[0])).astype(np.float32)
    observations, rewards, dones, infos = env.step(policy_actions)
    assert rewards.shape == (2,) and not dones.any()
    current, goal = observations[:, :dim], observations[:, dim:2 * dim]
    np.testing.assert_allclose(rewards, -latent_distance(current, goal), rtol=1e-4, atol=1e-6)
    assert np.all(rewards < 0)
    # the world model was given the policy's targets for the goal joints, the start command elsewhere
    expected = Commander(ACTION_DIM, TASK, -1.0, 1.0).step(commands, policy_actions)
    np.testing.assert_allclose(observations[:, 2 * dim:], expected, atol=1e-6)
    np.testing.assert_allclose(env.vector_env.imagination.past_actions[:, -1].numpy(), expected[:, :ACTION_DIM],
                               atol=1e-6)
    env.close()


@pytest.mark.parametrize("mode", ["offset", "delta"])
def test_commander_moves_only_the_goal_joints_around_the_start(mode):
    from hwm_env.sim.goals import GOAL_JOINTS

    task = dataclasses.replace(TASK, action_mode=mode)
    commander = Commander(ACTION_DIM, task, -1.0, 1.0)
    assert commander.space.shape == (len(GOAL_JOINTS),)
    last_action = np.linspace(-0.5, 0.5, ACTION_DIM, dtype=np.float32)[None]
    commands = commander.start(last_action)
    u = np.full((1, len(GOAL_JOINTS)), 0.5, np.float32)
    for _ in range(3):
        commands = commander.step(commands, u)
    action = commander.action(commands)[0]
    moved = 0.5 * (task.max_offset if mode == "offset" else 3 * task.max_delta)  # offsets do not accumulate
    np.testing.assert_allclose(action[list(GOAL_JOINTS)], np.clip(last_action[0, list(GOAL_JOINTS)] + moved, -1, 1),
                               atol=1e-6)
    others = [i for i in range(ACTION_DIM) if i not in GOAL_JOINTS and i not in range(ACTION_DIM)[layout.BASE_SLICE]]
    np.testing.assert_array_equal(action[others], last_action[0, others])  # legs and grippers hold
    assert np.all(action[layout.BASE_SLICE] == 0.0)  # the base stands still
    np.testing.assert_array_equal(commands[0, ACTION_DIM:], commander.start(last_action)[0, :ACTION_DIM])
    np.testing.assert_array_equal(commander.action(commander.step(commands, np.full_like(u, 9.0))),
                                  commander.action(commander.step(commands, np.ones_like(u))))  # u is clipped


def test_truncated_episodes_restart_from_new_data_goals(checkpoints, sim_data):
    env = imagination(checkpoints, sim_data, "flow", "cnn", task=dataclasses.replace(TASK, horizon=2))
    observations = env.reset()
    assert observations["image"].shape == (2, 64, 64, 6) and observations["image"].dtype == np.uint8
    np.testing.assert_array_equal(observations["image"][..., 3:], env.goal_frames)
    old_goals = env.goal_frames.copy()
    zeros = np.zeros((2, env.action_space.shape[0]), np.float32)
    env.step(zeros)
    observations, rewards, dones, infos = env.step(zeros)
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        terminal = info["terminal_observation"]
        assert env.observation_space.contains(terminal)
        np.testing.assert_array_equal(terminal["image"][..., 3:], old_goals[i])  # the finished episode's goal
        assert info["final_distance"] == pytest.approx(-rewards[i])
    np.testing.assert_array_equal(observations["image"][..., 3:], env.goal_frames)  # the new episodes' goals
    assert not np.array_equal(env.goal_frames, old_goals)
    assert env.vector_env.imagination.elapsed_steps.tolist() == [0, 0]
    assert env.vector_env.imagination.has_goal.all()  # the env pays the goal reward in the new episodes too
    env.close()


def test_data_goals_are_frames_ahead_in_the_same_episode(tmp_path):
    """Frames and actions carry their own index, so the sampled window can be checked exactly."""
    from models.data.hwm_format import HWMWriter

    lengths = (9, 12)
    with HWMWriter(tmp_path / "data" / "train", 64, 64, action_dim=ACTION_DIM, fps=15,
                   action_names=[f"a{i}" for i in range(ACTION_DIM)], source="test") as writer:
        start = 0
        for length in lengths:
            index = start + np.arange(length)
            frames = np.broadcast_to((index % 256).astype(np.uint8)[:, None, None, None], (length, 64, 64, 3))
            actions = np.repeat(index[:, None], ACTION_DIM, 1).astype(np.float32)
            writer.add_episode(np.ascontiguousarray(frames), actions)
            start += length
    (tmp_path / "data" / "val").mkdir()
    task = TaskSettings(goal_min_steps=2, goal_max_steps=4)
    goals = DataGoals(tmp_path / "data" / "train", NUM_PAST, (64, 64), ACTION_DIM, task)
    assert goals.num_frames == sum(lengths)
    rng = np.random.default_rng(0)
    offsets = set()
    for _ in range(40):
        sample = goals.sample(rng)
        context = sample["frames"][:, 0, 0, 0].astype(int)
        goal = int(sample["goal"][0, 0, 0])
        assert np.all(np.diff(context) == 1)
        np.testing.assert_array_equal(sample["actions"][:, 0], context - 1)  # the action INTO each context frame
        offsets.add(goal - context[-1])
        episode_of = lambda frame: 0 if frame < lengths[0] else 1  # noqa: E731
        assert episode_of(goal) == episode_of(context[0] - 1)
    assert offsets == {2, 3, 4}


def test_sim_world_counts_every_real_frame(checkpoints):
    from models.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(checkpoints["flow"] / "tokenizer")
    envs = [SimGoalReaching(2, tokenizer, "mlp", TASK, NUM_PAST, seed=5) for _ in range(2)]
    first = [env.reset() for env in envs]
    np.testing.assert_array_equal(first[0], first[1])  # seeded
    env = envs[0]
    after_reset = env.real_frames
    assert 2 * (NUM_PAST + TASK.goal_min_steps) <= after_reset <= 2 * (NUM_PAST + TASK.goal_max_steps)
    features = LatentFeatures(tokenizer)
    observations, rewards, dones, infos = env.step(np.ones((2, env.action_space.shape[0]), np.float32))
    assert env.real_frames == after_reset + 2
    np.testing.assert_allclose(observations[:, : features.dim], features.encode(env.frames), atol=1e-6)
    np.testing.assert_allclose(rewards, -latent_distance(features.encode(env.frames), env.goal_features), rtol=1e-5)
    for _ in range(TASK.horizon - 1):
        observations, rewards, dones, infos = env.step(np.zeros((2, env.action_space.shape[0]), np.float32))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert env.real_frames > after_reset + 2 * TASK.horizon  # the new episodes' starts and goals count too
    for env in envs:
        env.close()


def test_scoring_on_the_benchmark_goal_set_rewards_reaching_the_goal(checkpoints):
    """A policy that steers to the goal pose succeeds; holding the start pose does not."""
    from hwm_env.sim.env import HWMSimEnv
    from models.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(checkpoints["flow"] / "tokenizer")
    features = LatentFeatures(tokenizer)
    from hwm_env.sim.goals import VIEW_JOINTS
    from hwm_env.tasks import make_task

    protocol = Protocol(task="aim", episodes=2)
    sim = HWMSimEnv()
    episodes = make_episodes(sim, make_task("aim"), protocol, domain="policy-scoring")

    def goal_action(episode):
        action = episode.hold_action.copy()
        state = np.zeros(25, np.float32)
        state[list(VIEW_JOINTS)] = episode.task_episode.target
        action[list(VIEW_JOINTS)] = sim.action_from_state(state)[list(VIEW_JOINTS)]
        return action

    wide = dataclasses.replace(TASK, max_offset=2.0)  # any goal in the joint range
    commander = Commander(ACTION_DIM, wide, -1.0, 1.0)
    observation = GoalObservation("mlp", features.dim, (64, 64), sim.action_space.low, sim.action_space.high)
    goal_actions = {features.encode(e.goal_frame[None]).tobytes(): goal_action(e) for e in episodes}

    def steer_to_goal(obs, rng):  # finds its episode's goal through the goal part of the observation
        goal_action = goal_actions[obs[:, features.dim:2 * features.dim].tobytes()]
        start = obs[0, 2 * features.dim + ACTION_DIM:]
        return np.clip((goal_action - start)[commander.dims] / wide.max_offset, -1, 1)[None]

    reached = evaluate_in_sim(steer_to_goal, episodes, sim, features, observation, commander, protocol, progress=False)
    held = evaluate_in_sim(hold_actor(len(commander.dims)), episodes, sim, features, observation, commander, protocol,
                           progress=False)
    sim.close()
    assert all(reached["successes"]) and not any(held["successes"])
    assert max(reached["errors"]) < 0.03 < min(held["errors"])
    assert np.mean(reached["final_distances"]) < np.mean(held["final_distances"])


def run_example(argv: list[str]) -> int:
    return load_script("examples/ppo_in_imagination.py").main(argv)


def test_quick_run_writes_the_results_table(checkpoints, sim_data, tmp_path):
    out = tmp_path / "policy"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        code = run_example(["--checkpoint", str(checkpoints["flow"]), "--data", str(sim_data), "--out", str(out),
                            "--quick", "--no-progress"])
        gc.collect()
    assert code == 0
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "progress.csv" in str(w.message)]
    assert leaked == []  # each run's CSV log is closed when its training ends
    results = json.loads((out / "results.json").read_text())
    rows = {row["row"]: row for row in results["rows"]}
    assert list(rows) == ["imagination-mlp", "sim-budget-mlp", "sim-unlimited-mlp", "random", "hold"]
    train_frames = results["data"]["train_frames"]
    assert train_frames == 2 * 14  # the two training episodes of the data set
    assert rows["imagination-mlp"]["real_frames"] == train_frames and rows["imagination-mlp"]["imagined_frames"] >= 32
    budget = results["real_budget"]
    assert budget == 48  # --quick caps the budget
    # the sim-budget row stops at its budget (up to one batched step and its episode starts)
    assert budget <= rows["sim-budget-mlp"]["real_frames"] <= budget + 2 * (1 + NUM_PAST + 3)
    assert rows["sim-unlimited-mlp"]["real_frames"] >= 64
    for name, row in rows.items():
        assert row["episodes"] == 2 and np.isfinite(row["final_error_mean"])
        assert row["successes"] == sum(error < SUCCESS_THRESHOLD for error in row["final_errors"])
        assert row["success_rate"] == row["successes"] / 2 and row["task"] == "aim"
    # scored on aim episodes of the policy-scoring domain: holding the start pose never reaches the goal there
    assert rows["hold"]["successes"] == 0 and min(rows["hold"]["final_errors"]) > SUCCESS_THRESHOLD
    for name in ("imagination-mlp", "sim-budget-mlp", "sim-unlimited-mlp"):
        assert (out / f"{name}.zip").is_file() and (out / name / "progress.csv").is_file()
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 1 + len(rows)  # header + one line per row
    assert "Flow-HWM imagination" in table and "HWM-Sim-v0, same real budget" in table


def test_cli_refuses_bad_input(checkpoints, sim_data, tmp_path, capsys):
    from hwm_env.cli import main

    base = ["train", "policy", "--data", str(sim_data), "--out", str(tmp_path / "out"), "--quick", "--no-progress"]
    assert main([*base, "--model", "masked", "--checkpoint", str(checkpoints["flow"])]) == 2
    assert "'flow' checkpoint" in capsys.readouterr().err
    assert main(["train", "policy", "--checkpoint", str(checkpoints["flow"]), "--data", str(tmp_path / "missing"),
                 "--quick"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(checkpoints["flow"]), "--goal-steps", "5"]) == 2
    assert "--goal-steps" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(checkpoints["flow"]), "--ppo", "n_layers=3"]) == 2
    assert "unknown setting 'n_layers'" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(checkpoints["flow"]), "--policies", "mlp,rnn"]) == 2
    assert "policies" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_wandb_output_logs_numbers_under_the_row_name():
    from train.policy import WandbOutput

    class Run:
        logged: list[dict] = []

        def log(self, values):
            self.logged.append(values)

    run = Run()
    WandbOutput(run, "imagination-mlp").write({"rollout/ep_rew_mean": np.float32(-0.5), "train/n_updates": 3,
                                               "time/note": "text"}, {}, step=1024)
    assert run.logged == [{"imagination-mlp/rollout/ep_rew_mean": -0.5, "imagination-mlp/train/n_updates": 3.0,
                           "imagination-mlp/timesteps": 1024}]
