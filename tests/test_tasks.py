"""Tasks on HWM-Sim-v0 (issue #30): kinematics, start distributions, scripted vs random policies, env wiring."""
import gymnasium as gym
import numpy as np
import pytest

import hwm_env  # noqa: F401  (registers HWM-Sim-v0)
from hwm_env.sim import layout
from hwm_env.sim.env import OBJECT_POSITION_NAMES, HWMSimEnv, mujoco
from hwm_env.sim.kinematics import HeadKinematics
from hwm_env.tasks import TASKS, Readout, make_task

SEEDS = range(5)


@pytest.fixture(scope="module")
def env():
    sim = HWMSimEnv()
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def kinematics():
    return HeadKinematics()


def fresh_positions(env):
    """Recompute positions from qpos: after mj_step the env's xpos lag its qpos by one substep."""
    mujoco.mj_forward(env.model, env.data)


# ---------------------------------------------------------------- kinematics
def test_hands_in_camera_match_the_simulator(env, kinematics):
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    states, expected = [], []
    for _ in range(4):
        for _ in range(3):
            env.step(rng.uniform(-1, 1, 25))
        fresh_positions(env)
        rotation = env.data.cam_xmat[env._camera_id].reshape(3, 3)
        sites = np.stack([env.data.site(name).xpos for name in ("left_grip", "right_grip")])
        expected.append((sites - env.data.cam_xpos[env._camera_id]) @ rotation * [1, 1, -1])
        states.append(env.joint_state())
    got = kinematics.hands_in_camera(np.stack(states))  # a batch
    assert got.shape == (4, 2, 3)
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-4)


def test_camera_to_base_round_trip(env, kinematics):
    env.reset(seed=5)
    for _ in range(4):
        env.step(np.random.default_rng(1).uniform(-1, 1, 25))
    fresh_positions(env)
    in_camera = env.object_positions().reshape(4, 3)
    in_base = kinematics.camera_to_base(env.joint_state(), in_camera)
    x, y, yaw = env.base_pose().astype(np.float64)
    rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    expected = (env.object_poses()[:, :3] - [x, y, 0]) @ rotation  # room -> base frame
    np.testing.assert_allclose(in_base, expected, atol=1e-4)
    # batched and broadcast: (2, 25) states with (2, 4, 3) points
    both = kinematics.camera_to_base(np.stack([env.joint_state()] * 2), np.stack([in_camera] * 2))
    assert both.shape == (2, 4, 3)
    with pytest.raises(ValueError, match="states"):
        kinematics.hands_in_camera(np.zeros(21))


# ---------------------------------------------------------------- each task: oracle, random, density
def rollout(env, task, seed, policy, rng=None):
    """(final success, first reward, final reward) of one episode."""
    episode = task.sample_episode(env, seed)
    low, high = task.action_box(episode)
    rewards = []
    for _ in range(task.max_episode_steps):
        if policy == "scripted":
            action = task.scripted_action(env, episode)
        else:
            action = rng.uniform(low, high).astype(np.float32)
        assert np.all(action >= low) and np.all(action <= high), "actions stay in the task's box"
        env.advance(action)
        rewards.append(float(task.reward(Readout.from_sim(env), episode)))
    return bool(task.is_success(Readout.from_sim(env), episode)), rewards[0], rewards[-1]


@pytest.mark.parametrize("name", list(TASKS))
def test_scripted_policy_solves_and_random_does_not(env, name):
    task = make_task(name)
    scripted = [rollout(env, task, seed, "scripted") for seed in SEEDS]
    assert sum(ok for ok, _, _ in scripted) >= 4, f"{name}: scripted successes {[ok for ok, _, _ in scripted]}"
    # dense rewards: the solved episodes end better than they began
    assert all(last > first for ok, first, last in scripted if ok)
    rng = np.random.default_rng(0)
    random = [rollout(env, task, seed, "random", rng)[0] for seed in SEEDS]
    assert sum(random) <= 1, f"{name}: a uniform-random policy succeeded on {sum(random)} of 5 seeds"


@pytest.mark.parametrize("name", list(TASKS))
def test_episodes_are_deterministic_in_seed(env, name):
    task = make_task(name)
    first = task.sample_episode(env, 11)
    state_after = env.get_state()
    np.testing.assert_array_equal(state_after.physics, first.start.physics)  # the env is left at the start
    other = task.sample_episode(env, 12)
    again = task.sample_episode(env, 11)
    np.testing.assert_array_equal(first.start.physics, again.start.physics)
    np.testing.assert_array_equal(first.context_frames, again.context_frames)
    np.testing.assert_array_equal(first.target, again.target)
    assert first.object_index == again.object_index
    assert not np.array_equal(first.start.physics, other.start.physics)
    assert first.context_frames.shape == (task.settle_steps, 64, 64, 3)
    assert first.context_actions.shape == (task.settle_steps, 25)
    np.testing.assert_array_equal(first.start_frame, first.context_frames[-1])
    # hold still: the start is no success
    assert not task.is_success(Readout.from_sim(env), again)
    low, high = task.action_box(first)
    held = [i for i in range(25) if i not in task.controlled]
    np.testing.assert_allclose(high[held] - low[held], 2e-4, atol=1e-6)
    assert np.all(low[list(task.controlled)] == -1) and np.all(high[list(task.controlled)] == 1)


def test_aim_goal_frame_and_start_scene(env):
    task = make_task("aim")
    episode = task.sample_episode(env, 4)
    assert episode.goal_frame.shape == (64, 64, 3) and episode.target.shape == (4,)
    assert np.abs(episode.goal_frame.astype(float) - episode.start_frame).mean() > 1.0
    # the first scene of a task is the task-free reset's scene
    plain = HWMSimEnv()
    plain.reset(seed=4)
    np.testing.assert_allclose(plain.object_poses(), env.object_poses(), atol=2e-3)
    plain.close()


def test_push_keeps_the_base_still(env):
    task = make_task("push")
    episode = task.sample_episode(env, 0)
    low, high = task.action_box(episode)
    assert np.all(np.abs(low[layout.BASE_SLICE]) <= 1e-4) and np.all(np.abs(high[layout.BASE_SLICE]) <= 1e-4)


# ---------------------------------------------------------------- errors and readouts
def test_unknown_task_lists_known_names():
    with pytest.raises(ValueError, match="unknown task 'fly'; known: aim, look-at, reach, push"):
        make_task("fly")
    with pytest.raises(ValueError, match="known: aim"):
        HWMSimEnv(task="fly")


def test_readout_from_targets(env):
    env.reset(seed=2)
    truth = Readout.from_sim(env)
    names = list(reversed(layout.STATE_NAMES + OBJECT_POSITION_NAMES)) + ["EXTRA"]
    values = np.concatenate([truth.state, truth.objects.reshape(-1)])[::-1]
    values = np.stack([np.append(values, 7.0)] * 3)  # a batch of 3, with an extra ignored column
    readout = Readout.from_targets(values, names, "reach")
    assert readout.state.shape == (3, 25) and readout.objects.shape == (3, 4, 3)
    np.testing.assert_allclose(readout.state[0], truth.state)
    np.testing.assert_allclose(readout.objects[1], truth.objects)
    # aim reads only the view joints; a probe without objects is enough for it
    view_only = Readout.from_targets(truth.state[[0, 1, 2, 20]], ["HIP_YAW", "HIP_ROLL", "HIP_PITCH", "NECK_PITCH"],
                                     "aim")
    assert np.isnan(view_only.objects).all()
    with pytest.raises(ValueError, match=r"task 'look-at' needs the targets \['RED_BOX_X'\]"):
        Readout.from_targets(np.zeros(11), list(OBJECT_POSITION_NAMES[1:]), "look-at")
    with pytest.raises(ValueError, match="unknown task"):
        Readout.from_targets(np.zeros(1), ["HIP_YAW"], "fly")


def test_measures_are_vectorised(env):
    for name in TASKS:
        task = make_task(name)
        episode = task.sample_episode(env, 1)
        one = Readout.from_sim(env)
        batch = Readout(state=np.stack([one.state] * 6).reshape(2, 3, 25),
                        objects=np.stack([one.objects] * 6).reshape(2, 3, 4, 3))
        for measure in (task.error, task.reward, task.is_success):
            values = measure(batch, episode)
            assert values.shape == (2, 3), (name, measure.__name__)
            np.testing.assert_allclose(values.astype(float), float(measure(one, episode)), atol=1e-9)


# ---------------------------------------------------------------- the env with a task
def test_gym_make_with_a_task():
    made = gym.make("HWM-Sim-v0", task="look-at")
    obs, info = made.reset(seed=3)
    assert obs.shape == (64, 64, 3) and "is_success" in info
    episode = made.unwrapped.episode
    assert made.unwrapped.task.name == "look-at" and episode.task == "look-at"
    np.testing.assert_array_equal(obs, episode.start_frame)
    steps = 0
    truncated = False
    while not truncated:
        action = made.unwrapped.task.scripted_action(made, episode)
        obs, reward, terminated, truncated, info = made.step(action)
        steps += 1
        assert type(reward) is float and not terminated
        assert type(info["is_success"]) is bool and type(info["task_error"]) is float
    assert steps == made.unwrapped.task.max_episode_steps and info["is_success"]
    assert reward == pytest.approx(-info["task_error"])
    # the same seed gives the same episode
    obs_again, _ = made.reset(seed=3)
    np.testing.assert_array_equal(obs_again, episode.start_frame)
    made.close()


def test_task_instance_and_checker():
    from gymnasium.utils.env_checker import check_env

    sim = HWMSimEnv(task=make_task("aim"))
    check_env(sim, skip_render_check=True)
    sim.close()
