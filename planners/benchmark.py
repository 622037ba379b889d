"""The goal-reaching planning benchmark (DESIGN.md section 10): plan in a model, act in HWM-Sim-v0.

Protocol (fixed and seeded; every row sees the same episodes and the same planner seeds):
1. Episode e: reset HWM-Sim-v0 with a seed drawn from `seed`, hold the start pose for
   `settle_steps` frames (the objects settle; these frames and the hold actions into them
   are the world model's context), then `GoalSampler` draws a reachable goal pose from
   there. The goal is shown as the head-camera image at that pose, encoded once by the
   planning model's tokenizer.
2. A row drives the simulator from the start for `steps` frames with MPC. The planner
   chooses joint targets for the joints a goal moves (hip yaw/roll/pitch, both arms, neck);
   legs, grippers and base keep their start commands. Each planned action is held for
   `action_repeat` frames (DINO-WM's frameskip); the planner looks `horizon` held actions
   ahead, executes `replan_every` of them, then replans from the new observation. Its model
   is a world model (latent rollouts, no decoding) or the simulator itself (the oracle:
   same planner, same latent cost, on rendered frames encoded by a world model's tokenizer).
   Baselines: random actions (uniform in the planner's action box, held likewise) and
   holding the start pose.
3. Score: the final view error, the mean |angle - goal angle| (rad) over the four goal
   joints that aim the head camera (hip yaw, roll, pitch and neck pitch); success when
   below `success_threshold` (default 0.03 rad, about 1.3 pixels of camera rotation at
   64 px). The predicate, and why these joints, is `hwm_env.sim.goals` (view_error,
   SUCCESS_THRESHOLD); the error over all 18 goal joints (`joint_error`) is reported
   beside it as `final_pose_error`, not used for success.

The simulator lives in `hwm_env`, which depends on `planners`; it is imported inside the
functions here so that `planners` itself stays importable without MuJoCo (the success
predicate in `hwm_env.sim.goals` loads no MuJoCo).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from hwm_env.sim.goals import SUCCESS_THRESHOLD, VIEW_JOINT_NAMES, joint_error, success_summary, view_error
from models import tables

WORLD_MODELS = ("flow", "masked")
MODELS = ("flow", "masked", "oracle", "random", "hold")
PLANNERS = ("cem", "mppi")
COSTS = ("latent", "image")
MODEL_LABELS = {
    "flow": "Flow-HWM",
    "masked": "Masked-HWM",
    "oracle": "oracle (simulator)",
    "random": "random actions",
    "hold": "hold start pose",
}
FIXED_COMMAND_WIDTH = 1e-4  # action units: the planner box around the start command of joints it does not move

# A plan costs num_samples x iterations x horizon x action_repeat one-frame predictions
# (16 x 2 x 1 x 4 = 128) in iterations x horizon x action_repeat batched model calls. With
# the shipped default architectures that takes about 0.75 s per plan for either family (Flow-HWM,
# 2 Euler steps; Masked-HWM, 1 MaskGIT step) on one CPU thread beside other work.
# Replanning after every held action makes up for the small search.
# The sampling width restarts at init_std / max_std every plan, so it is also the noise a
# replan adds to joints the image cannot see well: 0.1 (a twentieth of each joint's range)
# keeps that below the goal offsets (<= 0.3 action units); in 3 oracle episodes 0.3 reached
# 0.097 / 0.038 rad (CEM / MPPI, 3 episodes) where 0.1 reached 0.028 / 0.013. CEM keeps
# the best eighth (DINO-WM: 30 of 300): its mean of 4 elites reached 0.030 rad over 20
# oracle episodes, of 2 elites 0.024 over 10; MPPI weights its 4 elites instead.
# filter_scale: plans pass through a soft deadband across replans (planners/plan_filter.py; 0
# turns it off). On 20 episodes it took Flow-HWM + MPPI from 7/20 to 14/20 (better in 15 of the 20
# paired episodes) and + CEM from 5/20 to 6/20, the oracle from 16/20 to 16/20 (MPPI) and 14/20
# (CEM): the world model's plans jitter near the goal, the simulator's hardly do.
PLANNER_DEFAULTS = {
    "cem": {"horizon": 1, "num_samples": 16, "num_elites": 2, "iterations": 2, "init_std": 0.1, "min_std": 0.02,
            "filter_scale": 0.05},
    "mppi": {"horizon": 1, "num_samples": 16, "num_elites": 4, "iterations": 2, "temperature": 0.5,
             "min_std": 0.02, "max_std": 0.1, "filter_scale": 0.05},
}
QUICK_PLANNER_SETTINGS = {
    "cem": {"num_samples": 6, "num_elites": 2, "iterations": 1},
    "mppi": {"num_samples": 6, "num_elites": 2, "iterations": 1},
}
QUICK_PROTOCOL = {"episodes": 2, "steps": 4, "action_repeat": 2, "settle_steps": 4}
SHORT_NAMES = {"horizon": "H", "num_samples": "N", "num_elites": "K", "iterations": "I", "init_std": "std",
               "min_std": "min_std", "max_std": "max_std", "temperature": "temp", "filter_scale": "filter"}


@dataclasses.dataclass
class Protocol:
    """The episode settings every row shares."""

    episodes: int = 20
    steps: int = 48  # frames executed per episode: 3.2 s at 15 Hz (a goal pose settles in 1.5 s)
    action_repeat: int = 4  # frames each planned action is held
    replan_every: int = 1  # planned (held) actions executed between plans
    seed: int = 0
    settle_steps: int = 8  # hold frames before the goal is drawn; the world models' context comes from them
    max_goal_offset: float = 0.3  # GoalSampler: largest offset per goal joint, in action units
    success_threshold: float = SUCCESS_THRESHOLD  # rad, final view error; the default is the one success predicate
    cost_reduce: str = "final"  # distance of the last planned frame ("final") or of all ("sum")
    cost: str = "latent"  # "latent": LatentGoalCost; "image": ImageGoalCost (decoded frames, blurred)
    cost_blur: float = 4.0  # ImageGoalCost's Gaussian sigma, pixels

    def __post_init__(self):
        for name in ("episodes", "steps", "action_repeat", "replan_every", "settle_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be an integer >= 1, got {value!r}")
        if self.steps % self.action_repeat:
            raise ValueError(f"steps ({self.steps}) must be a multiple of action-repeat ({self.action_repeat})")
        if not 0 < self.max_goal_offset <= 2:
            raise ValueError(f"max-goal-offset must be in (0, 2] action units, got {self.max_goal_offset}")
        if not (math.isfinite(self.success_threshold) and self.success_threshold > 0):
            raise ValueError(f"success-threshold must be a positive number of radians, got {self.success_threshold}")
        if self.cost_reduce not in ("final", "sum"):
            raise ValueError(f"cost-reduce must be 'final' or 'sum', got '{self.cost_reduce}'")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {list(COSTS)}, got '{self.cost}'")
        if not (math.isfinite(self.cost_blur) and self.cost_blur >= 0):
            raise ValueError(f"cost-blur must be a number of pixels >= 0, got {self.cost_blur}")

    @property
    def decisions(self) -> int:
        """Held actions executed per episode."""
        return self.steps // self.action_repeat


def planner_settings(planner: str, overrides: dict | None = None, quick: bool = False) -> dict:
    """The planner's hyper-parameters: defaults, then the quick ones, then `overrides` (checked by name)."""
    if planner not in PLANNER_DEFAULTS:
        raise ValueError(f"unknown planner '{planner}'; known: {list(PLANNERS)}")
    settings = dict(PLANNER_DEFAULTS[planner])
    if quick:
        settings.update(QUICK_PLANNER_SETTINGS[planner])
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ValueError(f"{planner}: unknown hyper-parameter '{key}'; known: {sorted(settings)}")
        settings[key] = type(PLANNER_DEFAULTS[planner][key])(value)
    if not settings["filter_scale"]:
        del settings["filter_scale"]  # off: rows and tables name only what planned
    return settings


def parse_overrides(planner: str, pairs: Sequence[str] | None) -> dict:
    """`["horizon=2", "init_std=0.5"]` -> {"horizon": 2, "init_std": 0.5}, typed like the defaults."""
    overrides = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--{planner}: expected KEY=VALUE, got '{pair}'")
        if key not in PLANNER_DEFAULTS[planner]:
            known = sorted(PLANNER_DEFAULTS[planner])
            raise ValueError(f"--{planner}: unknown hyper-parameter '{key}'; known: {known}")
        kind = type(PLANNER_DEFAULTS[planner][key])
        try:
            overrides[key] = kind(text)
        except ValueError:
            raise ValueError(f"--{planner}: {key} must be {kind.__name__}, got '{text}'") from None
    return overrides


def parse_names(text: str, known: Sequence[str], flag: str) -> tuple[str, ...]:
    """"flow, oracle" -> ("flow", "oracle"), refusing unknown or repeated names."""
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError(f"{flag} needs at least one of {list(known)}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{flag}: unknown name(s) {unknown}; known: {list(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{flag}: a name is repeated in '{text}'")
    return names


# --- episodes and scores ---------------------------------------------------------------------


@dataclasses.dataclass
class Episode:
    """One start/goal pair, identical for every row."""

    index: int
    planner_seed: int  # seeds the planner, the world model's sampling noise and the random baseline
    start: Any  # SimState after the settle frames
    start_frame: np.ndarray  # (H, W, 3) uint8, the observation at the start
    start_state: np.ndarray  # (25,) float32
    context_frames: np.ndarray  # (settle_steps, H, W, 3) uint8, ending at start_frame
    context_actions: np.ndarray  # (settle_steps, 25) float32, the action into each context frame
    hold_action: np.ndarray  # (25,) the action that holds the start pose
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # (25,) float32


def make_episodes(env, protocol: Protocol, progress: bool = False) -> list[Episode]:
    """Start and goal of each episode, all drawn from `protocol.seed`."""
    from tqdm.auto import tqdm

    from hwm_env.context import drive_sim
    from hwm_env.sim.goals import GoalSampler

    episodes = []
    seeds = np.random.SeedSequence(protocol.seed).spawn(protocol.episodes)
    for index, sequence in enumerate(tqdm(seeds, desc="episodes (start, goal)", disable=not progress)):
        reset_seed, goal_seed, planner_seed = (int(value) for value in sequence.generate_state(3))
        env.reset(seed=reset_seed)
        hold_action = env.action_from_state(env.joint_state())
        context = drive_sim(env, lambda: hold_action, protocol.settle_steps)
        start, start_state = env.get_state(), env.joint_state()
        goal = GoalSampler(seed=goal_seed, max_offset=protocol.max_goal_offset).sample(env)  # env back at start
        episodes.append(Episode(
            index=index, planner_seed=planner_seed, start=start, start_frame=context.frames[-1],
            start_state=start_state, context_frames=context.frames, context_actions=context.actions,
            hold_action=hold_action, goal_frame=goal.frame, goal_state=goal.state,
        ))
    return episodes


def action_box(hold_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the planner: the full range on the goal joints, the start command elsewhere."""
    from hwm_env.sim.goals import GOAL_JOINTS

    low = hold_action.astype(np.float32) - FIXED_COMMAND_WIDTH
    high = hold_action.astype(np.float32) + FIXED_COMMAND_WIDTH
    low[list(GOAL_JOINTS)], high[list(GOAL_JOINTS)] = -1.0, 1.0
    return low, high


# --- held actions: env, dynamics and context ---------------------------------------------------


def action_repeat_env(env, repeat: int):
    """`env` whose step holds the action for `repeat` frames; info["frames"] has all of them."""
    import gymnasium as gym

    class ActionRepeat(gym.Wrapper):
        def step(self, action):
            frames = []
            for _ in range(repeat):
                observation, reward, terminated, truncated, info = self.env.step(action)
                frames.append(observation)
                if terminated or truncated:
                    break
            return observation, reward, terminated, truncated, {**info, "frames": np.stack(frames)}

    return ActionRepeat(env)


class HeldActionDynamics:
    """Planner dynamics over held actions: each of the H planned actions lasts `repeat` model steps.

    rollout(state, actions (N, H, A)) -> the frame or latent at the end of each hold, (N, H, ...).
    A model step is one frame for the simulator and `frame_stride` frames for a world model.
    """

    def __init__(self, dynamics, repeat: int):
        self.dynamics = dynamics
        self.repeat = int(repeat)
        self.action_dim = dynamics.action_dim

    def rollout(self, state, actions):
        held = actions.repeat_interleave(self.repeat, dim=1)  # (N, H * repeat, A)
        return self.dynamics.rollout(state, held)[:, self.repeat - 1 :: self.repeat]


class HeldActionContext:
    """Feeds the frames of a held action to a `WorldModelContext` (one MPC step = `repeat` frames).

    A model with frame stride k sees every k-th frame (the last of each k): the frames its
    latents stand for. The action into each is the held action, the mean over its k frames.
    """

    def __init__(self, context, frame_stride: int = 1):
        self.context = context
        self.frame_stride = int(frame_stride)

    def __call__(self, env, observation, info: dict):
        action = info.get("executed_action")
        if action is None:
            return self.context(env, observation, info)
        frames = info["frames"]
        if len(frames) % self.frame_stride:
            raise ValueError(f"a hold of {len(frames)} frames is not a whole number of model steps "
                             f"(frame stride {self.frame_stride})")
        for frame in frames[self.frame_stride - 1 :: self.frame_stride]:
            state = self.context(env, frame, {"executed_action": action})
        return state


def strided_context(frames: np.ndarray, actions: np.ndarray, num_past: int, frame_stride: int):
    """The last `num_past` of every `frame_stride`-th frame, ending at the last one, with their actions.

    Where the frames run out, the earliest repeats: the protocol's context frames hold the start
    pose, so an earlier frame would show the same pose (the action into it is the hold action).
    """
    picks = np.arange(len(frames) - 1, -1, -int(frame_stride))[:num_past][::-1]
    picks = np.concatenate([np.full(num_past - len(picks), picks[0]), picks])
    return frames[picks], actions[picks]


def goal_cost(tokenizer, episode: Episode, protocol: Protocol):
    """The protocol's goal cost for one episode: latent distance, or blurred image distance."""
    from planners.costs import ImageGoalCost, LatentGoalCost

    if protocol.cost == "image":
        return ImageGoalCost(episode.goal_frame, tokenizer, blur_sigma=protocol.cost_blur, reduce=protocol.cost_reduce)
    return LatentGoalCost.from_image(tokenizer, episode.goal_frame, reduce=protocol.cost_reduce)


class FinalFrameCost:
    """A `reduce="final"` goal cost on frames, given only the last frame of each candidate.

    The oracle's trajectories are rendered frames; the final-step distance needs only the
    last one, so this gives the same number for 1/H of the encoder work.
    """

    def __init__(self, cost):
        self.cost = cost

    def __call__(self, trajectory):
        return self.cost(trajectory[:, -1:])  # (N, 1, ...) -> (N,)


# --- what a planning row plans with ----------------------------------------------------------


class WorldModelPlanning:
    """Plans in a Flow-HWM or Masked-HWM checkpoint: latent rollouts from the encoded context."""

    def __init__(self, kind: str, checkpoint, device: str = "cpu", sampling_steps: int | None = None):
        from models.checkpoint import frame_stride, read_config, resolve_checkpoint
        from planners.dynamics import load_world_model_dynamics

        self.kind = kind
        self.checkpoint = str(resolve_checkpoint(checkpoint))
        config = read_config(self.checkpoint)
        family = config.get("family")
        if family != kind:
            raise ValueError(f"{self.checkpoint}: is a '{family}' checkpoint, the {kind} rows need a '{kind}' one")
        if sampling_steps is not None and int(sampling_steps) < 1:
            raise ValueError(f"{kind} sampling steps must be >= 1, got {sampling_steps}")
        dynamics, self.tokenizer = load_world_model_dynamics(self.checkpoint, device=device)
        if dynamics.action_dim != 25:
            raise ValueError(f"{self.checkpoint}: the model takes {dynamics.action_dim}-d actions, HWM-Sim-v0 has 25")
        self.model = dynamics.model
        self.num_past = dynamics.num_past
        # Data frames per latent frame: a stride-k model predicts the frame k ahead in one step.
        self.frame_stride = frame_stride(config, self.checkpoint)
        self.sampling_steps = sampling_steps

    def describe(self) -> dict:
        steps = self.sampling_steps or getattr(self.model.config, "num_sampling_steps", None)
        return {"checkpoint": self.checkpoint, "sampling_steps": steps,
                "cfg_scale": getattr(self.model.config, "cfg_scale", None),
                "num_past": self.num_past, "frame_stride": self.frame_stride,
                "cost_tokenizer": f"{self.checkpoint}/tokenizer"}

    def model_steps_per_hold(self, action_repeat: int) -> int:
        """Model steps that span one held action of `action_repeat` frames."""
        if action_repeat % self.frame_stride:
            raise ValueError(f"{self.checkpoint}: frame stride {self.frame_stride} does not divide the "
                             f"action repeat {action_repeat}; choose --action-repeat as a multiple of it")
        return action_repeat // self.frame_stride

    def start_context(self, frames: np.ndarray, actions: np.ndarray):
        """A `WorldModelContext` started from still frames ending at the current observation."""
        from planners.dynamics import WorldModelContext

        if frames.shape[0] < self.num_past:
            raise ValueError(
                f"{self.checkpoint}: the model needs {self.num_past} context frames but the protocol settles "
                f"only {frames.shape[0]}; raise --settle-steps"
            )
        context = WorldModelContext(self.tokenizer, self.num_past)
        context.start(*strided_context(frames, actions, self.num_past, self.frame_stride))
        return context

    def for_episode(self, episode: Episode, seed: int, protocol: Protocol):
        """(dynamics, cost, state_fn) over model steps; the context comes from the settle frames."""
        from planners.dynamics import WorldModelDynamics

        self.model_steps_per_hold(protocol.action_repeat)
        dynamics = WorldModelDynamics(self.model, steps=self.sampling_steps, seed=seed)
        context = self.start_context(episode.context_frames, episode.context_actions)
        return (dynamics, goal_cost(self.tokenizer, episode, protocol),
                HeldActionContext(context, self.frame_stride))

    def close(self) -> None:
        pass


class OraclePlanning:
    """Plans with the simulator itself (a second HWMSimEnv restored to the executing env's state)."""

    def __init__(self, tokenizer, tokenizer_source: str, resolution: int, control_hz: float):
        from hwm_env.sim.dynamics import SimDynamics
        from hwm_env.sim.env import HWMSimEnv

        self.tokenizer = tokenizer
        self.tokenizer_source = tokenizer_source
        self.model_env = HWMSimEnv(resolution=resolution, control_hz=control_hz)
        self.dynamics = SimDynamics(self.model_env)

    def describe(self) -> dict:
        return {"checkpoint": None, "cost_tokenizer": self.tokenizer_source}

    def model_steps_per_hold(self, action_repeat: int) -> int:
        return action_repeat  # the simulator steps one frame at a time

    def for_episode(self, episode: Episode, seed: int, protocol: Protocol):
        cost = goal_cost(self.tokenizer, episode, protocol)
        cost = FinalFrameCost(cost) if protocol.cost_reduce == "final" else cost
        return self.dynamics, cost, lambda env, _observation, _info: env.unwrapped.get_state()

    def close(self) -> None:
        self.model_env.close()


# --- running rows ----------------------------------------------------------------------------


@dataclasses.dataclass
class EpisodeResult:
    view_error: float
    pose_error: float
    plan_seconds: list[float]  # wall-clock
    plan_cpu_seconds: list[float]  # process CPU time, all threads (inflated by spinning OpenMP threads when shared)


class CpuTimedPlanner:
    """A planner that also records the process CPU time of each `plan` call (MPC records wall time)."""

    def __init__(self, planner):
        self.planner = planner
        self.horizon = planner.horizon
        self.cpu_seconds: list[float] = []

    def reset(self, *args, **kwargs) -> None:
        self.planner.reset(*args, **kwargs)

    def plan(self, *args, **kwargs):
        started = time.process_time()
        try:
            return self.planner.plan(*args, **kwargs)
        finally:
            self.cpu_seconds.append(time.process_time() - started)


def make_planner(planner: str, settings: dict, seed: int, low=-1.0, high=1.0):
    from planners.cem import CEM
    from planners.mppi import MPPI
    from planners.plan_filter import FilteredPlanner

    settings = dict(settings)
    filter_scale = settings.pop("filter_scale", 0.0)
    made = {"cem": CEM, "mppi": MPPI}[planner](**settings, low=low, high=high, seed=seed)
    return FilteredPlanner(made, filter_scale) if filter_scale else made


def score(env, episode: Episode, plan_seconds=(), plan_cpu_seconds=()) -> EpisodeResult:

    state = env.joint_state()
    return EpisodeResult(view_error(state, episode.goal_state), joint_error(state, episode.goal_state),
                         list(plan_seconds), list(plan_cpu_seconds))


def run_planning_episode(env, episode: Episode, planning, planner: str, settings: dict,
                         protocol: Protocol) -> EpisodeResult:
    """MPC from the episode's start, planning held actions of the goal joints."""
    from planners.mpc import MPC

    low, high = action_box(episode.hold_action)
    planner_object = CpuTimedPlanner(make_planner(planner, settings, episode.planner_seed, low=low, high=high))
    dynamics, cost, state_fn = planning.for_episode(episode, episode.planner_seed, protocol)
    dynamics = HeldActionDynamics(dynamics, planning.model_steps_per_hold(protocol.action_repeat))
    env.set_state(episode.start)
    hold_plan = np.repeat(episode.hold_action[None], planner_object.horizon, axis=0)
    result = MPC(planner_object, dynamics, cost, replan_every=protocol.replan_every).run(
        action_repeat_env(env, protocol.action_repeat), state_fn, protocol.decisions,
        observation=episode.start_frame.copy(), info={"state": episode.start_state.copy()}, initial_plan=hold_plan,
    )
    return score(env, episode, result["plan_seconds"], planner_object.cpu_seconds)


def run_baseline_episode(env, episode: Episode, baseline: str, protocol: Protocol) -> EpisodeResult:
    """Random actions (uniform in the planner's box, seeded per episode, held likewise) or the start pose."""
    env.set_state(episode.start)
    low, high = action_box(episode.hold_action)
    rng = np.random.default_rng(episode.planner_seed)
    for _ in range(protocol.decisions):
        action = rng.uniform(low, high).astype(np.float32) if baseline == "random" else episode.hold_action
        for _ in range(protocol.action_repeat):
            env.step(action)
    return score(env, episode)


def summarize(model: str, planner: str | None, results: list[EpisodeResult], episodes: list[Episode],
              protocol: Protocol, settings: dict | None, details: dict) -> dict:
    """One JSON row."""
    errors = [result.view_error for result in results]
    pose_errors = np.asarray([result.pose_error for result in results], dtype=np.float64)
    seconds = [value for result in results for value in result.plan_seconds]
    cpu_seconds = [value for result in results for value in result.plan_cpu_seconds]
    return {
        "model": model,
        "planner": planner or "none",
        **success_summary(errors, protocol.success_threshold),
        "initial_error_mean": float(np.mean([view_error(e.start_state, e.goal_state) for e in episodes])),
        "final_pose_error_mean": float(pose_errors.mean()),
        "seconds_per_plan": float(np.mean(seconds)) if seconds else None,
        "seconds_per_plan_max": float(np.max(seconds)) if seconds else None,
        "cpu_seconds_per_plan": float(np.mean(cpu_seconds)) if cpu_seconds else None,
        "plans": len(seconds),
        "hyperparameters": dict(settings or {}),
        **details,
        "error_joints": list(VIEW_JOINT_NAMES),
        "protocol": dataclasses.asdict(protocol),
        "final_errors": [float(error) for error in errors],
    }


def _load_world_model(kind, checkpoint, device, sampling_steps, required, log):
    try:
        return WorldModelPlanning(kind, checkpoint, device=device, sampling_steps=sampling_steps)
    except FileNotFoundError as error:
        if kind in required:
            raise FileNotFoundError(f"{MODEL_LABELS[kind]} rows: {error}") from error
        log(f"skipping the {MODEL_LABELS[kind]} rows: {error}")
        return None


def _oracle_tokenizer(oracle_tokenizer, world_models: dict, checkpoints: dict, device, required, log):
    """(tokenizer, source) for the oracle's cost: the given one, else the Flow then Masked model's, else shipped."""
    from models.checkpoint import resolve_checkpoint
    from models.tokenizers import load_tokenizer

    if oracle_tokenizer is not None:
        return load_tokenizer(oracle_tokenizer, device=device), str(resolve_checkpoint(oracle_tokenizer))
    for kind in WORLD_MODELS:
        if world_models.get(kind) is not None:
            planning = world_models[kind]
            return planning.tokenizer, f"{planning.checkpoint}/tokenizer"
    candidates = [f"{checkpoints[kind]}/tokenizer" for kind in WORLD_MODELS if checkpoints.get(kind)]
    candidates += ["tokenizer-continuous", "tokenizer-fsq"]
    for candidate in candidates:
        try:
            if candidate.endswith("/tokenizer"):  # a world model's nested tokenizer (shipped names resolve first)
                path = resolve_checkpoint(candidate[: -len("/tokenizer")]) / "tokenizer"
            else:
                path = resolve_checkpoint(candidate)
            return load_tokenizer(path, device=device), str(path)
        except FileNotFoundError:
            continue
    message = f"no tokenizer for the oracle's goal-image cost (tried {candidates}); pass --oracle-tokenizer"
    if "oracle" in required:
        raise FileNotFoundError(message)
    log(f"skipping the oracle rows: {message}")
    return None, None


def run_planning_benchmark(
    models: Sequence[str] = MODELS,
    planners: Sequence[str] = PLANNERS,
    *,
    flow: str = "flow-default",
    masked: str = "masked-default",
    oracle_tokenizer: str | None = None,
    protocol: Protocol | None = None,
    planner_overrides: dict[str, dict] | None = None,
    quick: bool = False,
    sampling_steps: dict[str, int | None] | None = None,
    required: Sequence[str] = (),
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_row: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run the protocol; one row per (model, planner) plus the random and hold baselines.

    `quick` shrinks the planners (the protocol is whatever `protocol` says).
    `sampling_steps` per family ({"flow": n, "masked": n}); missing or None means the
    checkpoint's default.
    `required`: model names that must run; a missing checkpoint for any other world model
    (or for the oracle's cost tokenizer) skips its rows with a message through `log`.
    `on_row(rows_so_far)` is called after every row (e.g. to save partial results).
    """
    from tqdm.auto import tqdm

    from hwm_env.sim.env import HWMSimEnv

    models, planners = tuple(models), tuple(planners)
    if not models:
        raise ValueError(f"no model to benchmark; choose from {list(MODELS)}")
    for name in models:
        if name not in MODELS:
            raise ValueError(f"unknown model '{name}'; known: {list(MODELS)}")
    for name in planners:
        if name not in PLANNERS:
            raise ValueError(f"unknown planner '{name}'; known: {list(PLANNERS)}")
    protocol = protocol or Protocol()
    overrides = planner_overrides or {}
    settings = {planner: planner_settings(planner, overrides.get(planner), quick) for planner in planners}
    for planner, values in settings.items():
        make_planner(planner, values, seed=0)  # bad hyper-parameters fail before anything loads
        if protocol.replan_every > values["horizon"]:
            raise ValueError(f"replan-every ({protocol.replan_every}) must not exceed the {planner} horizon "
                             f"({values['horizon']})")
    sampling_steps = {"flow": None, "masked": None, **(sampling_steps or {})}
    checkpoints = {"flow": flow, "masked": masked}

    world_models = {kind: _load_world_model(kind, checkpoints[kind], device, sampling_steps.get(kind), required, log)
                    for kind in WORLD_MODELS if kind in models}
    oracle = None
    if "oracle" in models:
        tokenizer, source = _oracle_tokenizer(oracle_tokenizer, world_models, checkpoints, device, required, log)
        oracle = (tokenizer, source) if tokenizer is not None else None

    tokenizers = [planning.tokenizer for planning in world_models.values() if planning is not None]
    tokenizers += [oracle[0]] if oracle is not None else []
    sizes = {tuple(tokenizer.image_size) for tokenizer in tokenizers}
    if len(sizes) > 1:
        raise ValueError(f"the planning models' tokenizers expect different image sizes {sorted(sizes)}; "
                         "benchmark them in separate runs")
    height, width = sizes.pop() if sizes else (64, 64)
    if height != width:
        raise ValueError(f"HWM-Sim-v0 renders square frames; the tokenizer expects {height}x{width}")

    env = HWMSimEnv(resolution=height)
    planning_models = dict(world_models)
    rows: list[dict] = []
    try:
        if oracle is not None:
            planning_models["oracle"] = OraclePlanning(oracle[0], oracle[1], height, env.control_hz)
        episodes = make_episodes(env, protocol, progress=progress)
        for model in models:
            if model in ("random", "hold"):
                results = [run_baseline_episode(env, episode, model, protocol)
                           for episode in tqdm(episodes, desc=MODEL_LABELS[model], disable=not progress)]
                rows.append(summarize(model, None, results, episodes, protocol, None, {"checkpoint": None}))
                if on_row is not None:
                    on_row(rows)
                continue
            planning = planning_models.get(model)
            if planning is None:
                continue  # skipped above, with a message
            for planner in planners:
                results = []
                bar = tqdm(episodes, desc=f"{MODEL_LABELS[model]} + {planner.upper()}", disable=not progress)
                for episode in bar:
                    results.append(run_planning_episode(env, episode, planning, planner, settings[planner], protocol))
                    so_far = success_summary([result.view_error for result in results], protocol.success_threshold)
                    seconds = [value for result in results for value in result.plan_seconds]
                    bar.set_postfix(success=f"{so_far['success_rate']:.2f}", error=f"{so_far['final_error_mean']:.3f}",
                                    s_per_plan=f"{np.mean(seconds):.2f}")
                rows.append(summarize(model, planner.upper(), results, episodes, protocol, settings[planner],
                                      planning.describe()))
                if on_row is not None:
                    on_row(rows)
    finally:
        env.close()
        for planning in planning_models.values():
            if planning is not None:
                planning.close()
    return rows


# --- reporting -------------------------------------------------------------------------------


def format_settings(row: dict) -> str:
    """"H1 N16 K2 I2 std 0.1 min_std 0.02, 2 sampling steps" from a row's hyper-parameters."""
    parts = []
    for key, value in row.get("hyperparameters", {}).items():
        short = SHORT_NAMES.get(key, key)
        parts.append(f"{short}{value}" if len(short) == 1 else f"{short} {value:g}")
    text = " ".join(parts) if parts else "-"
    if row.get("sampling_steps"):
        text += f", {row['sampling_steps']} sampling steps"
    if (row.get("frame_stride") or 1) > 1:
        text += f", frame stride {row['frame_stride']}"
    return text


def cost_description(protocol: dict) -> str:
    if protocol.get("cost", "latent") == "image":
        return f"MSE of decoded frames to the goal image, both blurred (sigma {protocol['cost_blur']:g} px)"
    return "latent MSE to the goal image"


def markdown_table(rows: list[dict]) -> str:
    """A line stating the protocol, then one table row per JSON row."""
    if not rows:
        return "(no rows: every model was skipped)"
    protocol = rows[0]["protocol"]
    header = (
        f"{protocol['episodes']} episodes (seed {protocol['seed']}), {protocol['steps']} frames each; actions held "
        f"{protocol['action_repeat']} frames, replanning every {protocol['replan_every']} held action(s); goals up "
        f"to {protocol['max_goal_offset']} action units per joint; cost: {cost_description(protocol)} "
        f"({protocol['cost_reduce']} step); success: final error over {', '.join(rows[0]['error_joints'])} "
        f"< {protocol['success_threshold']} rad."
    )
    columns = ["model", "planner", "success", "final error (rad)", "start error (rad)", "all 18 goal joints (rad)",
               "s / plan", "settings"]
    cells = [
        [MODEL_LABELS.get(row["model"], row["model"]), row["planner"] if row["planner"] != "none" else "-",
         f"{row['success_rate']:.2f} ({row['successes']}/{row['episodes']})",
         f"{row['final_error_mean']:.3f} ± {row['final_error_std']:.3f}", f"{row['initial_error_mean']:.3f}",
         f"{row['final_pose_error_mean']:.3f}",
         "-" if row["seconds_per_plan"] is None else f"{row['seconds_per_plan']:.2f}", format_settings(row)]
        for row in rows
    ]
    return tables.markdown_table(columns, cells, align="llrrrrrl", intro=header)
