"""HWM-Sim-v0: env checkers, determinism, action effects on the image, data round-trip, bad input."""
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import hwm_env  # noqa: F401  (registers HWM-Sim-v0, sets MUJOCO_GL)
from hwm_env.sim import layout
from hwm_env.sim.env import HWMSimEnv, SimState


@pytest.fixture(scope="module")
def env():
    sim = HWMSimEnv(resolution=64)
    yield sim
    sim.close()


def hold(env, action, steps):
    for _ in range(steps):
        frame, *_ = env.step(action)
    return frame


# ---------------------------------------------------------------- API conventions
def test_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    made = gym.make("HWM-Sim-v0")
    check_env(made.unwrapped, skip_render_check=False)
    made.close()


def test_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env

    sim = HWMSimEnv()
    check_env(sim, warn=True)
    sim.close()


def test_spaces_and_info(env):
    assert env.action_space == gym.spaces.Box(-1, 1, (25,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["state"].shape == (25,) and info["state"].dtype == np.float32
    assert info["object_poses"].shape == (4, 7)
    # the objects start on the table
    assert np.all(info["object_poses"][:, 2] > env.table_height)
    _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool


def test_resolution_128():
    sim = HWMSimEnv(resolution=128)
    obs, _ = sim.reset(seed=0)
    assert obs.shape == (128, 128, 3)
    assert sim.observation_space.shape == (128, 128, 3)
    sim.close()


def test_action_state_mapping_roundtrip(env):
    env.reset(seed=1)
    action = env.action_from_state(env.joint_state())
    joints, closures, base = env.action_to_targets(action.astype(np.float64))
    np.testing.assert_allclose(joints, env.joint_state()[:21], atol=1e-5)
    np.testing.assert_allclose(closures, env.joint_state()[21:23], atol=1e-5)
    # a held action is reached: the servos track their targets
    target = np.clip(action + np.where(action > 0, -0.3, 0.3), -1, 1)
    target[layout.BASE_SLICE] = 0
    hold(env, target, 25)
    reached = env.action_from_state(env.joint_state())
    # joints that are not blocked by the table track within 0.05 action units
    assert np.median(np.abs(reached[:21] - target[:21])) < 0.05


# ---------------------------------------------------------------- determinism
def test_same_seed_and_actions_give_identical_frames_and_states():
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 25)).astype(np.float32)
    runs = []
    for _ in range(2):
        sim = HWMSimEnv()
        obs, info = sim.reset(seed=7)
        frames, states = [obs], [info["state"]]
        for action in actions:
            obs, _, _, _, info = sim.step(action)
            frames.append(obs)
            states.append(info["state"])
        runs.append((np.stack(frames), np.stack(states)))
        sim.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_reset_seed_changes_start(env):
    obs_a, info_a = env.reset(seed=1)
    obs_b, info_b = env.reset(seed=2)
    assert not np.array_equal(info_a["object_poses"], info_b["object_poses"])
    assert not np.array_equal(obs_a, obs_b)


def test_get_set_state_resumes_exactly(env):
    env.reset(seed=3)
    actions = np.random.default_rng(1).uniform(-1, 1, (6, 25))
    hold(env, actions[0], 3)
    snapshot = env.get_state()
    first = [env.step(a)[0] for a in actions]
    state_after = env.joint_state()
    env.set_state(snapshot.copy())
    second = [env.step(a)[0] for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    np.testing.assert_array_equal(state_after, env.joint_state())
    # reset(options={"state": ...}) starts from a snapshot too
    obs, info = env.reset(options={"state": snapshot})
    assert info["state"].shape == (25,) and env.elapsed_steps == snapshot.elapsed_steps


# ---------------------------------------------------------------- actions move the image
@pytest.mark.parametrize(
    "part, indices, where",
    [
        ("left arm", list(layout.LEFT_ARM_INDICES[:4]), "left"),  # the robot's left is the image's left
        ("right arm", list(layout.RIGHT_ARM_INDICES[:4]), "right"),
        ("neck", [layout.NECK_INDEX], "all"),
        ("legs", list(layout.LEG_INDICES), "all"),
        ("base forward", [layout.LINEAR_VELOCITY_INDEX], "all"),
        ("base turn", [layout.ANGULAR_VELOCITY_INDEX], "all"),
    ],
)
def test_each_body_part_visibly_changes_the_image(env, part, indices, where):
    _, info = env.reset(seed=0)
    start = env.get_state()
    baseline = env.action_from_state(info["state"])
    changed = baseline.copy()
    changed[indices] = np.clip(changed[indices] + 0.6 * np.sign(0.01 - changed[indices]), -1, 1)
    reference = hold(env, baseline, 8).astype(np.float32)
    env.set_state(start)
    moved = hold(env, changed, 8).astype(np.float32)
    diff = np.abs(moved - reference).mean(axis=-1)  # (64, 64)
    assert diff.mean() > 3.0, f"{part}: the image barely changed ({diff.mean():.2f})"
    left, right = diff[:, :32].mean(), diff[:, 32:].mean()
    if where == "left":
        assert left > 3 * right, f"{part}: left {left:.2f} vs right {right:.2f}"
    if where == "right":
        assert right > 3 * left, f"{part}: left {left:.2f} vs right {right:.2f}"


def test_hand_closure_moves_the_fingers(env):
    _, info = env.reset(seed=0)
    action = env.action_from_state(info["state"])
    action[layout.HAND_SLICE] = 1.0
    hold(env, action, 10)
    assert np.all(env.joint_state()[layout.HAND_SLICE] > 0.9)
    action[layout.HAND_SLICE] = -1.0
    hold(env, action, 10)
    assert np.all(env.joint_state()[layout.HAND_SLICE] < 0.1)


def test_base_velocity_is_measured(env):
    _, info = env.reset(seed=0)
    action = env.action_from_state(info["state"])
    action[layout.LINEAR_VELOCITY_INDEX] = -0.8  # back away from the table
    action[layout.ANGULAR_VELOCITY_INDEX] = 0.5
    hold(env, action, 5)
    state = env.joint_state()
    np.testing.assert_allclose(state[layout.LINEAR_VELOCITY_INDEX], -0.8 * layout.MAX_LINEAR_SPEED, rtol=0.05)
    np.testing.assert_allclose(state[layout.ANGULAR_VELOCITY_INDEX], 0.5 * layout.MAX_ANGULAR_SPEED, rtol=0.05)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(24), "shape"),
        (np.zeros((1, 25)), "shape"),
        (np.full(25, np.nan), "NaN"),
        (np.concatenate([np.zeros(24), [np.inf]]), "ANGULAR_VELOCITY"),
        ("forward", "numeric"),
    ],
)
def test_bad_actions_raise(env, action, message):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_range_actions_are_clipped(env):
    env.reset(seed=0)
    start = env.get_state()
    big = np.random.default_rng(0).uniform(-3, 3, 25)
    frame_big = hold(env, big, 3)
    env.set_state(start)
    frame_clipped = hold(env, np.clip(big, -1, 1), 3)
    np.testing.assert_array_equal(frame_big, frame_clipped)


def test_bad_constructor_and_state_arguments(env):
    with pytest.raises(ValueError, match="resolution"):
        HWMSimEnv(resolution=8)
    with pytest.raises(ValueError, match="control_hz"):
        HWMSimEnv(control_hz=0)
    with pytest.raises(ValueError, match="render_mode"):
        HWMSimEnv(render_mode="human")
    with pytest.raises(ValueError, match="SimState"):
        env.set_state(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        env.set_state(SimState(physics=np.zeros(5)))
    with pytest.raises(ValueError, match="control_hz"):
        env.set_state(SimState(physics=env.get_state().physics, control_hz=30.0))
    with pytest.raises(ValueError, match="state"):
        env.action_from_state(np.zeros(21))


def test_unusable_gl_backend_gives_one_clear_error(monkeypatch):
    import mujoco

    from hwm_env.sim import rendering

    def broken(*args, **kwargs):
        raise mujoco.FatalError("gladLoadGL error")

    monkeypatch.setattr(mujoco, "Renderer", broken)
    env = HWMSimEnv()  # the renderer is made at the first frame, in the process that renders
    with pytest.raises(rendering.RenderingUnavailableError, match="libegl1"):
        env.reset(seed=0)


def test_osmesa_without_library_fails_clearly():
    """With MUJOCO_GL=osmesa and no libOSMesa, importing the env names what to install."""
    code = "import hwm_env.sim.env as e; e.HWMSimEnv().reset(seed=0)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode == 0:
        pytest.skip("OSMesa is installed here, so MUJOCO_GL=osmesa works")
    assert "RenderingUnavailableError" in result.stderr
    assert "libosmesa6" in result.stderr and "libegl1" in result.stderr


# ---------------------------------------------------------------- exploration, goals, dynamics
def test_exploration_exercises_every_action_dimension(env):
    from hwm_env.sim.exploration import ExplorationPolicy

    env.reset(seed=4)
    policy = ExplorationPolicy(env, seed=4)
    actions, states = [], []
    for _ in range(150):
        action = policy.act()
        assert action.shape == (25,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
        actions.append(action)
        states.append(env.step(action)[4]["state"])
    actions, states = np.stack(actions), np.stack(states)
    assert np.all(actions.std(axis=0) > 0.05), actions.std(axis=0)
    assert np.all(states.std(axis=0) > 0.01), states.std(axis=0)
    assert set(np.unique(actions[:, layout.HAND_SLICE])) <= {-1.0, 1.0}  # binary gripper commands
    # smooth: joint commands move at most a fraction of their range per frame
    assert np.abs(np.diff(actions[:, :21], axis=0)).max() < 0.35


def test_exploration_policy_binds_on_call(env):
    from hwm_env.sim.exploration import ExplorationPolicy

    env.reset(seed=5)
    policy = ExplorationPolicy(seed=5)
    policy.reset()
    first = policy(env)
    env.reset(seed=5)
    again = ExplorationPolicy(env, seed=5).act()
    np.testing.assert_array_equal(first, again)


def test_goal_sampler_draws_reachable_goals(env):
    from hwm_env.sim.dynamics import SimDynamics
    from hwm_env.sim.goals import SUCCESS_THRESHOLD, GoalSampler, joint_error, view_error

    start_frame, _ = env.reset(seed=6)
    start_state = env.joint_state()
    before = env.get_state()
    goal = GoalSampler(seed=0).sample(env)
    np.testing.assert_array_equal(env.get_state().physics, before.physics)  # env restored
    assert goal.frame.shape == (64, 64, 3) and goal.frame.dtype == np.uint8
    assert view_error(start_state, goal.state) > SUCCESS_THRESHOLD  # a real move: the start is no success
    assert np.all(goal.action[layout.BASE_SLICE] == 0)
    # holding the goal action from the start reaches it (the oracle can succeed)
    states = SimDynamics(env).rollout_states(goal.start, np.repeat(goal.action[None, None], 25, axis=1))
    reached = states[0, -1].numpy()
    assert view_error(reached, goal.state) < SUCCESS_THRESHOLD and joint_error(reached, goal.state) < 0.01
    # the goal image shows the new pose
    assert np.abs(goal.frame.astype(np.float32) - start_frame).mean() > 2.0


def test_sim_dynamics_rolls_out_candidates_from_one_snapshot(env):
    from hwm_env.sim.dynamics import SimDynamics

    env.reset(seed=8)
    state = env.get_state()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (3, 4, 25)).astype(np.float32)
    actions[2] = actions[0]
    dynamics = SimDynamics(env)
    frames, states = dynamics.rollout_frames_and_states(state, torch.from_numpy(actions))
    assert frames.shape == (3, 4, 64, 64, 3) and frames.dtype == torch.uint8
    assert states.shape == (3, 4, 25) and states.dtype == torch.float32
    assert torch.equal(frames[0], frames[2]) and not torch.equal(frames[0], frames[1])
    assert torch.equal(dynamics.rollout(state, actions), frames)
    assert torch.equal(dynamics.rollout_states(state, actions), states)
    np.testing.assert_array_equal(env.get_state().physics, state.physics)  # env untouched
    # the same as stepping the env by hand
    env.set_state(state)
    by_hand = np.stack([env.step(a)[0] for a in actions[1]])
    np.testing.assert_array_equal(frames[1].numpy(), by_hand)
    with pytest.raises(ValueError, match="shape"):
        dynamics.rollout(state, actions[0])
    with pytest.raises(ValueError, match="SimState"):
        dynamics.rollout("state", actions)


# ---------------------------------------------------------------- hwm data sim
def test_data_sim_round_trips_through_hwm_dataset(tmp_path):
    from hwm_env.cli import main
    from models.data.hwm_format import HWMDataset

    out = tmp_path / "sim"
    argv = ["data", "sim", "--episodes", "2", "--steps", "10", "--resolution", "64", "--out", str(out), "--seed", "3"]
    assert main(argv) == 0
    train, val = HWMDataset(out / "train"), HWMDataset(out / "val")
    assert len(train) == 10 and len(val) == 10
    assert train.frames.shape == (10, 64, 64, 3) and train.frames.dtype == np.uint8
    assert train.actions.shape == (10, 25) and train.states.shape == (10, 25)
    assert train.metadata["source"] == "HWM-Sim-v0"
    assert train.metadata["action_names"] == list(layout.ACTION_NAMES)
    assert train.metadata["fps"] == 15
    assert list(train.metadata["binary_action_dims"]) == [21, 22]
    assert train.episode_ranges() == [(0, 10)]
    assert np.all(np.abs(train.actions) <= 1)

    assert train.metadata["generator"] == {"command": "hwm data sim", "seed": 3, "domain": "training", "episode_range": [0, 1],
                                           "steps": 10, "control_hz": 15.0, "policy": "ExplorationPolicy"}

    # the data are exactly what the env produces from the same seeds: episode i resets with the first
    # word of SeedSequence(seed)'s i-th child and seeds its ExplorationPolicy with the second
    from hwm_env.sim.exploration import ExplorationPolicy

    sim = HWMSimEnv()
    for split, sequence in zip((train, val), np.random.SeedSequence(3).spawn(2)):
        reset_seed, policy_seed = sequence.generate_state(2)
        obs, info = sim.reset(seed=int(reset_seed))
        policy = ExplorationPolicy(sim, seed=int(policy_seed))
        for t in range(10):
            np.testing.assert_array_equal(split.frames[t], obs)
            np.testing.assert_array_equal(split.states[t], info["state"])
            action = policy.act()
            np.testing.assert_array_equal(split.actions[t], action)
            obs, _, _, _, info = sim.step(action)
    sim.close()

    # an existing folder is not overwritten by accident
    assert main(argv) == 2
    assert main(argv + ["--overwrite"]) == 0


def test_data_sim_bad_arguments(tmp_path):
    from hwm_env.sim.commands import generate_dataset

    with pytest.raises(ValueError, match="no training episode"):
        generate_dataset(tmp_path / "a", episodes=1, steps=5, progress=False)
    with pytest.raises(ValueError, match="val-fraction"):
        generate_dataset(tmp_path / "a", episodes=4, steps=5, val_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match="episodes"):
        generate_dataset(tmp_path / "a", episodes=0, steps=5, progress=False)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("flag", ["--held-step-fraction", "--pause-fraction"])
def test_data_sim_has_no_retired_policy_flags(tmp_path, capsys, flag):
    """The held-step and pause data policies measured no gain and were removed."""
    from hwm_env.cli import main

    with pytest.raises(SystemExit):
        main(["data", "sim", "--out", str(tmp_path / "sim"), flag, "0.5"])
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()
