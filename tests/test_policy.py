"""Policies for a task (train/policy/): both worlds, the observation, scoring, ranking, the CLI end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import hwm_env  # noqa: F401  (registers the ids)
from env_fixtures import build_checkpoints, build_probe_checkpoint
from scripts import load_script
from hwm_env.sim import layout
from hwm_env.tasks import Readout, make_task
from planners.benchmark import QUICK_PROTOCOL, Protocol
from train.policy import (
    Commander,
    ControlSettings,
    ImaginedTask,
    PolicyExperiment,
    PolicySetup,
    SimTask,
    TaskObservation,
    aim_feed_forward_policy,
    hold_policy,
    noisy_policy,
    random_policy,
    score_in_imagination,
    draw_task_starts,
)
from train.policy.ranking import rank_agreement


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    from hwm_env.sim.commands import generate_dataset

    generate_dataset(root / "sim", episodes=3, steps=14, seed=0, progress=False)
    return {**build_checkpoints(root), "probe": build_probe_checkpoint(root / "probe"), "data": root / "sim"}


def make_setup(tiny, task="aim", episodes=3, steps=8, family="flow") -> PolicySetup:
    scoring = Protocol(task=task, episodes=episodes, steps=steps, action_repeat=1)
    return PolicySetup(PolicyExperiment(data=str(tiny["data"]), task=task, model=family,
                                        checkpoint=str(tiny[family]), probe=str(tiny["probe"]), scoring=scoring,
                                        progress=False))


@pytest.mark.parametrize("mode", ["offset", "delta"])
def test_commander_moves_only_the_tasks_joints_around_the_start(mode):
    task = make_task("reach")
    control = ControlSettings(action_mode=mode)
    commander = Commander(task.controlled, control)
    hold = np.linspace(-0.5, 0.5, 25, dtype=np.float32)[None]
    commands = commander.start(hold)
    u = np.full((1, len(task.controlled)), 0.5, np.float32)
    for _ in range(3):
        commands = commander.step(commands, u)
    action = commander.action(commands)[0]
    moved = 0.5 * (control.max_offset if mode == "offset" else 3 * control.max_delta)  # offsets do not accumulate
    dims = list(task.controlled)
    np.testing.assert_allclose(action[dims], np.clip(hold[0, dims] + moved, -1, 1), atol=1e-6)
    others = [i for i in range(25) if i not in dims]
    np.testing.assert_array_equal(action[others], hold[0, others])  # everything else holds the start command
    np.testing.assert_array_equal(commander.controlled_commands(commands)[0],
                                  np.concatenate([action[dims], hold[0, dims]]))
    np.testing.assert_array_equal(commander.action(commander.step(commands, np.full_like(u, 9.0))),
                                  commander.action(commander.step(commands, np.ones_like(u))))  # u is clipped
    with pytest.raises(ValueError, match="indices into the 25-d action"):
        Commander([30], control)


def test_the_observation_is_the_probes_reading_the_task_and_the_commands(tiny):
    from models.probe import load_probe

    probe = load_probe(tiny["probe"])
    task = make_task("reach")
    episodes, frames_used = draw_task_starts(task, 2, seed=5, resolution=64)
    assert frames_used == 2 * task.settle_steps
    commander = Commander(task.controlled, ControlSettings())
    observation = TaskObservation.for_episode(task, probe, commander, episodes[0])
    frames = np.stack([episode.start_frame for episode in episodes])
    commands = commander.start(np.stack([episode.hold_action for episode in episodes]))
    built = observation.build(observation.read(frames), episodes, commands)
    assert built.shape == (2, observation.size) and observation.space.contains(built[0])
    np.testing.assert_allclose(observation.part(built, "probe"),
                               (probe.predict(frames) - probe.target_mean) / probe.target_std, rtol=1e-5, atol=1e-5)
    task_part = observation.part(built, "task")
    for row, episode in enumerate(episodes):
        assert task_part[row, :4].tolist() == [float(i == episode.object_index) for i in range(4)]
        np.testing.assert_allclose(task_part[row, 4:], np.ravel(episode.target), rtol=1e-6)
    np.testing.assert_array_equal(observation.part(built, "commands"), commander.controlled_commands(commands))
    aim_episode = draw_task_starts(make_task("aim"), 1, seed=5, resolution=64)[0]
    with pytest.raises(ValueError, match="'reach' policy observation got a 'aim' episode"):
        observation.build(observation.read(frames[:1]), aim_episode, commands[:1])


def test_imagined_episodes_start_from_the_pool_pay_the_probes_task_reward_and_bootstrap(tiny):
    from hwm_env.imagined_task import ProbeTaskReward

    setup = make_setup(tiny, task="aim")
    pool, _ = draw_task_starts(setup.task, 2, seed=1, resolution=64)
    env = setup.imagination_env(pool, num_envs=3, horizon=2, seed=0)
    try:
        observations = env.reset()
        assert observations.shape == (3, setup.observation.size)
        imagination = env.vector_env.imagination
        assert all(any(episode is start for start in pool) for episode in imagination.task_episodes)
        reward_of = ProbeTaskReward(setup.task, tiny["probe"])
        u = np.full((3, env.action_space.shape[0]), 0.3, np.float32)
        observations, rewards, dones, _ = env.step(u)
        assert not dones.any()
        frames = imagination.frames_of(range(3))
        expected, _, _ = reward_of(frames, imagination.task_episodes)
        np.testing.assert_allclose(rewards, expected, rtol=1e-5)
        # the observation is the probe's reading of the same predicted frames
        probe = setup.observation.probe
        np.testing.assert_allclose(setup.observation.part(observations, "probe"),
                                   (probe.predict(frames) - probe.target_mean) / probe.target_std, rtol=1e-5, atol=1e-5)
        _, _, dones, infos = env.step(u)
        assert dones.all()  # the horizon: truncated, so PPO bootstraps the value of the terminal observation
        for info in infos:
            assert info["TimeLimit.truncated"] is True
            assert info["terminal_observation"].shape == (setup.observation.size,)
        assert imagination.elapsed_steps.tolist() == [0, 0, 0]  # restarted in the same step
        # the new episodes' commands start at their own hold action
        np.testing.assert_array_equal(env.commands[:, :25], np.stack([e.hold_action for e in imagination.task_episodes]))
    finally:
        env.close()
        setup.close()


def test_the_simulator_world_pays_the_true_task_reward_and_counts_real_frames(tiny):
    setup = make_setup(tiny, task="aim")
    env = setup.sim_env(num_envs=2, horizon=2, seed=4)
    try:
        env.reset()
        assert env.real_frames == 2 * setup.task.settle_steps
        u = np.zeros((2, env.action_space.shape[0]), np.float32)
        _, rewards, dones, _ = env.step(u)
        for i, sim in enumerate(env.sims):
            assert rewards[i] == pytest.approx(float(setup.task.reward(Readout.from_sim(sim), sim.unwrapped.episode)))
        _, _, dones, _ = env.step(u)
        assert dones.all() and env.real_frames == 4 * setup.task.settle_steps + 4  # two restarts, four steps
        restarted = [sim.unwrapped.episode.seed for sim in env.sims]
        env.seed(4)
        env.reset()  # the stream starts over: the first two episodes again
        first = [sim.unwrapped.episode.seed for sim in env.sims]
        assert first != restarted and len(set(first + restarted)) == 4
        env.seed(4)
        env.reset()
        assert [sim.unwrapped.episode.seed for sim in env.sims] == first
    finally:
        env.close()
        setup.close()


def test_aims_feed_forward_controller_succeeds_in_the_simulator_where_random_and_hold_fail(tiny):
    setup = make_setup(tiny, task="aim", episodes=4, steps=24)
    try:
        size = setup.commander.space.shape[0]
        feed_forward = aim_feed_forward_policy(setup.observation, setup.commander, setup.sim.action_from_state)
        results = {name: setup.score(policy, name) for name, policy in
                   (("feed-forward", feed_forward), ("random", random_policy(size)), ("hold", hold_policy(size)))}
        assert sum(results["feed-forward"]["successes"]) >= 3
        assert sum(results["random"]["successes"]) == 0 and sum(results["hold"]["successes"]) == 0
    finally:
        setup.close()


def test_scoring_in_imagination_runs_the_same_episodes_in_order_batched(tiny):
    setup = make_setup(tiny, task="aim", episodes=3, steps=2)
    try:
        size = setup.commander.space.shape[0]
        seen = []

        def recording_hold(observations, rng):
            seen.append(setup.observation.part(observations, "task").copy())
            return hold_policy(size)(observations, rng)

        result = score_in_imagination(recording_hold, setup.episodes, setup.observation, setup.commander, 2,
                                      batch_size=2, progress=False, **setup.world_model)
        assert len(result["errors"]) == 3 and len(result["successes"]) == 3
        targets = [np.ravel(episode.task_episode.target) for episode in setup.episodes]
        np.testing.assert_allclose(seen[0][:, 4:], targets[:2], rtol=1e-6)  # batch 1: episodes 0 and 1
        np.testing.assert_allclose(seen[2][0, 4:], targets[2], rtol=1e-6)  # batch 2: episode 2 (+ a spare)
        again = score_in_imagination(hold_policy(size), setup.episodes, setup.observation, setup.commander, 2,
                                     batch_size=2, progress=False, **setup.world_model)
        assert again["errors"] == pytest.approx(result["errors"])  # seeded by the episodes: reproducible
    finally:
        setup.close()


def test_noisy_policy_mixes_in_random_actions_at_its_rate():
    base = hold_policy(4)
    rng = np.random.default_rng(0)
    actions = noisy_policy(base, 4, 0.25)(np.zeros((4000, 3)), rng)
    assert np.mean(np.any(actions != 0, axis=1)) == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match="epsilon"):
        noisy_policy(base, 4, 1.5)


def test_rank_agreement_on_known_inputs():
    assert rank_agreement([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.6, 0.9]) == {"spearman": 1.0, "kendall": 1.0}
    assert rank_agreement([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == {"spearman": -1.0, "kendall": -1.0}
    swapped = rank_agreement([1, 2, 3, 4], [2, 1, 3, 4])  # one discordant pair of six
    assert swapped["kendall"] == pytest.approx(4 / 6) and swapped["spearman"] == pytest.approx(0.8)
    assert all(math.isnan(value) for value in rank_agreement([0.5, 0.5], [0.1, 0.2]).values())
    with pytest.raises(ValueError, match="two equal lists"):
        rank_agreement([0.1], [0.2])


def run_example(argv: list[str]) -> int:
    return load_script("examples/ppo_in_imagination.py").main(argv)


def test_quick_run_and_ranking_end_to_end(tiny, tmp_path):
    from hwm_env.cli import main

    out = tmp_path / "policy"
    common = ["--checkpoint", str(tiny["flow"]), "--probe", str(tiny["probe"]), "--quick", "--no-progress"]
    assert run_example(["--task", "aim", "--data", str(tiny["data"]), "--out", str(out), *common]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["row"]: row for row in results["rows"]}
    assert list(rows) == ["imagination", "sim-budget", "sim-unlimited", "random", "hold", "scripted"]
    assert results["data"]["train_frames"] == 2 * 14  # the two training episodes of the data set
    pool_frames = results["pool"]["real_frames"]
    assert pool_frames == 2 * make_task("aim").settle_steps
    assert rows["imagination"]["real_frames"] == 28 + pool_frames and rows["imagination"]["imagined_frames"] >= 32
    budget = results["real_budget"]
    assert budget == 200  # --quick caps it
    # the sim-budget row stops at its budget (up to one batched step and its episode starts)
    assert budget <= rows["sim-budget"]["real_frames"] <= budget + 2 * (1 + make_task("aim").settle_steps)
    for row in rows.values():
        assert row["episodes"] == 2 and row["task"] == "aim" and np.isfinite(row["final_error_mean"])
        assert row["successes"] == sum(error < 0.03 for error in row["final_errors"])
    assert rows["hold"]["successes"] == 0 and rows["scripted"]["successes"] == 2
    for name in ("imagination", "sim-budget", "sim-unlimited"):
        assert (out / f"{name}.zip").is_file() and (out / f"{name}.json").is_file()
        assert (out / name / "progress.csv").is_file()
    assert len(rows["imagination"]["snapshots"]) == 1  # quick: 2 snapshots, the last is the final policy
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 1 + len(rows)

    ranking = tmp_path / "ranking"
    assert main(["bench", "policies", "--task", "aim", "--run", str(out), "--out", str(ranking), "--plot",
                 str(tmp_path / "ranking.png"), *common]) == 0
    ranked = json.loads(ranking.with_suffix(".json").read_text())
    names = [row["policy"] for row in ranked["policies"]]
    assert len(names) >= 8 and {"random", "hold", "feed-forward", "imagination", "sim-unlimited"} <= set(names)
    for row in ranked["policies"]:
        assert row["rate_error"] == pytest.approx(row["imagined_rate"] - row["sim_rate"])
    assert (tmp_path / "ranking.png").stat().st_size > 0
    assert "Kendall" in ranking.with_suffix(".md").read_text()


def test_bad_input_gets_clear_errors(tiny, tmp_path, capsys):
    from hwm_env.cli import main

    base = ["train", "policy", "--data", str(tiny["data"]), "--out", str(tmp_path / "out"), "--probe",
            str(tiny["probe"]), "--no-progress"]
    flow = ["--checkpoint", str(tiny["flow"])]
    assert main([*base, "--quick", "--model", "masked", *flow]) == 2
    assert "'flow' checkpoint" in capsys.readouterr().err
    assert main([*base, "--quick", "--task", "fly", *flow]) == 2
    assert "aim" in capsys.readouterr().err  # the known tasks are listed
    assert main([*base, *flow, "--imagination-steps", "100"]) == 2
    assert "below one PPO update" in capsys.readouterr().err
    assert main([*base, "--quick", *flow, "--ppo", "n_layers=3"]) == 2
    assert "unknown setting 'n_layers'" in capsys.readouterr().err
    from models.checkpoint import save_checkpoint
    from models.probe import ProbeConfig, StateProbe

    state_only = StateProbe(ProbeConfig(image_size=[64, 64], channels=[8, 8, 8, 8], feature_dim=16, norm_groups=4,
                                        target_names=list(layout.STATE_NAMES)))
    save_checkpoint(tmp_path / "state-only", state_only.state_dict(), state_only.checkpoint_config())
    assert main([*base[:-3], "--probe", str(tmp_path / "state-only"), "--no-progress", "--quick", "--task", "reach",
                 *flow]) == 2
    assert "task 'reach' needs the targets" in capsys.readouterr().err  # the probe lacks the object positions
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_policy_for_another_task_is_refused(tiny, tmp_path):
    from stable_baselines3 import PPO

    from train.policy import save_policy
    from train.policy.ppo import load_policy

    setup = make_setup(tiny, task="aim")
    try:
        env = setup.sim_env(num_envs=1, horizon=2, seed=0)
        model = PPO("MlpPolicy", env, n_steps=2, batch_size=2)
        env.close()
        path = save_policy(model, tmp_path / "aim.zip", setup.about)
        assert load_policy(path, setup.about).observation_space.shape == (setup.observation.size,)
        with pytest.raises(ValueError, match="'task' is 'aim', this env needs 'reach'"):
            load_policy(path, {**setup.about, "task": "reach"})
        (tmp_path / "bare.zip").write_bytes(path.read_bytes())
        with pytest.raises(ValueError, match="no 'bare.json' beside it"):
            load_policy(tmp_path / "bare.zip", setup.about)
    finally:
        setup.close()
