"""PPO trained purely inside a world model (DIAMOND/IRIS style), then scored in HWM-Sim-v0.

**Task: reach a goal pose shown as an image.** An episode starts from P context frames;
the policy sees the current frame and the goal image and moves the robot's joints.

**Reward: minus the mean squared distance between the latent of the current frame and the
latent of the goal image**, both from the world model's own tokenizer (FSQ code vectors
for token grids). Why this and not a learned reward model: it needs no extra model (nothing
to train, nothing that can be wrong differently from the world model), it is exactly the
cost the CEM/MPPI planners minimise (`planners.costs.LatentGoalCost`, and `HWMEnv`'s goal
reward), so the policy and the planners optimise the same number, and it is computable
in the simulator too (encode the rendered frame), which is what makes the sim-trained
baselines a like-for-like comparison.

**Actions: target offsets around the episode's start pose.** The policy moves the joints a
benchmark goal moves (hips, arms, neck: the planners' action box); each output u in
[-1, 1] sets `target = start + max_offset * u` for those joints, while legs and grippers
hold their start command and the base stands still. Zero output holds the start pose, so
exploration stays local around it (as the planners' warm start does), and an imperfect
policy's error stays bounded (`action_mode="delta"`, target changes of `max_delta * u` per
step, integrates a biased mean over the episode: measured worse than holding still at
12k simulator frames, where offsets were on par with it). The current and the start
command are part of the observation (the robot knows what it commands).

**Observation (goal-conditioned):**
| policy | SB3 policy | observation |
|---|---|---|
| `mlp` | `MlpPolicy` | `Box((2 D + 2 A,), float32)`: latent features of the current frame, of the goal image (D each), current and start command |
| `cnn` | `MultiInputPolicy` (NatureCNN) | `Dict(image=Box(0, 255, (H, W, 6), uint8), action=Box((2 A,)))`: current frame and goal image stacked on channels, current and start command |
MLP on latents is the default: in HWM-Sim-v0 with the trained built-in tokenizer it
reached a lower training latent distance than the CNN at equal samples (0.033 vs 0.037
after 25k policy steps) at 1.5x the frame rate, and in imagination it skips decoding.

**Where each row trains** (all scored on the planning benchmark's seeded goal set,
`planners.benchmark.make_episodes`, with the same observation: sim frames encoded by the
world model's tokenizer, the goal image encoded once):
| row | trains in | starts and goals | real frames |
|---|---|---|---|
| `imagination` | `HWMVecEnv` (the world model; one batched call per step) | a random window of the model's training data as context; goal = the frame k steps later in the same episode (the recorded actions got there; goals that also moved legs, grippers or the base are reachable only in part) | the world model's training frames (none during PPO) |
| `sim-budget` | HWM-Sim-v0 | the data's distribution: reset, the exploration policy that made the data drives P frames, goal = the frame it reaches k steps on (simulated ahead, then restored) | every simulator step, capped at the world model's training frames |
| `sim-unlimited` | HWM-Sim-v0 | as above | `upper_bound_steps` (upper bound) |
| `random`, `hold` | - | - | 0 |
Episodes are truncated after `horizon` steps in both worlds.

Policy checkpoints are stable-baselines3's own `model.save` zips (state dicts plus its
JSON/cloudpickle metadata): SB3's format, accepted for policies; world models and
tokenizers stay safetensors.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from models import tables
from models.atomic import atomic_write, atomic_write_text
from planners.benchmark import QUICK_PROTOCOL, Protocol

FAMILIES = ("flow", "masked")
POLICIES = ("mlp", "cnn")
CONTROLS = ("goal-joints", "all")
ACTION_MODES = ("offset", "delta")
ROWS = ("imagination", "sim-budget", "sim-unlimited", "random", "hold")
SB3_POLICY = {"mlp": "MlpPolicy", "cnn": "MultiInputPolicy"}
POLICY_LABELS = {"mlp": "PPO, MLP on latents", "cnn": "PPO, CNN on frames"}
FAMILY_LABELS = {"flow": "Flow-HWM", "masked": "Masked-HWM"}
SEED_LIMIT = 2**31 - 1
RESULTS_JSON, RESULTS_MARKDOWN = "results.json", "results.md"


@dataclasses.dataclass
class TaskSettings:
    """The goal-reaching task, identical in imagination and in the simulator."""

    horizon: int = 24  # steps per training episode (truncation)
    goal_min_steps: int = 6  # the goal is the frame k in [goal_min_steps, goal_max_steps] steps after the start
    goal_max_steps: int = 18
    action_mode: str = "offset"  # "offset": u sets target = start + max_offset * u; "delta": target += max_delta * u
    max_offset: float = 0.4  # action units; the benchmark's goals are at most 0.3 from the start
    max_delta: float = 0.1  # largest change of a commanded action entry per step (action units)
    control: str = "goal-joints"  # entries the policy moves: the benchmark's goal joints, or "all"

    def __post_init__(self):
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {list(ACTION_MODES)}, got '{self.action_mode}'")
        if not 0 < self.max_offset <= 2:
            raise ValueError(f"max_offset must be in (0, 2] action units, got {self.max_offset}")
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {list(CONTROLS)}, got '{self.control}'")
        if not 1 <= self.goal_min_steps <= self.goal_max_steps:
            raise ValueError(
                f"goal steps must satisfy 1 <= min <= max, got {self.goal_min_steps}..{self.goal_max_steps}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1 step, got {self.horizon}")
        if not 0 < self.max_delta <= 2:
            raise ValueError(f"max_delta must be in (0, 2] action units, got {self.max_delta}")


@dataclasses.dataclass
class PPOSettings:
    """stable-baselines3 PPO hyper-parameters, shared by every trained row."""

    n_steps: int = 64  # steps per env per rollout
    batch_size: int = 256
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.95  # looks ~20 steps ahead: about one episode
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -1.0  # initial std 0.37 of u: exploration near the start pose
    hidden: int = 256  # two hidden layers of this width, actor and critic


QUICK_TASK = {"horizon": 4, "goal_min_steps": 1, "goal_max_steps": 3}
QUICK_PPO = {"n_steps": 8, "batch_size": 8, "n_epochs": 1, "hidden": 16}
QUICK_STEPS = {"imagination_steps": 32, "real_budget": 48, "upper_bound_steps": 64, "num_envs": 2, "sim_envs": 2}


@dataclasses.dataclass
class PolicyExperiment:
    """Everything one run of the script needs; `results.json` records it."""

    data: str  # the data set the world model was trained on (root or train split)
    model: str = "flow"
    checkpoint: str | None = None  # default: the shipped `<model>-default`
    out: str = "runs/policy"
    policies: tuple[str, ...] = ("mlp",)  # imagination rows; the sim rows use the first
    rows: tuple[str, ...] = ROWS
    imagination_steps: int = 60_000  # imagined env steps for PPO
    real_budget: int | None = None  # default: the data set's training frames
    upper_bound_steps: int = 100_000  # simulator frames for the unlimited row
    num_envs: int = 16  # imagined episodes per batched model call
    sampling_steps: int | None = None  # flow / MaskGIT steps per imagined frame (None: the checkpoint's default)
    sim_envs: int = 8
    seed: int = 0  # PPO and training episodes
    task: TaskSettings = dataclasses.field(default_factory=TaskSettings)
    ppo: PPOSettings = dataclasses.field(default_factory=PPOSettings)
    protocol: Protocol = dataclasses.field(default_factory=Protocol)  # the planning benchmark's goal set
    device: str = "auto"
    wandb: bool = False
    wandb_project: str = "hwm-policy"
    progress: bool = True

    def __post_init__(self):
        if self.model not in FAMILIES:
            raise ValueError(f"model must be one of {list(FAMILIES)}, got '{self.model}'")
        self.policies, self.rows = tuple(self.policies), tuple(self.rows)
        for name, values, known in (("policies", self.policies, POLICIES), ("rows", self.rows, ROWS)):
            unknown = [value for value in values if value not in known]
            if not values or unknown or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names from {list(known)}, got {list(values)}")
        for name in ("imagination_steps", "upper_bound_steps", "num_envs", "sim_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.sampling_steps is not None and self.sampling_steps < 1:
            raise ValueError(f"sampling-steps must be >= 1, got {self.sampling_steps}")
        if self.real_budget is not None and self.real_budget < 1:
            raise ValueError(f"real-budget must be >= 1 frame, got {self.real_budget}")

    @property
    def checkpoint_name(self) -> str:
        return self.checkpoint or f"{self.model}-default"


def quick(experiment: PolicyExperiment) -> PolicyExperiment:
    """Tiny steps everywhere (the test suite's end-to-end run); explicit budgets are kept if smaller."""
    steps = {key: min(value, getattr(experiment, key) or value) for key, value in QUICK_STEPS.items()}
    return dataclasses.replace(
        experiment, **steps,
        task=dataclasses.replace(experiment.task, **QUICK_TASK),
        ppo=dataclasses.replace(experiment.ppo, **QUICK_PPO),
        protocol=dataclasses.replace(experiment.protocol, **QUICK_PROTOCOL),
    )


# --- what the policy sees ----------------------------------------------------------------------


class LatentFeatures:
    """A tokenizer's latents as flat float vectors; their mean squared difference is the task's distance.

    Continuous latents are used as they are, token grids through the tokenizer's FSQ code
    vectors: the same distance as `HWMEnv`'s goal reward and `planners.costs.LatentGoalCost`.
    """

    def __init__(self, tokenizer):
        from planners.costs import code_lookup

        self.tokenizer = tokenizer
        self.codes = None
        if tokenizer.kind == "discrete":
            self.codes = code_lookup(tokenizer)
            if self.codes is None:
                raise ValueError(
                    f"{type(tokenizer).__name__}: the goal distance of token grids needs a tokenizer with code "
                    "vectors (indices_to_codes, e.g. the built-in FSQ tokenizer)"
                )

    def __call__(self, latents) -> np.ndarray:
        """Latents (N, C, h, w) or tokens (N, h, w) -> features (N, D) float32."""
        latents = torch.as_tensor(latents)
        with torch.no_grad():
            if self.codes is None:
                features = latents.float().flatten(1)
            else:
                features = self.codes(latents.long().to(self.tokenizer.device)).float().flatten(1)  # (N, h*w*d)
        return features.cpu().numpy()

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> features (N, D)."""
        return self(self.tokenizer.encode(np.ascontiguousarray(frames)[:, None])[:, 0])

    @functools.cached_property
    def dim(self) -> int:
        """D, the feature size of one frame."""
        height, width = self.tokenizer.image_size
        return self.encode(np.zeros((1, height, width, 3), np.uint8)).shape[1]


def latent_distance(features: np.ndarray, goal_features: np.ndarray) -> np.ndarray:
    """Mean squared feature distance per row, (N, D) x (N, D) -> (N,)."""
    return np.mean((features - goal_features) ** 2, axis=1)


class GoalObservation:
    """Builds the goal-conditioned observation (see the module docstring) from batched parts."""

    def __init__(self, policy: str, feature_dim: int, image_size: Sequence[int], action_low, action_high):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {list(POLICIES)}, got '{policy}'")
        self.policy = policy
        low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        if policy == "mlp":
            self.space = spaces.Box(-np.inf, np.inf, (2 * feature_dim + 2 * low.shape[0],), np.float32)
        else:
            height, width = image_size
            self.space = spaces.Dict({
                "image": spaces.Box(0, 255, (height, width, 6), np.uint8),
                "action": spaces.Box(np.tile(low, 2), np.tile(high, 2), (2 * low.shape[0],), np.float32),
            })

    def view(self, features: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """What of a frame the policy looks at: its latent features (mlp) or its pixels (cnn)."""
        return features if self.policy == "mlp" else frames

    def build(self, current: np.ndarray, goal: np.ndarray, commands: np.ndarray):
        """Views (N, ...) of the current frames and the goals, `Commander` commands (N, 2A) -> batched observation."""
        commands = commands.astype(np.float32)
        if self.policy == "mlp":
            return np.concatenate([current, goal, commands], axis=1).astype(np.float32)  # (N, 2D + 2A)
        return {"image": np.concatenate([current, goal], axis=-1), "action": commands}  # (N, H, W, 6)

    @staticmethod
    def row(observation, index: int):
        """Observation of one env out of a batch."""
        if isinstance(observation, dict):
            return {key: value[index] for key, value in observation.items()}
        return observation[index]


class Commander:
    """Policy outputs -> commanded actions, around the command the episode started with.

    The command state of N episodes is (N, 2A): the current command, then the start command.
    `action_mode="offset"`: the controlled entries are set to `start + max_offset * u`;
    `"delta"`: they move by `max_delta * u` from the current command. `control="goal-joints"`
    gives the policy the planning benchmark's action box: the hip, arm and neck joints a
    goal moves; legs and grippers hold their start command and the base is told to stand
    still. `"all"` moves every entry.
    """

    def __init__(self, action_dim: int, task: TaskSettings, low, high):
        from hwm_env.sim import layout

        self.base_dims: list[int] = []
        if task.control == "goal-joints":
            from hwm_env.sim.goals import GOAL_JOINTS

            if action_dim != layout.ACTION_DIM:
                raise ValueError(f"control 'goal-joints' needs the {layout.ACTION_DIM}-d HWM-Sim-v0/1X action layout, "
                                 f"the model has {action_dim}-d actions; use control 'all'")
            self.dims = np.asarray(GOAL_JOINTS)
            self.base_dims = list(range(action_dim))[layout.BASE_SLICE]
        else:
            self.dims = np.arange(action_dim)
        self.action_dim, self.task = action_dim, task
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.space = spaces.Box(-1.0, 1.0, (len(self.dims),), np.float32)

    def start(self, actions: np.ndarray) -> np.ndarray:
        """The command state (N, 2A) of episodes whose last action was `actions` (N, A)."""
        commanded = np.asarray(actions, np.float32).copy()
        commanded[:, self.base_dims] = 0.0
        commanded = np.clip(commanded, self.low, self.high)
        return np.concatenate([commanded, commanded], axis=1)

    def step(self, commands: np.ndarray, policy_actions) -> np.ndarray:
        """The next command state for policy outputs u (N, len(dims)), clipped to [-1, 1]."""
        u = np.clip(np.asarray(policy_actions, np.float32), -1.0, 1.0).reshape(len(commands), len(self.dims))
        commanded, start = commands[:, : self.action_dim].copy(), commands[:, self.action_dim:]
        if self.task.action_mode == "offset":
            commanded[:, self.dims] = start[:, self.dims] + self.task.max_offset * u
        else:
            commanded[:, self.dims] += self.task.max_delta * u
        return np.concatenate([np.clip(commanded, self.low, self.high), start], axis=1).astype(np.float32)

    def action(self, commands: np.ndarray) -> np.ndarray:
        """What to send to the env: the current commands (N, A)."""
        return np.ascontiguousarray(commands[:, : self.action_dim])


# --- starts and goals from the world model's data ------------------------------------------------


class DataGoals:
    """Starts and goals from a data split: P context frames, the actions into them, and the frame k steps later.

    The split is the training split of the data set the world model learned from (a data
    set root is resolved to it); windows never cross an episode, so every goal is a frame
    the recorded actions reached from that context in k steps.
    """

    def __init__(self, path: str | os.PathLike, num_past: int, image_size: Sequence[int], action_dim: int,
                 task: TaskSettings, frame_stride: int = 1):
        from models.data.open import find_splits, open_split, split_format
        from models.data.windows import WindowDataset

        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"--data '{path}' does not exist (expected the world model's data set root or "
                                    "its train split)")
        if split_format(path) is None:
            path = find_splits(path)[0]  # a data set root: its training split
        self.path = path
        self.split = open_split(path, image_size=tuple(image_size))
        self.task = task
        self.windows = WindowDataset(self.split, num_past=num_past, num_future=task.goal_max_steps, source="frames",
                                     frame_stride=frame_stride)
        if self.windows.action_dim != action_dim:
            raise ValueError(f"{path}: actions are {self.windows.action_dim}-d, the world model takes {action_dim}-d")
        frame_shape = tuple(self.windows[0]["past_frames"].shape[1:])
        if frame_shape != (*image_size, 3):
            raise ValueError(f"{path}: frames are {frame_shape[0]}x{frame_shape[1]}, the world model's tokenizer "
                             f"expects {image_size[0]}x{image_size[1]}")

    @property
    def num_frames(self) -> int:
        """Frames in the split: the real data the world model was trained on."""
        return int(getattr(self.split, "num_frames", None) or len(self.split))

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`HWMEnv` reset options: frames (P, H, W, 3) uint8, actions (P, A) float32, goal (H, W, 3) uint8."""
        window = self.windows[int(rng.integers(len(self.windows)))]
        k = int(rng.integers(self.task.goal_min_steps, self.task.goal_max_steps + 1))
        return {
            "frames": np.asarray(window["past_frames"], dtype=np.uint8),
            "actions": np.asarray(window["past_actions"], dtype=np.float32),
            "goal": np.asarray(window["future_frames"][k - 1], dtype=np.uint8),
        }


# --- the two training worlds ---------------------------------------------------------------------


class ImaginedGoalReaching(VecEnvWrapper):
    """Goal reaching inside a world model: `HWMVecEnv` episodes with data-set starts and goals.

    The wrapped env imagines every step for all envs in one batched model call and pays
    the reward (its goal reward: minus the latent distance of the predicted frame to the
    goal image). When an episode is truncated, the wrapped env's own autoreset (a context
    without a goal) is replaced at once by a new start and goal from `DataGoals`.
    """

    def __init__(self, venv, goals: DataGoals, policy: str, task: TaskSettings, seed: int | None = None):
        vector_env = venv.vector_env
        expected_mode = "latent" if policy == "mlp" else "rgb"
        if vector_env.obs_mode != expected_mode or vector_env.max_episode_steps != task.horizon:
            raise ValueError(f"a '{policy}' policy needs HWMVecEnv(obs_mode='{expected_mode}', "
                             f"max_episode_steps={task.horizon})")
        self.runner = vector_env.runner
        self.features = LatentFeatures(self.runner.tokenizer)
        self.observation = GoalObservation(policy, self.features.dim, self.runner.image_size,
                                           self.runner.action_low, self.runner.action_high)
        self.commander = Commander(self.runner.action_dim, task, self.runner.action_low, self.runner.action_high)
        super().__init__(venv, observation_space=self.observation.space, action_space=self.commander.space)
        self.goals, self.task = goals, task
        self.rng = np.random.default_rng(seed)
        height, width = self.runner.image_size
        self.commands = np.zeros((self.num_envs, 2 * self.runner.action_dim), np.float32)
        self.goal_features = np.zeros((self.num_envs, self.features.dim), np.float32)
        self.goal_frames = np.zeros((self.num_envs, height, width, 3), np.uint8)

    def seed(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        return self.venv.seed(seed)

    def _new_episodes(self, indices: Sequence[int]) -> list[dict]:
        """Draw starts and goals for `indices`; returns their reset options."""
        options = [self.goals.sample(self.rng) for _ in indices]
        goal_frames = np.stack([option["goal"] for option in options])
        self.goal_frames[indices] = goal_frames
        self.goal_features[indices] = self.features(self.runner.encode(goal_frames[:, None])[:, 0])
        self.commands[indices] = self.commander.start(np.stack([option["actions"][-1] for option in options]))
        return options

    def _observe(self, raw: np.ndarray, indices: Sequence[int]):
        """The env's raw observations (latents or frames) of `indices` -> goal-conditioned observations."""
        current = self.features(raw) if self.observation.policy == "mlp" else raw
        goal = self.goal_features[indices] if self.observation.policy == "mlp" else self.goal_frames[indices]
        return self.observation.build(current, goal, self.commands[indices])

    def reset(self):
        everyone = list(range(self.num_envs))
        self.venv.set_options(self._new_episodes(everyone))
        return self._observe(self.venv.reset(), everyone)

    def step_async(self, actions: np.ndarray) -> None:
        self.commands = self.commander.step(self.commands, actions)
        self.venv.step_async(self.commander.action(self.commands))

    def step_wait(self):
        raw, rewards, dones, infos = self.venv.step_wait()
        done = np.flatnonzero(dones).tolist()
        if done:
            terminal = self._observe(np.stack([infos[i]["terminal_observation"] for i in done]), done)
            for row, i in enumerate(done):
                infos[i]["terminal_observation"] = GoalObservation.row(terminal, row)
                infos[i]["final_distance"] = -float(rewards[i])
            vector_env = self.venv.vector_env
            vector_env.reset_envs(done, [None] * len(done), self._new_episodes(done))
            raw = vector_env.current_observations()
        return self._observe(raw, list(range(self.num_envs))), rewards, dones, infos


def make_imagination_env(experiment: PolicyExperiment, policy: str, seed: int) -> ImaginedGoalReaching:
    """`HWMVecEnv` on the experiment's checkpoint, wrapped for goal reaching with data-set starts and goals."""
    from hwm_env.sb3 import HWMVecEnv

    venv = HWMVecEnv(
        num_envs=experiment.num_envs, max_episode_steps=experiment.task.horizon,
        checkpoint=experiment.checkpoint_name, obs_mode="latent" if policy == "mlp" else "rgb",
        context_source=experiment.data, device=experiment.device, steps=experiment.sampling_steps,
    )
    try:
        runner = venv.vector_env.runner
        goals = DataGoals(experiment.data, runner.num_past, runner.image_size, runner.action_dim, experiment.task,
                          runner.frame_stride)
        return ImaginedGoalReaching(venv, goals, policy, experiment.task, seed=seed)
    except Exception:
        venv.close()
        raise


class SimGoalReaching(VecEnv):
    """The same task in HWM-Sim-v0, for the sim-trained baselines: N simulators, one batched encode per step.

    A start follows the data's distribution: reset with a fresh seed, the exploration policy
    that made the data drives P frames (the context the imagination starts from), and the
    goal is the frame it reaches k steps later (simulated ahead from a snapshot, then
    restored). Every simulator step counts in `real_frames`, the look-ahead included: a
    robot would have to live through it.
    """

    def __init__(self, num_envs: int, tokenizer, policy: str, task: TaskSettings, num_past: int,
                 frame_stride: int = 1, seed: int | None = None):
        from hwm_env.sim.env import HWMSimEnv

        height, width = tokenizer.image_size
        if height != width:
            raise ValueError(f"HWM-Sim-v0 renders square frames; the tokenizer expects {height}x{width}")
        self.sims = [HWMSimEnv(resolution=height) for _ in range(num_envs)]
        self.features = LatentFeatures(tokenizer)
        sim_space = self.sims[0].action_space
        self.commander = Commander(sim_space.shape[0], task, sim_space.low, sim_space.high)
        self.observation = GoalObservation(policy, self.features.dim, (height, width), sim_space.low, sim_space.high)
        super().__init__(num_envs, self.observation.space, self.commander.space)
        self.task, self.num_past, self.frame_stride = task, int(num_past), int(frame_stride)
        self._seed_envs(seed)
        self.real_frames = 0
        self.elapsed = np.zeros(num_envs, np.int64)
        dim = self.features.dim
        self.commands = np.zeros((num_envs, 2 * sim_space.shape[0]), np.float32)
        self.frames = np.zeros((num_envs, height, width, 3), np.uint8)
        self.current_features = np.zeros((num_envs, dim), np.float32)
        self.goal_frames = np.zeros_like(self.frames)
        self.goal_features = np.zeros((num_envs, dim), np.float32)
        self._actions: np.ndarray | None = None

    def _seed_envs(self, seed: int | None) -> None:
        self.rngs = [np.random.default_rng(sequence) for sequence in np.random.SeedSequence(seed).spawn(self.num_envs)]

    def _new_episodes(self, indices: Sequence[int]) -> None:
        from hwm_env.context import drive_sim, exploration_policy

        for i in indices:
            sim, rng = self.sims[i], self.rngs[i]
            episode_seed = int(rng.integers(SEED_LIMIT))
            sim.reset(seed=episode_seed)
            act = exploration_policy(sim, episode_seed)
            context = drive_sim(sim, act, self.num_past, self.frame_stride)
            k = int(rng.integers(self.task.goal_min_steps, self.task.goal_max_steps + 1))
            start = sim.get_state()
            for _ in range(k * self.frame_stride - 1):
                sim.advance(act())
            self.goal_frames[i] = sim.step(act())[0]
            sim.set_state(start)
            self.real_frames += (self.num_past + k) * self.frame_stride
            self.frames[i] = context.frames[-1]
            self.commands[i] = self.commander.start(context.actions[-1:])[0]
            self.elapsed[i] = 0
        indices = list(indices)
        encoded = self.features.encode(np.concatenate([self.frames[indices], self.goal_frames[indices]]))
        self.current_features[indices], self.goal_features[indices] = encoded[: len(indices)], encoded[len(indices):]

    def _observe(self, indices: Sequence[int]):
        current = self.observation.view(self.current_features[indices], self.frames[indices])
        goal = self.observation.view(self.goal_features[indices], self.goal_frames[indices])
        return self.observation.build(current, goal, self.commands[indices])

    def reset(self):
        if self._seeds and self._seeds[0] is not None:
            self._seed_envs(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self._new_episodes(range(self.num_envs))
        return self._observe(list(range(self.num_envs)))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        self.commands = self.commander.step(self.commands, self._actions)
        self._actions = None
        actions = self.commander.action(self.commands)
        for i, sim in enumerate(self.sims):
            for _ in range(self.frame_stride):
                frame, *_ = sim.step(actions[i])
            self.frames[i] = frame
        self.real_frames += self.num_envs * self.frame_stride
        self.current_features = self.features.encode(self.frames)  # one batched encode
        distances = latent_distance(self.current_features, self.goal_features)
        self.elapsed += 1
        dones = self.elapsed >= self.task.horizon
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done = np.flatnonzero(dones).tolist()
        if done:
            terminal = self._observe(done)
            for row, i in enumerate(done):
                infos[i] = {"terminal_observation": GoalObservation.row(terminal, row), "TimeLimit.truncated": True,
                            "final_distance": float(distances[i])}
            self._new_episodes(done)
        return self._observe(list(range(self.num_envs))), (-distances).astype(np.float32), dones, infos

    def close(self) -> None:
        for sim in self.sims:
            sim.close()

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.sims[i], attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._indices(indices):
            setattr(self.sims[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.sims[i], method_name)(*method_args, **method_kwargs) for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]


# --- PPO ------------------------------------------------------------------------------------------


class TrainingProgress(BaseCallback):
    """A tqdm bar over imagined or real frames; stops training once `budget` frames are used."""

    def __init__(self, total: int, description: str, count: Callable[[], int] | None = None,
                 budget: int | None = None, enabled: bool = True):
        super().__init__()
        self.total, self.description, self.count, self.budget, self.enabled = total, description, count, budget, enabled
        self.final_distances: list[float] = []

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.description, unit="frame", disable=not self.enabled,
                        dynamic_ncols=True)
        self.shown = 0

    def _on_step(self) -> bool:
        used = self.count() if self.count is not None else self.num_timesteps
        self.bar.update(used - self.shown)
        self.shown = used
        self.final_distances += [info["final_distance"] for info in self.locals["infos"] if "final_distance" in info]
        if self.final_distances and self.n_calls % 16 == 0:
            recent = float(np.mean(self.final_distances[-64:]))
            self.bar.set_postfix(final_latent_distance=f"{recent:.4f}")
            self.logger.record("rollout/final_latent_distance", recent)
        return self.budget is None or used < self.budget

    def _on_training_end(self) -> None:
        self.bar.close()


class WandbOutput(KVWriter):
    """Forwards SB3's logged values to a wandb run under the row's name."""

    def __init__(self, run, prefix: str):
        self.run, self.prefix = run, prefix

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        values = {f"{self.prefix}/{key}": float(value) for key, value in key_values.items()
                  if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)}
        self.run.log({**values, f"{self.prefix}/timesteps": step})

    def close(self) -> None:
        pass


def make_ppo(venv: VecEnv, policy: str, settings: PPOSettings, seed: int, device: str):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    hidden = [settings.hidden, settings.hidden]
    return PPO(
        SB3_POLICY[policy], VecMonitor(venv), n_steps=settings.n_steps, batch_size=settings.batch_size,
        n_epochs=settings.n_epochs, learning_rate=settings.learning_rate, gamma=settings.gamma,
        gae_lambda=settings.gae_lambda, clip_range=settings.clip_range, ent_coef=settings.ent_coef,
        policy_kwargs={"log_std_init": settings.log_std_init, "net_arch": {"pi": hidden, "vf": hidden}},
        seed=seed, device=("cpu" if policy == "mlp" else device), verbose=0,
    )


def train_ppo(model, total_timesteps: int, log_dir: Path, description: str, *, count=None, budget=None,
              progress: bool = True, wandb_run=None, prefix: str = "") -> float:
    """model.learn with a CSV log (and wandb) in `log_dir` and a progress bar; returns wall-clock seconds."""
    from stable_baselines3.common.logger import configure

    logger = configure(str(log_dir), ["csv"])
    if wandb_run is not None:
        logger.output_formats.append(WandbOutput(wandb_run, prefix))
    model.set_logger(logger)
    total = budget if budget is not None else total_timesteps
    start = time.perf_counter()
    try:
        model.learn(total_timesteps, callback=TrainingProgress(total, description, count, budget, progress))
    finally:
        logger.close()  # flush and close progress.csv (an open file would leak until garbage collection)
    return time.perf_counter() - start


def save_policy(model, path: Path) -> Path:
    """SB3's `model.save` zip, written atomically (never a half-written file)."""
    return atomic_write(path, model.save, suffix=".zip")


# --- scoring in HWM-Sim-v0 --------------------------------------------------------------------------


def evaluate_in_sim(act: Callable[[Any, np.random.Generator], np.ndarray], episodes, sim, features: LatentFeatures,
                    observation: GoalObservation, commander: Commander, protocol: Protocol, frame_stride: int = 1,
                    description: str = "evaluate", progress: bool = True) -> dict[str, Any]:
    """Run `act(observation, rng)` from each benchmark episode's start for `protocol.steps` frames.

    The policy acts every `frame_stride` frames (one world-model step); `rng` is seeded by
    the episode's planner seed, the same for every row. Scored by the benchmark's own
    `score`: the final view error (success measure) and pose error, in rad.
    """
    from tqdm.auto import tqdm

    from planners.benchmark import score

    view_errors, pose_errors, distances = [], [], []
    start_time = time.perf_counter()
    for episode in tqdm(episodes, desc=description, disable=not progress, dynamic_ncols=True):
        sim.set_state(episode.start)
        rng = np.random.default_rng(episode.planner_seed)
        commands = commander.start(episode.hold_action[None])  # (1, 2A): the pose held during the settle frames
        frame = episode.start_frame
        goal_features = features.encode(episode.goal_frame[None])
        goal = observation.view(goal_features, episode.goal_frame[None])
        current = features.encode(frame[None])
        for _ in range(math.ceil(protocol.steps / frame_stride)):
            policy_action = act(observation.build(observation.view(current, frame[None]), goal, commands), rng)
            commands = commander.step(commands, policy_action)
            for _ in range(frame_stride):
                frame, *_ = sim.step(commander.action(commands)[0])
            current = features.encode(frame[None])
        result = score(sim, episode, [])
        view_errors.append(result.view_error)
        pose_errors.append(result.pose_error)
        distances.append(float(latent_distance(current, goal_features)[0]))
    return {"view_errors": view_errors, "pose_errors": pose_errors, "final_distances": distances,
            "seconds": time.perf_counter() - start_time}


def ppo_actor(model) -> Callable:
    return lambda observation, rng: model.predict(observation, deterministic=True)[0]


def random_actor(action_dim: int) -> Callable:
    return lambda observation, rng: rng.uniform(-1.0, 1.0, (1, action_dim)).astype(np.float32)


def hold_actor(action_dim: int) -> Callable:
    return lambda observation, rng: np.zeros((1, action_dim), np.float32)


# --- the experiment -----------------------------------------------------------------------------------


def summarize(row: str, label: str, trained_in: str, evaluation: dict, protocol: Protocol, **details) -> dict:
    from hwm_env.sim.goals import VIEW_JOINT_NAMES, success_summary

    return {
        "row": row, "policy": label, "trained_in": trained_in,
        **success_summary(evaluation["view_errors"], protocol.success_threshold),
        "final_pose_error_mean": float(np.mean(evaluation["pose_errors"])),
        "final_latent_distance_mean": float(np.mean(evaluation["final_distances"])),
        "error_joints": list(VIEW_JOINT_NAMES),
        "eval_seconds": evaluation["seconds"],
        **details,
        "final_errors": [float(error) for error in evaluation["view_errors"]],
    }


def write_results(out: Path, results: dict) -> None:
    """results.json and results.md, each written to a temp file and renamed."""
    for name, text in ((RESULTS_JSON, json.dumps(results, indent=2)), (RESULTS_MARKDOWN, markdown_table(results))):
        atomic_write_text(out / name, text + "\n")


def start_wandb(experiment: PolicyExperiment, out: Path):
    try:
        import wandb
    except ImportError as error:
        raise ValueError("--wandb needs the wandb package: pip install 'humanoid-world-models[wandb]'") from error
    return wandb.init(project=experiment.wandb_project, dir=str(out), name=out.name,
                      config=json.loads(json.dumps(dataclasses.asdict(experiment), default=str)))


def run_policy_experiment(experiment: PolicyExperiment, log: Callable[[str], None] = print) -> dict:
    """Train and score every row of `experiment`; writes results.json, results.md and the policies into `out`."""
    from hwm_env.sim.env import HWMSimEnv
    from hwm_env.world_model_env import resolve_device
    from models.checkpoint import frame_stride as checkpoint_frame_stride, read_config, resolve_checkpoint
    from models.loading import nested_tokenizer_dir
    from models.tokenizers import load_tokenizer
    from planners.benchmark import make_episodes

    checkpoint = resolve_checkpoint(experiment.checkpoint_name)
    config = read_config(checkpoint)
    if config.get("family") != experiment.model:
        raise ValueError(f"{checkpoint}: is a '{config.get('family')}' checkpoint, --model {experiment.model} "
                         f"needs a '{experiment.model}' one")
    device = resolve_device(experiment.device)
    tokenizer = load_tokenizer(nested_tokenizer_dir(checkpoint), device=device)  # the policy sees frames through it
    num_past, action_dim = int(config["num_past"]), int(config["action_dim"])
    frame_stride = checkpoint_frame_stride(config, checkpoint)
    goals = DataGoals(experiment.data, num_past, tokenizer.image_size, action_dim, experiment.task, frame_stride)
    data_frames = goals.num_frames
    real_budget = experiment.real_budget or data_frames
    features = LatentFeatures(tokenizer)
    out = Path(experiment.out)
    out.mkdir(parents=True, exist_ok=True)
    sim_policy = experiment.policies[0]

    results: dict[str, Any] = {
        "experiment": json.loads(json.dumps(dataclasses.asdict(experiment), default=str)),
        "world_model": {"family": experiment.model, "checkpoint": str(checkpoint), "num_past": num_past,
                        "frame_stride": frame_stride},
        "data": {"path": str(goals.path), "train_frames": data_frames},
        "real_budget": real_budget,
        "reward": "minus the mean squared latent distance of the current frame to the goal image "
                  "(world model's tokenizer; FSQ codes for tokens)",
        "protocol": dataclasses.asdict(experiment.protocol),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": device,
                    "torch_threads": torch.get_num_threads()},
        "rows": [],
    }
    wandb_run = start_wandb(experiment, out) if experiment.wandb else None
    sim = HWMSimEnv(resolution=int(tokenizer.image_size[0]))
    try:
        episodes = make_episodes(sim, experiment.protocol, progress=experiment.progress)
        log(f"{len(episodes)} benchmark episodes (seed {experiment.protocol.seed}); world model {checkpoint}; "
            f"data {goals.path} ({data_frames} frames); real budget {real_budget} frames")

        commander = Commander(action_dim, experiment.task, sim.action_space.low, sim.action_space.high)

        def evaluate(act, policy: str, description: str) -> dict:
            observation = GoalObservation(policy, features.dim, tokenizer.image_size, sim.action_space.low,
                                          sim.action_space.high)
            return evaluate_in_sim(act, episodes, sim, features, observation, commander, experiment.protocol,
                                   frame_stride, description, experiment.progress)

        def finish(summary: dict) -> None:
            results["rows"].append(summary)
            write_results(out, results)
            if wandb_run is not None:
                wandb_run.log({f"{summary['row']}/success_rate": summary["success_rate"],
                               f"{summary['row']}/final_error_mean": summary["final_error_mean"]})
            log(f"{summary['row']}: success {summary['success_rate']:.2f}, final view error "
                f"{summary['final_error_mean']:.3f} rad, pose error {summary['final_pose_error_mean']:.3f} rad")

        for row in experiment.rows:
            if row == "imagination":
                for policy in experiment.policies:
                    name = f"imagination-{policy}"
                    venv = make_imagination_env(experiment, policy, experiment.seed)
                    try:
                        model = make_ppo(venv, policy, experiment.ppo, experiment.seed, device)
                        seconds = train_ppo(model, experiment.imagination_steps, out / name,
                                            f"{name} (imagined frames)", progress=experiment.progress,
                                            wandb_run=wandb_run, prefix=name)
                    finally:
                        venv.close()
                    policy_file = save_policy(model, out / f"{name}.zip")
                    evaluation = evaluate(ppo_actor(model), policy, f"{name} in HWM-Sim-v0")
                    finish(summarize(name, POLICY_LABELS[policy], f"{FAMILY_LABELS[experiment.model]} imagination",
                                     evaluation, experiment.protocol, real_frames=data_frames,
                                     real_frames_note="the world model's training data; no simulator frames",
                                     imagined_frames=int(model.num_timesteps), train_seconds=seconds,
                                     policy_file=str(policy_file)))
            elif row in ("sim-budget", "sim-unlimited"):
                budget = real_budget if row == "sim-budget" else experiment.upper_bound_steps
                name = f"{row}-{sim_policy}"
                venv = SimGoalReaching(experiment.sim_envs, tokenizer, sim_policy, experiment.task, num_past,
                                       frame_stride, seed=experiment.seed)
                try:
                    model = make_ppo(venv, sim_policy, experiment.ppo, experiment.seed, device)
                    seconds = train_ppo(model, budget, out / name, f"{name} (real frames)",
                                        count=lambda: venv.real_frames, budget=budget, progress=experiment.progress,
                                        wandb_run=wandb_run, prefix=name)
                finally:
                    venv.close()
                policy_file = save_policy(model, out / f"{name}.zip")
                evaluation = evaluate(ppo_actor(model), sim_policy, f"{name} in HWM-Sim-v0")
                trained_in = "HWM-Sim-v0, " + ("same real budget" if row == "sim-budget" else "unlimited (upper bound)")
                finish(summarize(name, POLICY_LABELS[sim_policy], trained_in, evaluation, experiment.protocol,
                                 real_frames=int(venv.real_frames), real_budget=budget,
                                 imagined_frames=0, policy_steps=int(model.num_timesteps), train_seconds=seconds,
                                 policy_file=str(policy_file)))
            else:
                controlled = commander.space.shape[0]
                act = random_actor(controlled) if row == "random" else hold_actor(controlled)
                evaluation = evaluate(act, sim_policy, f"{row} in HWM-Sim-v0")
                label = "random policy (uniform u)" if row == "random" else "hold start pose (u = 0)"
                finish(summarize(row, label, "-", evaluation, experiment.protocol, real_frames=0, imagined_frames=0,
                                 train_seconds=0.0))
    finally:
        sim.close()
        if wandb_run is not None:
            wandb_run.finish()
    return results


# --- reporting -------------------------------------------------------------------------------------------


def markdown_table(results: dict) -> str:
    """The task line and one row per trained or baseline policy."""
    protocol, experiment = results["protocol"], results["experiment"]
    task = experiment["task"]
    joints = "all action entries" if task["control"] == "all" else "the goal joints (hips, arms, neck)"
    if task["action_mode"] == "offset":
        acting = f"set the targets of {joints} within ±{task['max_offset']} of the start command"
    else:
        acting = f"move the targets of {joints} by at most {task['max_delta']} per frame"
    intro = (
        f"Goal reaching in HWM-Sim-v0 on the planning benchmark's goal set: {protocol['episodes']} episodes "
        f"(seed {protocol['seed']}), {protocol['steps']} frames each; success = final view error (mean |angle - goal| "
        f"over hip yaw/roll/pitch and neck pitch) < {protocol['success_threshold']} rad; pose error = the same over "
        f"all goal joints. Policies {acting}; "
        f"reward = minus the latent MSE to the goal image ({FAMILY_LABELS[results['world_model']['family']]}'s "
        f"tokenizer). Training episodes: {task['horizon']} frames, goals {task['goal_min_steps']}-"
        f"{task['goal_max_steps']} frames ahead; imagination starts from `{results['data']['path']}` "
        f"({results['data']['train_frames']:,} frames)."
    )
    columns = ["policy", "trained in", "success", "final view error (rad)", "final pose error (rad)", "real frames",
               "imagined frames", "train time (s)"]
    cells = [
        [row["policy"], row["trained_in"], f"{row['success_rate']:.2f} ({row['successes']}/{row['episodes']})",
         f"{row['final_error_mean']:.3f} ± {row['final_error_std']:.3f}", f"{row['final_pose_error_mean']:.3f}",
         f"{row['real_frames']:,}", f"{row['imagined_frames']:,}" if row.get("imagined_frames") else "-",
         f"{row['train_seconds']:.0f}"]
        for row in results["rows"]
    ]
    return tables.markdown_table(columns, cells, align="llrrrrrr", intro=intro)
