"""The envs across processes and copies: async vector envs, pickling, threads, closed envs.

Gymnasium's `AsyncVectorEnv` builds a throwaway env in the parent and then forks its
workers with the default start method; these tests hang (and time out) if an EGL context
or a used torch thread pool crosses the fork.
"""
from __future__ import annotations

import ast
import copy
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError

import hwm_env  # noqa: F401  (registers the ids)
from env_fixtures import ACTION_DIM, build_checkpoints

REPO = Path(__file__).resolve().parents[1]
ENV_IDS = {"sim": "HWM-Sim-v0", "flow": "HWM-Flow-v0", "masked": "HWM-Masked-v0"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("process-checkpoints"))


def env_kwargs(kind: str, checkpoints) -> dict:
    if kind == "sim":
        return {}
    return {"checkpoint": str(checkpoints[kind]), "obs_mode": "dict"}


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    else:
        np.testing.assert_array_equal(a, b)


ASYNC_SCRIPT = """
import sys
import gymnasium as gym, numpy as np, hwm_env

def rollout(envs, seed, steps=3):
    observations, _ = envs.reset(seed=seed)
    trace = [observations]
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, envs.num_envs, 25)).astype(np.float32)
    for action in actions:
        observations, rewards, *_ = envs.step(action)
        trace += [observations, rewards]
    envs.close()
    return trace

def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return np.array_equal(a, b)

flow, masked = sys.argv[1:3]
cases = {
    "HWM-Sim-v0": {},
    "HWM-Flow-v0": {"checkpoint": flow, "obs_mode": "dict"},
    "HWM-Masked-v0": {"checkpoint": masked, "obs_mode": "dict"},
}
# Every async run comes first: once this process renders (the sync runs do), EGL cannot render
# in a child forked from it, and the workers say so (the next test).
thunks = [lambda: gym.make("HWM-Flow-v0", **cases["HWM-Flow-v0"])] * 2
made = {env_id: rollout(gym.make_vec(env_id, num_envs=2, vectorization_mode="async", **kwargs), seed=5)
        for env_id, kwargs in cases.items()}  # gym.make_vec, the default start method (fork on Linux)
made_from_thunks = rollout(gym.vector.AsyncVectorEnv(thunks), seed=2)
for env_id, kwargs in cases.items():
    sync = rollout(gym.make_vec(env_id, num_envs=2, vectorization_mode="sync", **kwargs), seed=5)
    print(env_id, "make_vec", all(same(a, b) for a, b in zip(made[env_id], sync)))
sync = rollout(gym.vector.SyncVectorEnv(thunks), seed=2)
print("HWM-Flow-v0 thunks", all(same(a, b) for a, b in zip(made_from_thunks, sync)))
"""


@pytest.mark.timeout(300)
def test_async_vector_envs_run_with_the_default_start_method_and_match_sync(checkpoints):
    """A user's script: async vector envs of all three ids, through make_vec and through thunks."""
    result = subprocess.run(
        [sys.executable, "-c", ASYNC_SCRIPT, str(checkpoints["flow"]), str(checkpoints["masked"])],
        capture_output=True, text=True, timeout=280, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:4] == [
        "HWM-Sim-v0 make_vec True", "HWM-Flow-v0 make_vec True", "HWM-Masked-v0 make_vec True",
        "HWM-Flow-v0 thunks True",
    ]


@pytest.mark.timeout(120)
def test_a_worker_forked_after_the_parent_rendered_fails_clearly_instead_of_hanging():
    sim = gym.make("HWM-Sim-v0")
    sim.reset(seed=0)  # this process now holds an EGL display: a forked child cannot render
    envs = gym.make_vec("HWM-Sim-v0", num_envs=2, vectorization_mode="async")
    with pytest.raises(Exception, match="context='spawn'"):
        envs.reset(seed=0)
    envs.close(terminate=True)
    sim.close()


@pytest.mark.parametrize("kind", ["sim", "flow"])
def test_deepcopy_and_pickle_continue_the_episode_exactly(kind, checkpoints, capfd):
    env = gym.make(ENV_IDS[kind], **env_kwargs(kind, checkpoints))
    env.reset(seed=1)
    env.step(np.zeros(ACTION_DIM, np.float32))  # the original has rendered: its GL context must not travel
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    action = np.full(ACTION_DIM, 0.3, np.float32)
    expected = env.step(action)[0]
    for other in copies:
        assert_same(other.step(action)[0], expected)
        other.close()
    env.close()
    assert "Exception ignored" not in capfd.readouterr().err


def test_closed_simulator_says_so_instead_of_crashing():
    env = gym.make("HWM-Sim-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.close()
    with pytest.raises(ClosedEnvironmentError, match="closed"):
        env.unwrapped.render_frame()
    with pytest.raises(ClosedEnvironmentError, match="closed"):
        env.unwrapped.step(np.zeros(ACTION_DIM, np.float32))


def test_world_model_env_wants_one_action_and_valid_sampler_settings_at_make(checkpoints):
    env = gym.make("HWM-Flow-v0", checkpoint=str(checkpoints["flow"]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(25,\)"):
        env.step(np.zeros((1, ACTION_DIM), np.float32))  # the simulator refuses it too
    env.close()
    with pytest.raises(ValueError, match="steps must be"):
        gym.make("HWM-Flow-v0", checkpoint=str(checkpoints["flow"]), steps=0)
    with pytest.raises(ValueError, match="cfg_scale must be"):
        gym.make("HWM-Flow-v0", checkpoint=str(checkpoints["flow"]), cfg_scale=float("nan"))
    with pytest.raises(ValueError, match="temperature must be"):
        gym.make("HWM-Masked-v0", checkpoint=str(checkpoints["masked"]), temperature=-1.0)


def test_a_local_folder_does_not_shadow_a_shipped_name(tmp_path, monkeypatch):
    from models.checkpoint import assets_dir, resolve_checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow-default").mkdir()
    assert resolve_checkpoint("flow-default") == assets_dir() / "flow-default"
    assert resolve_checkpoint("./flow-default").resolve() == tmp_path / "flow-default"
    assert resolve_checkpoint(Path("flow-default")).resolve() == tmp_path / "flow-default"


def test_a_file_given_for_a_folder_is_called_a_file(tmp_path):
    from models.data.open import open_split

    not_a_folder = tmp_path / "frames.txt"
    not_a_folder.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        open_split(not_a_folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_split(tmp_path / "missing")
    result = subprocess.run(
        [sys.executable, "-m", "hwm_env.cli", "data", "info", str(not_a_folder)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "is a file" in result.stderr


def run_python(code: str, **env) -> str:
    import os

    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_sets_a_passive_wait_policy_unless_the_user_chose_one_or_torch_came_first():
    show = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert run_python(f"import hwm_env; {show}") == "PASSIVE"
    assert run_python(f"import hwm_env; {show}", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert run_python(f"import torch, hwm_env; {show}") == "None"  # too late to matter: not pretended


def test_batch_one_calls_run_on_one_thread_and_restore_the_count():
    import torch

    from hwm_env.threads import call_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with call_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with call_threads(8):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_hwm_env_imports_no_train_module():
    """DESIGN: hwm_env -> models, planners. The CLI only names command modules for `hwm`."""
    for path in (REPO / "hwm_env").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name == "train" or name.startswith("train.") for name in names), path
    loaded = run_python(
        "import sys, hwm_env, hwm_env.world_model_env, hwm_env.vector_env, hwm_env.sb3, hwm_env.context, "
        "hwm_env.sim.env, hwm_env.sim.exploration; print(sorted(m for m in sys.modules if m.split('.')[0] == 'train'))"
    )
    assert loaded == "[]"
